/**
 * @module kernel/linlog
 * The mount's own provenance log as a read-only file `.lin` at the mount root (prov mode), as
 * Bento-prov offered: the records this daemon produced, one JSON object per line (journal `seq`
 * not yet assigned: 0), from the most recent {@link LinLog.cap} bytes of records. The records are
 * kept as the loop wrote them in its event ring (binary ones, collector/provfs-record, or JSON),
 * each with the ring's record header, in one circular buffer in shared memory; each open takes a snapshot of those
 * bytes, so a reader sees a consistent log, and the snapshot is made JSON only as far as it is
 * read. A live upgrade starts a new log.
 *
 * The log is filled by the thread that drains the loop's ring into the journal (kernel/serving),
 * as it takes the records, not by the request loop as it writes them: copying every record a
 * second time on the loop cost it about 1.1 µs of CPU per file on a create+unlink loop, a third
 * of what prov mode added there (knock-out A/B, two daemons each). An open then completes the
 * snapshot from the ring itself: the records written but not taken yet are still there (the
 * loop, the only writer, is busy opening), so `.lin` shows every record made before the open.
 */
import { provfsRecordText } from '../collector/provfs-record.js';
import { RECORD_HEADER_BYTES, type EventRing } from './eventring.js';

/** Each record's header, as in the event ring (u32 length, f64 journal seq, unused here): runs of them are copied whole. */
const HDR_BYTES = RECORD_HEADER_BYTES;
/** The length at the start of a header. */
const LEN_BYTES = 4;
const readU32 = (b: Uint8Array, at: number): number => (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
/** Control words: the lock (0 free, 1 held), where the oldest record starts, bytes in use. */
const LOCK = 0, START = 1, USED = 2;
const CTL_BYTES = 16;
/** How long {@link LinLog.locked} waits for a hold before taking it over. */
export const LOCK_PATIENCE_MS = 500;

export class LinLog {
  readonly cap: number;
  /** The memory of this log, for another thread's {@link LinLog} over it. */
  readonly shared: SharedArrayBuffer;
  private readonly ctl: Int32Array;
  private readonly buf: Uint8Array;

  /** A log of `cap` bytes, or the log in `shared` (another thread's, see {@link shared}). */
  constructor(capOrShared: number | SharedArrayBuffer = 8 << 20) {
    const sab = typeof capOrShared === 'number' ? new SharedArrayBuffer(CTL_BYTES + capOrShared) : capOrShared;
    this.shared = sab;
    this.cap = sab.byteLength - CTL_BYTES;
    this.ctl = new Int32Array(sab, 0, CTL_BYTES >> 2);
    this.buf = new Uint8Array(sab, CTL_BYTES);
  }

  /**
   * Run `fn` holding the log: appends from one thread, snapshots from another. A hold lasts a
   * drain's appends or a snapshot's copy (milliseconds at most); one not released after
   * {@link LOCK_PATIENCE_MS} is taken over: a thread terminated inside its hold (a worker ends
   * without running its `finally`) must not hang the other, and the worst that taking over can
   * do is one torn snapshot of `.lin`.
   */
  locked<T>(fn: () => T): T {
    if (Atomics.compareExchange(this.ctl, LOCK, 0, 1) !== 0) {
      const until = performance.now() + LOCK_PATIENCE_MS;
      while (Atomics.compareExchange(this.ctl, LOCK, 0, 1) !== 0 && performance.now() < until) Atomics.wait(this.ctl, LOCK, 1, 5);
      Atomics.store(this.ctl, LOCK, 1);
    }
    try {
      return fn();
    } finally {
      Atomics.store(this.ctl, LOCK, 0);
      Atomics.notify(this.ctl, LOCK);
    }
  }

  /** One record's bytes (binary or JSON), dropping the oldest ones to make room; call it {@link locked}. */
  append(bytes: Uint8Array): void {
    const rec = new Uint8Array(HDR_BYTES + bytes.length);
    new DataView(rec.buffer).setUint32(0, bytes.length, true);
    rec.set(bytes, HDR_BYTES);
    this.appendRun(rec, 0, rec.length);
  }

  /**
   * Whole records in the event ring's layout, `src[from, to)` (EventRing.forEachRun), copied as
   * they are, dropping the oldest ones to make room; call it {@link locked}. One copy per run:
   * a copy per record cost the draining thread a quarter of its time (kernel/serving).
   */
  appendRun(src: Uint8Array, from: number, to: number): void {
    const cap = this.cap, buf = this.buf, ctl = this.ctl;
    while (to - from > cap) from += HDR_BYTES + readU32(src, from); // more than the whole log: its newest records
    const n = to - from;
    if (n === 0) return;
    let start = ctl[START]!, used = ctl[USED]!;
    while (used + n > cap) {
      const drop = HDR_BYTES + this.lengthAt(start);
      start = (start + drop) % cap;
      used -= drop;
    }
    let at = start + used;
    if (at >= cap) at -= cap;
    const room = cap - at;
    if (n <= room) buf.set(src.subarray(from, to), at);
    else {
      buf.set(src.subarray(from, from + room), at);
      buf.set(src.subarray(from + room, to), 0);
    }
    ctl[START] = start;
    ctl[USED] = used + n;
  }

  /** A record as a string (those that do not go through the event ring); call it {@link locked}. */
  appendString(json: string): void {
    this.append(Buffer.from(json));
  }

  private lengthAt(at: number): number {
    if (at + LEN_BYTES <= this.cap) return readU32(this.buf, at);
    let n = 0;
    for (let i = 0; i < LEN_BYTES; i++) n |= this.buf[(at + i) % this.cap]! << (8 * i);
    return n >>> 0;
  }

  /**
   * The records kept now, oldest first (a copy: appending goes on), followed by those of `ring`
   * written but not taken yet: the producer's view, taken on the ring's producer thread.
   */
  snapshot(ring?: EventRing): LinSnapshot {
    return this.locked(() => {
      const start = this.ctl[START]!, used = this.ctl[USED]!, end = start + used;
      const parts: Uint8Array[] = end <= this.cap
        ? [this.buf.subarray(start, end)]
        : [this.buf.subarray(start), this.buf.subarray(0, end - this.cap)];
      ring?.forEachUntaken((bytes, from, to) => { parts.push(bytes.subarray(from - HDR_BYTES, to)); });
      return new LinSnapshot(Buffer.concat(parts));
    });
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
    while (this.textLen < upTo && this.next + HDR_BYTES <= raw.length) {
      const n = raw.readUInt32LE(this.next);
      const rec = raw.subarray(this.next + HDR_BYTES, this.next + HDR_BYTES + n);
      this.next += HDR_BYTES + n;
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
