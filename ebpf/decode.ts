/**
 * @module ebpf/decode
 * Binary ring-buffer records (ebpf/prov.h) → events of collector/events.ts. The journal keeps
 * the raw records (codec `ebpfRaw`) and decodes them on read with {@link decodeRecord}, which
 * has the journal's PayloadDecoder shape. Every record's size is checked against its kind.
 *
 * File identity: `dev` is converted from the kernel's encoding with kernelDevToUser. An inode
 * the kernel could not resolve (a namespace op on a file system that did not set its ctime, a
 * file with many hard links) is reported with `ino: 0`: the join resolves it by name.
 */
import { hostname } from 'node:os';
import { posix } from 'node:path';
import {
  SCHEMA_VERSION, kernelDevToUser, decodeNameBytes,
  type ProvEvent, type EventBase, type FileRef,
} from '../collector/events.js';
import { InputError } from '../graph/errors.js';
import { CODEC, type PayloadDecoder } from '../collector/journal/api.js';

/** Record kinds and their sizes (must match the _Static_asserts in prov.bpf.c). */
export const KIND = {
  fork: 1, exec: 2, exit: 3, fd: 4, open: 5, sock: 6, msg: 7, fs: 8, lost: 9, setattr: 10,
  execV: 11, fsV: 12, setattrV: 13,
} as const;
/**
 * Full size of each kind: fixed-size kinds are exactly this; open and the variable-length
 * kinds (ABI 2: execV, fsV, setattrV) are at most this. exec, fs and setattr (ABI 1, fixed
 * size) are no longer written but still decoded: journals recorded before keep reading.
 */
export const RECORD_SIZE: Record<number, number> = {
  [KIND.fork]: 64, [KIND.exec]: 4184, [KIND.exit]: 56, [KIND.fd]: 88, [KIND.open]: 864,
  [KIND.sock]: 200, [KIND.msg]: 248, [KIND.fs]: 2184, [KIND.lost]: 72, [KIND.setattr]: 1152,
  [KIND.execV]: 4096, [KIND.fsV]: 4096, [KIND.setattrV]: 4096,
};
/** Layout of a variable-length kind: its fixed part, where the strings' u16 lengths sit, how many strings follow. */
export interface VarLayout { fixed: number; lens: number; strings: number }
/** Fixed part of each variable-length kind (prov.h struct prov_*_v) and how many strings follow it. */
export const VAR_FIXED: Record<number, VarLayout> = {
  [KIND.execV]: { fixed: 80, lens: 72, strings: 4 },
  [KIND.fsV]: { fixed: 128, lens: 120, strings: 4 },
  [KIND.setattrV]: { fixed: 128, lens: 120, strings: 2 },
};
const HDR = 48;
/** offsetof(struct prov_open, path.path): an open record is this plus its path, NUL, padding. */
const OPEN_FIXED = 96;
const WALK_BYTES = 776;
const O_CLOEXEC = 0o2000000;
const AT_REMOVEDIR = 0x200;
const S_IFMT = 0o170000;

const FD_OP = { pipe: 1, dup: 2, close: 3, closeRange: 4 } as const;
const SOCK_OPS = ['', 'socket', 'accept', 'connect'] as const;
const FS_OP = { rename: 1, unlink: 2, rmdir: 3, mkdir: 4, link: 5, symlink: 6 } as const;
/** prov_setattr.changed bits (prov.h PROV_SA_*). */
const SA = { mode: 1, uid: 2, gid: 4, size: 8, mtime: 16, inode: 32 } as const;

let host = hostname();
/** Override the host name stamped on decoded events (tests, replays from another machine). */
export function setDecodeHost(name: string): void { host = name; }

class Rec {
  readonly dv: DataView;
  constructor(readonly b: Uint8Array) { this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength); }
  u16(o: number) { return this.dv.getUint16(o, true); }
  u32(o: number) { return this.dv.getUint32(o, true); }
  i32(o: number) { return this.dv.getInt32(o, true); }
  u64(o: number) { return Number(this.dv.getBigUint64(o, true)); }
  i64(o: number) { return Number(this.dv.getBigInt64(o, true)); }
  /** A NUL-terminated string in a fixed field. */
  str(o: number, max: number): string {
    const f = this.b.subarray(o, o + max);
    const end = f.indexOf(0);
    return decodeNameBytes(end < 0 ? f : f.subarray(0, end));
  }
  /** A path walked in the kernel (struct prov_walk): empty when not walked. */
  walk(o: number): { path: string; bytes: Uint8Array; truncated: boolean } {
    const off = this.u16(o), len = this.u16(o + 2), truncated = this.u16(o + 4) !== 0;
    if (!len || off + len > 768 || o + 8 + off + len > this.b.byteLength) return { path: '', bytes: this.b.subarray(0, 0), truncated };
    const bytes = this.b.subarray(o + 8 + off, o + 8 + off + len);
    return { path: decodeNameBytes(bytes), bytes, truncated };
  }
  /** `len` bytes at `o` (a fixed field of ABI 1). */
  field(o: number, len: number): Uint8Array { return this.b.subarray(o, o + len); }
  /**
   * The strings after a variable-length record's fixed part (ABI 2): `n` u16 lengths at
   * `lensAt`, the strings back to back from `fixed`, each followed by a NUL.
   */
  strings(fixed: number, lensAt: number, n: number, where: string): Uint8Array[] {
    const out: Uint8Array[] = [];
    let o = fixed;
    for (let i = 0; i < n; i++) {
      const len = this.u16(lensAt + 2 * i);
      if (o + len + 1 > this.b.byteLength || this.b[o + len] !== 0) {
        throw new InputError(`eBPF record kind ${this.u16(0)}: string ${i} (${len} bytes at ${o}) runs past the record's ${this.b.byteLength} bytes or is not NUL-terminated`, where);
      }
      out.push(this.b.subarray(o, o + len));
      o += len + 1;
    }
    return out;
  }
}

function base(r: Rec): EventBase {
  const ppid = r.u32(24);
  return {
    v: SCHEMA_VERSION, src: 'ebpf', seq: 0, ts: r.u64(8), host,
    pid: r.u32(16), tid: r.u32(20), ...(ppid ? { ppid } : {}), comm: r.str(32, 16),
  };
}

function fileRef(ino: number, kdev: number, mode: number, extra: Partial<FileRef> = {}): FileRef {
  const f: FileRef = { dev: ino ? kernelDevToUser(kdev) : 0, ino };
  if (mode) f.type = mode & S_IFMT;
  return Object.assign(f, extra);
}

/** Join a path as passed with the directory it is relative to (walked in the kernel). */
function resolvePath(dir: string, raw: string): string | undefined {
  if (!raw) return undefined;
  if (raw.startsWith('/')) return posix.normalize(raw);
  if (!dir) return undefined;
  return posix.normalize(dir + '/' + raw);
}

function lastName(raw: string): string | undefined {
  const t = raw.replace(/\/+$/, '');
  const i = t.lastIndexOf('/');
  const n = i < 0 ? t : t.slice(i + 1);
  return n || undefined;
}

/**
 * `o` without its undefined fields, as a new object: deleting them would put every decoded
 * event in V8's slow dictionary mode (a copy is about 2× cheaper to make and to read after).
 */
function defined<T extends object>(o: T): T {
  const out = {} as Record<string, unknown>;
  for (const k in o) {
    const v = o[k];
    if (v !== undefined) out[k] = v;
  }
  return out as T;
}

/**
 * Decode one record. `where` names its place (journal segment and offset) for the error.
 * Throws InputError on a record of unknown kind or of the wrong size.
 */
export function decodeRecord(payload: Uint8Array, where: string): ProvEvent {
  if (payload.byteLength < HDR) throw new InputError(`eBPF record of ${payload.byteLength} bytes, shorter than its ${HDR}-byte header`, where);
  const r = new Rec(payload);
  const kind = r.u16(0), size = r.u16(2);
  const want = RECORD_SIZE[kind];
  if (want === undefined) throw new InputError(`unknown eBPF record kind ${kind}`, where);
  // Open records are sent trimmed after their path (prov.h), the variable-length kinds after
  // their strings: any multiple of 8 from the fixed part up to the full size.
  const v = VAR_FIXED[kind];
  const min = kind === KIND.open ? OPEN_FIXED + 8 : v ? v.fixed + 8 : want;
  const sizeOk = kind === KIND.open || v
    ? size === payload.byteLength && size >= min && size <= want && size % 8 === 0
    : size === want && payload.byteLength === want;
  if (!sizeOk) {
    const expected = min !== want ? `a multiple of 8 from ${min} to ${want}` : String(want);
    throw new InputError(`eBPF record kind ${kind} is ${payload.byteLength} bytes (header says ${size}), expected ${expected}: ebpf/prov.h and ebpf/decode.ts disagree`, where);
  }
  const b = base(r);
  if (v) {
    const strs = r.strings(v.fixed, v.lens, v.strings, where);
    if (kind === KIND.execV) return decodeExec(r, b, strs[0]!, strs[1]!, strs[2]!, strs[3]!);
    if (kind === KIND.fsV) return decodeFs(r, b, where, strs[0]!, strs[1]!, strs[2]!, strs[3]!);
    return decodeSetattr(r, b, where, strs[0]!, strs[1]!);
  }
  switch (kind) {
    case KIND.fork:
      return { ...b, op: 'fork', child: r.u32(48), childTid: r.u32(52), thread: r.u32(56) !== 0 };
    case KIND.exit:
    {
      // task->exit_code is a wait status: report the exit status, or 128 + signal as shells do
      const status = r.i32(48);
      const code = (status & 0x7f) === 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f);
      return { ...b, op: 'exit', code, group: r.u32(52) !== 0 };
    }
    case KIND.exec: {
      // ABI 1: fixed fields
      const envLen = r.u32(56);
      const walk = r.walk(3408);
      return decodeExec(r, b, r.field(80, 256), r.field(336, Math.min(r.u32(52), 2048)),
        envLen ? r.field(2384, Math.min(envLen, 1024)) : r.field(0, 0), walk.bytes, r.u32(60));
    }
    case KIND.fd: {
      const op = r.u32(48), a = r.i32(52), bb = r.i32(56), flags = r.u32(60);
      const ino = r.u64(64), dev = r.u32(72), mode = r.u32(76);
      if (op === FD_OP.pipe) return defined({ ...b, op: 'pipe' as const, fds: [a, bb] as [number, number], ino, dev: ino ? kernelDevToUser(dev) : undefined, cloexec: flags & O_CLOEXEC ? true : undefined });
      if (op === FD_OP.dup) return defined({ ...b, op: 'dup' as const, oldfd: a, newfd: bb, cloexec: flags & 1 ? true : undefined });
      if (op === FD_OP.close) return { ...b, op: 'close', fd: a, ...(ino ? { file: fileRef(ino, dev, mode) } : {}) };
      if (op === FD_OP.closeRange) return { ...b, op: 'close', fd: a, fdMax: bb >>> 0 };
      throw new InputError(`unknown fd op ${op}`, where);
    }
    case KIND.open: {
      const ino = r.u64(64), parent = r.u64(80);
      const { path } = r.walk(88);
      return defined({
        ...b, op: 'open' as const,
        file: fileRef(ino, r.u32(72), r.u32(76), defined({ parent: parent || undefined, name: path ? lastName(path) : undefined, path: path || undefined })),
        flags: r.u32(52), fd: r.i32(48), created: r.u32(60) ? true : undefined, mode: r.u32(56) || undefined,
      });
    }
    case KIND.sock: {
      const op = SOCK_OPS[r.u32(48)];
      if (!op) throw new InputError(`unknown socket op ${r.u32(48)}`, where);
      const family = r.u32(60), addrLen = r.u32(68);
      return defined({
        ...b, op, fd: r.i32(52), newfd: op === 'accept' ? r.i32(56) : undefined,
        ino: r.u64(72), peer: r.u64(80) || undefined, family, type: r.u32(64),
        addr: addrLen ? formatAddr(payload.subarray(88, 88 + addrLen)) : undefined,
      });
    }
    case KIND.msg: {
      const op = r.u32(48) === 1 ? 'sendmsg' as const : 'recvmsg' as const;
      const n = Math.min(r.u32(80), 8);
      const fds: number[] = [], files: FileRef[] = [];
      for (let i = 0; i < n; i++) {
        fds.push(r.i32(88 + 4 * i));
        files.push(fileRef(r.u64(152 + 8 * i), r.u32(120 + 4 * i), r.u32(216 + 4 * i)));
      }
      return defined({
        ...b, op, fd: r.i32(52), sock: r.u64(56), peer: r.u64(64) || undefined, bytes: r.i64(72),
        fds: n ? fds : undefined, files: n ? files : undefined,
      });
    }
    case KIND.fs:
      return decodeFs(r, b, where, r.field(120, 256), r.field(376, 256), r.walk(632).bytes, r.walk(1408).bytes);
    case KIND.setattr:
      return decodeSetattr(r, b, where, r.field(120, 256), r.walk(376).bytes);
    case KIND.lost:
      return { ...b, op: 'lost', count: r.u64(48), from: r.u64(56), to: r.u64(64), reason: 'ring buffer full' };
  }
  throw new InputError(`unhandled eBPF record kind ${kind}`, where);
}

/**
 * exec from either layout: filename, NUL-separated argv and env bytes, cwd bytes; `flags` are
 * ABI 1's (bit 0 argv cut, bit 1 env cut) when given, else read from prov_exec_v.
 */
function decodeExec(r: Rec, b: EventBase, fileB: Uint8Array, argsB: Uint8Array, envB: Uint8Array, cwdB: Uint8Array, flags = r.u32(52)): ProvEvent {
  const gid = r.u32(48);
  const exeIno = r.u64(56 + (r.u16(0) === KIND.exec ? 8 : 0));
  const devAt = r.u16(0) === KIND.exec ? 72 : 64;
  const filename = text(fileB);
  const cwd = text(cwdB);
  return defined({
    ...b, op: 'exec' as const, filename,
    argv: list(argsB),
    argvTruncated: flags & 1 ? true : undefined,
    env: envB.length ? list(envB) : undefined,
    envTruncated: flags & 2 ? true : undefined,
    cwd: cwd || undefined,
    uid: r.u32(4), gid,
    exe: exeIno ? fileRef(exeIno, r.u32(devAt), r.u32(devAt + 4), defined({ path: resolvePath(cwd, filename) })) : undefined,
  });
}

/** Bytes up to the first NUL, as a name. */
function text(f: Uint8Array): string {
  const end = f.indexOf(0);
  return decodeNameBytes(end < 0 ? f : f.subarray(0, end));
}

/** NUL-separated strings (a trailing NUL ends the last one). */
function list(f: Uint8Array): string[] {
  const out: string[] = [];
  let s = 0;
  for (let i = 0; i < f.length; i++) if (f[i] === 0) { out.push(decodeNameBytes(f.subarray(s, i))); s = i + 1; }
  if (s < f.length) out.push(decodeNameBytes(f.subarray(s)));
  return out;
}

function inodeAt(r: Rec, o: number): { ino: number; dev: number; mode: number; gone: boolean } {
  return { ino: r.u64(o), dev: r.u32(o + 8), mode: r.u32(o + 12), gone: r.u32(o + 20) !== 0 };
}

/** rename/unlink/… from either layout (the fixed fields up to `other` are the same in both). */
function decodeFs(r: Rec, b: EventBase, where: string, raw1B: Uint8Array, raw2B: Uint8Array, dir1B: Uint8Array, dir2B: Uint8Array): ProvEvent {
  const op = r.u32(48), flags = r.u32(52);
  const file = inodeAt(r, 72), other = inodeAt(r, 96);
  const raw1 = text(raw1B), raw2 = text(raw2B);
  const dir1 = text(dir1B), dir2 = text(dir2B);
  const p1 = resolvePath(dir1, raw1), p2 = resolvePath(dir2, raw2);
  const ref = (i: typeof file, raw: string, path: string | undefined) =>
    fileRef(i.ino, i.dev, i.mode, defined({ name: lastName(raw), path }));
  switch (op) {
    case FS_OP.rename:
      return defined({
        ...b, op: 'rename' as const, file: ref(file, raw2, p2), from: defined({ name: lastName(raw1), path: p1 }), flags,
        overwritten: other.ino ? ref(other, raw2, p2) : undefined,
        overwrittenDeleted: other.ino ? other.gone : undefined,
      });
    case FS_OP.unlink:
      if (flags & AT_REMOVEDIR) return { ...b, op: 'rmdir', file: ref(file, raw1, p1) };
      return { ...b, op: 'unlink', file: ref(file, raw1, p1), deleted: file.gone };
    case FS_OP.rmdir:
      return { ...b, op: 'rmdir', file: ref(file, raw1, p1) };
    case FS_OP.mkdir:
      return { ...b, op: 'mkdir', file: ref(file, raw1, p1), mode: r.u32(64) };
    case FS_OP.link:
      return { ...b, op: 'link', file: ref(file, raw2, p2) };
    case FS_OP.symlink:
      return { ...b, op: 'symlink', file: ref(file, raw2, p2), target: raw1 };
  }
  throw new InputError(`unknown file-system op ${op}`, where);
}

/**
 * chmod/chown/utimes/truncate: only the attributes the call set. Values are the inode's at
 * syscall exit (so UTIME_NOW comes out as the time the kernel stored); without the inode, the
 * arguments (and no mtime).
 */
function decodeSetattr(r: Rec, b: EventBase, where: string, rawB: Uint8Array, dirB: Uint8Array): ProvEvent {
  const op = r.u32(48), changed = r.u32(52);
  if (op < 1 || op > 4) throw new InputError(`unknown setattr op ${op}`, where);
  const file = inodeAt(r, 96);
  const raw = text(rawB);
  const dir = text(dirB);
  const path = raw ? resolvePath(dir, raw) : dir || undefined;
  return defined({
    ...b, op: 'setattr' as const,
    file: fileRef(file.ino, file.dev, file.mode, defined({ name: path ? lastName(path) : undefined, path })),
    mode: changed & SA.mode ? r.u32(64) & 0o7777 : undefined,
    uid: changed & SA.uid ? r.u32(68) : undefined,
    gid: changed & SA.gid ? r.u32(72) : undefined,
    size: changed & SA.size ? r.i64(80) : undefined,
    mtime: changed & SA.mtime ? r.i64(88) * 1e9 + r.u32(76) : undefined,
  });
}

/** sockaddr bytes → "a.b.c.d:port", "[v6]:port" or a UNIX path ("@name" for abstract). */
function formatAddr(a: Uint8Array): string | undefined {
  if (a.length < 2) return undefined;
  const family = a[0]! | (a[1]! << 8);
  if (family === 1) {
    const p = a.subarray(2);
    if (p.length && p[0] === 0) return '@' + decodeNameBytes(p.subarray(1, p.indexOf(0, 1) < 0 ? p.length : p.indexOf(0, 1)));
    const end = p.indexOf(0);
    return decodeNameBytes(end < 0 ? p : p.subarray(0, end));
  }
  const port = a.length >= 4 ? (a[2]! << 8) | a[3]! : 0;
  if (family === 2 && a.length >= 8) return `${a[4]}.${a[5]}.${a[6]}.${a[7]}:${port}`;
  if (family === 10 && a.length >= 24) {
    const g: string[] = [];
    for (let i = 8; i < 24; i += 2) g.push(((a[i]! << 8) | a[i + 1]!).toString(16));
    return `[${g.join(':')}]:${port}`;
  }
  return undefined;
}

/** Encode a `lost` record (the drainer writes these when the kernel's drop counter grows). */
export function encodeLost(count: number, from: number, to: number): Uint8Array {
  const b = Buffer.alloc(RECORD_SIZE[KIND.lost]!);
  b.writeUInt16LE(KIND.lost, 0);
  b.writeUInt16LE(b.length, 2);
  b.writeBigUInt64LE(BigInt(to), 8);
  b.writeUInt32LE(process.pid, 16);
  b.writeUInt32LE(process.pid, 20);
  b.write('prov-drain', 32, 'latin1');
  b.writeBigUInt64LE(BigInt(count), 48);
  b.writeBigUInt64LE(BigInt(from), 56);
  b.writeBigUInt64LE(BigInt(to), 64);
  return b;
}

/** Decoders for the journal reader: `openJournalReader(dir, { decoders: ebpfDecoders })`. */
export const ebpfDecoders: ReadonlyMap<number, PayloadDecoder> = new Map([[CODEC.ebpfRaw, decodeRecord]]);

/** Add the eBPF decoder to an existing decoder map (returns the same map). No koffi, no libbpf needed. */
export function registerEbpfDecoder(decoders: Map<number, PayloadDecoder>): Map<number, PayloadDecoder> {
  decoders.set(CODEC.ebpfRaw, decodeRecord);
  return decoders;
}
