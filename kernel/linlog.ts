/**
 * @module kernel/linlog
 * The mount's own provenance log as a read-only file `.lin` at the mount root (prov mode), as
 * Bento-prov offered: the records this daemon produced, one JSON object per line (journal `seq`
 * not yet assigned: 0), from the most recent {@link LinLog.cap} bytes of records. The records are
 * kept as the loop wrote them in its event ring (binary ones, collector/provfs-record, or JSON),
 * length-prefixed in one circular buffer in shared memory; each open takes a snapshot of those
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
import type { EventRing } from './eventring.js';
import { copyBytes } from '../collector/copy-bytes.js';

const LEN_BYTES = 4;
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
    const n = bytes.length, need = LEN_BYTES + n;
    if (need > this.cap) return; // a record larger than the whole log: not kept
    const cap = this.cap, buf = this.buf, ctl = this.ctl;
    let start = ctl[START]!, used = ctl[USED]!;
    while (used + need > cap) {
      const drop = LEN_BYTES + this.lengthAt(start);
      start = (start + drop) % cap;
      used -= drop;
    }
    let at = start + used;
    if (at >= cap) at -= cap;
    if (at + need <= cap) {
      buf[at] = n & 0xff; buf[at + 1] = (n >>> 8) & 0xff; buf[at + 2] = (n >>> 16) & 0xff; buf[at + 3] = n >>> 24;
      copyBytes(buf, at + LEN_BYTES, bytes);
    } else {
      for (let i = 0; i < LEN_BYTES; i++) {
        buf[at] = (n >>> (8 * i)) & 0xff;
        if (++at === cap) at = 0;
      }
      const room = cap - at;
      if (n <= room) buf.set(bytes, at);
      else {
        buf.set(bytes.subarray(0, room), at);
        buf.set(bytes.subarray(room), 0);
      }
    }
    ctl[START] = start;
    ctl[USED] = used + need;
  }

  /** A record as a string (those that do not go through the event ring); call it {@link locked}. */
  appendString(json: string): void {
    this.append(Buffer.from(json));
  }

  private lengthAt(at: number): number {
    const buf = this.buf;
    if (at + LEN_BYTES <= this.cap) return (buf[at]! | (buf[at + 1]! << 8) | (buf[at + 2]! << 16) | (buf[at + 3]! << 24)) >>> 0;
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
      ring?.forEachUntaken((bytes, from, to) => {
        const len = Buffer.allocUnsafe(LEN_BYTES);
        len.writeUInt32LE(to - from, 0);
        parts.push(len, bytes.subarray(from, to));
      });
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
