/**
 * @module kernel/serving
 * The main-thread side of one provfs connection: it owns the /dev/fuse fd and the backing root
 * fd, runs the request loop in a worker thread, drains the loop's provenance records into the
 * journal, and can quiesce the loop (for a live upgrade) and start it again from a state (when
 * the successor rejected it). `done` resolves once the connection is gone from this process:
 * unmounted, or handed to a successor.
 *
 * With crash survival the ring is a file mapping (`ringFile`) and a record's space is freed only
 * once the journal reports it durable (`durableSeq`, after its group commit): what a SIGKILL
 * interrupts is still in the file for the daemon that recovers the mount.
 */
import { Worker } from 'node:worker_threads';
import { statfs, rmSync } from 'node:fs';
import { logger } from '../collector/log.js';
import type { ProvEvent } from '../collector/events.js';
import type { JournalWriter } from '../collector/journal/api.js';
import { provfsRecordEvent } from '../collector/provfs-record.js';
import * as libc from './libc.js';
import { EventRing } from './eventring.js';
import { LinLog } from './linlog.js';
import { appendRingRecords, lostRecord, openRingFile } from './ringfiles.js';
import type { LoopConfig, LoopMessage, TransferMessage, SnapshotRequest } from './loop.js';

/** A quiesced loop: where its state is, and the fds that state names. */
export type Quiesced = Extract<LoopMessage, { type: 'quiesced' }>;

const log = logger('provfs');
/**
 * How often the ring is drained into the journal while records flow. Each drain wakes this
 * thread, and on a two-CPU machine every such wake can move the application off the CPU its
 * request loop follows it on (kernel/colocate): measured on a create+unlink loop (prov vs plain,
 * both daemons mounted at once, runs interleaved), a drain every 5 ms gave 0.69× plain, every
 * 25 ms 0.75×, 50 ms 0.78×, 100 ms 0.76×; with the application pinned to one CPU 0.79× at 5 ms
 * and 0.81× at 200 ms. The records wait in the ring meanwhile, which outlives the daemon (a
 * file mapping), so a killed daemon loses none of them either way.
 */
export const DRAIN_MS = 50;
/** Empty drains in a row after which the timer stops until the loop's next record wakes it. */
export const IDLE_TICKS = 2;

/**
 * The nudger thread: wait for the quiesce word, then one STATFS on the mount (errors ignored).
 * It raises its own priority (Linux nice is per thread; a no-op without the right) so that on a
 * busy machine the nudge does not wait for a CPU inside the stall.
 */
const NUDGER = `const { workerData } = require('node:worker_threads');
const { statfsSync } = require('node:fs');
(async () => {
  try { require('node:os').setPriority(-10); } catch {}
  // Real-time where allowed, as the loops are then: woken on a busy machine, a thread at nice -10
  // still waited 0.2-0.7 ms for a CPU before its STATFS went out (the loop sees the quiesce after it).
  let rt = null;
  if (workerData.rtprio) { try { rt = await import(workerData.rtprio); rt.realtime(true); } catch {} }
  const c = new Int32Array(workerData.control);
  while (Atomics.load(c, 0) === 0) Atomics.wait(c, 0, 0, 60000);
  try { statfsSync(workerData.path); } catch {}
  // Done: this thread's teardown (an isolate's) runs below the applications, not at nice -10
  // on the CPU of the one whose request comes next (traced: 1-2 ms right after the handover).
  try { rt?.realtime(false); } catch {}
  try { require('node:os').setPriority(19); } catch {}
})();`;
/** kernel/rtprio for the nudger (none with PROV_HANDOVER_RT=0). */
const RTPRIO = new URL('./rtprio.js', import.meta.url).href;

/** A catch-up delta (state version 3): how many node records and handles it carried. */
export type CaughtUp = Extract<LoopMessage, { type: 'caught-up' }>;

/** A successor loop's first read: when (CLOCK_MONOTONIC ns), and when its last delta came and was applied. */
export interface Resumed { at: number; deltaIn?: number; applied?: number }

/** What the loop served, when it ended. */
export interface StopInfo {
  /** 'unmounted', 'upgraded', or what went wrong. */
  reason: string;
  /** Requests per opcode number (of the last loop run in this process). */
  counts: Record<string, number>;
}

/** A journal as provfs uses it (a full writer also takes encoded records). */
export type JournalSink = Pick<JournalWriter, 'append'> & Partial<Pick<JournalWriter, 'appendEncoded' | 'close' | 'flush'>>
  & { readonly stalled?: Error | null; readonly pendingBytes?: number };

/**
 * While the journal cannot be written (its file system is full), records wait in its memory:
 * those in the ring (bounded by the ring, and still in the ring file should this daemon die)
 * and those the loop sent by message once the ring was full, up to this many pending bytes.
 * Records past that are counted and journaled as one `lost` record once writing works again:
 * the file system goes on serving either way.
 */
export const STALL_HOLD_BYTES = 64 << 20;
/** Records held in memory at most while there is no journal to take them (about 60 MiB of them). */
const HELD_MAX = 500_000;

export interface ServingOptions {
  /** Loop settings; `ring` and `control` are made here. */
  loop: Omit<LoopConfig, 'ring' | 'control'>;
  /** Where records go (null: hold them until {@link Serving.setJournal}). */
  journal: JournalSink | null;
  /** Close `journal` when the connection ends here. */
  ownJournal: boolean;
  /**
   * Keep the record ring in this file (made here, 0600; removed once everything in it is
   * durable and the connection ends here), so a successor recovers what a killed daemon had not
   * yet made durable (see kernel/eventring, kernel/ringfiles). Without it the ring is in memory.
   */
  ringFile?: string;
  onEvent?: (ev: ProvEvent) => void;
  /** See {@link STALL_HOLD_BYTES} (the default). */
  stallHoldBytes?: number;
}

export class Serving {
  private readonly ring: EventRing;
  /** Drained into the journal, not yet durable: ring position after each batch and its last journal seq. */
  private batches: Array<{ end: number; seq: number }> = [];
  private readonly control = new SharedArrayBuffer(16);
  private readonly ctl = new Int32Array(this.control);
  private worker: Worker | null = null;
  private journal: JournalSink | null;
  private held: Array<Uint8Array | ProvEvent> = [];
  /** Records dropped because nothing could take them (see {@link STALL_HOLD_BYTES}); journaled as a `lost` record later. */
  /** An owned journal that failed for good: closed (its lock released) when the connection ends. */
  private failedJournal: JournalSink | null = null;
  private dropped: { count: number; from: number; to: number; why: string } | null = null;
  /** prov mode: the `.lin` log, filled here as records are taken from the ring (kernel/linlog). */
  private lin: LinLog | null = null;
  private timer: NodeJS.Timeout | null = null;
  private stopInfo: StopInfo = { reason: 'worker exited', counts: {} };
  private finish!: (s: StopInfo) => void;
  /** Set while a quiesce is under way: where the loop wrote its state arrives here. */
  private onQuiesced: ((q: Quiesced) => void) | null = null;
  private handedOver = false;
  private onSnapshot: ((statePath: string) => void) | null = null;
  /** A catch-up delta written (old loop) or applied (successor's loop); see {@link catchUp}. */
  onCaughtUp: ((m: CaughtUp) => void) | null = null;
  /** Waits on control word [0] and nudges the loop with a STATFS (see {@link snapshot}). */
  private nudger: Worker | null = null;
  /** Fails a pending quiesce or snapshot when the loop ends first (e.g. the file system was unmounted). */
  private onLoopGone: ((e: Error) => void) | null = null;
  /** Resolves when the last loop thread started here has exited. */
  private exited: Promise<void> = Promise.resolve();
  passthrough = false;
  /** The thread id of the loop thread started last (see kernel/keeper). */
  loopTid: number | undefined;
  /** A successor's loop: CLOCK_MONOTONIC ns of its first reply (null until then). */
  firstAnswerAt: number | null = null;
  private onAnswered: (() => void) | null = null;

  /** {@link firstAnswerAt}, waiting up to `ms` for it (its message may still be on the way). */
  firstAnswer(ms: number): Promise<number | null> {
    if (this.firstAnswerAt !== null) return Promise.resolve(this.firstAnswerAt);
    return new Promise((res) => {
      const t = setTimeout(() => { this.onAnswered = null; res(this.firstAnswerAt); }, ms);
      this.onAnswered = () => { clearTimeout(t); res(this.firstAnswerAt); };
    });
  }
  readonly done: Promise<StopInfo>;

  constructor(private readonly o: ServingOptions) {
    o.loop = { ...o.loop };
    libc.raiseNofileLimit();
    this.journal = o.journal;
    let ring: EventRing | null = null;
    if (o.ringFile) {
      try {
        ring = openRingFile(o.ringFile);
      } catch (e) {
        log.warn(`record ring kept in memory (a crash of this daemon loses records not yet journaled): ${o.ringFile}: ${(e as Error).message}`);
        o.ringFile = undefined;
      }
    }
    this.ring = ring ?? EventRing.create();
    this.done = new Promise((res) => { this.finish = res; });
    if (o.loop.mode === 'prov') {
      this.lin = new LinLog();
      this.poll();
    }
  }

  /** Start the loop: fresh (INIT comes from the kernel), from a state file, or warm awaiting a transfer. */
  start(how: { stateFile?: string; awaitTransfer?: boolean } = {}): Promise<void> {
    for (let i = 0; i < 4; i++) Atomics.store(this.ctl, i, 0);
    const cfg: LoopConfig = { ...this.o.loop, ring: this.ring.ref, lin: this.lin?.shared, control: this.control, stateFile: how.stateFile, awaitTransfer: how.awaitTransfer };
    const worker = new Worker(new URL('./loop.js', import.meta.url), { workerData: { provfsLoop: cfg } });
    this.worker = worker;
    this.exited = new Promise((r) => worker.once('exit', () => r()));
    return new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: LoopMessage) => {
        if (m.type === 'ready') { this.passthrough = m.passthrough; started = true; resolve(); }
        else if (m.type === 'warm') { started = true; resolve(); }
        else if (m.type === 'events') {
          this.drain();
          const lin = this.lin;
          if (lin) lin.locked(() => { for (const e of m.events) lin.appendString(JSON.stringify(e)); });
          for (const e of m.events) this.deliver(e);
        }
        else if (m.type === 'wake') { this.poll(); this.drain(); }
        // After the takeover's own work on this thread (the journal handover): it sleeps up to 14 ms.
        else if (m.type === 'close') setTimeout(() => libc.close(m.fd), 250).unref();
        else if (m.type === 'stopped') this.stopInfo = { reason: m.reason, counts: m.counts };
        else if (m.type === 'quiesced') { this.onQuiesced?.(m); this.onQuiesced = null; }
        else if (m.type === 'answered') { this.firstAnswerAt = m.at; this.onAnswered?.(); this.onAnswered = null; }
        else if (m.type === 'snapshot') { this.onSnapshot?.(m.statePath); this.onSnapshot = null; }
        else if (m.type === 'caught-up') this.onCaughtUp?.(m);
        else if (m.type === 'tid') this.loopTid = m.tid;
      });
      worker.on('error', (e) => {
        log.error(`request loop failed: ${e.stack ?? e.message}`);
        this.stopInfo = { reason: e.message, counts: {} };
      });
      worker.on('exit', () => {
        if (this.worker !== worker) return;
        this.onLoopGone?.(new Error(`the request loop ended (${this.stopInfo.reason})`));
        this.onLoopGone = null;
        this.worker = null;
        if (!started) reject(new Error(`provfs request loop ended before it started: ${this.stopInfo.reason}`));
        if (this.stopInfo.reason === 'quiesced') return; // paused for an upgrade: not over yet
        void this.end(this.stopInfo);
      });
    });
  }

  get fds(): { dev: number; root: number } {
    return { dev: this.o.loop.devFd, root: this.o.loop.rootFd };
  }

  /** The connection and backing root a successor fetched from its predecessor. */
  adoptFds(devFd: number, rootFd: number): void {
    this.o.loop.devFd = devFd;
    this.o.loop.rootFd = rootFd;
  }

  /**
   * Hand a warm loop (started with awaitTransfer) its state and let it serve; resolves with the
   * CLOCK_MONOTONIC ns at which it began to read.
   */
  release(t: TransferMessage): Promise<number> {
    const w = this.worker;
    if (!w) return Promise.reject(new Error('no warm loop to release'));
    return new Promise<number>((resolve, reject) => {
      const onMsg = (m: LoopMessage): void => {
        if (m.type === 'ready') {
          w.off('message', onMsg); w.off('exit', onExit);
          this.passthrough = m.passthrough;
          this.adoptFds(m.devFd, m.rootFd);
          resolve(m.at);
        } else if (m.type === 'rejected') {
          w.off('message', onMsg); w.off('exit', onExit);
          reject(new Error(m.reason));
        }
      };
      const onExit = (): void => reject(new Error(`the successor's loop ended before serving: ${this.stopInfo.reason}`));
      w.on('message', onMsg);
      w.once('exit', onExit);
      w.postMessage(t);
      Atomics.store(this.ctl, 1, 1);
      Atomics.notify(this.ctl, 1);
    });
  }

  /**
   * Stop taking requests. `how` 1 (state version 1): the loop writes its whole state to a file
   * (see {@link Quiesced}) and ends. `how` 2 (state version 2, after {@link snapshot}): it writes
   * the changes since the snapshot to the successor's FIFO and waits for {@link verdict}.
   * Requests not yet read stay queued in the kernel for whoever reads next. `nudgePath` is a
   * path on the mount: a STATFS there wakes a loop blocked in read(2) (it answers it, then sees
   * the flag).
   */
  quiesce(nudgePath: string, how: 1 | 2 = 1): Promise<Quiesced> {
    if (!this.worker) return Promise.reject(new Error('the request loop is not running'));
    const got = new Promise<Quiesced>((res, rej) => { this.onQuiesced = res; this.onLoopGone = rej; });
    Atomics.store(this.ctl, 0, how);
    if (this.nudger) {
      Atomics.notify(this.ctl, 0); // the nudger thread's STATFS: no wait for a libuv pool thread
      this.nudger = null;
    }
    // And one through the pool, in case the nudger thread is still starting (a new isolate takes
    // tens of ms on a loaded machine); a STATFS is answered by whichever loop reads it.
    statfs(nudgePath, () => undefined);
    return got;
  }

  /**
   * State version 2, first part: the loop writes a snapshot of its table to `req.statePath` and
   * tracks changes from then on, serving all along. Resolves once the snapshot is written.
   */
  snapshot(nudgePath: string, req: SnapshotRequest): Promise<void> {
    const w = this.worker;
    if (!w) return Promise.reject(new Error('the request loop is not running'));
    const got = new Promise<void>((res, rej) => { this.onSnapshot = () => res(); this.onLoopGone = rej; });
    // A thread that sends the quiesce nudge the moment it is asked: the libuv pool may be busy
    // (journal fsyncs) exactly then.
    // One left by an abandoned upgrade still waits: it serves (it is not terminated, which could
    // catch it loading the native FFI module, and that aborts the process; see kernel/loop endSlow).
    if (!this.nudger) {
      this.nudger = new Worker(NUDGER, { eval: true, workerData: { control: this.control, path: nudgePath, rtprio: process.env.PROV_HANDOVER_RT === '0' ? undefined : RTPRIO } });
      this.nudger.unref();
    }
    w.postMessage(req);
    Atomics.store(this.ctl, 2, 1);
    statfs(nudgePath, () => { /* wakes a loop blocked in read(2) */ });
    return got;
  }

  /**
   * State version 3, between the snapshot and the quiesce: the loop sends the changes so far to
   * the successor's FIFO while it serves on, and tracks anew; resolves with their size once
   * written. The next delta (another catch-up, or the last one inside the stall) is smaller.
   */
  catchUp(nudgePath: string): Promise<CaughtUp> {
    if (!this.worker) return Promise.reject(new Error('the request loop is not running'));
    const got = new Promise<CaughtUp>((res, rej) => {
      this.onCaughtUp = (m) => { this.onCaughtUp = null; res(m); };
      this.onLoopGone = rej;
    });
    Atomics.store(this.ctl, 2, 4);
    statfs(nudgePath, () => { /* wakes a loop blocked in read(2) */ });
    return got;
  }

  /** The upgrade was abandoned before the handover: stop tracking changes. */
  stopTracking(): void {
    // The nudger stays, waiting, for the next attempt (see snapshot).
    Atomics.store(this.ctl, 2, 3);
  }

  /** After a version-2 quiesce: `handed` ends the loop; otherwise it serves on. */
  verdict(handed: boolean): void {
    Atomics.store(this.ctl, 3, handed ? 1 : 2);
    Atomics.notify(this.ctl, 3);
  }

  /**
   * State version 2, successor's side: hand the warm loop the snapshot and the FIFO; resolves
   * once it copied the table and its fds and waits for the delta. Then {@link awaitServing}.
   */
  precopy(t: TransferMessage): Promise<void> {
    const w = this.worker;
    if (!w) return Promise.reject(new Error('no warm loop to release'));
    const p = this.until(w, 'prepared').then(() => undefined);
    w.postMessage(t);
    Atomics.store(this.ctl, 1, 1);
    Atomics.notify(this.ctl, 1);
    return p;
  }

  /** Resolves when a precopied successor loop began to serve: when, and its last delta's timings. */
  awaitServing(): Promise<Resumed> {
    const w = this.worker;
    if (!w) return Promise.reject(new Error('no warm loop'));
    return this.until(w, 'ready').then((m) => {
      const r = m as Extract<LoopMessage, { type: 'ready' }>;
      this.passthrough = r.passthrough;
      this.adoptFds(r.devFd, r.rootFd);
      return { at: r.at, deltaIn: r.deltaIn, applied: r.applied };
    });
  }

  private until(w: Worker, type: 'prepared' | 'ready'): Promise<LoopMessage> {
    return new Promise<LoopMessage>((resolve, reject) => {
      const done = (): void => { w.off('message', onMsg); w.off('exit', onExit); };
      const onMsg = (m: LoopMessage): void => {
        if (m.type === type) { done(); resolve(m); }
        else if (m.type === 'rejected') { done(); reject(new Error(m.reason)); }
      };
      const onExit = (): void => { done(); reject(new Error(`the successor's loop ended before serving: ${this.stopInfo.reason}`)); };
      w.on('message', onMsg);
      w.once('exit', onExit);
    });
  }

  /** Whether the ring is polled now (false: asleep until the loop's next record). */
  get draining(): boolean {
    return this.timer !== null;
  }

  /**
   * Drain the ring every {@link DRAIN_MS} while records flow (the record that wakes this thread
   * is drained at once, see the 'wake' message). After {@link IDLE_TICKS} ticks
   * that found nothing to take or to commit the timer stops and the loop wakes this thread with
   * a message at its next record (kernel/eventring): an idle daemon wakes nobody (a 200 Hz
   * timer, on a two-CPU machine, split the provfs loop from its caller often enough to cost a
   * third of uncached stat throughput; see kernel/colocate).
   */
  private poll(): void {
    this.ring.awake();
    if (this.timer || this.ended) return;
    let idle = 0;
    this.timer = setInterval(() => {
      const took = this.drain();
      if (took > 0 || this.batches.length > 0) { idle = 0; return; }
      if (++idle < IDLE_TICKS || !this.ring.sleepIfEmpty()) return;
      clearInterval(this.timer!);
      this.timer = null;
    }, DRAIN_MS);
  }

  /**
   * Records the loop produced so far go to the journal now (each stamped first with the journal
   * seq it gets); ring space is freed once the journal says they are durable. With no journal
   * yet they wait in the ring.
   */
  drain(): number {
    const j = this.journal;
    if (!j) {
      // No journal yet (a successor waiting for its predecessor's): records wait in the ring. One
      // that never gets a journal moves them to memory before the ring fills and holds requests back.
      if (this.ring.used > this.ring.capacity / 2) {
        const t = this.take(false);
        this.ring.commit(t.end);
        for (const r of t.recs) {
          if (this.held.length < HELD_MAX) this.held.push(r);
          else this.countDropped(`no journal took records and ${HELD_MAX} were held in memory already`);
        }
      }
      return 0;
    }
    const framed = j.appendEncoded !== undefined && !this.o.onEvent;
    const { recs, offs, end } = this.take(framed); // the journal copies views as it frames them
    if (recs.length > 0) {
      const base = (j as { lastSeq?: number }).lastSeq;
      if (typeof base === 'number') for (let i = 0; i < offs.length; i++) this.ring.stamp(offs[i]!, base + 1 + i);
      if (framed) {
        try {
          appendRingRecords(j.appendEncoded!.bind(j), recs);
        } catch (e) {
          this.journalFailed(e as Error);
          return recs.length;
        }
      } else {
        for (const r of recs) {
          this.deliver(provfsRecordEvent(r), true);
          if (this.journal !== j) return recs.length; // it failed for good (journalFailed)
        }
      }
      this.batches.push({ end, seq: typeof base === 'number' ? base + recs.length : 0 });
    }
    const stalled = !!j.stalled;
    if (this.ring.journalStalled !== stalled) this.ring.journalStalled = stalled;
    if (this.dropped && !stalled) this.reportDropped(j);
    this.commitDurable();
    return recs.length;
  }

  /**
   * The journal refused an append (it failed for good: kernel/journal's writer stalls and
   * retries on a full disk, but gives up when it cannot undo a failed write). The file system
   * serves on; its records are held in memory, as with no journal, until a successor's.
   */
  private journalFailed(e: Error): void {
    log.error(`the journal refused records, they are held in memory from now on: ${e.message}`);
    if (this.o.ownJournal) this.failedJournal = this.journal;
    this.journal = null;
    this.ring.journalStalled = false;
    this.batches = [];
    // Every record not yet durable, taken (the failed writer's memory has them) or not, in order.
    for (const r of this.takeUncommitted()) {
      if (this.held.length < HELD_MAX) this.held.push(r);
      else this.countDropped(`the journal failed and ${HELD_MAX} records were held in memory already`);
    }
  }

  private countDropped(why: string): void {
    const now = Number(process.hrtime.bigint());
    if (!this.dropped) {
      this.dropped = { count: 0, from: now, to: now, why };
      log.error(`provenance records are being dropped (${why}); they are counted and a lost record will say how many`);
    }
    this.dropped.count++;
    this.dropped.to = now;
  }

  private reportDropped(j: JournalSink): void {
    const d = this.dropped!;
    const lost = lostRecord(d.why, d.from);
    lost.count = d.count;
    lost.to = d.to;
    try {
      j.append(lost);
    } catch (e) {
      this.journalFailed(e as Error); // the count stays, for a journal that takes it
      return;
    }
    this.dropped = null;
    log.warn(`journaled the loss of ${d.count} provenance records (${d.why})`);
  }

  /**
   * Take the ring's records (EventRing.take), and in prov mode add them to the `.lin` log in the
   * same hold of it: the loop, snapshotting the log for an open, then finds every record either
   * in the log or still untaken in the ring (kernel/linlog).
   */
  private take(views: boolean): ReturnType<EventRing['take']> {
    const lin = this.lin;
    if (!lin) return this.ring.take(views);
    return lin.locked(() => {
      const t = this.ring.take(views);
      this.ring.forEachRun(t, (bytes, from, to) => lin.appendRun(bytes, from, to));
      return t;
    });
  }

  /**
   * Every record of the ring not yet committed, taken or not, oldest first (copies), and their
   * space freed: for records that leave the ring for memory.
   */
  private takeUncommitted(): Uint8Array[] {
    const t = this.take(false);
    const recs = this.ring.uncommitted(t.end);
    this.ring.commit(t.end);
    return recs;
  }

  /** Free the ring space of batches the journal has made durable (all, for a sink that cannot say). */
  private commitDurable(): void {
    const durable = (this.journal as { durableSeq?: number } | null)?.durableSeq;
    let last = -1;
    while (this.batches.length > 0 && (typeof durable !== 'number' || this.batches[0]!.seq <= durable)) last = this.batches.shift()!.end;
    if (last >= 0) this.ring.commit(last);
  }

  /** Every batch drained so far is durable (the journal was flushed or closed). */
  private commitAll(): void {
    const last = this.batches.at(-1);
    this.batches = [];
    if (last) this.ring.commit(last.end);
  }

  /** `inRing`: `e` is a record still in the ring (the ring's copy is kept should the journal fail). */
  private deliver(e: ProvEvent, inRing = false): void {
    const j = this.journal;
    if (!j) { this.held.push(e); return; }
    if (j.stalled && (j.pendingBytes ?? 0) > (this.o.stallHoldBytes ?? STALL_HOLD_BYTES)) {
      this.countDropped(`the journal could not be written (${j.stalled.message}) and ${j.pendingBytes} bytes of records already waited for it`);
      return;
    }
    try {
      j.append(e);
    } catch (err) {
      this.journalFailed(err as Error);
      if (!inRing) this.held.push(e);
      return;
    }
    this.o.onEvent?.(e);
  }

  /**
   * At the end, with the loop gone (this thread is the ring's only producer now): records held in
   * memory go into the ring file, after those already there, for whoever recovers this mount.
   */
  private keepHeldInRing(): void {
    // Those still in the ring are newer than the held ones: they go back in after them.
    const all = [...this.held, ...this.takeUncommitted()];
    let lost = 0;
    for (const h of all) {
      if (!this.ring.push(h instanceof Uint8Array ? h : Buffer.from(JSON.stringify(h)))) lost++;
    }
    if (lost > 0) log.error(`${lost} of ${all.length} provenance records not in the journal did not fit in the ring file and are lost`);
    else log.warn(`${all.length} provenance records not in the journal (${this.held.length} of them held in memory) are in the ring file`);
    this.held = [];
  }

  /** Start writing to `journal` (records held until now go first, in order). */
  setJournal(journal: JournalSink, own: boolean): void {
    this.journal = journal;
    this.o.ownJournal = own;
    const held = this.held;
    this.held = [];
    for (const h of held) {
      if (h instanceof Uint8Array) {
        if (journal.appendEncoded && !this.o.onEvent) appendRingRecords(journal.appendEncoded.bind(journal), [h]);
        else this.deliver(provfsRecordEvent(h));
      } else this.deliver(h);
    }
    this.drain(); // then what waits in the ring (records moved to memory were taken from it earlier)
    if (this.dropped && this.journal) this.reportDropped(this.journal);
  }

  /** Wait until the loop thread (quiesced or stopped) has exited. */
  loopExited(): Promise<void> {
    return this.exited;
  }

  /** Flush and (if owned) close the journal; later records are held. */
  async releaseJournal(): Promise<void> {
    this.drain();
    const j = this.journal;
    this.journal = null;
    try {
      if (j && this.o.ownJournal) await j.close?.();
      else await j?.flush?.();
    } catch (e) {
      // Its disk filled up meanwhile: what it could not write stays in the ring (file) for the
      // next daemon of this mount to recover, unstamped, since the journal will give those seqs
      // to other records.
      this.batches = [];
      const n = this.ring.unstampUncommitted();
      log.error(`journal not released cleanly (${(e as Error).message}); ${n} records stay in the ring${this.o.ringFile ? ` file ${this.o.ringFile}` : ' (memory: lost with this process)'} for the next daemon of this mount`);
      return;
    }
    this.commitAll();
  }

  /** Why the journal cannot be written now (its disk is full), or null. */
  get journalStalled(): Error | null {
    return this.journal?.stalled ?? null;
  }

  /** The connection now belongs to a successor: close our fds, resolve `done`. */
  async handedOff(): Promise<void> {
    this.handedOver = true;
    await this.exited; // a quiesced loop answers the fsyncs it accepted before it goes
    await this.end({ reason: 'upgraded', counts: this.stopInfo.counts });
  }

  private ended = false;
  private async end(info: StopInfo): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    if (this.timer) clearInterval(this.timer);
    if (!this.handedOver) this.drain();
    if (this.dropped && this.journal) this.reportDropped(this.journal);
    if (this.dropped) log.error(`${this.dropped.count} provenance records were dropped and no journal can record their loss (${this.dropped.why})`);
    await this.failedJournal?.close?.().catch(() => undefined);
    if (this.o.loop.devFd >= 0) libc.close(this.o.loop.devFd);
    if (this.o.loop.rootFd >= 0) libc.close(this.o.loop.rootFd);
    let durable = true;
    if (this.journal && this.o.ownJournal) {
      await this.journal.close?.().catch((e: Error) => { durable = false; log.error(`journal close: ${e.message}`); });
    } else if (this.journal) {
      await this.journal.flush?.().catch((e: Error) => { durable = false; log.error(`journal flush: ${e.message}`); });
    }
    // Not durable: the journal gives those seqs to other records later (see releaseJournal).
    if (durable) this.commitAll();
    else this.ring.unstampUncommitted();
    await this.exited;
    if (this.o.ringFile && this.held.length > 0) this.keepHeldInRing();
    if (this.o.ringFile) {
      // Everything the loop recorded is in the journal: the ring is no longer needed. Otherwise
      // it stays for whoever recovers this mount next.
      if (this.ring.empty && this.held.length === 0) rmSync(this.o.ringFile, { force: true });
      else log.warn(`${this.o.ringFile}: records not yet in the journal stay there for the next daemon of this mount`);
      this.ring.unmap();
    }
    this.finish(info);
  }
}
