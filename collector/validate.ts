/**
 * @module collector/validate
 * The event validator: checks a decoded record against the schema in collector/events.ts, field
 * by field, and says exactly what is wrong (`ebpf seq 812: exec.argv[3] is not a string`).
 *
 * It runs on every record the collector reads, so it is built once from a table of field
 * checkers per op and allocates nothing on the success path; reasons are composed only on
 * failure. Unknown extra fields are accepted (an additive schema change must not break older
 * readers); every field the schema names is checked for presence (when required), type and
 * range.
 */
import { InputError } from '../graph/errors.js';
import { OPS, SCHEMA_VERSION, type ProvEvent } from './events.js';

/** A checker returns null when the value is fine, else the reason as a suffix to the field path. */
type Checker = (v: unknown) => string | null;

const U32_MAX = 0xffffffff;
const I32_MIN = -0x80000000;
const I32_MAX = 0x7fffffff;
/** Kernel u64 quantities (inode numbers, FUSE fh, ns) are JS numbers; beyond 2^53 they are inexact but legitimate. */
const U64_LIMIT = 2 ** 64;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return v.length > 40 ? `a string (${v.length} chars)` : JSON.stringify(v);
  return typeof v;
}

/** Integer in [min, max] (max may be 2^64 exclusive for u64 quantities). */
function int(min: number, max: number, maxExclusive = false): Checker {
  return (v) => {
    if (typeof v !== 'number') return ` is not a number (got ${describe(v)})`;
    if (!Number.isInteger(v)) return ` is not an integer (got ${describe(v)})`;
    if (v < min) return min === 0 ? ` is negative (${v})` : ` is below ${min} (${v})`;
    if (maxExclusive ? v >= max : v > max) return ` is out of range (${v} > ${maxExclusive ? 'max' : max})`;
    return null;
  };
}

const u32 = int(0, U32_MAX);
const i32 = int(I32_MIN, I32_MAX);
const fdNum = int(0, I32_MAX);
const u64 = int(0, U64_LIMIT, true);
const i64 = int(-U64_LIMIT, U64_LIMIT, true);
const safeUint = int(0, Number.MAX_SAFE_INTEGER);

const str: Checker = (v) => (typeof v === 'string' ? null : ` is not a string (got ${describe(v)})`);
const nonEmptyStr: Checker = (v) => (typeof v !== 'string' ? ` is not a string (got ${describe(v)})` : v.length === 0 ? ' is empty' : null);
const bool: Checker = (v) => (typeof v === 'boolean' ? null : ` is not a boolean (got ${describe(v)})`);

function arrayOf(item: Checker, what: string): Checker {
  return (v) => {
    if (!Array.isArray(v)) return ` is not an array of ${what} (got ${describe(v)})`;
    for (let i = 0; i < v.length; i++) {
      const r = item(v[i]);
      if (r !== null) return `[${i}]${r}`;
    }
    return null;
  };
}

function tupleOf(item: Checker, n: number): Checker {
  return (v) => {
    if (!Array.isArray(v)) return ` is not an array of ${n} (got ${describe(v)})`;
    if (v.length !== n) return ` has ${v.length} elements, expected ${n}`;
    for (let i = 0; i < n; i++) {
      const r = item(v[i]);
      if (r !== null) return `[${i}]${r}`;
    }
    return null;
  };
}

/** [field, checker, required] */
type FieldSpec = readonly [string, Checker, boolean];

function objectOf(fields: readonly FieldSpec[], what: string): Checker {
  return (v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return ` is not ${what} (got ${describe(v)})`;
    const o = v as Record<string, unknown>;
    for (const [name, check, required] of fields) {
      const x = o[name];
      if (x === undefined) {
        if (required) return `.${name} is missing`;
        continue;
      }
      const r = check(x);
      if (r !== null) return `.${name}${r}`;
    }
    return null;
  };
}

const fileRef = objectOf([
  ['dev', u64, true], ['ino', u64, true], ['parent', u64, false], ['name', str, false],
  ['path', str, false], ['type', u32, false],
], 'a file reference object');
const nameRef = objectOf([['parent', u64, false], ['name', str, false], ['path', str, false]], 'a name reference object');

const req = (name: string, c: Checker): FieldSpec => [name, c, true];
const opt = (name: string, c: Checker): FieldSpec => [name, c, false];

/** Fields every record carries (v, src, op are checked before these). */
const BASE: readonly FieldSpec[] = [
  req('seq', safeUint), req('ts', u64), req('host', nonEmptyStr), req('pid', u32), req('tid', u32),
  opt('ppid', u32), opt('comm', str),
];

const socketFields: FieldSpec[] = [
  req('fd', fdNum), opt('newfd', fdNum), req('ino', u64), opt('peer', u64), opt('family', u32),
  opt('type', u32), opt('addr', str),
];
const msgFields: FieldSpec[] = [
  req('fd', fdNum), req('sock', u64), opt('peer', u64), opt('bytes', safeUint),
  opt('fds', arrayOf(fdNum, 'fds')), opt('files', arrayOf(fileRef, 'file references')),
];

/** Op-specific fields, one entry per op in collector/events.ts. */
const OP_FIELDS: Record<(typeof OPS)[number], readonly FieldSpec[]> = {
  fork: [req('child', u32), req('childTid', u32), req('thread', bool)],
  exec: [
    req('filename', str), req('argv', arrayOf(str, 'strings')), opt('argvTruncated', bool),
    opt('env', arrayOf(str, 'strings')), opt('envTruncated', bool), opt('cwd', str),
    req('uid', u32), req('gid', u32), opt('exe', fileRef),
  ],
  exit: [req('code', i32), req('group', bool)],
  pipe: [req('fds', tupleOf(fdNum, 2)), req('ino', u64), opt('dev', u64), opt('cloexec', bool)],
  dup: [req('oldfd', fdNum), req('newfd', fdNum), opt('cloexec', bool)],
  socket: socketFields,
  accept: socketFields,
  connect: socketFields,
  sendmsg: msgFields,
  recvmsg: msgFields,
  open: [req('file', fileRef), req('flags', u32), opt('fd', fdNum), opt('fh', u64), opt('created', bool), opt('mode', u32)],
  close: [opt('fd', fdNum), opt('fdMax', u32), opt('file', fileRef), opt('fh', u64)],
  create: [req('file', fileRef), req('mode', u32), opt('flags', u32), opt('fh', u64)],
  mkdir: [req('file', fileRef), req('mode', u32)],
  symlink: [req('file', fileRef), req('target', str)],
  link: [req('file', fileRef)],
  rename: [
    req('file', fileRef), req('from', nameRef), req('flags', u32), opt('overwritten', fileRef),
    opt('overwrittenDeleted', bool),
  ],
  unlink: [req('file', fileRef), req('deleted', bool)],
  rmdir: [req('file', fileRef)],
  setattr: [req('file', fileRef), opt('mode', u32), opt('uid', u32), opt('gid', u32), opt('size', safeUint), opt('mtime', i64)],
  lost: [req('count', safeUint), req('from', u64), req('to', u64), req('reason', str)],
};

/** Per op: base fields followed by op fields, flattened once. */
const SPECS = new Map<string, readonly FieldSpec[]>(
  OPS.map((op) => [op, [...BASE, ...OP_FIELDS[op]]]),
);

/** Extra cross-field rules (ranges that involve two fields). */
function crossCheck(o: Record<string, unknown>): string | null {
  const op = o.op;
  if (op === 'lost' && (o.to as number) < (o.from as number)) return 'lost.to is before lost.from';
  if (op === 'close' && o.fdMax !== undefined) {
    if (o.fd === undefined) return 'close.fdMax is set without close.fd';
    if ((o.fdMax as number) < (o.fd as number)) return 'close.fdMax is below close.fd';
  }
  if (op === 'sendmsg' || op === 'recvmsg') {
    const files = o.files as unknown[] | undefined;
    const fds = o.fds as unknown[] | undefined;
    if (files !== undefined && (fds === undefined || fds.length !== files.length)) {
      return `${op}.files has ${files.length} entries but ${op}.fds has ${fds === undefined ? 'none' : fds.length}`;
    }
  }
  return null;
}

function label(o: Record<string, unknown>): string {
  const src = typeof o.src === 'string' ? (o.src.length > 20 ? o.src.slice(0, 20) + '…' : o.src) : '?';
  const seq = typeof o.seq === 'number' ? String(o.seq) : '?';
  return `${src} seq ${seq}`;
}

/** The reason a record is invalid (`ebpf seq 812: exec.argv[3] is not a string`), or null when it is valid. */
export function eventProblem(x: unknown): string | null {
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return `? seq ?: record is not an object (got ${describe(x)})`;
  const o = x as Record<string, unknown>;
  if (o.v !== SCHEMA_VERSION) {
    return `${label(o)}: v is ${o.v === undefined ? 'missing' : describe(o.v)}, expected ${SCHEMA_VERSION}`;
  }
  if (o.src !== 'ebpf' && o.src !== 'provfs') {
    return `${label(o)}: src ${o.src === undefined ? 'is missing' : `${describe(o.src)} is not a known source (ebpf, provfs)`}`;
  }
  const op = o.op;
  const spec = typeof op === 'string' ? SPECS.get(op) : undefined;
  if (spec === undefined) {
    return `${label(o)}: op ${op === undefined ? 'is missing' : `${describe(op)} is not a known op`}`;
  }
  for (let i = 0; i < spec.length; i++) {
    const f = spec[i]!;
    const v = o[f[0]];
    if (v === undefined) {
      if (f[2]) return `${label(o)}: ${op}.${f[0]} is missing`;
      continue;
    }
    const r = f[1](v);
    if (r !== null) return `${label(o)}: ${op}.${f[0]}${r}`;
  }
  const cross = crossCheck(o);
  return cross === null ? null : `${label(o)}: ${cross}`;
}

/** Result of {@link checkEvent}: the typed event, or why it was rejected. */
export type EventCheck = { ok: true; event: ProvEvent } | { ok: false; reason: string };

/**
 * Check a record without throwing (the collector's hot path). `where` (file, offset…) is
 * prefixed to the reason when given.
 */
export function checkEvent(x: unknown, where = ''): EventCheck {
  const problem = eventProblem(x);
  if (problem === null) return { ok: true, event: x as ProvEvent };
  return { ok: false, reason: where ? `${where}: ${problem}` : problem };
}

/**
 * Validate a record; throws {@link InputError} whose message names `where`, the source, the
 * seq and the exact reason.
 */
export function validateEvent(x: unknown, where: string): ProvEvent {
  const problem = eventProblem(x);
  if (problem !== null) throw new InputError(problem, where || undefined);
  return x as ProvEvent;
}
