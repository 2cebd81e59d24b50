/**
 * @module cli/actions/rebuild
 * `prov rebuild FILE`: transparent make from recorded provenance. Plans FILE's producing
 * commands from the graph store, decides which are stale, re-runs only those (dependency
 * order, --jobs in parallel) under eBPF capture into the same journal, ingests the new record,
 * and stamps what is now up to date (collector/rebuild). --dry-run prints the plan, --explain
 * why each command runs or not, --json all of it (environments redacted).
 *
 * What the user waits for is the commands: the ingest and stamping after them run in a
 * background process (cli/rebuild-finish) that holds the store's pending-ingest marker, so the
 * next rebuild and anything opening the store (prov lineage) wait for it; --json and stores other
 * than SQLite ingest before returning (PROV_REBUILD_SYNC=1 forces that). A no-op is answered
 * from a shortcut file while nothing changed (collector/rebuild/quick, read by cli/fast-rebuild).
 * PROV_REBUILD_TRACE=1 prints where the time went (collector/rebuild/trace).
 * Exit codes: 0 up to date or rebuilt, 1 a command failed, 2 bad input, 3 FILE unknown to the
 * store, 4 capture unavailable or a command needs another user.
 */
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ProvConfig } from '../config.js';
import { CapabilityError, InputError, StoreError } from '../../graph/errors.js';
import { isInteractive } from '../../collector/log.js';
// Only what a no-op rebuild needs is loaded up front; the planner, the runner and the store when used.
import { Decider, type Decisions } from '../../collector/rebuild/decide.js';
import { loadStamps, saveStamps, FileCache, type StampFile } from '../../collector/rebuild/stamp.js';
import { stampFresh } from '../../collector/rebuild/fresh.js';
import { redactEnv } from '../../collector/rebuild/redact.js';
import { showArgv } from '../../collector/rebuild/show.js';
import type { RunOutcome, RunResult } from '../../collector/rebuild/run.js';
import type { CommandClient, RemoteRun } from '../../collector/rebuild/remote.js';
import type { Command, Plan } from '../../collector/rebuild/plan.js';
import { sqlitePath, storeFingerprint } from '../../collector/rebuild/fingerprint.js';
import type { GraphStore } from '../../graph/store.js';
import { mark } from '../../collector/rebuild/trace.js';

export interface RebuildFlags {
  dryRun?: boolean;
  explain?: boolean;
  jobs?: number;
  json?: boolean;
  /** Attach capture for this run only (neither use nor leave the warm attach). */
  cold?: boolean;
  /** Progress lines on stderr (default: stderr is a terminal); the rebuild server passes its client's. */
  progress?: boolean;
  /**
   * The native client that asked the rebuild server, able to run the commands itself
   * (collector/rebuild/remote); used when the commands run under a capture it can be tracked in.
   */
  client?: CommandClient;
  /** Run ids of commands that client started itself from the start file (collector/rebuild/start). */
  selfStarted?: string[];
}

/** Where rebuild's stamps live (0600 in a 0700 directory). */
export function stampPath(cfg: ProvConfig): string {
  return join(cfg.home, 'rebuild', 'stamps.json');
}

function explainText(d: Decisions, dry: boolean): string {
  const lines: string[] = [];
  for (const { cmd, stale, reasons } of d.decisions) {
    lines.push(`${stale ? (dry ? 'would run' : 'run ') : 'skip'}  ${showArgv(cmd.argv)}    (in ${cmd.cwd}, uid ${cmd.uid})`);
    if (stale) for (const r of reasons) lines.push(`      because ${r}`);
    else lines.push(`      up to date: ${cmd.inputs.length} inputs, ${cmd.outputs.length} outputs unchanged`);
    const env = redactEnv(cmd.env);
    if (env) lines.push(`      env: ${env.join(' ')}`);
  }
  return lines.join('\n');
}

/** What a successful run prints: the commands' own output, what was cut off, the summary. */
function printRebuilt(result: RunResult, d: Decisions, file: string): void {
  for (const o of result.ran) if (o.stdout) process.stdout.write(o.stdout);
  for (const x of result.skipped) process.stdout.write(`not run: ${showArgv(x.cmd.argv)} (${x.why})\n`);
  process.stdout.write(`rebuilt ${file}: ran ${result.ran.length} of ${d.decisions.length} commands${result.skipped.length ? `, ${result.skipped.length} cut off` : ''}\n`);
}

/** What a failed run prints: the failed command's output and why it stopped. */
function printFailed(f: NonNullable<RunResult['failed']>): void {
  process.stdout.write(f.stdout);
  process.stderr.write(f.stderr);
  process.stderr.write(`prov rebuild: \`${showArgv(f.cmd.argv)}\` failed (${f.signal ? `signal ${f.signal}` : `exit ${f.code}`}); stopped\n`);
}

/**
 * What is said when commands still look stale after their re-run (the capture missed something
 * or a command rewrote its own input): on stderr from the command line, in finish.log from a
 * background ingest. Null when nothing is stale.
 */
export function stillStaleText(after: Decisions | null): string | null {
  const still = after?.decisions.filter((x) => x.stale) ?? [];
  if (!still.length) return null;
  return `${still.length} commands still look stale after the run: ${still.map((x) => `\`${showArgv(x.cmd.argv)}\` (${x.reasons[0]})`).join('; ')}`;
}

function hazardText(d: Decisions): string {
  return d.hazards.map((h) => `hazard (${h.kind}): ${h.message}`).join('\n');
}

function jsonOf(d: Decisions, cached: boolean, run: RunResult | null): unknown {
  return {
    target: d.plan.target, version: d.plan.targetVersion, planCached: cached,
    commands: d.decisions.map(({ cmd, stale, reasons }) => ({
      argv: cmd.argv, exe: cmd.exe, cwd: cmd.cwd, uid: cmd.uid, gid: cmd.gid, env: redactEnv(cmd.env), run: cmd.run,
      stale, reasons, inputs: cmd.inputs.map((f) => f.path), outputs: cmd.outputs.map((f) => f.path),
      deps: cmd.deps,
    })),
    hazards: d.hazards,
    timings: { ...timings, total: Math.round(performance.now() - startedAt) }, capture: captureMode,
    ran: run?.ran.map((o) => ({ argv: o.cmd.argv, code: o.code, signal: o.signal, ms: Math.round(o.ms) })) ?? [],
    cutoff: run?.skipped.map((x) => ({ argv: x.cmd.argv, why: x.why })) ?? [],
    failed: run?.failed ? { argv: run.failed.cmd.argv, code: run.failed.code, signal: run.failed.signal, stdout: run.failed.stdout, stderr: run.failed.stderr } : null,
  };
}

/**
 * When `prov capture start` already records into this journal, rebuild relies on it (a second
 * capture would record every event twice): after the run it waits until the collector daemon
 * has written as many records as the programs emitted. Returns a function that waits, or null.
 */
async function daemonCapture(cfg: ProvConfig): Promise<(() => Promise<void>) | null> {
  const { isAttached } = await import('../../ebpf/loader.js');
  if (!isAttached()) return null;
  const { captureStatus } = await import('../../ebpf/capture.js');
  const st = await captureStatus({ sampleMs: 0 });
  if (!st.attached || !st.daemon?.alive || resolve(st.daemon.journal, '..') !== resolve(cfg.journal)) return null;
  return async () => {
    const deadline = Date.now() + 15_000;
    const target = (await captureStatus({ sampleMs: 0 })).emitted;
    for (;;) {
      const now = await captureStatus({ sampleMs: 0 });
      if ((now.daemon?.records ?? 0) + now.dropped >= target) return;
      if (Date.now() > deadline) {
        process.stderr.write(`prov rebuild: the capture daemon has not written all events after 15 s; ingesting what is there\n`);
        return;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  };
}

/**
 * The first stale command, started while the rest of the plan is still being decided (the
 * rebuild server only: what it decides after is the same, from the same file status, see
 * collector/rebuild/decide's Decider). `taken` once runCaptured waits for it.
 */
interface EarlyStart {
  cmd: Command;
  /** Null: the native client runs it (collector/rebuild/remote). */
  outcome: Promise<RunOutcome> | null;
  handle: { stop(): Promise<unknown>; drain?: () => Promise<unknown>; pinDir?: string };
  taken: boolean;
}

/**
 * Decide until a command can start whatever the rest decide (stale for a reason of its own,
 * no dependency running) and start it under the warm capture: deciding a 100-command plan cost
 * the server 1.2–1.9 ms before its first command, about half of what it spent over make's own
 * time. Null, with nothing started, when nothing is stale, when any planned command would be
 * refused (the usual path then says why, before anything runs), or when the capture would
 * not be the warm attach (a capture daemon, or another rebuild holds it).
 */
async function startEarly(cfg: ProvConfig, decider: Decider, plan: Plan, remote: RemoteRun | null): Promise<EarlyStart | null> {
  const { preflight, runOne } = await import('../../collector/rebuild/run.js');
  try { preflight(plan.commands); } catch { return null; }
  const cmd = decider.firstStartable();
  mark('first startable found');
  if (!cmd) return null;
  if (await daemonCapture(cfg)) return null;
  mark('no capture daemon');
  const { warmCapture } = await import('../../ebpf/warm.js');
  const warm = await warmCapture({ journalDir: cfg.journal, stream: 'rebuild', ringBytes: 16 << 20, segmentBytes: REBUILD_SEGMENT_BYTES });
  if (!warm) return null;
  captureMode = warm.reused ? 'warm' : 'warm (attached now)';
  if (remote && warm.pinDir && remote.canRun(plan.commands)) {
    await trackClient(remote, warm);
    remote.startNow(cmd);
    return { cmd, outcome: null, handle: warm, taken: false };
  }
  mark(`spawn ${cmd.argv.slice(0, 3).join(' ')}`);
  return { cmd, outcome: runOne(cmd), handle: warm, taken: false };
}

/** Track the client that runs the commands in `capture`; when that fails, release the capture and say why. */
async function trackClient(remote: RemoteRun, capture: { stop(): Promise<unknown>; pinDir?: string }): Promise<void> {
  try {
    remote.track(capture.pinDir!);
  } catch (e) {
    await capture.stop().catch(() => undefined);
    throw e;
  }
}

/** An early start whose run never began (something failed in between): wait for it, release the capture. */
async function abandonEarly(early: EarlyStart | null): Promise<void> {
  if (!early || early.taken) return;
  early.taken = true;
  await early.outcome?.catch(() => undefined);
  await early.handle.stop().catch(() => undefined);
}

/**
 * Run the stale commands under eBPF capture into cfg.journal; when this returns, what they did
 * is durable in the journal (not yet in the store). Capture is, in order of preference: a
 * running `prov capture` into this journal; the warm attach left by an earlier rebuild
 * (ebpf/warm; the first rebuild leaves it); a private attach for this run (`--cold`, or the
 * warm one is busy).
 */
async function runCaptured(cfg: ProvConfig, d: Decisions, stamps: StampFile, jobs: number, progress: boolean, cold: boolean, aside: (() => void) | null,
  deferDurable = false, whileRunning: (() => void) | null = null, early: EarlyStart | null = null,
  remote: { run: RemoteRun; file: string } | null = null): Promise<RunResult & { durable?: () => Promise<void> }> {
  const stale = d.decisions.filter((x) => x.stale).map((x) => x.cmd);
  const { runCommands, preflight } = await import('../../collector/rebuild/run.js');
  const { Cutoff } = await import('../../collector/rebuild/cutoff.js');
  // Refuse before capture attaches (an early start checked every planned command already).
  if (early) early.taken = true;
  else preflight(stale);
  const daemonWait = early ? null : await phase('attach', () => daemonCapture(cfg));
  // A resident server (the one that defers its ingest) may have the warm attach armed: a capture of another kind
  // must not record these commands a second time through it.
  if ((daemonWait || cold) && deferIngest) await (await import('../../ebpf/warm.js')).disarmWarm();
  let handle: { stop(): Promise<unknown>; drain?: () => Promise<unknown>; pinDir?: string };
  if (early) handle = early.handle;
  else if (daemonWait) {
    // Whatever `prov capture` records, it records: start the side process now, before the commands.
    aside?.();
    aside = null;
    // Nothing to drain here: the daemon journals. Waiting for it to catch up is needed only
    // before the ingest, so a deferring caller (the rebuild server) answers first.
    handle = { stop: daemonWait, drain: async () => undefined };
  } else {
    handle = await phase('attach', async () => {
      const { warmCapture } = await import('../../ebpf/warm.js');
      const warm = cold ? null : await warmCapture({ journalDir: cfg.journal, stream: 'rebuild', ringBytes: 16 << 20, segmentBytes: REBUILD_SEGMENT_BYTES });
      if (warm) { captureMode = warm.reused ? 'warm' : 'warm (attached now)'; return warm; }
      captureMode = cold ? 'cold' : 'private (warm attach busy)';
      const { captureToJournal } = await import('../../ebpf/capture.js');
      // Our children (and theirs) are tracked from their fork on; this process itself is excluded.
      // A stream of its own: the rebuild using the warm attach (the reason this one is private)
      // has the `rebuild` stream of this journal open, and a stream has one writer.
      return captureToJournal({
        journalDir: cfg.journal, stream: 'rebuild-private', pinDir: `/sys/fs/bpf/prov-rebuild-${process.pid}`,
        pidTree: [process.pid], ringBytes: 16 << 20, segmentBytes: REBUILD_SEGMENT_BYTES,
      });
    });
  }
  // The native client runs the commands when it started the first one already, or when this
  // capture can track it (a pinned attach: warm or private; not a capture daemon's).
  let byClient = early !== null && early.outcome === null;
  // Commands the client started itself (it tracked itself for them) leave no choice: it runs the rest too.
  if (!early && remote && remote.run.adopted > 0) byClient = true;
  else if (!early && remote && handle.pinDir && remote.run.canRun(stale)) {
    await trackClient(remote.run, handle);
    byClient = true;
  }
  let n = 0;
  let asideError: Error | null = null;
  const cutoff = new Cutoff(d, stamps);
  const runAside = async (): Promise<void> => {
    const f = aside;
    aside = null;
    if (!f) return;
    if (!handle.pinDir) { f(); return; }
    // This process is tracked (its children are recorded from their fork on): the side process
    // must not be. Untracked for the one synchronous fork, so no command can start meanwhile.
    const pinDir = handle.pinDir;
    const { forgetPid, excludePid, trackPid } = await import('../../ebpf/loader.js');
    try { forgetPid(process.pid, pinDir); } catch { return; }
    try { f(); } finally {
      try { excludePid(process.pid, pinDir); trackPid(process.pid, pinDir); } catch (e) { asideError = e as Error; }
    }
  };
  let result: RunResult;
  let durable: (() => Promise<void>) | undefined;
  if (early && !byClient) {
    // Its start, as onStart below would have said it.
    if (progress) process.stderr.write(`\r\x1b[2K[${++n}/${stale.length}] ${showArgv(early.cmd.argv).slice(0, 100)}`);
    const w = whileRunning;
    whileRunning = null;
    if (w) setImmediate(() => { w(); mark('work done while the commands run'); });
  }
  try {
    if (byClient) {
      const w = whileRunning;
      whileRunning = null;
      result = await phase('run', () => remote!.run.finish(stale, d, stamps, cutoff, { jobs, progress, file: remote!.file }, w ? () => { w(); mark('work done while the commands run'); } : null));
    } else result = await phase('run', () => runCommands(stale, {
      jobs,
      started: early?.outcome ? [{ cmd: early.cmd, outcome: early.outcome }] : undefined,
      skip: (c) => cutoff.skip(c),
      onEnd: (o) => { mark(`exit ${o.cmd.argv.slice(0, 3).join(' ')}`); if (o.code === 0) cutoff.finished(o.cmd); },
      onStart: (c) => {
        mark(`spawn ${c.argv.slice(0, 3).join(' ')}`);
        if (progress) process.stderr.write(`\r\x1b[2K[${++n}/${stale.length}] ${showArgv(c.argv).slice(0, 100)}`);
        // Once the first commands are spawned (this callback runs just before): while they run.
        if (aside) setImmediate(() => { void runAside().then(() => mark('side process started')); });
        const w = whileRunning;
        whileRunning = null;
        if (w) setImmediate(() => { w(); mark('work done while the commands run'); });
      },
    }));
  } finally {
    await phase('detach', async () => {
      const h = handle;
      if (deferDurable && h.drain) {
        // The drain into the journal and its disk flush wait until the answer is out: the ring
        // keeps the records, and the claim written before the first command started names them
        // (ebpf/warm), until that flush is done. Nothing else runs in between (requests are
        // served one at a time, and this is the first thing done after the answer).
        durable = async () => { await h.stop(); };
      } else await h.stop();
    });
    if (progress && !byClient) process.stderr.write('\r\x1b[2K');
  }
  if (asideError) throw new CapabilityError(`capture could not track this rebuild again after starting its background ingest: ${(asideError as Error).message}; the commands ran but what they did may not all be recorded`, 'ebpf');
  return { ...result, durable };
}

/**
 * Bring what the journal holds into the store (the re-run commands' new versions among it),
 * then, unless `target` is null, plan `target` again on the same open store and stamp what is
 * now up to date. Returns the new decisions (null without a target).
 */
export async function ingestAndStamp(cfg: ProvConfig, target: string | null, stamps: StampFile, holdsPending = false): Promise<Decisions | null> {
  const [{ runPipeline }, { payloadDecoders }, { joinStatePath }] = await phase('load', () =>
    Promise.all([import('../../collector/pipeline.js'), import('../decoders.js'), import('./ingest.js')]));
  const db = sqlitePath(cfg.store);
  const store = await phase('open', async () => db
    ? (await import('../../graph/sqlite/index.js')).openSqliteStore(db, { waitPendingIngest: !holdsPending })
    : (await import('../../graph/open.js')).openStore(cfg.store));
  let after: Decisions | null = null;
  const decisionFiles = new FileCache();
  try {
    await phase('ingest', async () => runPipeline({ journalDir: cfg.journal, store, statePath: joinStatePath(cfg), decoders: await payloadDecoders() }));
    if (target === null) return null;
    // The store now holds the new versions: plan again (same open store) to stamp what is up to date.
    const { assess } = await import('../../collector/rebuild/index.js');
    after = await phase('replan', () => assess(store, target, stamps, decisionFiles));
    stampFresh(after, new FileCache(), stamps);
  } finally {
    await phase('close', () => store.close());
  }
  const entry = stamps.plans[target];
  if (db) await phase('fingerprint', () => learnFingerprint(cfg.store, db, entry));
  await phase('stamp', () => saveStamps(stampPath(cfg), stamps));
  if (after && entry?.storeFiles && after.decisions.length > 0 && after.decisions.every((x) => !x.stale)) {
    const { quickOf, quickPath, writeQuick } = await import('../../collector/rebuild/quick.js');
    const a = after;
    writeQuick(quickPath(cfg.home, target), quickOf(target, entry.storeFiles, a.decisions.map((x) => x.cmd), (p) => decisionFiles.stat(p), a.hazards.length ? hazardText(a).split('\n') : []));
    // What the native client may start itself next time (collector/rebuild/start): only a
    // rebuild server hands out the capture that needs (a stale start file is ignored: its store
    // fingerprint no longer matches).
    if (deferIngest) {
      const { encodeStart, writeStart } = await import('../../collector/rebuild/start.js');
      writeStart(quickPath(cfg.home, target), encodeStart(target, entry.storeFiles, a.plan, stamps));
    }
  }
  return after;
}

/**
 * Right after this process's ingest and re-plan: vouch that the store's files, as they are now,
 * hold the checkpoint the plan was made at, so the next rebuild needs no SQLite to trust the
 * cached plan (collector/rebuild/fingerprint; without this it would load the driver for one
 * query, 5–15 ms). The fingerprint is taken before and after reading the checkpoint again: a
 * write after the re-plan changes the checkpoint read; one during the read shows in the second
 * fingerprint (the WAL reappears, or the database file's size, time or inode moves). Only a
 * writer that opened, committed and checkpointed entirely between those two steps within one
 * clock tick, leaving the file's size unchanged, could slip past — the freshness guard the
 * fingerprint otherwise applies is for files nobody watched being written.
 */
async function learnFingerprint(url: string, db: string, entry: StampFile['plans'][string] | undefined): Promise<void> {
  if (!entry?.checkpoint.startsWith('plan2:')) return;
  const { readCheckpoint } = await import('../../graph/sqlite/checkpoint.js');
  const before = storeFingerprint(url, Date.now(), true);
  const cp = readCheckpoint(db);
  const after = storeFingerprint(url, Date.now(), true);
  if (before && before === after && cp && entry.checkpoint === `plan2:${JSON.stringify(cp)}`) entry.storeFiles = before;
}

/**
 * The background half of a rebuild (cli/rebuild-finish), started before capture attaches (so it
 * is not in the captured process tree) and while the commands run it loads what the ingest
 * needs. {@link Finisher.handOver} gives it the ingest: it holds the store's pending-ingest
 * marker until the records are in and stamped, so the terminal need not wait for that while
 * whatever opens the store next (the next rebuild, `prov lineage`) does (graph/sqlite/pending).
 */
interface Finisher {
  /** Name it in the marker and let it go; false when it cannot (another marker is held, it died): ingest here. */
  handOver(): Promise<boolean>;
  /** Not needed after all: it exits without doing anything. */
  cancel(): void;
}

/** What starting the finisher needs, loaded ahead so that starting it is one synchronous step. */
async function finisherModules() {
  const [{ spawn }, { openSync, closeSync, mkdirSync }, { fileURLToPath }, { setPriority }] = await Promise.all([
    import('node:child_process'), import('node:fs'), import('node:url'), import('node:os')]);
  return { spawn, openSync, closeSync, mkdirSync, fileURLToPath, setPriority };
}

function launchFinisher(m: Awaited<ReturnType<typeof finisherModules>>, cfg: ProvConfig, db: string, target: string): Finisher | null {
  m.mkdirSync(join(cfg.home, 'rebuild'), { recursive: true, mode: 0o700 });
  const log = m.openSync(join(cfg.home, 'rebuild', 'finish.log'), 'a', 0o600);
  let child: import('node:child_process').ChildProcess;
  try {
    // stdin is the go signal: "go" starts the ingest; end of file (this process ended or cancelled) means exit.
    child = m.spawn(process.execPath, [m.fileURLToPath(new URL('../rebuild-finish.js', import.meta.url)), JSON.stringify(cfg), target], {
      detached: true, stdio: ['pipe', log, log], env: { ...process.env, PROV_REBUILD_TRACE: '' },
    });
  } catch {
    return null;
  } finally {
    m.closeSync(log);
  }
  child.on('error', () => { /* handOver finds it gone */ });
  child.unref();
  // Background work: the commands (and whatever the user does next) come first.
  try { if (child.pid !== undefined) m.setPriority(child.pid, 10); } catch { /* not allowed: same priority */ }
  const stdin = child.stdin!;
  stdin.on('error', () => { /* it exited */ });
  const done = (): void => { stdin.end(); (stdin as unknown as { unref?: () => void }).unref?.(); };
  return {
    async handOver() {
      const { claimPending, holderOf } = await import('../../graph/sqlite/pending.js');
      const holder = child.pid === undefined || child.exitCode !== null ? null : holderOf(child.pid, 'prov rebuild (ingest)');
      if (!holder || !claimPending(db, holder)) { done(); return false; }
      // A small write to an empty pipe completes at once (before this process exits).
      stdin.write('go\n');
      done();
      return true;
    },
    cancel: done,
  };
}

/**
 * Segment size of the `rebuild` journal stream. Each rebuild opens it anew, and opening a
 * writer re-reads and checks its newest segment whole (crash recovery): with the journal's
 * 64 MiB default that grows with every rebuild (≈ 0.1 MB each for a compile and a link) until
 * the segment is full. 128 KiB segments (two or three rebuilds of a small project each) bound
 * that walk to about a millisecond at the price of more segment files.
 */
const REBUILD_SEGMENT_BYTES = 128 << 10;

/** How the last run was captured (reported in --json). */
let captureMode = 'none';

/**
 * The store to plan from: an SQLite store read-only (no schema work, no WAL churn that would
 * change its fingerprint), anything else (or an SQLite file that does not exist yet) as usual.
 */
async function openPlanStore(url: string): Promise<GraphStore> {
  const path = sqlitePath(url);
  if (path && existsSync(path)) {
    const { openSqliteStore } = await import('../../graph/sqlite/index.js');
    try {
      return await openSqliteStore(path, { readonly: true });
    } catch { /* e.g. a schema to upgrade first: the usual open does it, or says why not */ }
  }
  return (await import('../../graph/open.js')).openStore(url);
}

/**
 * Before planning: wait until an earlier rebuild's background ingest is in the store; when that
 * process died first, do its ingest here (the records are durable in the journal).
 */
async function settlePending(cfg: ProvConfig, db: string): Promise<void> {
  const { waitPending, handOverPending, holderOf, releasePending } = await import('../../graph/sqlite/pending.js');
  const st = await waitPending(db);
  if (st.state === 'held') throw new StoreError(`pid ${st.holder.pid} (${st.holder.what}) has held ${db}.ingest-pending for a minute; try again when it has finished`, cfg.store);
  if (st.state !== 'orphaned') return;
  handOverPending(db, holderOf(process.pid, 'prov rebuild (ingest left by an earlier one)')!);
  try {
    await ingestAndStamp(cfg, null, loadStamps(stampPath(cfg)), true);
  } finally {
    releasePending(db, process.pid);
  }
}

let startedAt = 0;

/** Where a resident process (cli/rebuild-server) takes the background ingest; null: a finisher process. */
let deferIngest: ((task: () => Promise<void>) => void) | null = null;

/**
 * In a resident process (the rebuild server) the background half needs no process of its own:
 * everything it loads is loaded already, and a node process starting while the commands run
 * competes with them for the CPU. `defer` receives the ingest instead, to run after the answer
 * went out and before the next request. Null restores the finisher process.
 */
export function setIngestDeferral(defer: ((task: () => Promise<void>) => void) | null): void {
  deferIngest = defer;
}

/**
 * The rest of a rebuild whose ingest is deferred (see {@link setIngestDeferral}): run the stale
 * commands; on success hold the store's pending-ingest marker in this process's name and hand
 * the ingest and stamping (what cli/rebuild-finish does) to `defer`. Output as without deferral.
 */
async function deferredFinish(cfg: ProvConfig, d: Decisions & { cached: boolean }, stamps: StampFile, jobs: number, flags: RebuildFlags,
  fpLearned: boolean, db: string, target: string, file: string, defer: (task: () => Promise<void>) => void, early: EarlyStart | null,
  remote: RemoteRun | null): Promise<number> {
  const pending = await import('../../graph/sqlite/pending.js');
  // The store's pending-ingest marker is claimed while the first commands run (this process has
  // nothing else to do then), not after them: the answer waits for nothing but the commands.
  // Held from then on, as after the answer: whoever opens the store meanwhile waits for the ingest.
  let claimed: boolean | null = null;
  const claim = (): boolean => {
    if (claimed === null) {
      const holder = pending.holderOf(process.pid, 'prov rebuild-server (ingest)');
      claimed = holder !== null && pending.claimPending(db, holder);
    }
    return claimed;
  };
  let result: RunResult & { durable?: () => Promise<void> };
  try {
    result = await runCaptured(cfg, d, stamps, jobs, (flags.progress ?? isInteractive), Boolean(flags.cold), null, true, () => { claim(); }, early,
      remote ? { run: remote, file } : null);
  } catch (err) {
    if (claimed) pending.releasePending(db, process.pid);
    throw err;
  }
  if (result.failed && claimed) {
    // The failed run's ingest is done before the answer, as without deferral: not held meanwhile.
    pending.releasePending(db, process.pid);
    claimed = false;
  }
  /** The journal flush the capture left for after the answer (see runCaptured); at most once. */
  let durable: Promise<void> | null = null;
  const makeDurable = (): Promise<void> => (durable ??= phase('durable', async () => { await result.durable?.(); }));
  try {
    return await answerDeferred(cfg, d, stamps, result, fpLearned, db, target, file, defer, makeDurable, claim);
  } catch (err) {
    // Whatever went wrong, the capture is released (it is held until durable).
    await makeDurable().catch(() => undefined);
    throw err;
  }
}

async function answerDeferred(cfg: ProvConfig, d: Decisions & { cached: boolean }, stamps: StampFile, result: RunResult, fpLearned: boolean,
  db: string, target: string, file: string, defer: (task: () => Promise<void>) => void, makeDurable: () => Promise<void>, claim: () => boolean): Promise<number> {
  const sp = stampPath(cfg);
  if (result.failed) {
    // As without deferral: ingest what the failed run recorded now, then report the failure.
    await makeDurable();
    await ingestAndStamp(cfg, null, stamps);
    const f = result.failed;
    saveStamps(sp, stamps);
    printFailed(f);
    return 1;
  }
  const handed = await phase('handoff', async () => {
    const { releasePending } = await import('../../graph/sqlite/pending.js');
    // Claimed while the commands ran, or now (none started: all cut off).
    if (!claim()) return false;
    // What this run learned (a new plan, the store's fingerprint, cut-off commands' stamps) stays
    // in `stamps`, which the deferred ingest takes over and saves: nothing to write before the answer.
    defer(async () => {
      const { appendFileSync, mkdirSync } = await import('node:fs');
      const log = (m: string): void => {
        mkdirSync(join(cfg.home, 'rebuild'), { recursive: true, mode: 0o700 });
        appendFileSync(join(cfg.home, 'rebuild', 'finish.log'), `${new Date().toISOString()} prov rebuild ${target}: ${m}\n`, { mode: 0o600 });
      };
      try {
        await makeDurable();
        // The capture is released: armed for the next request now, not after the ingest, which
        // a quick next request would otherwise find still running (ebpf/warm prearmWarm).
        await (await import('../../ebpf/warm.js')).prearmWarm();
        const still = stillStaleText(await ingestAndStamp(cfg, target, stamps, true));
        if (still) log(still);
        // The next request decides on the plan just made: what it can work out ahead, now.
        const next = stamps.plans[target]?.plan;
        if (next) {
          const [{ preparePlan }, { envpFor }] = await Promise.all([import('../../collector/rebuild/decide.js'), import('../../collector/rebuild/run.js')]);
          preparePlan(next);
          for (const c of next.commands) envpFor(c);
        }
      } catch (err) {
        // This process lives on, so the marker cannot be left to name it: the records stay in the
        // journal and the next ingest (a rebuild that runs something, prov ingest) brings them in.
        log(`ingest failed, left for the next one: ${(err as Error).message}`);
        try { if (!d.cached || fpLearned || result.skipped.length) saveStamps(sp, stamps); } catch { /* learned again next time */ }
      } finally {
        releasePending(db, process.pid);
      }
    });
    return true;
  });
  if (!handed) {
    await makeDurable();
    await ingestAndStamp(cfg, target, stamps);
  }
  // The client that ran the commands printed their output and the summary already.
  if (!result.byClient) printRebuilt(result, d, file);
  return 0;
}

/** Milliseconds spent per phase (reported in --json); `total` is the action's own time, `startup` what came before it. */
const timings: Record<string, number> = {};
async function phase<T>(name: string, f: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  try { return await f(); } finally { timings[name] = Math.round((timings[name] ?? 0) + performance.now() - t0); mark(`${name} done`); }
}

export default async function rebuild(cfg: ProvConfig, file: string, flags: RebuildFlags): Promise<number> {
  for (const k of Object.keys(timings)) delete timings[k];
  // The first call in a process: what came before it since the process started (node's own
  // start-up, loading the CLI).
  if (startedAt === 0) timings.startup = Math.round(performance.now());
  startedAt = performance.now();
  mark('rebuild action entered');
  captureMode = 'none';
  if (!file) throw new InputError('a file to rebuild is required', 'FILE');
  const jobs = flags.jobs === undefined || flags.jobs === 0 ? availableParallelism() : flags.jobs;
  if (!Number.isInteger(jobs) || jobs < 1) throw new InputError(`--jobs must be a whole number ≥ 1 (got ${String(flags.jobs)})`, '--jobs');
  const target = resolve(file);
  const sp = stampPath(cfg);
  const dbPath = sqlitePath(cfg.store);
  if (dbPath && existsSync(`${dbPath}.ingest-pending`)) await phase('wait', () => settlePending(cfg, dbPath));
  const stamps: StampFile = await phase('stamps', () => loadStamps(sp));
  const files = new FileCache();
  // The fingerprint is taken before the store is read: a change after it shows next time.
  const fp = storeFingerprint(cfg.store);
  const hit = stamps.plans[target];
  let d: Decisions & { cached: boolean };
  let fpLearned = false;
  const background = !flags.json && dbPath && !process.env.PROV_REBUILD_SYNC;
  // In the rebuild server, a plain rebuild starts its first stale command before the rest of
  // the plan is decided (startEarly).
  const mayStartEarly = Boolean(background && deferIngest && !flags.dryRun && !flags.explain && !flags.cold);
  let early: EarlyStart | null = null;
  const selfStarted = flags.selfStarted ?? [];
  const remote = flags.client && ((mayStartEarly && !process.env.PROV_REBUILD_NODE_SPAWN) || selfStarted.length > 0)
    ? new (await import('../../collector/rebuild/remote.js')).RemoteRun(flags.client) : null;
  if (selfStarted.length > 0 && (!remote || !background || !deferIngest)) {
    throw new InputError('the prov client started commands itself but this rebuild cannot take them over (not a plain rebuild through the server); they ran under capture: run prov rebuild again', 'request');
  }
  const decideCached = async (plan: Plan): Promise<Decisions & { cached: boolean }> => {
    const decider = new Decider(plan, files, stamps);
    // The client started the first commands itself: nothing to start early here.
    if (mayStartEarly && selfStarted.length === 0) early = await phase('early start', () => startEarly(cfg, decider, plan, remote));
    return phase('plan+decide', () => ({ ...decider.finish(), cached: true }));
  };
  try {
    if (fp && hit?.storeFiles === fp && hit.checkpoint.startsWith('plan2:')) {
      // The store's files are as they were when this plan was checked: no SQLite needed.
      d = await decideCached(hit.plan);
    } else if (dbPath && hit?.checkpoint.startsWith('plan2:') && await phase('plan+decide', async () =>
      hit.checkpoint === `plan2:${JSON.stringify((await import('../../graph/sqlite/checkpoint.js')).readCheckpoint(dbPath))}`)) {
      // The files changed (an ingest that brought nothing new for this plan, e.g. the one after
      // the last rebuild) but the checkpoint the plan was made at did not: one query, not the store.
      d = await decideCached(hit.plan);
      if (fp) { hit.storeFiles = fp; fpLearned = true; }
    } else {
      const store = await phase('plan+decide', () => openPlanStore(cfg.store));
      try {
        d = await phase('plan+decide', async () => (await import('../../collector/rebuild/index.js')).assess(store, target, stamps, files));
      } finally {
        await store.close();
      }
      const entry = stamps.plans[target];
      if (fp && entry && entry.storeFiles !== fp) { entry.storeFiles = fp; fpLearned = true; }
    }
    // What the client started itself takes the first places (and runs even if not found stale).
    if (selfStarted.length > 0) remote!.adopt(selfStarted, d.plan);
    const staleCount = d.decisions.filter((x) => x.stale).length + (remote?.adopted ?? 0);
    const out: string[] = [];
    if (!flags.json) {
      if (flags.explain || flags.dryRun) out.push(explainText(d, Boolean(flags.dryRun)));
      if (d.hazards.length) process.stderr.write(hazardText(d) + '\n');
    }
    if (flags.dryRun || staleCount === 0) {
      // The stamp file is rewritten only when it learned something (a no-op stays read-only).
      if (!flags.dryRun && (stampFresh(d, files, stamps) > 0 || !d.cached || fpLearned)) saveStamps(sp, stamps);
      if (!flags.dryRun && d.decisions.length > 0 && fp && stamps.plans[target]?.storeFiles === fp) {
        // Next time, while nothing changed, the answer comes from the no-op shortcut.
        const { quickOf, quickPath, writeQuick } = await import('../../collector/rebuild/quick.js');
        writeQuick(quickPath(cfg.home, target), quickOf(target, fp, d.decisions.map((x) => x.cmd), (p) => files.stat(p), d.hazards.length ? hazardText(d).split('\n') : []));
        if (deferIngest) {
          const { encodeStart, writeStart } = await import('../../collector/rebuild/start.js');
          writeStart(quickPath(cfg.home, target), encodeStart(target, fp, d.plan, stamps));
        }
      }
      if (flags.json) process.stdout.write(JSON.stringify(jsonOf(d, d.cached, null), null, 2) + '\n');
      else {
        if (d.decisions.length === 0) out.push(`${file}: no recorded command wrote this version (a source file): nothing to rebuild`);
        else if (!flags.explain && !flags.dryRun) out.push(`${file}: up to date (${d.decisions.length} recorded commands)`);
        else if (flags.dryRun) out.push(`${staleCount} of ${d.decisions.length} commands would run`);
        process.stdout.write(out.join('\n') + '\n');
      }
      return 0;
    }
    if (out.length) process.stdout.write(out.join('\n') + '\n');
    if (background && deferIngest) return await deferredFinish(cfg, d, stamps, jobs, flags, fpLearned, dbPath, target, file, deferIngest, early, remote);
  } finally {
    await abandonEarly(early);
  }
  // The background half (see Finisher) starts while the first commands run, outside capture.
  const fm = background ? await finisherModules() : null;
  let finisher = null as Finisher | null;
  const aside = fm && dbPath ? () => { finisher = launchFinisher(fm, cfg, dbPath, target); } : null;
  let result: RunResult;
  try {
    result = await runCaptured(cfg, d, stamps, jobs, (flags.progress ?? isInteractive) && !flags.json, Boolean(flags.cold), aside);
  } catch (err) {
    finisher?.cancel();
    throw err;
  }
  if (finisher && result.failed) finisher.cancel();
  // No command started (all cut off): capture is detached by now, start it here.
  if (aside && !finisher && !result.failed) aside();
  if (finisher && !result.failed) {
    const f: Finisher = finisher;
    // What this run learned (a new plan, the store's fingerprint, cut-off commands' stamps) goes
    // to disk before the background ingest reads the stamps.
    await phase('handoff', async () => {
      if (!d.cached || fpLearned || result.skipped.length) saveStamps(sp, stamps);
      return f.handOver();
    }).then(async (handed) => {
      if (!handed) await ingestAndStamp(cfg, target, stamps);
    });
    printRebuilt(result, d, file);
    return 0;
  }
  const replanned = await ingestAndStamp(cfg, result.failed ? null : target, stamps);
  if (result.failed || !replanned) {
    const f = result.failed!;
    saveStamps(sp, stamps);
    if (flags.json) process.stdout.write(JSON.stringify(jsonOf(d, d.cached, result), null, 2) + '\n');
    else printFailed(f);
    return 1;
  }
  const after = replanned;
  if (flags.json) {
    const still = after.decisions.filter((x) => x.stale);
    process.stdout.write(JSON.stringify({ ...(jsonOf(d, d.cached, result) as object), staleAfter: still.map((x) => ({ argv: x.cmd.argv, reasons: x.reasons })) }, null, 2) + '\n');
  } else {
    printRebuilt(result, d, file);
    const still = stillStaleText(after);
    if (still) process.stderr.write(`prov rebuild: ${still}\n`);
  }
  return 0;
}
