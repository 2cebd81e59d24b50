/**
 * @module kernel/linlog
 * The mount's own provenance log as a read-only file `.lin` at the mount root (prov mode), as
 * Bento-prov offered: the records this daemon produced, one JSON object per line (journal `seq`
 * not yet assigned: 0), from the most recent {@link LinLog.cap} bytes of records. The records are
 * kept as the loop wrote them in its event ring (binary ones, collector/provfs-record, or JSON),
 * length-prefixed in one circular buffer; each open takes a snapshot of those bytes, so a reader
 * sees a consistent log, and the snapshot is made JSON only as far as it is read. A live upgrade
 * starts a new log.
 */
import { provfsRecordText } from '../collector/provfs-record.js';
import { SMALL_COPY } from './eventring.js';

const LEN_BYTES = 4;

export class LinLog {
  private readonly buf: Uint8Array;
  /** Where the oldest record kept starts. */
  private start = 0;
  /** Bytes in use from `start` (length prefixes included). */
  private used = 0;

  constructor(readonly cap = 8 << 20) {
    this.buf = new Uint8Array(cap);
  }

  /** One record's bytes (binary or JSON), dropping the oldest ones to make room. */
  append(bytes: Uint8Array): void {
    this.appendRange(bytes, 0, bytes.length);
  }

  /**
   * The record in `src` from `from` to `to` (the ring's record written last, with no view made
   * of it), dropping the oldest records to make room. Copied element by element up to
   * SMALL_COPY bytes, as the ring copies its pieces (kernel/eventring).
   */
  appendRange(src: Uint8Array, from: number, to: number): void {
    const n = to - from, need = LEN_BYTES + n;
    if (need > this.cap) return; // a record larger than the whole log: not kept
    while (this.used + need > this.cap) this.dropOldest();
    const cap = this.cap, buf = this.buf;
    let at = this.start + this.used;
    if (at >= cap) at -= cap;
    if (at + need <= cap) {
      buf[at] = n & 0xff; buf[at + 1] = (n >>> 8) & 0xff; buf[at + 2] = (n >>> 16) & 0xff; buf[at + 3] = n >>> 24;
      at += LEN_BYTES;
      if (n > SMALL_COPY) buf.set(src.subarray(from, to), at);
      else for (let i = from; i < to; i++) buf[at++] = src[i]!;
    } else {
      for (let i = 0; i < LEN_BYTES; i++) {
        buf[at] = (n >>> (8 * i)) & 0xff;
        if (++at === cap) at = 0;
      }
      const room = cap - at;
      if (n <= room) buf.set(src.subarray(from, to), at);
      else {
        buf.set(src.subarray(from, from + room), at);
        buf.set(src.subarray(from + room, to), 0);
      }
    }
    this.used += need;
  }

  /** A record as a string (those that do not go through the event ring). */
  appendString(json: string): void {
    this.append(Buffer.from(json));
  }

  private lengthAt(at: number): number {
    let n = 0;
    for (let i = 0; i < LEN_BYTES; i++) n |= this.buf[(at + i) % this.cap]! << (8 * i);
    return n >>> 0;
  }

  private dropOldest(): void {
    const need = LEN_BYTES + this.lengthAt(this.start);
    this.start = (this.start + need) % this.cap;
    this.used -= need;
  }

  /** The records kept now, oldest first (a copy: appending goes on). */
  snapshot(): LinSnapshot {
    const end = this.start + this.used;
    const raw = end <= this.cap
      ? Buffer.from(this.buf.subarray(this.start, end))
      : Buffer.concat([this.buf.subarray(this.start), this.buf.subarray(0, end - this.cap)]);
    return new LinSnapshot(raw);
  }
}

/** One open of `.lin`: its records, made JSON lines as far as they are read. */
export class LinSnapshot {
  /** Next record to make a line of. */
  private next = 0;
  private text = Buffer.alloc(0);
  private textLen = 0;

  constructor(private readonly raw: Buffer) {}

  /** Copy the text from `off` into `out` at `at`, at most `size` bytes; how many were copied (0: the end). */
  read(off: number, size: number, out: Buffer, at: number): number {
    this.lines(off + size);
    if (off >= this.textLen) return 0;
    return this.text.copy(out, at, off, Math.min(this.textLen, off + size));
  }

  /** All of it (tests, and readers that want the whole log). */
  all(): Buffer {
    this.lines(Infinity);
    return this.text.subarray(0, this.textLen);
  }

  /** Make lines until `upTo` bytes of text exist or the records run out. */
  private lines(upTo: number): void {
    const raw = this.raw;
    while (this.textLen < upTo && this.next + LEN_BYTES <= raw.length) {
      const n = raw.readUInt32LE(this.next);
      const rec = raw.subarray(this.next + LEN_BYTES, this.next + LEN_BYTES + n);
      this.next += LEN_BYTES + n;
      let line: string;
      try { line = provfsRecordText(rec); } catch (e) { line = JSON.stringify({ unreadable: (e as Error).message }); }
      const bytes = Buffer.from(`${line}\n`);
      if (this.textLen + bytes.length > this.text.length) {
        const grown = Buffer.alloc(Math.max(2 * this.text.length, this.textLen + bytes.length, 1 << 16));
        this.text.copy(grown, 0, 0, this.textLen);
        this.text = grown;
      }
      bytes.copy(this.text, this.textLen);
      this.textLen += bytes.length;
    }
  }
}
