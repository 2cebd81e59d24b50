/**
 * @module collector/sync/engine
 * One sync of SRC to DST, and the --watch loop.
 *
 * 1. Load the pair's checkpoint (state.ts). None → full comparison.
 * 2. Barrier: make a probe entry in SRC (`.prov-sync-probe-*`: mkdir by a child process,
 *    then rmdir) and wait until the capture source's record of it is in the journal. This is
 *    how sync knows capture is running *now* and covers SRC: if capture stopped (or never
 *    covered SRC) the probe never shows up, and everything since the checkpoint is suspect →
 *    full comparison. Every event before the probe is in the journal by then (a stream is in
 *    order), so reading up to the probe is a consistent cut. Losses inside a session come as
 *    `lost` records and seq gaps.
 *    Capture that stopped and restarted *between* two syncs is caught by the writer session of
 *    the stream that recorded the probe (the journal writer's LOCK file, made anew each time a
 *    writer opens the stream): a different session than at the last sync → full comparison.
 *    (A drainer restart that lost nothing, its events having waited in the pinned ring, is
 *    also counted as a restart: one needless full comparison rather than a silent miss.)
 * 3. Fold the records since the checkpoint (changes.ts); any gap → full comparison. Records
 *    that cannot concern SRC are passed over undecoded (prefilter.ts): with system-wide capture
 *    they are most of the journal.
 * 4. Apply the plan (apply.ts, or remote.ts for host:path) and save the new checkpoint. To a
 *    local DST, what has been read is applied while the barrier still waits for the probe's
 *    record (early plans, see syncOnce); the plan up to the probe comes last. Durability: see
 *    state.ts (atomic per file, no fsync; a checkpoint is trusted only on the boot that wrote it).
 *
 * Known limits (each would need the capture sources' help, see the sync report):
 * - Paths are matched as recorded. An operation made through another name for SRC (a symlink
 *   to it, a bind mount) is recorded under that name and not recognised as SRC's.
 * - Hard links are copied as separate files (like rsync without -H); devices, FIFOs and
 *   sockets are skipped and counted.
 */
import * as fs from 'node:fs';
import { randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { resolve as pathResolve } from 'node:path';
import { InputError } from '../../graph/errors.js';
import { logger } from '../log.js';
import { running } from '../proc.js';
import { Applier, type ApplyCounts } from './apply.js';
import { readRootFor, witnessFor } from './capture.js';
import { ChangeTracker } from './changes.js';
import type { RecordFeed } from './feed.js';
import type { RecordPrefilter } from '../journal/api.js';
import { GapError } from './overlay.js';
import { SyncPrefilter } from './prefilter.js';
import { RESERVED_PREFIX, isReserved, isWithin, splitRel } from './paths.js';
import { SafeTree, UnsafePathError } from './safefs.js';
import { StateFile } from './state.js';
import { parseRemote, RemoteTarget, type RemoteOptions } from './remote.js';

const log = logger('sync');

export interface SyncOptions {
  src: string;
  /** A local directory, or `host:path` (over ssh, rsync as the transport). */
  dst: string;
  delete?: boolean;
  dryRun?: boolean;
  checksum?: boolean;
  /** The record; without one every sync is a full comparison. */
  feed?: RecordFeed;
  /** Directory for sync states (default `<PROV_HOME>/sync`). */
  stateDir?: string;
  /** Probe SRC and wait for capture to record it (default true; see the module comment). */
  barrier?: boolean;
  /**
   * How long the journal may stay silent before the probe is declared unseen (ms, default 3000).
   * While a writer has a stream of the journal open (capture is running, maybe starved on a busy
   * host) the wait is at least {@link LIVE_WRITER_SILENCE_MS}: a needless full comparison costs
   * far more than the wait.
   */
  barrierTimeoutMs?: number;
  /** Remote transport settings (rsh command, rsync path). */
  remote?: RemoteOptions;
  progress?: (done: number, total: number) => void;
  /** Save the checkpoint even when nothing under SRC changed (default true; --watch saves less often). */
  saveIfIdle?: boolean;
}

export interface SyncResult {
  mode: 'incremental' | 'full';
  /** Why the full comparison was needed. */
  reason?: string;
  dryRun: boolean;
  counts: ApplyCounts;
  /** Records read, and how many concerned SRC. */
  records: number;
  relevant: number;
  /** Records passed over without decoding (they could not concern SRC; see prefilter.ts). */
  passedOver: number;
  seconds: number;
  /**
   * Where the time went (s): reading the record (barrier included), of it the barrier (probe,
   * wait for its record, folding the records up to it), the net changes (the plan), applying,
   * saving the checkpoint.
   */
  phases: { read: number; barrier: number; plan: number; apply: number; save: number };
  /** Dry run: the plan, one line per step. */
  actions?: string[];
  checkpoint: Record<string, number>;
}

/** The barrier's patience while a journal writer is alive (see SyncOptions.barrierTimeoutMs). */
export const LIVE_WRITER_SILENCE_MS = 15_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Make the probe entry and wait for its record in the journal. Not seen means: records of the
 * witness stamped well after the probe (2 s: drain and ring-order slack) arrived without it,
 * or nothing new arrived for `idleMs`, or 60 s passed. On a busy host the journal may hold a
 * backlog: as long as records keep coming and are older than the probe, sync keeps reading.
 */
async function barrier(src: string, tracker: ChangeTracker, feed: RecordFeed, idleMs: number, pre: SyncPrefilter, onIdle?: () => Promise<boolean>): Promise<{ ok: boolean; gap?: string; stream?: string }> {
  const name = `${RESERVED_PREFIX}probe-${process.pid}-${randomBytes(6).toString('hex')}`;
  const probe = `${src}/${name}`;
  // mkdir from a child process: the process running sync may be excluded from capture (a
  // collector never records itself), and the probe must be seen as any other process's
  // operation is. Relative to SRC as the working directory: a capture filter that judges a path
  // by the directory it is resolved from sees SRC. The rmdir needs no witness.
  const tBefore = Date.now();
  // The child runs while the records so far are read (and applied early): its start-up is not
  // waited for. Until it has exited, the probe cannot be declared unseen.
  let tAfter = Infinity;
  let made = false;
  let failure: string | undefined;
  const child = spawn('mkdir', ['--', name], { cwd: src, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<void>((resolve) => {
    const end = (why?: string): void => {
      if (made) return;
      made = true;
      tAfter = Number(process.hrtime.bigint());
      mark('probe made');
      if (why !== undefined) failure = why;
      else try { fs.rmdirSync(probe); } catch (e) { failure = `cannot remove the probe: ${(e as Error).message}`; }
      resolve();
    };
    child.on('error', (e) => end(e.message));
    child.on('close', (code) => end(code === 0 ? undefined : stderr.trim() || `mkdir exited with ${code}`));
  });
  const hardStop = tBefore + 60_000;
  let lastProgress = Date.now();
  let gap: string | undefined, stream: string | undefined, passed = false;
  const trace: string[] = [];
  const debug = process.env.PROV_LOG === 'debug';
  const mark = (what: string): void => { if (debug) trace.push(`${what} ${Date.now() - tBefore}`); };
  const done = (ok: boolean): { ok: boolean; gap?: string; stream?: string } => {
    log.debug(`barrier: probe ${ok ? 'seen' : 'NOT seen'} after ${Date.now() - tBefore} ms, ${tracker.records} records read; ${trace.join(', ')}`);
    return { ok, gap, stream };
  };
  /**
   * The prefilter, and every 5 ms one record more: records passed over are never delivered, and
   * on a busy host everything after the changes is passed over until the probe comes; the record
   * let through tells how far reading has come (is the round's target reached?).
   */
  let nudgeAt = Date.now() + 5;
  const keep: RecordPrefilter = (stream, codec, buf, start, len) => {
    if (pre.keep(stream, codec, buf, start, len)) return true;
    if (onIdle) {
      const now = Date.now();
      if (now >= nudgeAt) { nudgeAt = now + 5; return true; }
    }
    return false;
  };

  try {
    return await watchForProbe();
  } finally {
    await exited; // the probe is never left behind in SRC
    if (failure !== undefined) throw new InputError(`cannot make the probe ${probe}: ${failure}`, 'SRC');
  }

  async function watchForProbe(): Promise<{ ok: boolean; gap?: string; stream?: string }> {
    let target: Record<string, number> | null = null;
    let targetAt = 0;
    const reached = (): boolean => {
      const po = feed.passedOver?.() ?? {};
      return Object.entries(target!).every(([st, seq]) => Math.max(tracker.positions[st] ?? 0, po[st] ?? 0) >= seq);
    };
    for (;;) {
      if (failure !== undefined) return done(false);
      const before = tracker.records;
      // What the journal holds as this round starts: once read, it is applied (an early plan)
      // while the probe's record is still on its way, even if more records keep coming (on a
      // busy host they always do): the wait for the probe then hides behind the apply. The
      // heads (a directory listing and a read per stream) are read again once the last target
      // is reached, not on every 2 ms round.
      if (onIdle && feed.heads && (target === null || reached() || Date.now() - targetAt > 50)) {
        target = await feed.heads();
        targetAt = Date.now();
      }
      let early = false;
      for await (const rec of feed.read(tracker.positions, keep)) {
        if (gap === undefined) {
          try { tracker.add(rec); } catch (e) { if (e instanceof GapError) { gap = e.message; tracker.degraded = true; } else throw e; }
        } else tracker.add(rec);
        const ev = rec.event as { op: string; src: string; ts: number; file?: { path?: string } };
        // Stop at the probe: what comes after it is the next sync's (reading "to the end" of a
        // journal that grows faster than it is read would never end).
        if (ev.op === 'mkdir' && ev.file?.path === probe) { stream = rec.stream; return done(true); }
        if ((!tracker.witness || ev.src === tracker.witness) && ev.ts > tAfter + 2e9) passed = true;
        if (passed || Date.now() > hardStop) break;
        if (target && reached()) { early = true; break; }
      }
      if (!passed) tracker.passOver(feed.passedOver?.() ?? {});
      // Records passed over undecoded still tell how far the witness's stream has come.
      if (pre.maxTs > tAfter + 2e9) passed = true;
      if (passed || Date.now() > hardStop) return done(false);
      const got = tracker.records > before;
      mark(`read ${tracker.records - before}`);
      if (got) lastProgress = Date.now();
      else if (Date.now() - lastProgress > idleMs) return done(false);
      // Nothing more in the journal yet, or what it held at the start of the round is read: put
      // the wait for the probe's group commit to use.
      if (onIdle && (!got || early)) {
        const t = Date.now();
        const applied = await onIdle();
        // Time spent applying (or waiting for the plan under way) is not the journal's silence.
        if (applied || Date.now() - t > 2) lastProgress = Math.max(lastProgress, Date.now() - 5);
        if (applied) { mark('early plan started'); continue; }
      }
      if (early) continue;
      await sleep(2);
      if (!made) lastProgress = Date.now();
    }
  }
}

/**
 * A stream the checkpoint names must still exist and reach the checkpoint: a journal that was
 * replaced or cut short would otherwise look like "nothing happened". HEAD lags the records
 * by up to the writer's fsync interval, so a short wait comes first.
 */
async function continuity(feed: RecordFeed, checkpoint: Record<string, number>): Promise<string | undefined> {
  for (let attempt = 0; ; attempt++) {
    const heads = await feed.heads!();
    const bad = Object.entries(checkpoint).find(([stream, seq]) => seq > 0 && (heads[stream] ?? 0) < seq);
    if (!bad) return undefined;
    if (attempt >= 10) return `journal stream ${bad[0]} ends at seq ${heads[bad[0]] ?? 0}, before the checkpoint (${bad[1]}): journal replaced or cut short`;
    await sleep(50);
  }
}

/** Sync SRC to DST once. */
export async function syncOnce(o: SyncOptions): Promise<SyncResult> {
  const t0 = process.hrtime.bigint();
  let src: string;
  try { src = fs.realpathSync(o.src); } catch { throw new InputError(`source ${o.src} does not exist`, 'SRC'); }
  const srcSt = fs.statSync(src);
  if (!srcSt.isDirectory()) throw new InputError(`source ${o.src} is not a directory`, 'SRC');

  const remote = parseRemote(o.dst);
  let dstKey: string;
  let dstTree: SafeTree | null = null;
  if (remote) dstKey = `${remote.host}:${remote.path}`;
  else {
    if (!o.dryRun) fs.mkdirSync(o.dst, { recursive: true });
    let dst: string;
    try { dst = fs.realpathSync(o.dst); } catch {
      // A dry run creates nothing: a DST that does not exist yet is planned as empty.
      if (!o.dryRun) throw new InputError(`destination ${o.dst} does not exist`, 'DST');
      dst = pathResolve(o.dst);
    }
    if (fs.existsSync(dst) && !fs.statSync(dst).isDirectory()) throw new InputError(`destination ${o.dst} is not a directory`, 'DST');
    if (isWithin(dst.slice(1), src.slice(1)) || isWithin(src.slice(1), dst.slice(1))) {
      throw new InputError(`source and destination overlap (${src}, ${dst})`, 'DST');
    }
    dstKey = dst;
    dstTree = new SafeTree(dst);
  }

  const stateFile = new StateFile(src, dstKey, o.stateDir);
  const { state, why } = stateFile.load();
  // Without a checkpoint the trees are compared in full: the records before now are not needed,
  // reading starts at the journal's end.
  const from = state?.checkpoint ?? (o.feed?.heads ? await o.feed.heads() : {});
  const tracker = new ChangeTracker(src, srcSt.dev, from, state?.openWriters ?? [], witnessFor(src));
  const pre = new SyncPrefilter(src, tracker.witness, tracker.handleKeys());
  let reason: string | undefined = state ? undefined : why;
  if (reason !== undefined) tracker.degraded = true;
  // Kept from the last barrier unless this sync runs one (--watch skips it on most rounds).
  let sessions = state?.sessions;
  let tBarrier = 0;
  const srcTree = new SafeTree(readRootFor(src));
  const applyOpts = { delete: Boolean(o.delete), dryRun: Boolean(o.dryRun), checksum: o.checksum, progress: o.progress };
  // One applier for every plan of this sync (its counts add up).
  let applier = dstTree && !o.dryRun ? new Applier(srcTree, dstTree, applyOpts) : null;
  if (state?.changed) tracker.markChanged(state.changed);
  /**
   * Directories a plan copied whole from SRC as it was then, ahead of the records (see
   * Applier.ahead), named as of the current overlay's start, each with when it was copied
   * (monotonic ns, the records' clock). The next plan compares each whole again where it is by
   * then; one is done with once the records read reach past its copy and a comparison changed
   * nothing: whatever the copy took from SRC then, the records since name its creation.
   */
  type Recheck = { path: string; at: number };
  const recheck: Recheck[] = (state?.recheck ?? []).map((path) => ({ path, at: state?.recheckAt ?? 0 }));
  /** Newest event time read (records passed over undecoded included). */
  const readTs = (): number => Math.max(tracker.maxTs, pre.maxTs);
  /** The entries where they are now in the overlay about to be planned (taken out of the list). */
  const recheckNow = (): Recheck[] => {
    const out: Recheck[] = [];
    for (const e of recheck.splice(0)) {
      let parts: string[];
      try { parts = e.path === '' ? [] : splitRel(e.path); } catch { continue; } // from a state file: clean relative paths only
      if (parts.some(isReserved)) continue;
      const now = tracker.overlay.currentPathOf(e.path);
      if (now !== null) out.push({ path: now, at: e.at });
    }
    return out;
  };
  /** After a plan compared `again` whole: what to compare again next time. */
  const recheckAfter = (again: Recheck[], reached: number, a: Applier): void => {
    const at = Number(process.hrtime.bigint());
    const copied = a.ahead.splice(0);
    for (const path of copied) recheck.push({ path, at });
    for (const e of again) if (e.at > reached && !copied.includes(e.path)) recheck.push(e);
  };
  // Capture that stopped and started again since the last sync: its writer session changed
  // (said after what the barrier finds, which names the likelier cause first).
  let restarted: string | undefined;
  for (const [stream, sid] of Object.entries(state?.sessions ?? {})) {
    if (o.feed?.session && o.feed.session(stream) !== sid) {
      restarted ??= `capture restarted since the last sync (stream ${stream} has a new writer): events in between may be missing`;
    }
  }
  /**
   * Early plans: while the barrier waits for the probe's record (the journal commits every 50 ms
   * or so), what has been read so far is applied, and the overlay starts over from there: DST
   * then equals SRC as of the records read, exactly what a plan assumes of DST. The last plan,
   * up to the probe, is small. Not after a gap (the trees are compared in full at the end).
   * An early plan runs while reading goes on (its file-system calls are on libuv's pool, the
   * reading on this thread); the next plan starts only once it has ended, and what it could not
   * copy (SRC had changed again) is marked where the records since have put it.
   */
  let unsafe: string | undefined;
  let tEarly = 0n;
  // Changes in the overlay that no record brought (carried handles, paths to copy again): not
  // worth an early plan by themselves (and one that keeps vanishing would loop).
  let marked = tracker.overlay.changes;
  let pending: Promise<void> | null = null;
  let earlyError: unknown = null;
  /** Wait for the early plan under way, if any (its time counts as applying). */
  const finishEarly = async (): Promise<void> => {
    if (!pending) return;
    const t = process.hrtime.bigint();
    await pending;
    pending = null;
    tEarly += process.hrtime.bigint() - t;
    if (earlyError !== null) { const e = earlyError; earlyError = null; throw e; }
  };
  const applyEarly = applier === null ? undefined : async (): Promise<boolean> => {
    await finishEarly();
    if (tracker.degraded || reason !== undefined || restarted !== undefined || unsafe !== undefined || tracker.overlay.changes <= marked) return false;
    const t = process.hrtime.bigint();
    const plan = tracker.overlay.plan();
    const again = recheckNow();
    const reached = readTs();
    tracker.startOver();
    marked = 0;
    // Never rejects (an unhandled rejection would end the process): the error is kept for finishEarly.
    pending = applier!.applyPlan(plan, again.map((e) => e.path)).then(() => {
      const before = tracker.overlay.changes;
      tracker.markChangedAtStart(applier!.vanished.splice(0));
      recheckAfter(again, reached, applier!);
      marked += tracker.overlay.changes - before;
    }, (e: unknown) => {
      if (e instanceof UnsafePathError) { applier!.abandon(); unsafe = e.message; } else earlyError = e;
    });
    tEarly += process.hrtime.bigint() - t;
    return true;
  };

  if (!o.feed) reason ??= 'no journal to read';
  else {
    if (o.barrier !== false && !o.dryRun) {
      const tb = process.hrtime.bigint();
      let silence = o.barrierTimeoutMs ?? 3000;
      if (o.feed.session && o.feed.heads) {
        const streams = Object.keys(await o.feed.heads());
        if (streams.some((st) => o.feed!.session!(st) !== null)) silence = Math.max(silence, LIVE_WRITER_SILENCE_MS);
      }
      let b: Awaited<ReturnType<typeof barrier>>;
      try {
        b = await barrier(src, tracker, o.feed, silence, pre, applyEarly);
      } finally {
        await finishEarly();
      }
      tBarrier = Number(process.hrtime.bigint() - tb - tEarly) / 1e9;
      if (b.gap) reason ??= b.gap;
      if (!b.ok) reason ??= 'capture did not record a probe in SRC: not running, or not covering SRC';
      reason ??= restarted;
      const sid = b.stream !== undefined ? o.feed.session?.(b.stream) : null;
      if (b.stream !== undefined && sid) sessions = { [b.stream]: sid };
      tracker.overlay.touchDir(''); // the probe changed SRC's mtime
    } else {
      // Up to the journal's end as it is now (not chasing what is appended while reading).
      const heads = o.feed.heads ? await o.feed.heads() : null;
      const reached = (): boolean => heads !== null && Object.entries(heads).every(([k, v]) => (tracker.positions[k] ?? 0) >= v);
      if (!reached()) {
        let stopped = false;
        for await (const rec of o.feed.read(tracker.positions, pre.keep)) {
          try { tracker.add(rec); } catch (e) {
            if (!(e instanceof GapError)) throw e;
            reason ??= e.message;
            tracker.degraded = true;
          }
          if (reached()) { stopped = true; break; }
        }
        if (!stopped) tracker.passOver(o.feed.passedOver?.() ?? {});
      }
    }
    if (state && o.feed.heads) reason ??= await continuity(o.feed, state.checkpoint);
  }
  tracker.dropHandles(running);

  if (unsafe !== undefined) reason ??= `DST differs from the checkpoint: ${unsafe}`;
  let mode: 'incremental' | 'full' = reason === undefined ? 'incremental' : 'full';
  if (mode === 'full') log.info(`full comparison: ${reason}`);
  let counts: ApplyCounts, actions: string[] | undefined;
  /** What a remote DST could not get (see RemoteTarget.vanished); a local one's is its applier's. */
  let vanished: string[] = [];
  const tRead = process.hrtime.bigint();
  const plan = mode === 'incremental' ? tracker.overlay.plan() : null;
  const tPlan = process.hrtime.bigint();
  if (remote) {
    const r = new RemoteTarget(remote, srcTree, applyOpts, o.remote ?? {});
    if (plan === null) await r.fullCompare(); else await r.applyPlan(plan);
    counts = r.counts;
    actions = r.actions;
    vanished = r.vanished;
  } else {
    let a = applier ?? new Applier(srcTree, dstTree!, applyOpts);
    if (plan === null) await a.fullCompare();
    else {
      try {
        const again = recheckNow();
        await a.applyPlan(plan, again.map((e) => e.path));
        recheckAfter(again, readTs(), a);
      } catch (e) {
        if (!(e instanceof UnsafePathError)) throw e;
        // DST is not what the checkpoint says (a symlink where SRC has a directory): compare all.
        a.abandon();
        mode = 'full';
        reason = `DST differs from the checkpoint: ${e.message}`;
        log.info(`full comparison: ${reason}`);
        a = applier = new Applier(srcTree, dstTree!, applyOpts);
        await a.fullCompare();
      }
    }
    if (a.dirTimesUncertain && !o.dryRun) a.repairDirTimes();
    counts = a.counts;
    actions = a.actions;
    applier = a;
  }
  const idle = mode === 'incremental' && tracker.relevant === 0 && o.barrier === false && state !== null;
  const tApply = process.hrtime.bigint();
  if (!o.dryRun && !(idle && o.saveIfIdle === false)) stateFile.save(tracker.positions, tracker.openWriters(), sessions, applier?.vanished ?? vanished, mode === 'incremental' ? recheck : []);
  const tEnd = process.hrtime.bigint();
  const sec = (a: bigint, b: bigint): number => Number(b - a) / 1e9;
  return {
    phases: { read: sec(t0, tRead) - Number(tEarly) / 1e9, barrier: tBarrier, plan: sec(tRead, tPlan), apply: sec(tPlan, tApply) + Number(tEarly) / 1e9, save: sec(tApply, tEnd) },
    mode, reason, dryRun: Boolean(o.dryRun), counts,
    records: tracker.records, relevant: tracker.relevant, passedOver: pre.passed,
    seconds: Number(process.hrtime.bigint() - t0) / 1e9,
    actions: o.dryRun ? actions : undefined,
    checkpoint: tracker.positions,
  };
}

/**
 * --watch: sync continuously. Every `intervalMs` (default 200) the records appended since the
 * last round are read and applied; the barrier probe (capture still running and covering SRC)
 * runs on the first round and then every `barrierEveryMs` (default 5 s), and the checkpoint is
 * saved when something changed and at each barrier.
 * Latency bound: a change recorded in the journal is in DST within intervalMs + the time of one
 * sync; with the journal's group commit (50 ms) that is about 250 ms plus the copy time. A change
 * made while capture was down is caught by the next barrier, within barrierEveryMs.
 */
export async function watch(o: SyncOptions, onResult: (r: SyncResult) => void, signal: AbortSignal, intervalMs = 200, barrierEveryMs = 5000): Promise<void> {
  let lastBarrier = -Infinity;
  while (!signal.aborted) {
    const withBarrier = o.barrier !== false && Date.now() - lastBarrier >= barrierEveryMs;
    const r = await syncOnce({ ...o, barrier: withBarrier, saveIfIdle: withBarrier });
    if (withBarrier) lastBarrier = Date.now();
    if (r.relevant > 0 || r.mode === 'full' || withBarrier) onResult(r);
    await sleep(intervalMs);
  }
}
