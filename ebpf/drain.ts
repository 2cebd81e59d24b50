/**
 * @module ebpf/drain
 * Drains the pinned ring buffer into a sink (the journal writer) without decoding: a worker
 * thread reads the ring (ebpf/drain-worker), this thread appends each batch of raw records with
 * `appendEncoded(CODEC.ebpfRaw, payloads)`. Growth of the kernel's drop counter becomes a
 * `lost` record in the same stream, so a gap is visible where it happened.
 */
import { Worker } from 'node:worker_threads';
import { getPriority, setPriority } from 'node:os';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CODEC, type JournalWriter } from '../collector/journal/api.js';
import { encodeLost } from './decode.js';
import { readCounters, DEFAULT_PIN_DIR, LoaderError } from './loader.js';
import { logger } from '../collector/log.js';
import { statFields } from '../collector/proc.js';

const log = logger('ebpf');

/**
 * Where drained records go: the journal writer's hot path. With `flush`, ring space is given
 * back to the kernel only once flush says the records are durable; without it, at once.
 */
export type DrainSink = Pick<JournalWriter, 'appendEncoded'> & Partial<Pick<JournalWriter, 'flush'>>
  & { readonly stalled?: Error | null };

/** While the journal is stalled (its disk is full), whether it writes again is looked at this often. */
const STALLED_RETRY_MS = 1000;

export interface DrainOptions {
  pinDir?: string;
  sink: DrainSink;
  /** Sleep between empty polls of the ring, ms (default 5). */
  pollMs?: number;
  /** Bytes copied out of the ring per batch (default 4 MiB). */
  maxBatchBytes?: number;
  /** Batches in flight between the worker and this thread (default 8). */
  credits?: number;
  /** How often the kernel's drop counter is checked, ms (default 250). */
  lossCheckMs?: number;
  /** Delay before a group flush that lets the ring space go, ms (default 50, the journal's interval). */
  durableDelayMs?: number;
  /**
   * Nice value of the drain threads (worker and this one) while the ring is more than a quarter
   * full, until it is below 5 % again (default -10; null: never change priority).
   */
  boostNice?: number | null;
  /**
   * Nice value of the drain threads while the ring is calm (default: left as it is). 19 leaves
   * the CPU to the workloads being watched: the ring absorbs their bursts and is drained on
   * idle CPU time, and a quarter-full ring still raises the drain to `boostNice`. Records then
   * reach the journal later on a busy host, but a record that waited {@link CALM_MAX_WAIT_MS}
   * in the ring raises the drain too.
   */
  calmNice?: number | null;
  /** Called after each batch was appended (tests, benches). */
  onBatch?: (payloads: Uint8Array[]) => void;
}

/** How long a record may wait in the ring of a yielding drain (calmNice) before the drain is raised. */
export const CALM_MAX_WAIT_MS = 200;

export interface DrainStats {
  records: number;
  bytes: number;
  batches: number;
  /** Times the drain threads were given priority because the ring was filling up. */
  boosts?: number;
  /** Records the kernel dropped (ring full) since this drainer started. */
  lost: number;
}

/** Is this process the leader of its session (so its autogroup holds only the collector)? */
function leadsOwnSession(): boolean {
  return Number(statFields(process.pid)?.[6 - 3]) === process.pid && existsSync('/proc/self/autogroup');
}

/** The nice of this process's autogroup ("/autogroup-12 nice 0"). */
function readAutogroupNice(): number {
  return Number(/nice\s+(-?\d+)/.exec(readFileSync('/proc/self/autogroup', 'utf8'))?.[1] ?? 0);
}

/**
 * Set this thread's nice and, when the process leads its own session, its autogroup's: with
 * autogroup scheduling (sched_autogroup_enabled) nice only ranks threads within one session's
 * group, and the groups share the CPU evenly.
 */
function settleNice(nice: number, groupNice = nice): void {
  try {
    setPriority(0, nice);
  } catch (e) {
    log.warn(`cannot change the journal thread's priority: ${(e as Error).message}`);
    return;
  }
  if (!leadsOwnSession()) return;
  try {
    writeFileSync('/proc/self/autogroup', String(groupNice));
  } catch (e) {
    log.debug(`autogroup nice not changed: ${(e as Error).message}`);
  }
}

export class Drainer {
  readonly stats: DrainStats = { records: 0, bytes: 0, batches: 0, boosts: 0, lost: 0 };
  private ownNice = 0;
  private ownGroupNice: number | undefined;
  private readonly ctl: Int32Array;
  private readonly durable: BigInt64Array;
  private readonly appended: BigInt64Array;
  /** Ring position past the last appended batch, and whether a flush toward it is running. */
  private appendedPos = 0;
  private flushing = false;
  private flushTimer: NodeJS.Timeout | null = null;
  private stopping = false;
  private readonly done: Promise<void>;
  private lossTimer: NodeJS.Timeout | null = null;
  private lastDropped = 0;
  private lastCheck = 0;
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker, shared: SharedArrayBuffer, private readonly opts: DrainOptions, ready: Promise<void>, done: Promise<void>) {
    this.ctl = new Int32Array(shared, 0, 4);
    this.durable = new BigInt64Array(shared, 16, 1);
    this.appended = new BigInt64Array(shared, 24, 1);
    this.done = done;
    void ready;
  }

  /** Start draining; resolves once the worker has mapped the ring. */
  static async start(opts: DrainOptions): Promise<Drainer> {
    const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
    // Before the worker exists: a new thread starts at its creator's nice.
    if (opts.calmNice !== undefined && opts.calmNice !== null) settleNice(opts.calmNice);
    const shared = new SharedArrayBuffer(32);
    const ctl = new Int32Array(shared, 0, 4);
    ctl[1] = opts.credits ?? 8;
    const worker = new Worker(new URL('./drain-worker.js', import.meta.url), {
      workerData: {
        ringPath: join(pinDir, 'events'), shared, pollMs: opts.pollMs ?? 5, maxBatchBytes: opts.maxBatchBytes ?? 4 << 20,
        boostNice: opts.boostNice === undefined ? -10 : opts.boostNice,
        maxWaitMs: opts.calmNice === undefined || opts.calmNice === null ? null : CALM_MAX_WAIT_MS,
      },
    });
    let self: Drainer | null = null;
    let readyResolve!: () => void, readyReject!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
    const done = new Promise<void>((resolve) => {
      worker.on('message', (m: { type: string; bytes?: Uint8Array; starts?: Uint32Array; ends?: Uint32Array; count?: number; payloadBytes?: number; end?: number; message?: string; on?: boolean; fill?: number }) => {
        if (m.type === 'ready') readyResolve();
        else if (m.type === 'boost') self?.onBoost(m.on!, m.fill!, m.message, opts.boostNice === undefined ? -10 : opts.boostNice);
        else if (m.type === 'batch') self?.onBatch(m.bytes!, m.starts!, m.ends!, m.count!, m.payloadBytes!, m.end!);
        else if (m.type === 'drained') self?.makeDurable(m.end!, true);
        else if (m.type === 'error') {
          const e = new LoaderError('drain', m.message ?? 'worker failed');
          if (self) self.failure = e; else readyReject(e);
        } else if (m.type === 'done') resolve();
      });
      worker.on('error', (e) => { readyReject(e); if (self) self.failure = e; resolve(); });
      worker.on('exit', () => resolve());
    });
    const d = new Drainer(worker, shared, opts, ready, done);
    self = d;
    try {
      await ready;
    } catch (e) {
      await worker.terminate();
      throw e;
    }
    d.lastDropped = readCounters(pinDir).dropped;
    d.lastCheck = Number(process.hrtime.bigint());
    d.lossTimer = setInterval(() => d.checkLoss(), opts.lossCheckMs ?? 250);
    d.lossTimer.unref();
    return d;
  }

  /**
   * The worker changed its priority with the ring's fill: this thread (the journal appends)
   * follows, and so does the group of a collector that leads its own session (the `prov
   * capture start` daemon).
   */
  private onBoost(on: boolean, fill: number, failed: string | undefined, nice: number | null): void {
    if (failed) { log.warn(`cannot raise the drain threads' priority (ring ${(100 * fill).toFixed(0)} % full): ${failed}`); return; }
    if (nice === null) return;
    if (on) {
      this.ownNice = getPriority(0);
      if (leadsOwnSession()) this.ownGroupNice ??= readAutogroupNice();
      this.stats.boosts = (this.stats.boosts ?? 0) + 1;
    }
    settleNice(on ? nice : this.ownNice, on ? nice : this.ownGroupNice ?? 0);
    log.debug(`ring ${(100 * fill).toFixed(0)} % full: drain threads ${on ? `at nice ${nice}` : 'back to normal priority'}`);
  }

  private onBatch(bytes: Uint8Array, starts: Uint32Array, ends: Uint32Array, count: number, payloadBytes: number, end: number): void {
    const payloads = new Array<Uint8Array>(count);
    for (let i = 0; i < count; i++) payloads[i] = bytes.subarray(starts[i]!, ends[i]!);
    try {
      this.opts.sink.appendEncoded(CODEC.ebpfRaw, payloads);
    } catch (e) {
      this.failure = e as Error;
      log.error(`journal append failed, stopping the drain (the ring keeps the records): ${(e as Error).message}`);
      Atomics.store(this.ctl, 3, 1);
      Atomics.store(this.ctl, 0, 1);
    }
    this.stats.records += count;
    this.stats.bytes += payloadBytes;
    this.stats.batches++;
    if (!this.failure) {
      Atomics.store(this.appended, 0, BigInt(end));
      this.makeDurable(end);
    }
    Atomics.add(this.ctl, 1, 1);
    Atomics.add(this.ctl, 2, 1);
    Atomics.notify(this.ctl, 2);
    this.opts.onBatch?.(payloads);
  }

  /**
   * Once what was appended up to ring position `end` is durable, let the worker commit it.
   * Flushes are grouped: at most one in flight, started `durableDelayMs` after the first batch
   * waiting for one (`now` for the final one at stop).
   */
  private makeDurable(end: number, now = false): void {
    if (end > this.appendedPos) this.appendedPos = end;
    const flush = this.opts.sink.flush?.bind(this.opts.sink);
    if (!flush) { this.publish(this.appendedPos); return; }
    if (now && this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    if (this.flushing || this.flushTimer) return; // the running flush re-checks appendedPos when it ends
    const start = () => {
      this.flushTimer = null;
      this.flushing = true;
      const target = this.appendedPos;
      flush().then(() => {
        this.flushing = false;
        this.publish(target);
        if (this.appendedPos > target) this.makeDurable(this.appendedPos, this.stopping);
      }, (e: Error) => {
        this.flushing = false;
        if (this.opts.sink.stalled && !this.stopping) {
          // The writer keeps the records and retries by itself (collector/journal/writer); once it
          // writes again, a flush here makes the rest durable. Ring space stays taken meanwhile,
          // which bounds what waits in memory by the ring's size; past that the kernel counts
          // drops, journaled as a lost record.
          const whenWritable = (): void => {
            this.flushTimer = null;
            if (this.opts.sink.stalled && !this.stopping) this.flushTimer = setTimeout(whenWritable, STALLED_RETRY_MS);
            else start();
          };
          this.flushTimer = setTimeout(whenWritable, STALLED_RETRY_MS);
          return;
        }
        this.failure = e;
        log.error(`journal flush failed; the ring keeps the records for the next consumer: ${e.message}`);
        Atomics.store(this.ctl, 3, 1);
        Atomics.store(this.ctl, 0, 1);
        Atomics.add(this.ctl, 2, 1);
        Atomics.notify(this.ctl, 2);
      });
    };
    if (now) start();
    else this.flushTimer = setTimeout(start, this.opts.durableDelayMs ?? 50);
  }

  private publish(pos: number): void {
    if (BigInt(pos) > Atomics.load(this.durable, 0)) Atomics.store(this.durable, 0, BigInt(pos));
    Atomics.add(this.ctl, 2, 1);
    Atomics.notify(this.ctl, 2);
  }

  /** Turn growth of the kernel's drop counter into a `lost` record. */
  checkLoss(): void {
    let dropped: number;
    try { dropped = readCounters(this.opts.pinDir ?? DEFAULT_PIN_DIR).dropped; } catch { return; }
    const now = Number(process.hrtime.bigint());
    if (dropped > this.lastDropped) {
      const n = dropped - this.lastDropped;
      this.stats.lost += n;
      this.opts.sink.appendEncoded(CODEC.ebpfRaw, [encodeLost(n, this.lastCheck, now)]);
      log.warn(`${n} events lost (ring buffer full)`);
    }
    this.lastDropped = dropped;
    this.lastCheck = now;
  }

  /** The error that stopped draining, if any. */
  get error(): Error | null { return this.failure; }

  /** Drain what is in the ring now, then stop the worker. */
  async stop(): Promise<DrainStats> {
    if (this.lossTimer) clearInterval(this.lossTimer);
    this.lossTimer = null;
    this.stopping = true;
    Atomics.store(this.ctl, 0, 1);
    Atomics.add(this.ctl, 2, 1);
    Atomics.notify(this.ctl, 2);
    await this.done;
    if (this.flushTimer) { clearTimeout(this.flushTimer); this.flushTimer = null; }
    await this.worker.terminate();
    this.checkLoss();
    return this.stats;
  }
}
