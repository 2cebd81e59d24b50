/**
 * @module collector/journal/writer
 * The journal writer: frames, chains and seals records into an in-memory buffer and writes and
 * fsyncs them in groups (group commit), so `append` never touches the disk itself. On open it
 * recovers the newest segment after a crash: a torn tail (a partial or garbled frame with no
 * valid frame after it) is cut back to the last whole record with a warning; damage followed
 * by valid records is not a crash artefact, so the writer refuses to append and points to
 * `prov verify`.
 *
 * Durability: a record is durable once a group commit that includes it has finished its
 * fdatasync (at most `fsyncIntervalMs` after the append, or when `flush()` resolves). A crash
 * loses at most the records appended since the last commit; never a committed one. After each
 * commit the writer rewrites the stream's HEAD (seq, chain value, seal): readers deliver records
 * only up to HEAD, and verify compares the stream's end with it.
 *
 * Memory: pending bytes live in pooled 1 MiB slabs (frames never straddle two), so a burst
 * costs no copying; the seal window is hashed incrementally as slabs fill. One writer per
 * stream: a LOCK file with the owner's pid (a dead owner's lock is taken over).
 */
import {
  appendFileSync, closeSync, constants as C, fsyncSync, mkdirSync, openSync, readFileSync, chmodSync,
  truncateSync, unlinkSync, writeSync,
} from 'node:fs';
import { open as openAsync, type FileHandle } from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import { join } from 'node:path';
import { InputError, IntegrityError, StoreError } from '../../graph/errors.js';
import { logger } from '../log.js';
import { running, startTime } from '../proc.js';
import type { ProvEvent } from '../events.js';
import { CODEC, type JournalWriter, type JournalWriterOptions } from './api.js';
import { crc32c } from './crc32c.js';
import {
  FRAME_HEADER_BYTES, FRAME_OVERHEAD, HEAD_FILE, KIND_RECORD, KIND_SEAL, MAX_PAYLOAD, SEAL_BYTES,
  SEAL_FRAME_BYTES, SEGMENT_HEADER_BYTES, ZERO_SEAL, INDEX_SUFFIX, INDEX_ENTRY_BYTES, writeU64, checkStreamName, computeSeal, encodeHead,
  encodeSegmentHeader, findNextFrame, segmentName, writeFrameHeader,
} from './format.js';
import { headerOf, listSegments, walkSegment } from './segments.js';

const log = logger('journal');
/** Streams this process has open for writing (the LOCK file cannot tell them from a stale lock of ours). */
const openHere = new Set<string>();

/** Seal at least every this many bytes of records, so a seal pins down a few hundred small records. */
const SEAL_WINDOW_BYTES = 64 * 1024;
/** Pending bytes live in slabs of this size (a bigger one for a bigger record): no copying on growth. */
const SLAB_BYTES = 1 << 20;
/** Slabs kept for reuse after a commit. */
const POOL_SLABS = 16;
/** A sparse-index entry every this many bytes of a segment (a hint for readers resuming mid-segment). */
const INDEX_EVERY = 1 << 20;

/** A failed commit is retried after a backoff that doubles up to this. */
const RETRY_MAX_MS = 1000;

/** A sparse-index entry waiting to be written: record `seq` starts at `offset` of segment `name`. */
interface IndexEntry { name: string; seq: number; offset: number }

/** What recovery did on open (undefined when the stream was clean). */
export interface RecoveryInfo {
  segment: string;
  /** Where the cut was made (the offset of the first bad frame). */
  offset: number;
  /** Bytes removed. */
  cutBytes: number;
  reason: string;
  /** Seq of the last whole record after the cut. */
  lastSeq: number;
}

/** The writer, with what it adds to the {@link JournalWriter} contract. */
export interface JournalWriterHandle extends JournalWriter {
  /** Seq of the last record known to be fsync'd. */
  readonly durableSeq: number;
  /** Set when opening cut a torn tail. */
  readonly recovered?: RecoveryInfo;
  /** The stream's directory. */
  readonly streamDir: string;
  /**
   * Bytes appended but not yet handed to the disk. It grows without bound if the disk stalls:
   * a source that must bound its memory checks it and records a `lost` event instead of appending.
   */
  readonly pendingBytes: number;
  /**
   * Why the last group commit failed (ENOSPC, EIO, ...), or null. Its records stay pending and
   * the commit is retried until one succeeds, so while this is set {@link pendingBytes} grows.
   */
  readonly stalled: Error | null;
}

interface SegmentStart {
  /** Offset in its slab where the new segment file's bytes begin. */
  at: number;
  name: string;
}

/** A filled slab waiting for the next commit. */
interface Slab {
  buf: Buffer;
  len: number;
  starts: SegmentStart[];
}

class Writer implements JournalWriterHandle {
  readonly stream: string;
  readonly streamDir: string;
  recovered?: RecoveryInfo;
  private readonly interval: number;
  private readonly segmentBytes: number;

  // chain state (covers pending bytes too)
  private seq = 0;
  private chain = 0;
  private seal: Buffer = ZERO_SEAL;
  private needSegment = true;
  private segName = '';
  private segSize = 0;
  /** Next segment offset at which a sparse-index entry is due. */
  private nextIndexAt = INDEX_EVERY;
  /** Index entries (seq, offset) not yet written, per segment file name. */
  private indexPending: IndexEntry[] = [];
  private segRecords = 0;
  private unsealedRecords = 0;

  // pending bytes not yet handed to the disk: filled slabs, then the current one (buf, len, starts)
  private full: Slab[] = [];
  private buf: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  private len = 0;
  private starts: SegmentStart[] = [];
  private readonly pool: Buffer[] = [];
  // the seal window: bytes since the last seal; those in earlier slabs are already in windowHash
  private windowStart = 0;
  private windowHash: Hash | null = null;
  private windowBytes = 0;

  // disk side
  private fd: FileHandle | null = null;
  private fdName = '';
  /** Existing segment to continue after reopen (opened at the first commit). */
  private continueName: string | null = null;
  private headFd!: number;
  private durable = 0;
  private timer: NodeJS.Timeout | null = null;
  private commits: Promise<void> = Promise.resolve();
  /** A failure the writer cannot undo (its rollback failed): appends are refused from then on. */
  private failed: Error | null = null;
  /** Why the last group commit failed (null after one succeeds): its bytes are pending again and retried. */
  private stalledBy: Error | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = 0;
  /** The newest segment file and its size as of the last good commit: where a failed commit rolls back to. */
  private diskName = '';
  private diskSize = 0;
  /** Bytes in the file `fd` is open on. */
  private fdSize = 0;
  /** HEAD is behind the durable records (its last write failed): rewritten at the next commit. */
  private headStale = false;
  private closed = false;
  private readonly lockPath: string;

  constructor(opts: JournalWriterOptions) {
    this.stream = opts.stream;
    this.interval = opts.fsyncIntervalMs ?? 50;
    this.segmentBytes = opts.segmentBytes ?? 64 * 1024 * 1024;
    if (!(this.interval >= 0)) throw new InputError(`fsyncIntervalMs must be ≥ 0 (got ${this.interval})`);
    if (!(this.segmentBytes >= 4096)) throw new InputError(`segmentBytes must be ≥ 4096 (got ${this.segmentBytes})`);
    const bad = checkStreamName(opts.stream);
    if (bad) throw new InputError(bad, opts.dir);
    this.streamDir = join(opts.dir, opts.stream);
    mkdirSync(this.streamDir, { recursive: true, mode: 0o700 });
    chmodSync(this.streamDir, 0o700);
    this.lockPath = join(this.streamDir, 'LOCK');
    this.lock();
    try {
      this.headFd = openSync(join(this.streamDir, HEAD_FILE), C.O_WRONLY | C.O_CREAT, 0o600);
      this.recover();
    } catch (e) {
      if (this.headFd !== undefined) closeSync(this.headFd);
      this.unlock();
      throw e;
    }
  }

  get lastSeq(): number { return this.seq; }
  get pendingBytes(): number {
    let n = this.len;
    for (const slab of this.full) n += slab.len;
    return n;
  }
  get durableSeq(): number { return this.durable; }
  /** Why the journal cannot be written at the moment (e.g. ENOSPC), or null; records wait in memory meanwhile. */
  get stalled(): Error | null { return this.stalledBy; }

  /** One writer per stream: a LOCK file naming the pid; a dead owner's lock is taken over. */
  private lock(): void {
    if (openHere.has(this.streamDir)) throw new InputError(`stream ${this.stream} is already open for writing by pid ${process.pid} (this process)`, this.streamDir);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockPath, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
        writeSync(fd, `${process.pid} ${startTime(process.pid) ?? ''}`.trim());
        closeSync(fd);
        openHere.add(this.streamDir);
        return;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        let text = '';
        try { text = readFileSync(this.lockPath, 'utf8'); } catch { /* vanished: retry */ }
        const [pidText, startText] = text.trim().split(/\s+/);
        const owner = Number(pidText);
        // The owner is live when its pid runs and (where /proc says) started when the lock was taken:
        // a pid reused by another process after a crash does not hold the stream.
        const live = Number.isInteger(owner) && owner > 0 && owner !== process.pid && running(owner)
          && (startText === undefined || startTime(owner) === null || startTime(owner) === startText);
        if (live) throw new InputError(`stream ${this.stream} is already open for writing by pid ${owner}`, this.streamDir);
        try { unlinkSync(this.lockPath); } catch { /* raced: retry */ }
      }
    }
    throw new InputError(`could not take the writer lock of stream ${this.stream}`, this.streamDir);
  }

  private unlock(): void {
    openHere.delete(this.streamDir);
    try { unlinkSync(this.lockPath); } catch { /* already gone */ }
  }

  /** Find where the stream ends, cutting a torn tail of the newest segment. */
  private recover(): void {
    const segs = listSegments(this.streamDir);
    while (segs.length > 0) {
      const last = segs[segs.length - 1]!;
      const where = `journal stream ${this.stream} segment ${last.name}`;
      const bytes = readFileSync(last.path);
      if (bytes.length < SEGMENT_HEADER_BYTES) {
        // The crash hit while the segment was being created: nothing in it was ever committed.
        log.warn(`${where}: removed a torn segment of ${bytes.length} bytes (its header was never completed)`);
        this.recovered = { segment: last.name, offset: 0, cutBytes: bytes.length, reason: 'segment header never completed', lastSeq: last.firstSeq - 1 };
        unlinkSync(last.path);
        try { unlinkSync(last.path.replace(/\.seg$/, INDEX_SUFFIX)); } catch { /* none */ }
        segs.pop();
        continue;
      }
      const header = headerOf(bytes);
      if (typeof header === 'string') throw new IntegrityError(`${header}; refusing to append (run prov verify)`, where);
      if (header.firstSeq !== last.firstSeq) {
        throw new IntegrityError(`header says first seq ${header.firstSeq} but the file name says ${last.firstSeq}; refusing to append`, where);
      }
      const w = walkSegment(bytes, header);
      if (w.failure) {
        const at = w.failure.offset;
        if (findNextFrame(bytes, at + 1, bytes.length) !== -1) {
          throw new IntegrityError(
            `damaged record at offset ${at} (${w.failure.error.reason}) with valid records after it: not a torn tail; refusing to append (run prov verify)`, where);
        }
        const cut = bytes.length - at;
        const fd = openSync(last.path, C.O_WRONLY);
        try {
          truncateSync(last.path, at);
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
        this.recovered = { segment: last.name, offset: at, cutBytes: cut, reason: w.failure.error.reason, lastSeq: w.lastSeq };
        log.warn(`${where}: cut a torn tail of ${cut} bytes at offset ${at} (${w.failure.error.reason}); last whole record is seq ${w.lastSeq}`);
      }
      this.seq = w.lastSeq;
      this.durable = w.lastSeq;
      this.chain = w.lastCrc;
      this.seal = w.seal;
      this.needSegment = false;
      this.segName = last.name;
      this.segSize = w.end;
      this.diskName = last.name;
      this.diskSize = w.end;
      this.nextIndexAt = (Math.floor(w.end / INDEX_EVERY) + 1) * INDEX_EVERY;
      this.segRecords = w.records;
      this.continueName = last.name;
      if (w.lastSeq > w.sealSeq) {
        // Records after the newest seal (a crash before their commit finished): seal them now;
        // the commit makes them durable and moves HEAD.
        this.windowStart = 0;
        const tail = bytes.subarray(w.sealEnd, w.end);
        this.appendSeal(computeSeal(w.seal, tail));
        this.schedule();
      } else if (w.records > 0 || segs.length > 1) {
        // Everything is sealed, but a crash may have come between the last fsync and the HEAD
        // update (readers hold back records above HEAD): make it durable and move HEAD now.
        const fd = openSync(last.path, C.O_RDONLY);
        try { fsyncSync(fd); } finally { closeSync(fd); }
        const head = encodeHead({ seq: w.lastSeq, crc: w.lastCrc, seal: w.seal });
        writeSync(this.headFd, head, 0, head.length, 0);
      }
      return;
    }
    this.needSegment = true;
  }

  /** Make room for n contiguous bytes, moving on to a fresh slab when the current one is full. */
  private ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    if (this.len > this.windowStart) {
      (this.windowHash ??= createHash('sha256').update(this.seal)).update(this.buf.subarray(this.windowStart, this.len));
    }
    if (this.len > 0 || this.starts.length > 0) this.full.push({ buf: this.buf, len: this.len, starts: this.starts });
    this.buf = n <= SLAB_BYTES ? (this.pool.pop() ?? Buffer.allocUnsafe(SLAB_BYTES)) : Buffer.allocUnsafe(n);
    this.len = 0;
    this.starts = [];
    this.windowStart = 0;
  }

  private check(): void {
    if (this.closed) throw new StoreError(`journal stream ${this.stream} is closed`);
    if (this.failed) throw new StoreError(`journal stream ${this.stream} failed earlier: ${this.failed.message}`);
  }

  /** Start a new segment in the pending buffer (sealing the current one first). */
  private rotate(): void {
    if (!this.needSegment) this.sealNow();
    const name = segmentName(this.seq + 1);
    const h = encodeSegmentHeader(this.seq + 1, this.chain, this.seal);
    this.ensure(SEGMENT_HEADER_BYTES);
    this.starts.push({ at: this.len, name });
    h.bytes.copy(this.buf, this.len);
    this.windowStart = this.len;
    this.windowHash = null;
    this.windowBytes = 0;
    this.len += SEGMENT_HEADER_BYTES;
    this.chain = h.crc;
    this.segName = name;
    this.segSize = SEGMENT_HEADER_BYTES;
    this.nextIndexAt = INDEX_EVERY;
    this.segRecords = 0;
    this.needSegment = false;
  }

  /** Seal the records since the previous seal (no-op when there are none). */
  private sealNow(): void {
    if (this.unsealedRecords === 0) return;
    this.ensure(SEAL_FRAME_BYTES);
    const h = this.windowHash ?? createHash('sha256').update(this.seal);
    this.appendSeal(h.update(this.buf.subarray(this.windowStart, this.len)).digest());
  }

  /** Append a seal frame with `digest` (room for it must have been made when the window is not empty). */
  private appendSeal(digest: Buffer): void {
    this.ensure(SEAL_FRAME_BYTES);
    const off = this.len;
    writeFrameHeader(this.buf, off, 0, KIND_SEAL, SEAL_BYTES, this.seq);
    digest.copy(this.buf, off + FRAME_HEADER_BYTES);
    const end = off + FRAME_HEADER_BYTES + SEAL_BYTES;
    this.chain = crc32c(this.buf, off, end, this.chain);
    this.buf.writeUInt32LE(this.chain, end);
    this.len = end + 4;
    this.segSize += SEAL_FRAME_BYTES;
    this.seal = digest;
    this.windowStart = this.len;
    this.windowHash = null;
    this.windowBytes = 0;
    this.unsealedRecords = 0;
  }

  /** Make room for a record frame of `frameLen` bytes, rotating first when the segment is full. */
  private room(frameLen: number): void {
    if (this.needSegment || (this.segRecords > 0 && this.segSize + frameLen + SEAL_FRAME_BYTES > this.segmentBytes)) this.rotate();
    this.ensure(frameLen);
  }

  /** Chain the frame whose header and payload are in place at `off`; advances the buffer. */
  private finishFrame(off: number, payloadLen: number): void {
    if (this.segSize >= this.nextIndexAt) {
      this.indexPending.push({ name: this.segName, seq: this.seq, offset: this.segSize });
      this.nextIndexAt = (Math.floor(this.segSize / INDEX_EVERY) + 1) * INDEX_EVERY;
    }
    const end = off + FRAME_HEADER_BYTES + payloadLen;
    const crc = crc32c(this.buf, off, end, this.chain);
    const b = this.buf;
    b[end] = crc & 0xff;
    b[end + 1] = (crc >>> 8) & 0xff;
    b[end + 2] = (crc >>> 16) & 0xff;
    b[end + 3] = crc >>> 24;
    this.chain = crc;
    const frameLen = payloadLen + FRAME_OVERHEAD;
    this.len = end + 4;
    this.segSize += frameLen;
    this.segRecords++;
    this.unsealedRecords++;
    this.windowBytes += frameLen;
    if (this.windowBytes >= SEAL_WINDOW_BYTES) this.sealNow();
  }

  append(event: ProvEvent): number {
    this.check();
    const seq = this.seq + 1;
    event.seq = seq;
    let text: string;
    try {
      text = JSON.stringify(event);
    } catch (e) {
      throw new InputError(`event cannot be serialised as JSON: ${(e as Error).message}`, `journal stream ${this.stream} seq ${seq}`);
    }
    if (typeof text !== 'string') throw new InputError('event is not a JSON object', `journal stream ${this.stream} seq ${seq}`);
    // Reserve the UTF-8 worst case (3 bytes per UTF-16 unit) instead of measuring the string;
    // measure only when the bound matters (near a rotation or the record limit).
    let bound = text.length * 3;
    if (bound > MAX_PAYLOAD || (this.segRecords > 0 && this.segSize + bound + FRAME_OVERHEAD + SEAL_FRAME_BYTES > this.segmentBytes)) {
      bound = Buffer.byteLength(text);
      if (bound > MAX_PAYLOAD) throw new InputError(`event of ${bound} bytes exceeds the ${MAX_PAYLOAD}-byte record limit`, `journal stream ${this.stream} seq ${seq}`);
    }
    this.room(bound + FRAME_OVERHEAD);
    const off = this.len;
    const n = this.buf.write(text, off + FRAME_HEADER_BYTES, bound, 'utf8');
    writeFrameHeader(this.buf, off, CODEC.json, KIND_RECORD, n, seq);
    this.seq = seq;
    this.finishFrame(off, n);
    this.schedule();
    return seq;
  }

  appendEncoded(codec: number, payloads: readonly Uint8Array[]): number {
    this.check();
    if (!Number.isInteger(codec) || codec < 0 || codec > 255) throw new InputError(`codec ${codec} is not a byte`);
    for (let i = 0; i < payloads.length; i++) {
      const p = payloads[i]!;
      const n = p.length;
      if (n > MAX_PAYLOAD) throw new InputError(`payload of ${n} bytes exceeds the ${MAX_PAYLOAD}-byte record limit`, `journal stream ${this.stream} seq ${this.seq + 1}`);
      this.room(n + FRAME_OVERHEAD);
      const off = this.len;
      const seq = this.seq + 1;
      const b = this.buf;
      b[off] = 0xf5;
      b[off + 1] = 0x4a;
      b[off + 2] = codec;
      b[off + 3] = KIND_RECORD;
      b[off + 4] = n & 0xff;
      b[off + 5] = (n >>> 8) & 0xff;
      b[off + 6] = (n >>> 16) & 0xff;
      b[off + 7] = n >>> 24;
      const lo = seq >>> 0;
      const hi = Math.floor(seq / 0x100000000) >>> 0;
      b[off + 8] = lo & 0xff;
      b[off + 9] = (lo >>> 8) & 0xff;
      b[off + 10] = (lo >>> 16) & 0xff;
      b[off + 11] = lo >>> 24;
      b[off + 12] = hi & 0xff;
      b[off + 13] = (hi >>> 8) & 0xff;
      b[off + 14] = (hi >>> 16) & 0xff;
      b[off + 15] = hi >>> 24;
      b.set(p, off + FRAME_HEADER_BYTES);
      this.seq = seq;
      this.finishFrame(off, n);
    }
    if (payloads.length > 0) this.schedule();
    return this.seq;
  }

  private schedule(): void {
    // While stalled, the retry timer (with its backoff) commits instead.
    if (this.timer !== null || this.closed || this.stalledBy) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      // A stall or a failure was reported where it happened (rollBack).
      this.flush().catch((e: Error) => { if (!this.stalledBy && !this.failed) log.error(`journal stream ${this.stream}: group commit failed: ${e.message}`); });
    }, this.interval);
  }

  flush(): Promise<void> {
    const p = this.commits.then(() => this.commit());
    this.commits = p.catch(() => undefined);
    return p;
  }

  /**
   * One group commit: seal, hand the pending bytes to the disk, fdatasync, update HEAD.
   *
   * A commit that fails (a full disk, a quota, an I/O error) is undone: segment files it created
   * are removed, the one it appended to is cut back to its size before the commit, and its bytes
   * become pending again, ahead of what was appended since. Nothing in memory changes meaning
   * (seq, chain and seal already covered them), so the retry, every second or so until one
   * succeeds, writes the very same bytes. Only when the undo itself fails does the writer give up.
   */
  private async commit(): Promise<void> {
    if (this.failed) throw new StoreError(`journal stream ${this.stream} failed earlier: ${this.failed.message}`);
    this.sealNow();
    if (this.len === 0 && this.starts.length === 0 && this.full.length === 0) {
      if (this.headStale) this.writeHead(encodeHead({ seq: this.seq, crc: this.chain, seal: this.seal }), []);
      return;
    }
    const slabs = this.full;
    slabs.push({ buf: this.buf, len: this.len, starts: this.starts });
    const head = encodeHead({ seq: this.seq, crc: this.chain, seal: this.seal });
    const seqAt = this.seq;
    const index = this.indexPending;
    this.indexPending = [];
    this.full = [];
    this.buf = this.pool.pop() ?? Buffer.allocUnsafe(SLAB_BYTES);
    this.len = 0;
    this.starts = [];
    this.windowStart = 0;
    const created: string[] = [];
    try {
      const first = slabs[0]!;
      if (this.fd === null && this.continueName !== null && (first.starts.length === 0 || first.starts[0]!.at > 0)) {
        this.fd = await openAsync(join(this.streamDir, this.continueName), C.O_WRONLY | C.O_APPEND);
        this.fdName = this.continueName;
        this.fdSize = this.diskSize;
      }
      this.continueName = null;
      for (const slab of slabs) {
        let pos = 0;
        for (const st of slab.starts) {
          if (st.at > pos) await this.writeAll(slab.buf, pos, st.at);
          await this.openSegment(st.name, created);
          pos = st.at;
        }
        if (slab.len > pos) await this.writeAll(slab.buf, pos, slab.len);
      }
      if (this.fd) await this.fd.datasync();
    } catch (e) {
      await this.rollBack(e as Error, slabs, index, created);
      throw new StoreError(`journal stream ${this.stream}: write failed, ${seqAt - this.durable} records kept in memory and retried: ${(e as Error).message}`, this.streamDir);
    }
    this.durable = seqAt;
    this.diskName = this.fdName;
    this.diskSize = this.fdSize;
    if (this.stalledBy) {
      log.warn(`journal stream ${this.stream}: writing again after ${this.stalledBy.message}; every record kept in memory is durable (seq ${seqAt})`);
      this.stalledBy = null;
      this.retryMs = 0;
    }
    for (const slab of slabs) if (slab.buf.length === SLAB_BYTES && this.pool.length < POOL_SLABS) this.pool.push(slab.buf);
    this.writeHead(head, index);
  }

  /** Move HEAD (and write index entries) after a commit; on failure the next commit tries again. */
  private writeHead(head: Buffer, index: IndexEntry[]): void {
    try {
      writeSync(this.headFd, head, 0, head.length, 0);
      this.headStale = false;
      if (index.length > 0) this.writeIndex(index);
    } catch (e) {
      // The records are durable; HEAD (how far readers go) catches up at the next commit. A
      // missing index entry only makes a reader resuming mid-segment scan a little further.
      if (!this.headStale) log.warn(`journal stream ${this.stream}: HEAD or index not updated: ${(e as Error).message}`);
      this.headStale = true;
    }
  }

  /** Undo a failed commit (see {@link commit}) and schedule its retry; a failed undo fails the writer. */
  private async rollBack(e: Error, slabs: Slab[], index: IndexEntry[], created: string[]): Promise<void> {
    try {
      if (this.fd) { await this.fd.close().catch(() => undefined); this.fd = null; }
      for (const name of created) {
        unlinkSync(join(this.streamDir, name));
        try { unlinkSync(join(this.streamDir, name.replace(/\.seg$/, INDEX_SUFFIX))); } catch { /* none */ }
      }
      if (this.diskName) truncateSync(join(this.streamDir, this.diskName), this.diskSize);
      this.fdName = '';
      this.continueName = this.diskName || null; // the next commit appends to it again
    } catch (undo) {
      this.failed = e;
      log.error(`journal stream ${this.stream}: a failed write (${e.message}) could not be undone (${(undo as Error).message}); appends are refused, run prov verify`);
      return;
    }
    this.full = [...slabs, ...this.full];
    this.indexPending = [...index, ...this.indexPending];
    if (!this.stalledBy) log.error(`journal stream ${this.stream}: cannot write (${e.message}); records are kept in memory and the write is retried until it succeeds`);
    this.stalledBy = e;
    this.retryMs = Math.min(RETRY_MAX_MS, Math.max(this.interval, this.retryMs * 2, 10));
    if (!this.retryTimer && !this.closed) {
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.flush().catch(() => undefined); // a failure reschedules itself
      }, this.retryMs);
      this.retryTimer.unref();
    }
  }

  /** Append sparse-index entries (u64 seq, u64 offset) to `<segment>.idx`; no fsync: readers check every entry. */
  private writeIndex(entries: IndexEntry[]): void {
    const byName = new Map<string, Buffer[]>();
    for (const e of entries) {
      const b = Buffer.alloc(INDEX_ENTRY_BYTES);
      writeU64(b, 0, e.seq);
      writeU64(b, 8, e.offset);
      const list = byName.get(e.name) ?? [];
      list.push(b);
      byName.set(e.name, list);
    }
    for (const [name, list] of byName) {
      appendFileSync(join(this.streamDir, name.replace(/\.seg$/, INDEX_SUFFIX)), Buffer.concat(list), { mode: 0o600 });
    }
  }

  private async writeAll(data: Buffer, from: number, to: number): Promise<void> {
    if (this.fd === null) throw new Error('no segment file is open');
    let pos = from;
    while (pos < to) {
      const r = await this.fd.write(data, pos, to - pos);
      pos += r.bytesWritten;
      this.fdSize += r.bytesWritten;
    }
  }

  /** Start segment file `name` (noted in `created` once it exists); the previous one is synced and closed. */
  private async openSegment(name: string, created: string[]): Promise<void> {
    if (this.fd) {
      await this.fd.datasync();
      await this.fd.close();
      this.fd = null;
    }
    this.fd = await openAsync(join(this.streamDir, name), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_APPEND, 0o600);
    created.push(name);
    this.fdName = name;
    this.fdSize = 0;
    // The new file's directory entry must be durable too.
    const dirFd = openSync(this.streamDir, C.O_RDONLY);
    try { fsyncSync(dirFd); } finally { closeSync(dirFd); }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    try {
      if (!this.failed) {
        await this.flush().catch((e: Error) => {
          throw new StoreError(`journal stream ${this.stream}: closed with records ${this.durable + 1}–${this.seq} not written: ${e.message}`, this.streamDir);
        });
      }
    } finally {
      if (this.retryTimer) { clearTimeout(this.retryTimer); this.retryTimer = null; }
      this.closed = true;
      if (this.fd) await this.fd.close().catch(() => undefined);
      closeSync(this.headFd);
      this.fd = null;
      this.unlock();
    }
  }

  /** The segment file currently written (for tests and diagnostics). */
  get currentSegment(): string { return this.segName || this.fdName; }
}

/**
 * Open (or create) a stream for appending. Synchronous: it runs crash recovery on the newest
 * segment before returning. Throws {@link IntegrityError} when the newest segment is damaged in
 * a way a crash cannot explain, {@link InputError} for a bad stream name or when another live
 * process holds the stream.
 */
export function openJournalWriter(opts: JournalWriterOptions): JournalWriterHandle {
  return new Writer(opts);
}
