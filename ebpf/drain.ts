/**
 * @module ebpf/drain
 * Drains the pinned ring buffer into a sink (the journal writer) without decoding: a worker
 * thread reads the ring (ebpf/drain-worker), this thread appends each batch of raw records with
 * `appendEncoded(CODEC.ebpfRaw, payloads)`. Growth of the kernel's drop counter becomes a
 * `lost` record in the same stream, so a gap is visible where it happened.
 */
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { CODEC, type JournalWriter } from '../collector/journal/api.js';
import { encodeLost } from './decode.js';
import { readCounters, DEFAULT_PIN_DIR, LoaderError } from './loader.js';
import { logger } from '../collector/log.js';

const log = logger('ebpf');

/** Where drained records go: the journal writer's hot path. */
export type DrainSink = Pick<JournalWriter, 'appendEncoded'>;

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
  /** Called after each batch was appended (tests, benches). */
  onBatch?: (payloads: Uint8Array[]) => void;
}

export interface DrainStats {
  records: number;
  bytes: number;
  batches: number;
  /** Records the kernel dropped (ring full) since this drainer started. */
  lost: number;
}

export class Drainer {
  readonly stats: DrainStats = { records: 0, bytes: 0, batches: 0, lost: 0 };
  private readonly ctl: Int32Array;
  private readonly done: Promise<void>;
  private lossTimer: NodeJS.Timeout | null = null;
  private lastDropped = 0;
  private lastCheck = 0;
  private failure: Error | null = null;

  private constructor(private readonly worker: Worker, shared: SharedArrayBuffer, private readonly opts: DrainOptions, ready: Promise<void>, done: Promise<void>) {
    this.ctl = new Int32Array(shared);
    this.done = done;
    void ready;
  }

  /** Start draining; resolves once the worker has mapped the ring. */
  static async start(opts: DrainOptions): Promise<Drainer> {
    const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
    const shared = new SharedArrayBuffer(16);
    const ctl = new Int32Array(shared);
    ctl[1] = opts.credits ?? 8;
    const worker = new Worker(new URL('./drain-worker.js', import.meta.url), {
      workerData: { ringPath: join(pinDir, 'events'), shared, pollMs: opts.pollMs ?? 5, maxBatchBytes: opts.maxBatchBytes ?? 4 << 20 },
    });
    let self: Drainer | null = null;
    let readyResolve!: () => void, readyReject!: (e: Error) => void;
    const ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
    const done = new Promise<void>((resolve) => {
      worker.on('message', (m: { type: string; bytes?: Uint8Array; offsets?: Uint32Array; count?: number; message?: string }) => {
        if (m.type === 'ready') readyResolve();
        else if (m.type === 'batch') self?.onBatch(m.bytes!, m.offsets!, m.count!);
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

  private onBatch(bytes: Uint8Array, offsets: Uint32Array, count: number): void {
    const payloads = new Array<Uint8Array>(count);
    for (let i = 0; i < count; i++) payloads[i] = bytes.subarray(offsets[i]!, offsets[i + 1]!);
    try {
      this.opts.sink.appendEncoded(CODEC.ebpfRaw, payloads);
    } catch (e) {
      this.failure = e as Error;
      log.error(`journal append failed, stopping the drain: ${(e as Error).message}`);
      Atomics.store(this.ctl, 0, 1);
    }
    this.stats.records += count;
    this.stats.bytes += bytes.byteLength;
    this.stats.batches++;
    Atomics.add(this.ctl, 1, 1);
    Atomics.add(this.ctl, 2, 1);
    Atomics.notify(this.ctl, 2);
    this.opts.onBatch?.(payloads);
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
    Atomics.store(this.ctl, 0, 1);
    Atomics.add(this.ctl, 2, 1);
    Atomics.notify(this.ctl, 2);
    await this.done;
    await this.worker.terminate();
    this.checkLoss();
    return this.stats;
  }
}
