/**
 * @module collector/journal/cursor
 * Reads one stream in seq order from a checkpoint, in chunks, and decodes and validates each
 * record. Resuming seeks by segment: a segment file is named by its first seq, so the cursor
 * opens the one segment that holds `checkpoint + 1` and scans frames only from its start
 * (skipping earlier records without decoding them), never from the start of the stream.
 *
 * Damage is not fatal: a frame that does not parse or a record that fails to decode or
 * validate is reported through `reject` (stream, seq, segment, offset, reason) and skipped; after
 * a damaged frame the cursor resynchronises on the next valid frame. A partial or garbled frame
 * at the very end of the newest segment is taken to be a write in progress (or a crash the writer
 * will cut on reopen): the cursor stops there and tries again on the next call.
 *
 * Only committed records are delivered: a record beyond the seq in the stream's HEAD (written
 * after each fsync) waits for the writer's next group commit, so a consumer never applies a
 * record that a power loss could take back.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { ProvEvent } from '../events.js';
import { eventProblem } from '../validate.js';
import { decodeProvfsRecord } from '../provfs-record.js';
import { CODEC, type JournalRecord, type PayloadDecoder, type RecordPrefilter } from './api.js';
import {
  FRAME_HEADER_BYTES, FRAME_MAGIC0, FRAME_MAGIC1, FRAME_OVERHEAD, INDEX_ENTRY_BYTES, INDEX_SUFFIX, KIND_RECORD,
  KIND_SEAL, MAX_PAYLOAD, SEGMENT_HEADER_BYTES, HEAD_FILE, decodeHead, decodeSegmentHeader, findNextFrame, isFrame, parseFrame,
  readU32, readU64, type Frame, type FrameError,
} from './format.js';
import { listSegments, type SegmentFile } from './segments.js';

/** A record the reader skipped, and why. */
export interface RejectedRecord {
  stream: string;
  /** The seq from the frame header when it could be read, else null. */
  seq: number | null;
  segment: string;
  offset: number;
  reason: string;
}

const CHUNK = 1 << 20;

export class StreamCursor {
  /** Seq of the last record returned (the checkpoint). */
  lastSeq: number;
  private cur: SegmentFile | null = null;
  private fd: number | null = null;
  private buf: Buffer = Buffer.allocUnsafe(CHUNK);
  /** File offset of buf[0]. */
  private bufStart = 0;
  private bufLen = 0;
  private pos = 0;
  private prevCrc = 0;
  private readonly streamDir: string;
  /** True until the first frame after the checkpoint has been found. */
  private skipping = true;
  /** Highest seq the writer has committed (from HEAD); records above it are not delivered yet. */
  private headSeq = -1;
  /** File offset the first segment was entered at (> header size when a sparse-index entry was used). */
  resumedAt = -1;
  /**
   * Records the prefilter passed over since the last record returned (they end at lastSeq).
   * Whoever has consumed every returned record may take the stream as read up to lastSeq when
   * lastSeq - passed is the seq of the last record it got: nothing was lost between.
   */
  passed = 0;

  constructor(
    dir: string,
    readonly stream: string,
    fromSeq: number,
    private readonly decoders: ReadonlyMap<number, PayloadDecoder>,
    private readonly reject: (r: RejectedRecord) => void,
    private readonly prefilter?: RecordPrefilter,
  ) {
    this.streamDir = join(dir, stream);
    this.lastSeq = fromSeq;
  }

  private get segment(): SegmentFile { return this.cur!; }

  /** Open the segment holding lastSeq + 1 (first call) or the one after the current. False when there is none yet. */
  private advance(): boolean {
    const segs = listSegments(this.streamDir);
    let target: SegmentFile | undefined;
    if (this.cur === null) {
      for (const s of segs) if (s.firstSeq <= this.lastSeq + 1) target = s;
      target ??= segs[0];
    } else {
      const cur = this.cur.firstSeq;
      target = segs.find((s) => s.firstSeq > cur);
    }
    if (!target) return false;
    const fd = openSync(target.path, 'r');
    const hb = Buffer.alloc(SEGMENT_HEADER_BYTES);
    const n = readSync(fd, hb, 0, SEGMENT_HEADER_BYTES, 0);
    const newest = target === segs[segs.length - 1];
    const h = n < SEGMENT_HEADER_BYTES ? `segment header is truncated (${n} of ${SEGMENT_HEADER_BYTES} bytes)` : decodeSegmentHeader(hb);
    if (typeof h === 'string') {
      closeSync(fd);
      // A segment being created right now: come back to it later.
      if (n < SEGMENT_HEADER_BYTES && newest) return false;
      this.reject({ stream: this.stream, seq: null, segment: target.name, offset: 0, reason: `${h}: segment skipped` });
      this.closeFd();
      this.cur = target;
      return this.advance();
    }
    this.closeFd();
    this.fd = fd;
    this.cur = target;
    this.bufStart = SEGMENT_HEADER_BYTES;
    this.bufLen = 0;
    this.pos = 0;
    this.prevCrc = h.crc;
    if (this.lastSeq >= target.firstSeq) this.seekByIndex(target);
    if (this.resumedAt < 0) this.resumedAt = this.bufStart + this.pos;
    return true;
  }

  /**
   * Resuming inside a segment: jump to the last sparse-index entry at or before the checkpoint,
   * after checking that a whole, checksum-valid record with that seq is really there.
   */
  private seekByIndex(seg: SegmentFile): void {
    let idx: Buffer;
    try { idx = readFileSync(seg.path.replace(/\.seg$/, INDEX_SUFFIX)); } catch { return; }
    for (let e = Math.floor(idx.length / INDEX_ENTRY_BYTES) - 1; e >= 0; e--) {
      const seq = readU64(idx, e * INDEX_ENTRY_BYTES);
      const offset = readU64(idx, e * INDEX_ENTRY_BYTES + 8);
      if (seq > this.lastSeq + 1) continue;
      if (offset < SEGMENT_HEADER_BYTES + 4 || offset > Number.MAX_SAFE_INTEGER) return;
      // Read the 4 bytes before the frame (the previous CRC, its seed) and the frame itself.
      this.bufStart = offset - 4;
      this.bufLen = 0;
      this.pos = 0;
      if (!this.fill(4 + FRAME_HEADER_BYTES)) break;
      const len = readU32(this.buf, 4 + 4);
      if (len > MAX_PAYLOAD || !this.fill(4 + len + FRAME_OVERHEAD)) break;
      const seed = readU32(this.buf, 0);
      const f = parseFrame(this.buf, 4, this.bufLen, seed);
      if (isFrame(f) && f.kind === KIND_RECORD && f.seq === seq) {
        this.pos = 4;
        this.prevCrc = seed;
        return;
      }
      break;
    }
    // No usable entry: scan from the segment start.
    this.bufStart = SEGMENT_HEADER_BYTES;
    this.bufLen = 0;
    this.pos = 0;
  }

  private closeFd(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** Make sure `need` bytes from pos are in the buffer; false at end of file. */
  private fill(need: number): boolean {
    if (this.bufLen - this.pos >= need) return true;
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.bufLen);
      this.bufStart += this.pos;
      this.bufLen -= this.pos;
      this.pos = 0;
    }
    if (need > this.buf.length) {
      const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.bufLen);
      this.buf = next;
    }
    while (this.bufLen < need) {
      const n = readSync(this.fd!, this.buf, this.bufLen, this.buf.length - this.bufLen, this.bufStart + this.bufLen);
      if (n === 0) return false;
      this.bufLen += n;
    }
    return true;
  }

  private hasNewerSegment(): boolean {
    const cur = this.segment.firstSeq;
    return listSegments(this.streamDir).some((s) => s.firstSeq > cur);
  }

  /**
   * Append up to `max` records to `out`. Returns false when the stream has no more whole records
   * for now (the caller may poll again later), true when it stopped because of `max`.
   */
  read(max: number, out: JournalRecord[]): boolean {
    let added = 0;
    while (added < max) {
      if (this.fd === null && !this.advance()) return false;
      if (this.skipping && this.skipBefore()) continue;
      const offset = this.bufStart + this.pos;
      let f = this.parseHere();
      if (!isFrame(f) && !f.incomplete) {
        // The bytes may have been read while the writer was still writing them: look again.
        this.bufLen = this.pos;
        f = this.parseHere();
      }
      if (!isFrame(f)) {
        if (!f.incomplete && this.resync(offset, f.reason, f.seq)) continue;
        // Nothing whole here: the live end of the stream, unless a newer segment exists.
        if (!this.hasNewerSegment()) return false;
        // A newer segment exists, so this one is complete: read what it has before leaving it.
        this.bufLen = this.pos;
        f = this.parseHere();
        if (!isFrame(f)) {
          if (!f.incomplete && this.resync(offset, f.reason, f.seq)) continue;
          if (this.bufLen > this.pos) {
            this.reject({ stream: this.stream, seq: f.seq >= 0 ? f.seq : null, segment: this.segment.name, offset, reason: `${f.reason} at the end of a finished segment` });
          }
          this.closeFd();
          continue;
        }
      }
      if (f.kind === KIND_RECORD && f.seq > this.headSeq && f.seq > this.lastSeq && !this.committed(f.seq)) return false;
      this.prevCrc = f.crc;
      this.pos = f.end;
      if (f.kind === KIND_SEAL || f.seq <= this.lastSeq) continue;
      if (this.prefilter !== undefined && !this.prefilter(this.stream, f.codec, this.buf, f.payloadStart, f.len)) {
        // Contiguous with what came before? A rejected record in between must stay visible as a gap.
        if (f.seq !== this.lastSeq + 1) this.passed = Number.NaN;
        this.lastSeq = f.seq;
        this.passed++;
        continue;
      }
      const ev = this.decode(f.codec, f.payloadStart, f.len, f.seq, offset);
      if (ev === null) continue;
      const rec: JournalRecord = { stream: this.stream, seq: f.seq, pos: `${this.stream}:${f.seq}`, segment: this.segment.name, offset, event: ev };
      if (this.passed !== 0) {
        // NaN (a gap among the passed-over records) is reported as 0: the consumer sees the gap.
        if (this.passed > 0 && f.seq === this.lastSeq + 1) rec.skipped = this.passed;
        this.passed = 0;
      }
      this.lastSeq = f.seq;
      out.push(rec);
      added++;
    }
    return true;
  }

  /**
   * Whether `seq` has been committed (fsync'd) by the writer, per the stream's HEAD. Records a
   * reader can see in the page cache but that are not yet durable could vanish in a power loss
   * and their seqs be reused, so they are held back (for at most one group-commit interval).
   * A stream without a HEAD file (not written by this writer) is read as it is.
   */
  private committed(seq: number): boolean {
    let head: Buffer | null = null;
    try { head = readFileSync(join(this.streamDir, HEAD_FILE)); } catch { /* no HEAD */ }
    if (head === null) this.headSeq = Number.MAX_SAFE_INTEGER;
    else if (head.length === 0) this.headSeq = 0; // created, nothing committed yet
    else {
      const h = decodeHead(head);
      this.headSeq = typeof h === 'string' ? Number.MAX_SAFE_INTEGER : h.seq;
    }
    return seq <= this.headSeq;
  }

  /** Load the frame at pos (as much of it as the file has) and parse it. */
  private parseHere(): Frame | FrameError {
    if (this.fill(FRAME_HEADER_BYTES)) {
      const b = this.buf;
      const p = this.pos;
      const len = readU32(b, p + 4);
      if (b[p] === FRAME_MAGIC0 && b[p + 1] === FRAME_MAGIC1 && len <= MAX_PAYLOAD) this.fill(len + FRAME_OVERHEAD);
    }
    return parseFrame(this.buf, this.pos, this.bufLen, this.prevCrc);
  }

  /**
   * Hop over whole frames at or before the checkpoint by their length fields alone (no CRC, no
   * decoding); the first frame after the checkpoint is then checked with the CRC of the frame
   * before it as its seed. Returns true when it moved. Anything odd falls through to the full parse.
   */
  private skipBefore(): boolean {
    let moved = false;
    for (;;) {
      if (!this.fill(FRAME_HEADER_BYTES)) return moved;
      const b = this.buf;
      const p = this.pos;
      if (b[p] !== FRAME_MAGIC0 || b[p + 1] !== FRAME_MAGIC1) return moved;
      const seq = readU64(b, p + 8);
      if (seq > this.lastSeq) {
        this.skipping = false;
        return moved;
      }
      const len = readU32(b, p + 4);
      if (len > MAX_PAYLOAD || !this.fill(len + FRAME_OVERHEAD)) return moved;
      const end = this.pos + FRAME_HEADER_BYTES + len;
      this.prevCrc = readU32(this.buf, end);
      this.pos = end + 4;
      moved = true;
    }
  }

  /**
   * After a damaged frame at `offset`, find the next valid frame in this segment. True when the
   * cursor moved there (the damage was reported); false when nothing valid follows (a tail).
   */
  private resync(offset: number, reason: string, seq: number): boolean {
    // Load the rest of the segment from the damaged frame on.
    const size = fstatSync(this.fd!).size;
    const rest = Buffer.allocUnsafe(size - offset);
    let got = 0;
    while (got < rest.length) {
      const n = readSync(this.fd!, rest, got, rest.length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    const next = findNextFrame(rest, 1, got);
    if (next < 0) return false;
    this.reject({ stream: this.stream, seq: seq >= 0 ? seq : null, segment: this.segment.name, offset, reason: `${reason}; skipped ${next} bytes to the next valid record` });
    this.buf = rest.length > this.buf.length ? rest : this.buf;
    if (this.buf !== rest) rest.copy(this.buf, 0, 0, got);
    this.bufStart = offset;
    this.bufLen = got;
    this.pos = next;
    this.prevCrc = readU32(this.buf, next - 4);
    return true;
  }

  private decode(codec: number, start: number, len: number, seq: number, offset: number): ProvEvent | null {
    let ev: unknown;
    try {
      if (codec === CODEC.json) {
        ev = JSON.parse(this.buf.toString('utf8', start, start + len));
      } else if (codec === CODEC.provfsRaw && !this.decoders.has(codec)) {
        ev = decodeProvfsRecord(this.buf.subarray(start, start + len));
      } else {
        const dec = this.decoders.get(codec);
        if (!dec) {
          this.reject({ stream: this.stream, seq, segment: this.segment.name, offset, reason: `no decoder registered for codec ${codec}` });
          return null;
        }
        ev = dec(this.buf.subarray(start, start + len), `journal ${this.stream}/${this.segment.name} offset ${offset}`);
      }
    } catch (e) {
      const why = codec === CODEC.json ? `payload is not valid JSON (${(e as Error).message})` : `codec ${codec} decoder: ${(e as Error).message}`;
      this.reject({ stream: this.stream, seq, segment: this.segment.name, offset, reason: why });
      return null;
    }
    // The frame's seq is authoritative (the writer assigns it).
    if (typeof ev === 'object' && ev !== null && !Array.isArray(ev) && (ev as { seq: unknown }).seq !== seq) (ev as { seq: number }).seq = seq;
    const problem = eventProblem(ev);
    if (problem !== null) {
      this.reject({ stream: this.stream, seq, segment: this.segment.name, offset, reason: problem });
      return null;
    }
    return ev as ProvEvent;
  }

  close(): void {
    this.closeFd();
  }
}

/** The first seq a reader starting after `checkpoint` will look for in `stream` (for tests). */
export function resumeSegment(dir: string, stream: string, lastSeq: number): string | null {
  let name: string | null = null;
  for (const s of listSegments(join(dir, stream))) if (s.firstSeq <= lastSeq + 1) name = s.name;
  return name;
}
