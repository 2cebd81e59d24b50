/**
 * @module kernel/resent
 * Exactly-once records for requests a crash left half done. The kernel resends what the dead
 * daemon read but never answered (FUSE_NOTIFY_RESEND); some of those it had already carried out
 * and recorded — the record goes into the ring before the reply is written, and the kill landed
 * in between. The new daemon carries such a request out again (kernel/dispatch: a CREATE with
 * O_EXCL is retried without it) and would record it a second time. So while it serves a resent
 * request, each record it makes is first looked up among the dead daemon's last records (its
 * ring file, read once, lazily: only a takeover with a resent request pays for it): the same
 * operation, by the same thread, on the same file and name, was recorded already and is not
 * recorded again. A request the dead daemon carried out but had not yet recorded is recorded now.
 *
 * Some resent requests are answered "already done" without being carried out again (a MKDIR
 * whose name exists, an UNLINK whose name is gone: kernel/dispatch), so no record is made. A
 * removal is recorded ahead of the system call (Recorder.ahead): the dead daemon's ring holds its
 * record staged, unpublished, when it died between the two, and that record is written now —
 * the kernel keeps the directory locked from its lookup until the reply, so through the mount
 * only this request can have removed the name. A creation found done is recorded again from the
 * name as it is now (kernel/dispatch), for the same reason; if the dead daemon had recorded it,
 * that second record is dropped as above. When a removal's name is in neither the dead daemon's
 * last records nor its staged one (a ring that could not be read), the daemon cannot tell what
 * was removed: it writes a `lost` record naming the operation, so the gap is on the record.
 */
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import * as libc from './libc.js';
import { EventRing } from './eventring.js';
import { OP, SIZE } from './protocol.js';
import { SCHEMA_VERSION, decodeNameBytes } from '../collector/events.js';
import { provfsRecordText } from '../collector/provfs-record.js';

type RecordFields = { op?: string; tid?: number; file?: { dev?: number; ino?: number | string; name?: string; parent?: number | string } };

/** What makes two records the same operation: op, thread, file identity and name. */
export function recordKey(json: string): string {
  try {
    const e = JSON.parse(json) as RecordFields;
    return `${e.op}|${e.tid}|${e.file?.dev}:${e.file?.ino}|${e.file?.parent}|${e.file?.name}`;
  } catch {
    return '';
  }
}

/** The same operation on a name, whatever the file (it may be gone): op, thread, parent inode, name. */
export function nameKey(op: string, tid: number, parentIno: number | string | undefined, name: string): string {
  return `${op}|${tid}|${parentIno}|${name}`;
}

function nameKeyOf(json: string): string {
  try {
    const e = JSON.parse(json) as RecordFields;
    return nameKey(e.op ?? '', e.tid ?? 0, e.file?.parent, e.file?.name ?? '');
  } catch {
    return '';
  }
}

/** Requests a resend may answer "already done" without a record (see the module comment), and the op of their record. */
const DONE_WITHOUT_RECORD: Partial<Record<number, { op: string; nameAt: number }>> = {
  [OP.MKDIR]: { op: 'mkdir', nameAt: SIZE.mkdir_in }, [OP.MKNOD]: { op: 'create', nameAt: SIZE.mknod_in },
  [OP.SYMLINK]: { op: 'symlink', nameAt: 0 }, [OP.LINK]: { op: 'link', nameAt: SIZE.link_in },
  [OP.UNLINK]: { op: 'unlink', nameAt: 0 }, [OP.RMDIR]: { op: 'rmdir', nameAt: 0 },
};

/**
 * After a resent request produced no record: the record to write (JSON) — the dead daemon's
 * staged record of it, or else a `lost` record — or null when none is needed (not such a
 * request, or the dead daemon recorded it). `deadRecords` is called only for a request that
 * creates or removes a name: reading the dead ring took a resent GETATTR, LOOKUP or RELEASE
 * (a takeover's usual first request) half a millisecond.
 */
export function unrecordedResend(opcode: number, body: Buffer, tid: number, parentIno: number | undefined, deadRecords: () => DeadRecords): string | null {
  const rule = DONE_WITHOUT_RECORD[opcode];
  if (!rule || body.length < rule.nameAt) return null;
  const dead = deadRecords();
  const raw = body.subarray(rule.nameAt);
  const nul = raw.indexOf(0);
  const name = decodeNameBytes(nul >= 0 ? raw.subarray(0, nul) : raw);
  if (dead.hasName(rule.op, tid, parentIno, name)) return null;
  const staged = dead.staged();
  if (staged !== null && nameKeyOf(staged) === nameKey(rule.op, tid, parentIno, name)) return staged;
  const now = Number(process.hrtime.bigint());
  return JSON.stringify({
    op: 'lost', count: 1, from: now, to: now,
    reason: `provfs daemon killed while carrying out ${rule.op} of ${JSON.stringify(name)} (thread ${tid}): the kernel resent it, it was found already done, and the dead daemon left no record of it — it may have carried it out unrecorded`,
    v: SCHEMA_VERSION, src: 'provfs', seq: 0, host: hostname(), pid: 0, ts: now, tid,
  });
}

/**
 * The dead daemon's last records (see {@link deadRecordKeys}), asked about one at a time: only
 * records that name the same file name are parsed (a takeover's first request pays for a byte
 * search per record, not a JSON parse of each: that cost 2–3 ms on the first reply here).
 */
export interface DeadRecords {
  /** The same operation on the same file by the same thread ({@link recordKey} of a record's JSON). */
  hasExact(json: string): boolean;
  /** The same operation on a name ({@link nameKey}). */
  hasName(op: string, tid: number, parentIno: number | string | undefined, name: string): boolean;
  /** The record it staged and had not published when it died (kernel/eventring), as JSON. */
  staged(): string | null;
}

function nameOf(json: string): string | undefined {
  try { return (JSON.parse(json) as RecordFields).file?.name; } catch { return undefined; }
}

/**
 * Records among the joined `tail` that may name `name`, as JSON text: JSON records whose bytes
 * hold `"name":<name>`, binary ones (collector/provfs-record) whose bytes hold the name's UTF-8
 * (one byte search across them all per form; callers compare what they get field by field).
 */
function* naming(tail: { bytes: Buffer; ends: number[] }, name: string | undefined): Generator<string> {
  if (name === undefined || tail.ends.length === 0) return;
  const seen = new Set<number>();
  // An empty name (a node known only from the node log after a crash has none yet) is no byte
  // needle: found everywhere, at the end too, it searched the same place for ever.
  const needles = [Buffer.from(`"name":${JSON.stringify(name)}`), Buffer.from(name)].filter((b) => b.length > 0);
  const end = tail.ends.at(-1)!;
  for (const needle of needles) {
    for (let from = 0, hit; from < end && (hit = tail.bytes.indexOf(needle, from)) >= 0 && hit < end;) {
      // The record holding the hit: the first whose end lies past it.
      let lo = 0, hi = tail.ends.length - 1;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (tail.ends[mid]! > hit) hi = mid; else lo = mid + 1; }
      const start = lo === 0 ? 0 : tail.ends[lo - 1]!;
      from = Math.max(tail.ends[lo]!, hit + 1);
      if (seen.has(lo)) continue;
      seen.add(lo);
      try { yield provfsRecordText(tail.bytes.subarray(start, from)); } catch { /* not a whole record: it names nothing */ }
    }
  }
}

/** How many of the dead daemon's newest records are compared (a resent request is among its last). */
const TAIL = 256;

/** The last records in the ring file at `path` (none when it cannot be read). */
export function deadRecordKeys(path: string): DeadRecords {
  let tail: { bytes: Buffer; ends: number[] } = { bytes: Buffer.alloc(0), ends: [] };
  let staged: Uint8Array | null = null;
  let ring: EventRing | null = null;
  try {
    const fd = libc.open(path, libc.O.RDWR);
    try { ring = EventRing.map(fd, statSync(path).size, false); } finally { libc.close(fd); }
    tail = ring.lastUnjournaled(TAIL);
    staged = ring.stagedRecord();
  } catch {
    tail = { bytes: Buffer.alloc(0), ends: [] };
  } finally {
    ring?.unmap();
  }
  return {
    hasExact(json) {
      const key = recordKey(json);
      for (const d of naming(tail, nameOf(json))) if (recordKey(d) === key) return true;
      return false;
    },
    hasName(op, tid, parentIno, name) {
      const key = nameKey(op, tid, parentIno, name);
      for (const d of naming(tail, name)) if (nameKeyOf(d) === key) return true;
      return false;
    },
    staged: () => { try { return staged === null ? null : provfsRecordText(staged); } catch { return null; } },
  };
}

/**
 * Fault injection for tests (PROV_PROVFS_CRASH_AFTER_RECORD=NAME): the first daemon of a mount
 * that records an operation on a file named NAME kills itself right after the record is in its
 * ring and before the reply is written — the window this module is about. Once per mount (a
 * marker file beside the node log); never set outside tests.
 */
export function crashAfterRecordHook(nodeLog: string | undefined): ((json: string) => void) | null {
  return crashHook(process.env.PROV_PROVFS_CRASH_AFTER_RECORD, nodeLog);
}

/**
 * The same, killed before the record is made (PROV_PROVFS_CRASH_BEFORE_RECORD=NAME): a
 * creation carried out and recorded nowhere.
 */
export function crashBeforeRecordHook(nodeLog: string | undefined): ((json: string) => void) | null {
  return crashHook(process.env.PROV_PROVFS_CRASH_BEFORE_RECORD, nodeLog);
}

function crashHook(name: string | undefined, nodeLog: string | undefined): ((json: string) => void) | null {
  if (!name || !nodeLog) return null;
  const needle = `"name":${JSON.stringify(name)}`;
  return (json) => {
    if (!json.includes(needle)) return;
    try {
      libc.close(libc.open(`${nodeLog}.crashed`, libc.O.WRONLY | libc.O.CREAT | libc.O.EXCL, 0o600));
    } catch {
      return; // crashed once already
    }
    process.kill(process.pid, 'SIGKILL');
  };
}
