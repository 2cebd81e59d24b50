/**
 * @module collector/journal/reader
 * The checkpointed journal reader over every stream of a journal directory. Each stream is read
 * in seq order from the checkpoint (see cursor.ts); across streams, records are merged by event
 * time (`ts`) among the records at hand, which keeps the join engine's watermark merge cheap
 * (it still owns out-of-order handling: a stream that is idle is not waited for).
 *
 * Follow mode waits for new appends by polling (every `pollMs`, default 25 ms) and ends when
 * its AbortSignal fires. Records that fail to decode or validate are reported through the
 * logger, kept in `rejections` (the newest 1000), counted in `stats`, and skipped.
 */
import { InputError } from '../../graph/errors.js';
import type { Checkpoint } from '../../graph/model.js';
import { logger } from '../log.js';
import type { JournalRecord, PayloadDecoder, RecordPrefilter } from './api.js';
import { StreamCursor, type RejectedRecord } from './cursor.js';
import { checkStreamName } from './format.js';
import { listStreams } from './segments.js';

export type { RejectedRecord } from './cursor.js';

const log = logger('journal');
const KEEP_REJECTIONS = 1000;
const LOUD_REJECTIONS = 100;

export interface JournalReaderOptions {
  /** Resume after these seqs (stream → last applied seq); streams not named start at the beginning. */
  from?: Checkpoint;
  /** Decoders for binary codecs (JSON, codec 0, is built in). */
  decoders?: ReadonlyMap<number, PayloadDecoder>;
  /**
   * Pass over records the consumer does not want without decoding them (see RecordPrefilter).
   * A delivered record then says how many were passed over right before it (`skipped`), and
   * {@link JournalReader.checkpoint} counts a passed-over tail as read.
   */
  prefilter?: RecordPrefilter;
}

export interface ReadOptions {
  /** Keep waiting for new records (until `signal` aborts). */
  follow?: boolean;
  signal?: AbortSignal;
  /** Poll interval in follow mode, ms (default 25). */
  pollMs?: number;
  /** Only these streams (default: every stream, including ones that appear later). */
  streams?: readonly string[];
}

/** Counts of what the reader delivered and skipped. */
export interface ReaderStats {
  read: number;
  rejected: number;
  rejectedByStream: Record<string, number>;
}

export interface JournalReader {
  readonly dir: string;
  /** Streams present now. */
  streams(): string[];
  /** Every stream, merged by ts among the records at hand. Iterating again continues where the last iteration stopped. */
  records(opts?: ReadOptions): AsyncIterableIterator<JournalRecord>;
  /** One stream in seq order. */
  stream(name: string, opts?: Omit<ReadOptions, 'streams'>): AsyncIterableIterator<JournalRecord>;
  /** Up to `max` records merged by ts, synchronously; empty when nothing is available now. */
  readBatch(max: number, streams?: readonly string[]): JournalRecord[];
  /**
   * Streams the last {@link readBatch} read to their end: every record on disk at that moment
   * has been delivered. A one-shot consumer can treat them as ended instead of guessing from
   * wall-clock silence (a live writer may still append; the next batch says so).
   */
  drained(): string[];
  /**
   * Last seq delivered per stream (what a consumer stores as its checkpoint once applied); with
   * a prefilter, records passed over after the last delivered one count once that one was taken.
   */
  checkpoint(): Checkpoint;
  /** Streams whose delivered records are all taken and that end in passed-over records: the seq they reach. */
  passedOver(): Checkpoint;
  readonly stats: ReaderStats;
  /** The newest rejected records (at most 1000), oldest first. */
  readonly rejections: readonly RejectedRecord[];
  close(): void;
}

interface Lane {
  cursor: StreamCursor;
  queue: JournalRecord[];
  head: number;
  delivered: number;
}

class Reader implements JournalReader {
  readonly stats: ReaderStats = { read: 0, rejected: 0, rejectedByStream: {} };
  readonly rejections: RejectedRecord[] = [];
  private readonly lanes = new Map<string, Lane>();
  private readonly from: Checkpoint;
  private readonly decoders: ReadonlyMap<number, PayloadDecoder>;
  private readonly prefilter?: RecordPrefilter;
  private lastDrained: string[] = [];

  constructor(readonly dir: string, opts: JournalReaderOptions) {
    this.from = { ...(opts.from ?? {}) };
    this.decoders = opts.decoders ?? new Map();
    this.prefilter = opts.prefilter;
    for (const [stream, seq] of Object.entries(this.from)) {
      if (!Number.isSafeInteger(seq) || seq < 0) throw new InputError(`checkpoint for stream ${stream} is not a seq (${seq})`);
    }
  }

  streams(): string[] {
    return listStreams(this.dir);
  }

  private lane(stream: string): Lane {
    let l = this.lanes.get(stream);
    if (!l) {
      const bad = checkStreamName(stream);
      if (bad) throw new InputError(bad, this.dir);
      const from = this.from[stream] ?? 0;
      l = { cursor: new StreamCursor(this.dir, stream, from, this.decoders, (r) => this.onReject(r), this.prefilter), queue: [], head: 0, delivered: from };
      this.lanes.set(stream, l);
    }
    return l;
  }

  private onReject(r: RejectedRecord): void {
    this.stats.rejected++;
    this.stats.rejectedByStream[r.stream] = (this.stats.rejectedByStream[r.stream] ?? 0) + 1;
    this.rejections.push(r);
    if (this.rejections.length > KEEP_REJECTIONS) this.rejections.splice(0, this.rejections.length - KEEP_REJECTIONS);
    const msg = `rejected record: stream ${r.stream} seq ${r.seq ?? '?'} segment ${r.segment} offset ${r.offset}: ${r.reason}`;
    if (this.stats.rejected <= LOUD_REJECTIONS) log.warn(msg);
    else log.debug(msg);
    if (this.stats.rejected === LOUD_REJECTIONS) log.warn(`further rejected records are logged at debug level only (counted in stats)`);
  }

  private refill(l: Lane, n: number): void {
    if (l.head < l.queue.length) return;
    l.queue.length = 0;
    l.head = 0;
    l.cursor.read(n, l.queue);
  }

  /**
   * The next record by ts among the lanes' queues, refilling a lane when its queue runs dry.
   * `dry` collects lanes that had nothing more for now, so one call does not re-read them.
   */
  private pick(lanes: Lane[], dry: Set<Lane>): JournalRecord | null {
    let best: Lane | null = null;
    let bestTs = Infinity;
    for (const l of lanes) {
      if (l.head >= l.queue.length) {
        if (dry.has(l)) continue;
        this.refill(l, 1024);
        if (l.queue.length === 0) { dry.add(l); continue; }
      }
      const ts = l.queue[l.head]!.event.ts;
      if (best === null || ts < bestTs) { best = l; bestTs = ts; }
    }
    if (best === null) return null;
    const r = best.queue[best.head++]!;
    best.delivered = r.seq;
    this.stats.read++;
    return r;
  }

  private lanesFor(streams?: readonly string[]): Lane[] {
    return (streams ?? this.streams()).map((s) => this.lane(s));
  }

  readBatch(max: number, streams?: readonly string[]): JournalRecord[] {
    const lanes = this.lanesFor(streams);
    const dry = new Set<Lane>();
    const out: JournalRecord[] = [];
    while (out.length < max) {
      const r = this.pick(lanes, dry);
      if (r === null) break;
      out.push(r);
    }
    this.lastDrained = [];
    for (const [name, l] of this.lanes) if (dry.has(l) && l.head >= l.queue.length) this.lastDrained.push(name);
    return out;
  }

  drained(): string[] {
    return [...this.lastDrained];
  }

  async *records(opts: ReadOptions = {}): AsyncIterableIterator<JournalRecord> {
    const pollMs = opts.pollMs ?? 25;
    for (;;) {
      if (opts.signal?.aborted) return;
      const lanes = this.lanesFor(opts.streams);
      const dry = new Set<Lane>();
      let any = false;
      let sinceBreak = 0;
      for (let r = this.pick(lanes, dry); r !== null; r = this.pick(lanes, dry)) {
        any = true;
        yield r;
        if (opts.signal?.aborted) return;
        // An async generator that always has data runs on microtasks alone and would starve
        // timers and I/O in this process: give the event loop a turn every so often.
        if (++sinceBreak >= YIELD_EVERY) {
          sinceBreak = 0;
          await immediate();
          if (opts.signal?.aborted) return;
        }
      }
      if (any) {
        await immediate();
        continue;
      }
      if (!opts.follow) return;
      if (!(await sleep(pollMs, opts.signal))) return;
    }
  }

  stream(name: string, opts: Omit<ReadOptions, 'streams'> = {}): AsyncIterableIterator<JournalRecord> {
    return this.records({ ...opts, streams: [name] });
  }

  checkpoint(): Checkpoint {
    const c: Checkpoint = { ...this.from };
    for (const [s, l] of this.lanes) c[s] = l.delivered;
    return Object.assign(c, this.passedOver());
  }

  passedOver(): Checkpoint {
    const c: Checkpoint = {};
    for (const [s, l] of this.lanes) {
      const k = l.cursor;
      // Only a tail right after the last delivered record (nothing rejected between) counts.
      if (l.head >= l.queue.length && k.passed > 0 && k.lastSeq - k.passed === l.delivered) c[s] = k.lastSeq;
    }
    return c;
  }

  close(): void {
    for (const l of this.lanes.values()) l.cursor.close();
    this.lanes.clear();
  }
}

/** Records delivered between two turns of the event loop. */
const YIELD_EVERY = 1024;

const immediate = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Wait `ms`; false when the signal aborted first. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const t = setTimeout(() => { signal?.removeEventListener('abort', onAbort); resolve(true); }, ms);
    const onAbort = (): void => { clearTimeout(t); resolve(false); };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Open a reader over every stream of the journal at `dir`. Nothing is read until asked; a
 * directory that does not exist yet reads as empty (follow mode waits for it).
 */
export function openJournalReader(dir: string, opts: JournalReaderOptions = {}): JournalReader {
  return new Reader(dir, opts);
}
