/**
 * @module collector/merge
 * Merges several per-stream ordered record sources (eBPF, each provfs instance) into one
 * order by timestamp, with a watermark: the record with the smallest (ts, stream, seq) is
 * released once every *other* live stream has advanced past its ts + the allowed skew
 * (default 20 ms), or that stream is idle (nothing pushed or promised for `idleMs` of wall
 * time) or closed. The caller pops again after time passes (the pipeline polls) so that idle
 * streams release what waits on them.
 *
 * Within one stream, records keep their journal order (seq): the join engine's checkpoint is
 * "last seq applied per stream", which is only sound if a stream is applied in seq order. A
 * record whose ts is below its predecessor's in the same stream (two CPUs stamping before the
 * ring buffer orders them) is sorted at its predecessor's ts and counted in `unordered`. Since
 * a stream's own later records can never come before its earlier ones, its own advance is not
 * waited for.
 *
 * A record pushed after records with a greater ts were released (its stream was idle, or it
 * broke the skew bound) is released as soon as possible and counted in `late`; it cannot be
 * put back in the past.
 *
 * The core is synchronous (push/pop) and takes its wall clock as a function so tests drive time.
 */

/** What the merger needs of a record (a JournalRecord fits). */
export interface Mergeable {
  stream: string;
  seq: number;
  event: { ts: number };
}

export interface MergeOptions {
  /** How far (ns) another stream must have advanced past a record's ts before it is released. Default 20 ms. */
  skewNs?: number;
  /**
   * A stream that pushed nothing for this long (wall-clock ms) no longer holds others back
   * (even with records queued: two quiet streams must not wait on each other forever). Default 100.
   * Infinity: never; the caller closes a stream once it knows the stream has ended.
   */
  idleMs?: number;
  /** Wall clock in ms (default: performance.now). */
  now?: () => number;
}

export interface MergeStats {
  released: number;
  /** Records released after a record with a greater ts had been released. */
  late: number;
  /** Records whose ts was below their predecessor's in the same stream. */
  unordered: number;
}

interface Entry<T> { rec: T; key: number }

interface StreamState<T> {
  name: string;
  queue: Entry<T>[];
  head: number;
  /** The highest ts this stream has shown (pushed or promised by advance). */
  high: number;
  /** Key of its last pushed record (keys are monotonic within a stream). */
  lastKey: number;
  lastPushAt: number;
  closed: boolean;
}

export const DEFAULT_SKEW_NS = 20_000_000;
export const DEFAULT_IDLE_MS = 100;

export class StreamMerger<T extends Mergeable> {
  private readonly streams = new Map<string, StreamState<T>>();
  private readonly skew: number;
  private readonly idleMs: number;
  private readonly now: () => number;
  private lastReleased = -Infinity;
  private readonly counters: MergeStats = { released: 0, late: 0, unordered: 0 };

  constructor(opts: MergeOptions = {}) {
    this.skew = opts.skewNs ?? DEFAULT_SKEW_NS;
    this.idleMs = opts.idleMs ?? DEFAULT_IDLE_MS;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Declare a stream before its first record, so that it holds others back until it speaks, idles or closes. */
  add(stream: string): void {
    this.state(stream);
  }

  push(rec: T): void {
    const s = this.state(rec.stream);
    s.closed = false;
    const ts = rec.event.ts;
    let key = ts;
    if (ts < s.lastKey) {
      key = s.lastKey;
      this.counters.unordered++;
    }
    s.lastKey = key;
    if (key > s.high) s.high = key;
    s.queue.push({ rec, key });
    s.lastPushAt = this.now();
  }

  /** The stream promises it will send nothing with ts below `ts` (a heartbeat from an otherwise quiet source). */
  advance(stream: string, ts: number): void {
    const s = this.state(stream);
    if (ts > s.high) s.high = ts;
    s.lastPushAt = this.now();
  }

  /** The stream has ended: its queued records still come out, it holds nothing back. */
  close(stream: string): void {
    this.state(stream).closed = true;
  }

  /** The next record whose turn has come, or undefined when none may be released yet. */
  pop(): T | undefined {
    const best = this.smallest();
    if (!best) return undefined;
    const now = this.now();
    for (const s of this.streams.values()) {
      if (s === best.s || s.closed || this.idle(s, now)) continue;
      if (s.high < best.e.key + this.skew) return undefined;
    }
    return this.release(best.s);
  }

  /** Every record that may be released now, in order. */
  drain(): T[] {
    const out: T[] = [];
    for (let r = this.pop(); r !== undefined; r = this.pop()) out.push(r);
    return out;
  }

  /** Everything queued, in order, ignoring the watermark (shutdown). */
  flush(): T[] {
    const out: T[] = [];
    for (let b = this.smallest(); b; b = this.smallest()) out.push(this.release(b.s));
    return out;
  }

  /** Records queued, not yet released. */
  get size(): number {
    let n = 0;
    for (const s of this.streams.values()) n += s.queue.length - s.head;
    return n;
  }

  stats(): MergeStats {
    return { ...this.counters };
  }

  private state(stream: string): StreamState<T> {
    let s = this.streams.get(stream);
    if (!s) {
      s = { name: stream, queue: [], head: 0, high: -Infinity, lastKey: -Infinity, lastPushAt: this.now(), closed: false };
      this.streams.set(stream, s);
    }
    return s;
  }

  private idle(s: StreamState<T>, now: number): boolean {
    return now - s.lastPushAt >= this.idleMs;
  }

  private smallest(): { s: StreamState<T>; e: Entry<T> } | undefined {
    let best: { s: StreamState<T>; e: Entry<T> } | undefined;
    for (const s of this.streams.values()) {
      if (s.head >= s.queue.length) continue;
      const e = s.queue[s.head];
      if (!best || e.key < best.e.key || (e.key === best.e.key && (s.name < best.s.name || (s.name === best.s.name && e.rec.seq < best.e.rec.seq)))) {
        best = { s, e };
      }
    }
    return best;
  }

  private release(s: StreamState<T>): T {
    const e = s.queue[s.head++];
    if (s.head > 1024 && s.head * 2 > s.queue.length) {
      s.queue = s.queue.slice(s.head);
      s.head = 0;
    }
    this.counters.released++;
    if (e.key < this.lastReleased) this.counters.late++;
    else this.lastReleased = e.key;
    return e.rec;
  }
}
