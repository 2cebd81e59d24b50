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
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import type { ProvEvent } from '../events.js';
import { checkEvent } from '../validate.js';
import { CODEC, type JournalRecord, type PayloadDecoder } from './api.js';
import {
  FRAME_HEADER_BYTES, FRAME_MAGIC0, FRAME_MAGIC1, FRAME_OVERHEAD, KIND_SEAL, MAX_PAYLOAD,
  SEGMENT_HEADER_BYTES, decodeSegmentHeader, findNextFrame, isFrame, parseFrame, readU32,
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

  constructor(
    dir: string,
    readonly stream: string,
    fromSeq: number,
    private readonly decoders: ReadonlyMap<number, PayloadDecoder>,
    private readonly reject: (r: RejectedRecord) => void,
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
    return true;
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
      const offset = this.bufStart + this.pos;
      let f;
      if (!this.fill(FRAME_HEADER_BYTES)) {
        f = parseFrame(this.buf, this.pos, this.bufLen, this.prevCrc);
      } else {
        const b = this.buf;
        const p = this.pos;
        const len = readU32(b, p + 4);
        if (b[p] === FRAME_MAGIC0 && b[p + 1] === FRAME_MAGIC1 && len <= MAX_PAYLOAD) this.fill(len + FRAME_OVERHEAD);
        f = parseFrame(this.buf, this.pos, this.bufLen, this.prevCrc);
      }
      if (!isFrame(f)) {
        if (f.incomplete || !this.resync(offset, f.reason, f.seq)) {
          // End of this segment (possibly a write in progress).
          if (!this.hasNewerSegment()) return false;
          if (this.bufLen > this.pos) {
            this.reject({ stream: this.stream, seq: f.seq >= 0 ? f.seq : null, segment: this.segment.name, offset, reason: `${f.reason} at the end of a finished segment` });
          }
          this.closeFd();
          continue;
        }
        continue;
      }
      this.prevCrc = f.crc;
      this.pos = f.end;
      if (f.kind === KIND_SEAL || f.seq <= this.lastSeq) continue;
      const ev = this.decode(f.codec, f.payloadStart, f.len, f.seq, offset);
      if (ev === null) continue;
      this.lastSeq = f.seq;
      out.push({ stream: this.stream, seq: f.seq, pos: `${this.stream}:${f.seq}`, segment: this.segment.name, offset, event: ev });
      added++;
    }
    return true;
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
    const where = `journal ${this.stream}/${this.segment.name} offset ${offset}`;
    let ev: unknown;
    try {
      if (codec === CODEC.json) {
        ev = JSON.parse(this.buf.toString('utf8', start, start + len));
      } else {
        const dec = this.decoders.get(codec);
        if (!dec) {
          this.reject({ stream: this.stream, seq, segment: this.segment.name, offset, reason: `no decoder registered for codec ${codec}` });
          return null;
        }
        ev = dec(this.buf.subarray(start, start + len), where);
      }
    } catch (e) {
      const why = codec === CODEC.json ? `payload is not valid JSON (${(e as Error).message})` : `codec ${codec} decoder: ${(e as Error).message}`;
      this.reject({ stream: this.stream, seq, segment: this.segment.name, offset, reason: why });
      return null;
    }
    // The frame's seq is authoritative (the writer assigns it).
    if (typeof ev === 'object' && ev !== null && !Array.isArray(ev)) (ev as { seq: number }).seq = seq;
    const c = checkEvent(ev);
    if (!c.ok) {
      this.reject({ stream: this.stream, seq, segment: this.segment.name, offset, reason: c.reason });
      return null;
    }
    return c.event;
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
