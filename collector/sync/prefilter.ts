/**
 * @module collector/sync/prefilter
 * Decides from an eBPF record's raw bytes, before it is decoded, whether it can matter to one
 * sync (see {@link ChangeTracker}); the journal reader passes over the rest undecoded (they are
 * still framed and CRC-checked, and counted, so a lost or damaged record is still a gap).
 * Capture is system-wide: most records are other processes' work elsewhere, and decoding them
 * (objects, strings, validation) was most of the time a sync spent reading.
 *
 * A record is kept when it might change the tracker's state:
 * - `lost`: always (a gap).
 * - file operations (open for writing or creating, mkdir/rename/unlink/…, setattr): when a path
 *   it names resolves under SRC, or when it cannot be told by bytes alone (a path that needs
 *   normalising: `.`/`..` components, `//`; a path the kernel could not resolve; a record of
 *   unexpected size). Every path under SRC contains SRC's path as a prefix once normalised, so
 *   the byte test is exact where it decides "outside".
 * - descriptor bookkeeping (any open, close, close_range, dup, fork, exit): only for processes
 *   that may hold a write handle under SRC: those carried from the last sync, those whose open
 *   for writing under SRC was kept, and children forked by them. Records arrive in seq order
 *   per stream and the set only grows, so read-ahead never drops a record that matters.
 * - everything else (exec, sockets, messages, pipes) says nothing sync uses.
 * Records of the other witness (see capture.ts) are passed over entirely, as the tracker does.
 *
 * The layout offsets below are those of ebpf/prov.h as decoded by ebpf/decode.ts, for the
 * fixed-size records (ABI 1) and the variable-length ones (ABI 2: kinds 11-13); a record of a
 * kind not known here, or whose size or strings do not parse, is kept (the decoder decides).
 * prefilter.test.ts checks the decisions against the decoder on real records.
 */
import { CODEC } from '../journal/api.js';
import type { EventSource } from '../events.js';
import { KIND, RECORD_SIZE, VAR_FIXED as VAR, type VarLayout } from '../../ebpf/decode.js';

const O_ACCMODE = 3, O_WRONLY = 1, O_RDWR = 2, O_TRUNC = 0o1000;
const SLASH = 47, DOT = 46;
const WALK_BUF = 768;
/** offsetof(struct prov_open, path.path) - 8: where the open record's walk starts. */
const OPEN_WALK = 88;
const OPEN_FIXED = 96;
const FD_PIPE = 1;
const RAW_BYTES = 256;
const FS_RENAME = 1, FS_MKDIR = 4, FS_LINK = 5, FS_SYMLINK = 6;

export class SyncPrefilter {
  /** Processes that may hold a write handle under SRC (tgids). */
  readonly watched = new Set<number>();
  /** Newest event time among the witness's records seen (kept or not), ns. */
  maxTs = 0;
  /** Records passed over / kept (eBPF records only). */
  passed = 0;
  kept = 0;
  private readonly root: Buffer;
  private readonly all: boolean;

  /**
   * @param root SRC's realpath (as the tracker matches it).
   * @param witness the capture source sync uses for SRC (undefined: any).
   * @param carried keys of write handles carried from the last sync (`stream:pid:fd`).
   */
  constructor(root: string, readonly witness: EventSource | undefined, carried: readonly string[] = []) {
    this.root = Buffer.from(root, 'utf8');
    // "/" holds every path; a root with a backslash could match the decoder's escaped form of
    // a name that is not valid UTF-8: decide neither by bytes.
    this.all = root === '/' || root.includes('\\');
    for (const k of carried) {
      const m = /^[^:]+:(\d+):\d+$/.exec(k);
      if (m) this.watched.add(Number(m[1]));
    }
  }

  /** The {@link RecordPrefilter} for the journal reader. */
  readonly keep = (_stream: string, codec: number, buf: Uint8Array, start: number, len: number): boolean => {
    if (codec !== CODEC.ebpfRaw) return true;
    if (this.witness !== undefined && this.witness !== 'ebpf') return this.skip();
    if (len < 48) return this.take();
    const kind = u16(buf, start), size = u16(buf, start + 2);
    const v = VAR[kind];
    if (v !== undefined) {
      // Variable length (ABI 2): a fixed part, then its strings (see stringsOf).
      if (size !== len || size < v.fixed + 8 || size % 8 !== 0) return this.take();
    } else {
      const want = RECORD_SIZE[kind];
      if (want === undefined) return this.take();
      if (kind === KIND.open ? size !== len || size < OPEN_FIXED + 8 || size > want : size !== want || len !== want) return this.take();
    }
    const ts = u32(buf, start + 8) + u32(buf, start + 12) * 0x100000000;
    if (ts > this.maxTs) this.maxTs = ts;
    const pid = u32(buf, start + 16);
    switch (kind) {
      case KIND.exec: case KIND.execV: case KIND.sock: case KIND.msg:
        return this.skip(); // nothing the tracker folds
      case KIND.open: {
        const flags = u32(buf, start + 52);
        const write = (flags & O_ACCMODE) === O_WRONLY || (flags & O_ACCMODE) === O_RDWR || (flags & O_TRUNC) !== 0;
        const created = u32(buf, start + 60) !== 0;
        if (!write && !created) return this.watched.has(pid) ? this.take() : this.skip();
        const w = walk(buf, start, len, OPEN_WALK);
        if (w === null || this.mayBeUnder(buf, w[0], w[1], -1, 0)) {
          this.watched.add(pid);
          return this.take();
        }
        return this.watched.has(pid) ? this.take() : this.skip();
      }
      case KIND.fd:
        if (u32(buf, start + 48) === FD_PIPE) return this.skip();
        return this.watched.has(pid) ? this.take() : this.skip();
      case KIND.fork:
        if (!this.watched.has(pid)) return this.skip();
        if (u32(buf, start + 56) === 0) this.watched.add(u32(buf, start + 48));
        return this.take();
      case KIND.exit:
        return this.watched.has(pid) ? this.take() : this.skip();
      case KIND.fs: case KIND.fsV: {
        // raw1 relative to dir1, raw2 relative to dir2 (an absolute raw ignores its dir). Which
        // the decoder uses: rename both (from, to); unlink, rmdir, mkdir raw1; link, symlink
        // raw2 (a symlink's raw1 is its target, not a path it touches).
        let raw1: Span, raw2: Span, dir1: Span | null, dir2: Span | null;
        if (kind === KIND.fs) {
          raw1 = str(buf, start + 120, RAW_BYTES); raw2 = str(buf, start + 376, RAW_BYTES);
          dir1 = walk(buf, start, len, 632); dir2 = walk(buf, start, len, 1408);
        } else {
          const ss = stringsOf(buf, start, len, VAR[KIND.fsV]!);
          if (ss === null) return this.take();
          [raw1, raw2] = [ss[0]!, ss[1]!];
          dir1 = ss[2]![1] > 0 ? ss[2]! : null; dir2 = ss[3]![1] > 0 ? ss[3]! : null;
        }
        const op = u32(buf, start + 48);
        if (op < FS_RENAME || op > FS_SYMLINK) return this.take();
        const one = op <= FS_MKDIR && this.pairMayBeUnder(buf, raw1, dir1);
        const two = (op === FS_RENAME || op === FS_LINK || op === FS_SYMLINK) && this.pairMayBeUnder(buf, raw2, dir2);
        return one || two ? this.take() : this.skip();
      }
      case KIND.setattr: case KIND.setattrV: {
        let raw: Span, dir: Span | null;
        if (kind === KIND.setattr) {
          raw = str(buf, start + 120, RAW_BYTES);
          dir = walk(buf, start, len, 376);
        } else {
          const ss = stringsOf(buf, start, len, VAR[KIND.setattrV]!);
          if (ss === null) return this.take();
          raw = ss[0]!;
          dir = ss[1]![1] > 0 ? ss[1]! : null;
        }
        if (raw[1] === 0) {
          // No name: the path is the walked directory (fchmod, futimens, ftruncate on a descriptor).
          return dir === null || this.mayBeUnder(buf, dir[0], dir[1], -1, 0) ? this.take() : this.skip();
        }
        return this.pairMayBeUnder(buf, raw, dir) ? this.take() : this.skip();
      }
      default:
        return this.take(); // lost, and any kind this code does not know: the decoder decides
    }
  };

  private take(): true { this.kept++; return true; }
  private skip(): false { this.passed++; return false; }

  /** One (raw name, the directory it is relative to) pair of a file-system record. */
  private pairMayBeUnder(buf: Uint8Array, raw: Span, dir: Span | null): boolean {
    const [rs, rl] = raw;
    if (rl === 0) return true; // the path the decoder needs is missing: it decides (a gap on SRC's device)
    if (buf[rs] === SLASH) return this.mayBeUnder(buf, rs, rl, -1, 0);
    if (dir === null) return true; // relative to a directory the kernel could not name: cannot tell
    return this.mayBeUnder(buf, dir[0], dir[1], rs, rl);
  }

  /**
   * Could the path `a` (+ "/" + `b` when bStart ≥ 0), once normalised, be SRC or lie under it?
   * False only when it certainly does not.
   */
  private mayBeUnder(buf: Uint8Array, aStart: number, aLen: number, bStart: number, bLen: number): boolean {
    if (this.all) return true;
    // Starts with SRC's path (a component boundary after it): under SRC, or for the decoder to
    // tell after normalising.
    const r = this.root, rl = r.length;
    const total = bStart >= 0 ? aLen + 1 + bLen : aLen;
    if (total >= rl) {
      let i = 0;
      const inA = Math.min(rl, aLen);
      while (i < inA && buf[aStart + i] === r[i]) i++;
      if (i === inA && inA < rl && bStart >= 0) {
        if (r[i] === SLASH) {
          i++;
          let k = 0;
          while (i < rl && buf[bStart + k] === r[i]) { i++; k++; }
        }
      }
      if (i === rl) {
        const next = rl < aLen ? buf[aStart + rl] : rl === aLen ? (bStart >= 0 ? SLASH : -1) : buf[bStart + rl - aLen - 1];
        if (next === -1 || next === SLASH) return true;
      }
    }
    // Otherwise only normalising (".", "..", "//") could bring it under SRC: leave those to the decoder.
    if (needsNormalising(buf, aStart, aLen)) return true;
    if (bStart >= 0) {
      if (aLen > 0 && buf[aStart + aLen - 1] === SLASH) return true;
      if (bLen > 0 && buf[bStart] === DOT) return true;
      if (needsNormalising(buf, bStart, bLen)) return true;
    }
    return false;
  }
}

/** True when the bytes hold "//", or a "." or ".." component after a slash. */
function needsNormalising(b: Uint8Array, start: number, len: number): boolean {
  const end = start + len;
  for (let i = start; i < end - 1; i++) {
    if (b[i] !== SLASH) continue;
    const n1 = b[i + 1];
    if (n1 === SLASH) return true;
    if (n1 !== DOT) continue;
    if (i + 2 >= end) return true;
    const n2 = b[i + 2];
    if (n2 === SLASH) return true;
    if (n2 === DOT && (i + 3 >= end || b[i + 3] === SLASH)) return true;
  }
  return false;
}

/** [start, length] of a byte string inside the buffer. */
type Span = [number, number];

/**
 * The strings of a variable-length kind of ABI 2 (ebpf/prov.h struct prov_*_v; layout from the
 * decoder's VAR_FIXED): back to back from `fixed`, each followed by a NUL. null when the record
 * does not parse this way (it is kept; the decoder reports it).
 */
function stringsOf(b: Uint8Array, start: number, len: number, v: VarLayout): Span[] | null {
  const out: Span[] = [];
  let o = v.fixed;
  for (let i = 0; i < v.strings; i++) {
    const n = u16(b, start + v.lens + 2 * i);
    if (o + n + 1 > len || b[start + o + n] !== 0) return null;
    out.push([start + o, n]);
    o += n + 1;
  }
  return out;
}

function u16(b: Uint8Array, o: number): number { return b[o]! | (b[o + 1]! << 8); }
function u32(b: Uint8Array, o: number): number { return (b[o]! | (b[o + 1]! << 8) | (b[o + 2]! << 16)) + b[o + 3]! * 0x1000000; }

/** A NUL-terminated string in a fixed field: [start, length]. */
function str(b: Uint8Array, o: number, max: number): Span {
  let n = 0;
  while (n < max && b[o + n] !== 0) n++;
  return [o, n];
}

/** The path of a struct prov_walk at record offset `o`: [start, length], or null when not walked. */
function walk(b: Uint8Array, start: number, len: number, o: number): Span | null {
  const off = u16(b, start + o), n = u16(b, start + o + 2);
  if (!n || off + n > WALK_BUF || o + 8 + off + n > len) return null;
  return [start + o + 8 + off, n];
}
