/**
 * @module collector/provfs-record
 * The binary form of provfs's most frequent records: create, open, close and unlink, three of
 * which every file an application makes and removes produces, and setattr, three of which
 * `tar -x` makes per file (times, mode, owner). provfs's request loop writes them
 * into its event ring as a fixed 32-byte header and the file's part (from the node table), before it
 * answers the request; the journal keeps them as they are (codec {@link CODEC.provfsRaw}) and
 * readers decode them here into the same {@link ProvEvent} the JSON form gives, key for key.
 * The JSON is made only by whoever reads them: against JSON written as bytes in the loop, a
 * created-and-removed file cost the request loop about 1.1 µs and the daemon's threads together
 * about 2.5 µs less CPU (two daemons of each build, create+unlink on tmpfs, session 13).
 *
 * Layout (little-endian):
 * ```
 *  0 u8  TAG (0xb1: never '{', the first byte of a JSON record in the same ring)
 *  1 u8  op: 1 create, 2 open, 3 close, 4 unlink, 5 setattr
 *  2 u8  bits: 1 flags present, 2 fh present, 4 release (close), 8 deleted (unlink);
 *        setattr: 1 mode, 2 uid, 4 gid, 8 size, 16 mtime present
 *  3 u8  0
 *  4 u32 tid
 *  8 f64 ts (monotonic ns)
 * 16 u32 mode (create, setattr)
 * 20 u32 flags (create, open); uid (setattr)
 * 24 f64 fh (create, open, close)
 * 32 f64 dev, 40 f64 ino, 48 f64 parent inode, 56 u32 type (st_mode & S_IFMT)
 * 60 u16 name bytes, 62 u16 path bytes, 64 u16 host bytes
 * 66 name, path, host (UTF-8)
 * setattr only, after host: u32 gid, u32 0, f64 size, f64 mtime (ns)
 * ```
 */
import { SCHEMA_VERSION, type ProvEvent } from './events.js';
import { copyBytes } from './copy-bytes.js';

export const PROVFS_RECORD_TAG = 0xb1;
/** Bytes before the file's part. */
export const PROVFS_HEADER_BYTES = 32;
/** Bytes of the file's part before its strings. */
export const PROVFS_FILE_FIXED_BYTES = 34;

export const PROVFS_OP = { create: 1, open: 2, close: 3, unlink: 4, setattr: 5 } as const;
export const PROVFS_BIT = { flags: 1, fh: 2, release: 4, deleted: 8 } as const;
/** setattr's bits: which attributes the record carries. */
export const PROVFS_SETATTR_BIT = { mode: 1, uid: 2, gid: 4, size: 8, mtime: 16 } as const;
/** Bytes a setattr record has after its strings (gid, size, mtime). */
export const PROVFS_SETATTR_TAIL_BYTES = 24;

/** Longest name, path or host the 16-bit lengths hold (longer ones are written as JSON). */
export const PROVFS_MAX_STRING = 0xffff;

/** Bytes of a file's part with these strings; -1 when one is too long for the format's 16-bit lengths. */
export function provfsFileBytes(name: Uint8Array, prefix: Uint8Array, host: Uint8Array): number {
  const pathLen = prefix.length + name.length;
  if (name.length > PROVFS_MAX_STRING || pathLen > PROVFS_MAX_STRING || host.length > PROVFS_MAX_STRING) return -1;
  return PROVFS_FILE_FIXED_BYTES + name.length + pathLen + host.length;
}

/**
 * Write a file's part at `at` of `bytes` (`view` over the same memory); returns where it ends.
 * `path` is `prefix` followed by `name`. The caller checked the lengths ({@link provfsFileBytes}).
 * provfs's request loop writes it straight into its ring from what the node table holds: a
 * part built per node (a pool Buffer each) cost the loop a new 8 KiB pool every few dozen
 * files, and more garbage collection.
 */
export function writeProvfsFile(view: DataView, bytes: Uint8Array, at: number, dev: number, ino: number, parent: number, type: number, name: Uint8Array, prefix: Uint8Array, host: Uint8Array): number {
  view.setFloat64(at, dev, true);
  view.setFloat64(at + 8, ino, true);
  view.setFloat64(at + 16, parent, true);
  view.setUint32(at + 24, type, true);
  view.setUint16(at + 28, name.length, true);
  view.setUint16(at + 30, prefix.length + name.length, true);
  view.setUint16(at + 32, host.length, true);
  at += PROVFS_FILE_FIXED_BYTES;
  at = copyBytes(bytes, at, name);
  at = copyBytes(bytes, at, prefix);
  at = copyBytes(bytes, at, name);
  return copyBytes(bytes, at, host);
}

/** A file's part as a Buffer of its own (tests, tools); null when a string is too long for the format. */
export function encodeProvfsFile(dev: number, ino: number, parent: number, type: number, name: Uint8Array, prefix: Uint8Array, host: Uint8Array): Buffer | null {
  const size = provfsFileBytes(name, prefix, host);
  if (size < 0) return null;
  const out = Buffer.alloc(size);
  writeProvfsFile(new DataView(out.buffer, out.byteOffset, size), out, 0, dev, ino, parent, type, name, prefix, host);
  return out;
}

/**
 * Write a record's header at `at` of `view` (the file's part follows it). One function for the
 * recorder's ring writer and the tests, so the two cannot disagree on the layout.
 */
export function writeProvfsHeader(view: DataView, at: number, op: number, bits: number, tid: number, ts: number, mode: number, flags: number, fh: number): void {
  view.setUint32(at, PROVFS_RECORD_TAG | (op << 8) | (bits << 16), true);
  view.setUint32(at + 4, tid, true);
  view.setFloat64(at + 8, ts, true);
  view.setUint32(at + 16, mode, true);
  view.setUint32(at + 20, flags, true);
  view.setFloat64(at + 24, fh, true);
}

/** Whether `bytes` is a binary provfs record (else it is JSON). */
export function isProvfsRecord(bytes: Uint8Array): boolean {
  return bytes.length > 0 && bytes[0] === PROVFS_RECORD_TAG;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Lenient = new TextDecoder();
const OPS = ['', 'create', 'open', 'close', 'unlink', 'setattr'] as const;

/**
 * The event a binary record stands for, with its keys in the order the JSON form has them (so
 * JSON.stringify of it is what provfs used to write). `seq` is 0: the journal frame carries it.
 * Throws, saying what is wrong, on anything that is not a whole record.
 */
export function decodeProvfsRecord(bytes: Uint8Array): ProvEvent {
  const n = bytes.length;
  if (n < PROVFS_HEADER_BYTES + PROVFS_FILE_FIXED_BYTES) throw new Error(`provfs record of ${n} bytes is shorter than its ${PROVFS_HEADER_BYTES + PROVFS_FILE_FIXED_BYTES}-byte fixed part`);
  if (bytes[0] !== PROVFS_RECORD_TAG) throw new Error(`provfs record starts with byte 0x${bytes[0]!.toString(16)}, not 0x${PROVFS_RECORD_TAG.toString(16)}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, n);
  const opCode = bytes[1]!, bits = bytes[2]!;
  const op = OPS[opCode];
  if (!op) throw new Error(`provfs record has unknown op ${opCode}`);
  const f = PROVFS_HEADER_BYTES;
  const nameLen = v.getUint16(f + 28, true), pathLen = v.getUint16(f + 30, true), hostLen = v.getUint16(f + 32, true);
  const s = f + PROVFS_FILE_FIXED_BYTES;
  const strEnd = s + nameLen + pathLen + hostLen, tail = op === 'setattr' ? PROVFS_SETATTR_TAIL_BYTES : 0;
  if (strEnd + tail !== n) throw new Error(`provfs record of ${n} bytes declares ${strEnd + tail}`);
  const file = {
    dev: v.getFloat64(f, true), ino: v.getFloat64(f + 8, true), parent: v.getFloat64(f + 16, true),
    name: utf8.decode(bytes.subarray(s, s + nameLen)), path: utf8.decode(bytes.subarray(s + nameLen, s + nameLen + pathLen)),
    type: v.getUint32(f + 24, true),
  };
  const ev: Record<string, unknown> = { op, file };
  const flags = v.getUint32(20, true), fh = v.getFloat64(24, true);
  switch (op) {
    case 'create':
      ev.mode = v.getUint32(16, true);
      if (bits & PROVFS_BIT.flags) ev.flags = flags;
      if (bits & PROVFS_BIT.fh) ev.fh = fh;
      break;
    case 'open':
      ev.flags = flags;
      ev.fh = fh;
      break;
    case 'close':
      ev.fh = fh;
      if (bits & PROVFS_BIT.release) ev.release = true;
      break;
    case 'unlink':
      ev.deleted = (bits & PROVFS_BIT.deleted) !== 0;
      break;
    case 'setattr':
      if (bits & PROVFS_SETATTR_BIT.mode) ev.mode = v.getUint32(16, true);
      if (bits & PROVFS_SETATTR_BIT.uid) ev.uid = flags;
      if (bits & PROVFS_SETATTR_BIT.gid) ev.gid = v.getUint32(strEnd, true);
      if (bits & PROVFS_SETATTR_BIT.size) ev.size = v.getFloat64(strEnd + 8, true);
      if (bits & PROVFS_SETATTR_BIT.mtime) ev.mtime = v.getFloat64(strEnd + 16, true);
      break;
  }
  ev.v = SCHEMA_VERSION;
  ev.src = 'provfs';
  ev.seq = 0;
  ev.host = utf8.decode(bytes.subarray(s + nameLen + pathLen, strEnd));
  ev.pid = 0;
  ev.ts = v.getFloat64(8, true);
  ev.tid = v.getUint32(4, true);
  return ev as unknown as ProvEvent;
}

/** A ring or journal record, binary or JSON, as the JSON text provfs's `.lin` shows. */
export function provfsRecordText(bytes: Uint8Array): string {
  return isProvfsRecord(bytes) ? JSON.stringify(decodeProvfsRecord(bytes)) : utf8Lenient.decode(bytes);
}

/** A ring or journal record, binary or JSON, as an event. */
export function provfsRecordEvent(bytes: Uint8Array): ProvEvent {
  return isProvfsRecord(bytes) ? decodeProvfsRecord(bytes) : (JSON.parse(utf8Lenient.decode(bytes)) as ProvEvent);
}

