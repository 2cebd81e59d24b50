/**
 * @module kernel/upgrade
 * Live upgrade of a provfs daemon (Bento's protocol): the successor process starts warm (Node,
 * modules and its request-loop thread up, waiting) while the old daemon serves; then the old
 * loop quiesces — it answers the request in hand and reads no more, so nothing is in flight and
 * unread requests stay queued in the kernel — and `updatePrepare()` state goes to the
 * successor, which takes the /dev/fuse connection and every open backing fd out of the old
 * process with pidfd_getfd(2), rebuilds the node table with `updateTransfer(state)` and reads
 * the queue on. The stall is the time between quiesce and the successor's first read.
 *
 * State version 2 keeps the node table out of the stall: while the old loop still serves, it
 * writes a snapshot and starts tracking the nodes it changes; the successor's loop copies the
 * snapshot and every fd it names, builds its table and everything else it needs, then blocks on
 * a FIFO. At quiesce the old loop writes only the changes since the snapshot into that FIFO
 * (loop thread to loop thread, no main thread or IPC in between) and waits for a verdict; the
 * successor applies them (copying the few new fds) and reads on. A successor that fails or
 * rejects them gets the verdict "serve on" for the old loop, which has lost nothing.
 *
 * State version 3 (the default between builds that both know it) takes the rest out of the
 * stall: the snapshot is a compact binary file written a slice at a time between requests (see
 * kernel/snapshot: no pause of serving for the whole table), and after the successor copied it,
 * catch-up deltas go ahead while the old loop serves on (up to three, until one is small), so the
 * last delta — the one inside the stall — covers only the last few milliseconds. The report
 * times each phase of the stall ({@link UpgradePhases}).
 *
 * The journal stream moves too: the old daemon appends its last records and closes the stream
 * after the successor serves; the successor holds its records until then, so none is lost or
 * doubled. State versions are negotiated: the successor announces the versions it reads; an old
 * daemon that cannot write one of them does not quiesce. A successor that fails to start or
 * rejects the state leaves the old daemon serving (restarted from its own state when needed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { logger } from '../collector/log.js';
import { openJournalWriter } from '../collector/journal/writer.js';
import * as libc from './libc.js';
import { mountAt } from './mount.js';
import { Serving } from './serving.js';
import { ringFilePath } from './ringfiles.js';
import { windDown } from './rtprio.js';
import type { Timeouts } from './dispatch.js';
import { makeMount, journalStreamName, type ProvfsMode, type ProvfsMount } from './daemon.js';

const log = logger('upgrade');

/** State format versions this build writes and reads. */
export const STATE_VERSIONS = [1, 2, 3] as const;
/** State version 3: catch-up rounds at most, and the delta size (node records) that is small enough to stop early. */
const CATCH_UP_ROUNDS = 3, CATCH_UP_ENOUGH = 32;
const MAX_WRITE = 1 << 20;

export interface UpgradeOptions {
  mode: ProvfsMode;
  /** provfsd.js of the build to run (a new version); default: this build's. */
  daemon?: string;
  /** Journal directory for prov mode (default: the current daemon's). */
  journalDir?: string;
  /** Give up when the successor is not warm after this long (default 15 s). */
  timeoutMs?: number;
  /** The highest state version to write (default: the highest both builds know). */
  stateVersion?: number;
}

export interface UpgradeReport {
  ok: boolean;
  /** Why not, when !ok. */
  reason?: string;
  /** The successor's pid. */
  pid?: number;
  /** The service gap, in ms: from asking the old loop to stop reading to the successor's loop reading. */
  stallMs?: number;
  /** Time from the command to the successor warm, in ms. */
  warmMs?: number;
  /**
   * From asking the old loop to stop reading to the successor's first reply written, in ms (when
   * known by the time the successor settles). Under load this is the stall applications see;
   * on an idle file system it includes waiting for a request.
   */
  firstAnswerMs?: number;
  /**
   * The state version used (1: whole state inside the stall; 2: snapshot ahead, changes inside;
   * 3: binary snapshot written in slices, catch-up deltas ahead, the last changes inside).
   */
  stateVersion?: number;
  /** Where the time went (state versions 2 and 3). */
  phases?: UpgradePhases;
  /** CLOCK_MONOTONIC ns at which the old loop was asked to stop reading (to line the stall up with an application's own clock). */
  quiesceAtNs?: number;
}

/**
 * The phases of a handover, in ms. Inside the stall, each measured from the moment the old loop
 * was asked to stop reading (CLOCK_MONOTONIC in both processes): the old loop `seen` it (after
 * the request in hand), `built` the delta, `written` it to the FIFO; the successor's loop read it
 * (`deltaIn`), `applied` it, began to read requests (`serving` = the stall) and wrote its first
 * reply (`firstReply`). Before the stall: the snapshot written while serving, copied by the
 * successor, and each catch-up round (written + applied) with its size.
 */
export interface UpgradePhases {
  seen?: number; built?: number; written?: number; deltaIn?: number; applied?: number; serving?: number; firstReply?: number;
  /** The request the old loop answered last before it saw the quiesce (STATFS: it was idle and nudged). */
  inHand?: string;
  snapshotMs: number; copyMs: number;
  catchUps: Array<{ ms: number; nodes: number; handles: number }>;
}

/** Messages between the old daemon and its successor (IPC channel). */
type ToSuccessor =
  | { type: 'transfer'; oldPid: number; statePath: string }
  | { type: 'precopy'; oldPid: number; statePath: string; fifo: string; /** 3: binary snapshot, catch-ups may follow. */ version?: 2 | 3 }
  | { type: 'journal-closed' };
type FromSuccessor =
  | { type: 'warm'; pid: number; stateVersions: number[] }
  | { type: 'resumed'; /** CLOCK_MONOTONIC ns when the successor's loop began to read. */ at: number; /** ns: last delta read, applied. */ deltaIn?: number; applied?: number }
  | { type: 'caught-up'; nodes: number; handles: number }
  | { type: 'rejected'; reason: string }
  | { type: 'prepared' }
  | { type: 'settled'; /** CLOCK_MONOTONIC ns of the successor's first reply, when there was one. */ answeredAt?: number };

function nextMessage(child: ChildProcess, want: FromSuccessor['type'][], timeoutMs: number): Promise<FromSuccessor> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { cleanup(); reject(new Error(`successor sent no ${want.join('/')} within ${timeoutMs} ms`)); }, timeoutMs);
    const onMsg = (m: FromSuccessor): void => { if (want.includes(m.type)) { cleanup(); resolve(m); } };
    const onExit = (code: number | null): void => { cleanup(); reject(new Error(`successor exited (${code}) before ${want.join('/')}`)); };
    const cleanup = (): void => { clearTimeout(timer); child.off('message', onMsg); child.off('exit', onExit); };
    child.on('message', onMsg);
    child.once('exit', onExit);
  });
}

/** Old daemon's side. */
export async function upgradeConnection(
  serving: Serving,
  d: { backing: string; mountpoint: string; timeouts: Timeouts; passthrough: boolean; journalDir?: string; beforeHandoff?: () => void; nodeLog?: string },
  o: UpgradeOptions,
): Promise<UpgradeReport> {
  if (o.mode !== 'plain' && o.mode !== 'prov') return { ok: false, reason: `mode must be plain or prov (got ${String(o.mode)})` };
  if (o.mode === 'prov' && !d.journalDir) return { ok: false, reason: 'prov mode needs a journal directory (--journal)' };
  // The journal changes hands inside the upgrade: not while its records cannot be written.
  const stalled = serving.journalStalled;
  if (stalled) return { ok: false, reason: `the journal cannot be written (${stalled.message}); upgrade once it has room` };
  const script = o.daemon ?? fileURLToPath(new URL('./provfsd.js', import.meta.url));
  const args = [script, '--successor', '--backing', d.backing, '--mountpoint', d.mountpoint, '--mode', o.mode,
    '--timeout-entry', String(d.timeouts.entry), '--timeout-attr', String(d.timeouts.attr), '--timeout-negative', String(d.timeouts.negative)];
  if (o.mode === 'prov') args.push('--journal', d.journalDir!);
  if (!d.passthrough) args.push('--no-passthrough');
  if (d.nodeLog) args.push('--node-log', d.nodeLog);
  const t0 = performance.now();
  // Structured-clone IPC: the state of a large node table crosses faster than as JSON.
  // --expose-gc: the successor collects the garbage of copying the table before the stall, not in it.
  const child = spawn(process.execPath, ['--expose-gc', ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], detached: true, serialization: 'advanced' });
  const giveUp = (reason: string): UpgradeReport => {
    try { child.kill('SIGKILL'); } catch { /* gone */ }
    log.warn(`upgrade of ${d.mountpoint} abandoned, still serving: ${reason}`);
    return { ok: false, reason };
  };
  child.on('error', () => { /* reported through exit */ });
  let warm: FromSuccessor;
  try {
    warm = await nextMessage(child, ['warm'], o.timeoutMs ?? 15_000);
  } catch (e) {
    return giveUp(`successor did not start: ${(e as Error).message}`);
  }
  const warmMs = performance.now() - t0;
  const versions = (warm as { stateVersions: number[] }).stateVersions;
  if (!versions.some((v) => (STATE_VERSIONS as readonly number[]).includes(v))) {
    return giveUp(`successor reads state versions ${versions.join(',')}; this daemon writes ${STATE_VERSIONS.join(',')}`);
  }
  const most = o.stateVersion ?? Infinity;
  if (versions.includes(3) && most >= 3) return upgradeV2(serving, d, o, child, warmMs, giveUp, 3);
  if (versions.includes(2) && most >= 2) return upgradeV2(serving, d, o, child, warmMs, giveUp, 2);
  if (!versions.includes(1)) return giveUp(`successor reads state versions ${versions.join(',')}; asked for at most ${most}`);
  // ---- stall begins ----
  const q0 = performance.now();
  const q0ns = Number(process.hrtime.bigint());
  log.debug(`quiesce at ${(q0ns / 1e6).toFixed(1)} ms (monotonic)`);
  const q = await serving.quiesce(d.mountpoint);
  log.debug(`quiesced after ${(performance.now() - q0).toFixed(1)} ms (${q.fds.length} fds)`);
  serving.drain();
  let r: FromSuccessor;
  try {
    const reply = nextMessage(child, ['resumed', 'rejected'], 10_000);
    child.send({ type: 'transfer', oldPid: process.pid, statePath: q.statePath } satisfies ToSuccessor);
    r = await reply;
  } catch (e) {
    r = { type: 'rejected', reason: (e as Error).message };
  }
  if (r.type === 'rejected') {
    // Nothing was handed over: serve again from our own state.
    try { child.kill('SIGKILL'); } catch { /* gone */ }
    await serving.start({ stateFile: q.statePath });
    rmSync(q.statePath, { force: true });
    const reason = `successor rejected the state: ${r.reason}`;
    log.warn(`upgrade of ${d.mountpoint} abandoned, serving again: ${reason}`);
    return { ok: false, reason, stallMs: performance.now() - q0 };
  }
  rmSync(q.statePath, { force: true });
  // The gap: from asking our loop to stop reading to the successor's loop reading (both
  // CLOCK_MONOTONIC, comparable across processes).
  const stallMs = ((r as { at: number }).at - q0ns) / 1e6;
  return finishHandover(serving, d, o, child, q, q0ns, stallMs, warmMs);
}

/**
 * State versions 2 and 3: snapshot and fds copied ahead, only the changes inside the stall.
 * Version 3 writes the snapshot in slices between requests and, once the successor copied it,
 * sends catch-up deltas while serving on, so the last delta covers only the last moments.
 */
async function upgradeV2(
  serving: Serving, d: Parameters<typeof upgradeConnection>[1], o: UpgradeOptions, child: ChildProcess, warmMs: number,
  giveUp: (reason: string) => UpgradeReport, version: 2 | 3,
): Promise<UpgradeReport> {
  const dir = mkdtempSync(join(tmpdir(), 'provfs-upgrade-')); // 0700
  const statePath = join(dir, 'snapshot.bin'), fifo = join(dir, 'delta');
  try {
    libc.mknodat(libc.AT.FDCWD, Buffer.from(fifo), libc.S.IFIFO | 0o600, 0);
    const t0 = performance.now();
    try {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error('the request loop wrote none within 30 s')), 30_000); });
      await Promise.race([serving.snapshot(d.mountpoint, { statePath, fifo, version }), late]).finally(() => clearTimeout(timer));
    } catch (e) {
      serving.stopTracking();
      return giveUp(`no snapshot: ${(e as Error).message}`);
    }
    const t1 = performance.now();
    try {
      const prepared = nextMessage(child, ['prepared', 'rejected'], 30_000);
      child.send({ type: 'precopy', oldPid: process.pid, statePath, fifo, version } satisfies ToSuccessor);
      const p = await prepared;
      if (p.type === 'rejected') throw new Error(`successor rejected the state: ${p.reason}`);
    } catch (e) {
      serving.stopTracking();
      return giveUp((e as Error).message);
    }
    rmSync(statePath, { force: true });
    const t2 = performance.now();
    const phases: UpgradePhases = { snapshotMs: t1 - t0, copyMs: t2 - t1, catchUps: [] };
    log.debug(`snapshot written in ${(t1 - t0).toFixed(1)} ms, copied by the successor in ${(t2 - t1).toFixed(1)} ms`);
    for (let r = 0; version === 3 && r < CATCH_UP_ROUNDS; r++) {
      // The successor copied a snapshot that aged while it did: send what changed meanwhile.
      const c0 = performance.now();
      try {
        const applied = nextMessage(child, ['caught-up', 'rejected'], 10_000);
        const written = await serving.catchUp(d.mountpoint);
        if (written.nodes < 0) throw new Error('the catch-up delta could not be written (the successor is gone)');
        const a = await applied;
        if (a.type === 'rejected') throw new Error(`successor rejected the state: ${a.reason}`);
        phases.catchUps.push({ ms: performance.now() - c0, nodes: written.nodes, handles: written.handles });
        if (written.nodes <= CATCH_UP_ENOUGH) break;
      } catch (e) {
        serving.stopTracking();
        return giveUp((e as Error).message);
      }
    }
    // ---- stall begins ----
    const q0 = performance.now();
    const q0ns = Number(process.hrtime.bigint());
    log.debug(`quiesce asked at ${(q0ns / 1e6).toFixed(1)} ms (monotonic)`);
    const reply = nextMessage(child, ['resumed', 'rejected'], 10_000).catch((e: Error): FromSuccessor => ({ type: 'rejected', reason: e.message }));
    let q: Awaited<ReturnType<Serving['quiesce']>>;
    try {
      q = await serving.quiesce(d.mountpoint, 2);
    } catch (e) {
      return giveUp((e as Error).message);
    }
    const r: FromSuccessor = q.failed ? { type: 'rejected', reason: q.failed } : await reply;
    if (r.type !== 'resumed') {
      try { child.kill('SIGKILL'); } catch { /* gone */ }
      serving.verdict(false);
      const reason = `successor rejected the state: ${(r as { reason: string }).reason}`;
      log.warn(`upgrade of ${d.mountpoint} abandoned, serving on: ${reason}`);
      return { ok: false, reason, stallMs: performance.now() - q0 };
    }
    serving.verdict(true);
    serving.drain();
    const stallMs = (r.at - q0ns) / 1e6;
    const rel = (ns: number | undefined): number | undefined => (ns ? (ns - q0ns) / 1e6 : undefined);
    Object.assign(phases, { inHand: q.inHand, seen: rel(q.seen), built: rel(q.built), written: rel(q.written), deltaIn: rel(r.deltaIn), applied: rel(r.applied), serving: stallMs });
    return await finishHandover(serving, d, o, child, q, q0ns, stallMs, warmMs, phases);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The successor serves: move the journal, let the old loop go, close our copies of the fds. */
async function finishHandover(
  serving: Serving, d: Parameters<typeof upgradeConnection>[1], o: UpgradeOptions, child: ChildProcess,
  q: { fds: number[]; version: number }, q0ns: number, stallMs: number, warmMs: number, phases?: UpgradePhases,
): Promise<UpgradeReport> {
  // ---- stall over: the successor serves ----
  // What is left here (journal, teardown) waits for nobody: below the applications and the successor.
  windDown([libc.gettid(), ...(serving.loopTid ? [serving.loopTid] : [])]);
  await serving.releaseJournal();
  d.beforeHandoff?.();
  const settled = nextMessage(child, ['settled'], 10_000).catch((e: Error) => { log.warn(`successor did not settle: ${e.message}`); return null; });
  child.send({ type: 'journal-closed' } satisfies ToSuccessor);
  const s = (await settled) as { answeredAt?: number } | null;
  const firstAnswerMs = s?.answeredAt !== undefined ? (s.answeredAt - q0ns) / 1e6 : undefined;
  if (child.connected) child.disconnect();
  child.unref();
  await serving.loopExited(); // fsyncs the old loop accepted are answered with its fds
  const { dev, root } = serving.fds;
  for (const fd of q.fds) if (fd !== dev && fd !== root) libc.close(fd);
  await serving.handedOff();
  log.info(`${d.mountpoint} handed to pid ${child.pid} (${o.mode}); stall ${stallMs.toFixed(1)} ms${firstAnswerMs !== undefined ? `, first reply after ${firstAnswerMs.toFixed(1)} ms` : ''}`);
  if (phases) phases.firstReply = firstAnswerMs;
  return { ok: true, pid: child.pid, stallMs, firstAnswerMs, warmMs, stateVersion: q.version, phases, quiesceAtNs: q0ns };
}

export interface SuccessorOptions {
  backing: string;
  mountpoint: string;
  mode: ProvfsMode;
  passthrough: boolean;
  timeouts: Timeouts;
  journalDir?: string;
  /** Keep appending to this node log (crash survival). */
  nodeLog?: string;
  /** prov mode: where the record ring's file goes (see ProvfsOptions.rings; default the node log's path). */
  rings?: string;
  /** Called once the journal is ours (the old daemon closed it): write state files, listen. */
  onSettled?: (m: ProvfsMount) => void;
}

/**
 * Successor's side, in a process started by {@link upgradeConnection} with an IPC channel:
 * start warm, take the transfer, serve. Resolves with the mount handle once serving.
 */
export async function runSuccessor(o: SuccessorOptions): Promise<ProvfsMount> {
  const send = (m: FromSuccessor): void => { process.send?.(m); };
  if (!process.send) throw new Error('a successor needs the IPC channel of its predecessor');
  const info = mountAt(o.mountpoint);
  if (!info) throw new Error(`${o.mountpoint} is not mounted`);
  const rings = o.mode === 'prov' ? o.rings ?? o.nodeLog : undefined;
  const serving = new Serving({
    loop: {
      devFd: -1, rootFd: -1, mode: o.mode, passthrough: o.passthrough, timeouts: o.timeouts, maxWrite: MAX_WRITE, dev: info.dev,
      mountpoint: o.mountpoint, nodeLog: o.nodeLog ? { path: o.nodeLog, fresh: false } : undefined,
    },
    journal: null, ownJournal: true,
    ringFile: rings ? ringFilePath(rings) : undefined,
  });
  await serving.start({ awaitTransfer: true });
  const stream = o.mode === 'prov' ? journalStreamName(o.mountpoint) : undefined;
  const mount = makeMount(serving, { backing: o.backing, mountpoint: o.mountpoint, mode: o.mode, dev: info.dev, stream, timeouts: o.timeouts, journalDir: o.journalDir, passthrough: o.passthrough, nodeLog: o.nodeLog });
  return new Promise<ProvfsMount>((resolve, reject) => {
    process.on('message', (m: ToSuccessor) => {
      if (m.type === 'precopy') {
        const serving_ = serving.awaitServing();
        serving.onCaughtUp = (c) => send({ type: 'caught-up', nodes: c.nodes, handles: c.handles });
        serving.precopy({ statePath: m.statePath, oldPid: m.oldPid, fifo: m.fifo, version: m.version }).then(() => send({ type: 'prepared' }), () => { /* reported below */ });
        serving_.then((r) => { send({ type: 'resumed', at: r.at, deltaIn: r.deltaIn, applied: r.applied }); resolve(mount); }, (e: Error) => {
          send({ type: 'rejected', reason: e.message });
          reject(e);
        });
      } else if (m.type === 'transfer') {
        // The loop thread reads the state file and takes the fds itself (see kernel/loop).
        serving.release({ statePath: m.statePath, oldPid: m.oldPid }).then((at) => { send({ type: 'resumed', at }); resolve(mount); }, (e: Error) => {
          send({ type: 'rejected', reason: e.message });
          reject(e);
        });
      } else if (m.type === 'journal-closed') {
        if (o.mode === 'prov' && o.journalDir) serving.setJournal(openJournalWriter({ dir: o.journalDir, stream: stream! }), true);
        o.onSettled?.(mount);
        void serving.firstAnswer(500).then((at) => {
          send({ type: 'settled', answeredAt: at ?? undefined });
          process.disconnect();
        });
      }
    });
    send({ type: 'warm', pid: process.pid, stateVersions: [...STATE_VERSIONS] });
  });
}
