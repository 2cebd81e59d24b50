/**
 * @module cli/actions/rebuild
 * `prov rebuild FILE`: transparent make from recorded provenance. Plans FILE's producing
 * commands from the graph store, decides which are stale, re-runs only those (dependency
 * order, --jobs in parallel) under eBPF capture into the same journal, ingests the new record,
 * and stamps what is now up to date (collector/rebuild). --dry-run prints the plan, --explain
 * why each command runs or not, --json all of it (environments redacted).
 * Exit codes: 0 up to date or rebuilt, 1 a command failed, 2 bad input, 3 FILE unknown to the
 * store, 4 capture unavailable or a command needs another user.
 */
import { availableParallelism } from 'node:os';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ProvConfig } from '../config.js';
import { openStore } from '../../graph/open.js';
import { InputError } from '../../graph/errors.js';
import { isInteractive } from '../../collector/log.js';
import {
  assess, decide, stampFresh, runCommands, preflight, loadStamps, saveStamps, FileCache, redactEnv, type Decisions, type RunResult, type StampFile,
} from '../../collector/rebuild/index.js';
import { Cutoff } from '../../collector/rebuild/cutoff.js';
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
}

/** Where rebuild's stamps live (0600 in a 0700 directory). */
export function stampPath(cfg: ProvConfig): string {
  return join(cfg.home, 'rebuild', 'stamps.json');
}

const show = (argv: string[]): string => argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');

function explainText(d: Decisions, dry: boolean): string {
  const lines: string[] = [];
  for (const { cmd, stale, reasons } of d.decisions) {
    lines.push(`${stale ? (dry ? 'would run' : 'run ') : 'skip'}  ${show(cmd.argv)}    (in ${cmd.cwd}, uid ${cmd.uid})`);
    if (stale) for (const r of reasons) lines.push(`      because ${r}`);
    else lines.push(`      up to date: ${cmd.inputs.length} inputs, ${cmd.outputs.length} outputs unchanged`);
    const env = redactEnv(cmd.env);
    if (env) lines.push(`      env: ${env.join(' ')}`);
  }
  return lines.join('\n');
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
 * Run the stale commands under eBPF capture into cfg.journal, then ingest the new record and
 * plan again on the same open store. Capture is, in order of preference: a running
 * `prov capture` into this journal; the warm attach left by an earlier rebuild (ebpf/warm; the
 * first rebuild leaves it); a private attach for this run (`--cold`, or the warm one is busy).
 */
async function runCaptured(cfg: ProvConfig, d: Decisions, stamps: StampFile, jobs: number, progress: boolean, cold: boolean, target: string): Promise<{ result: RunResult; after: Decisions | null }> {
  const stale = d.decisions.filter((x) => x.stale).map((x) => x.cmd);
  preflight(stale); // refuse before capture attaches
  const daemonWait = await phase('attach', () => daemonCapture(cfg));
  let handle: { stop(): Promise<unknown> };
  if (daemonWait) handle = { stop: daemonWait };
  else {
    handle = await phase('attach', async () => {
      const { warmCapture } = await import('../../ebpf/warm.js');
      const warm = cold ? null : await warmCapture({ journalDir: cfg.journal, stream: 'rebuild', ringBytes: 16 << 20, segmentBytes: REBUILD_SEGMENT_BYTES });
      if (warm) { captureMode = warm.reused ? 'warm' : 'warm (attached now)'; return warm; }
      captureMode = cold ? 'cold' : 'private (warm attach busy)';
      const { captureToJournal } = await import('../../ebpf/capture.js');
      // Our children (and theirs) are tracked from their fork on; this process itself is excluded.
      return captureToJournal({
        journalDir: cfg.journal, stream: 'rebuild', pinDir: `/sys/fs/bpf/prov-rebuild-${process.pid}`,
        pidTree: [process.pid], ringBytes: 16 << 20, segmentBytes: REBUILD_SEGMENT_BYTES,
      });
    });
  }
  let result: RunResult;
  let n = 0;
  const cutoff = new Cutoff(d, stamps);
  let ingestModules: Promise<[typeof import('../../collector/pipeline.js'), typeof import('../decoders.js'), typeof import('./ingest.js')]> | null = null;
  try {
    // The first commands are spawned before this call returns; what the ingest needs then
    // loads while they run (child processes), not before they start.
    const running = phase('run', () => runCommands(stale, {
      jobs,
      skip: (c) => cutoff.skip(c),
      onEnd: (o) => { mark(`exit ${o.cmd.argv.slice(0, 3).join(' ')}`); if (o.code === 0) cutoff.finished(o.cmd); },
      onStart: (c) => { mark(`spawn ${c.argv.slice(0, 3).join(' ')}`); if (progress) process.stderr.write(`\r\x1b[2K[${++n}/${stale.length}] ${show(c.argv).slice(0, 100)}`); },
    }));
    ingestModules = Promise.all([import('../../collector/pipeline.js'), import('../decoders.js'), import('./ingest.js')]);
    ingestModules.catch(() => { /* awaited below */ });
    result = await running;
  } finally {
    await phase('detach', async () => { await handle.stop(); });
    if (progress) process.stderr.write('\r\x1b[2K');
  }
  const [{ runPipeline }, { payloadDecoders }, { joinStatePath }] = await phase('load', () => ingestModules!);
  const store = await phase('open', () => openStore(cfg.store));
  try {
    await phase('ingest', async () => runPipeline({ journalDir: cfg.journal, store, statePath: joinStatePath(cfg), decoders: await payloadDecoders() }));
    if (result.failed) return { result, after: null };
    // The store now holds the new versions: plan again (same open store) to stamp what is up to date.
    const after = await phase('replan', () => assess(store, target, stamps, new FileCache()));
    return { result, after };
  } finally {
    await phase('close', () => store.close());
  }
}

/**
 * Segment size of the `rebuild` journal stream. Each rebuild opens it anew, and opening a
 * writer re-reads and checks its newest segment whole (crash recovery): with the journal's
 * 64 MiB default that grows with every rebuild (≈ 0.1 MB each for a compile and a link) until
 * the segment is full; 1 MiB segments bound it to a few milliseconds.
 */
const REBUILD_SEGMENT_BYTES = 1 << 20;

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
  return openStore(url);
}

let startedAt = 0;

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
  const stamps: StampFile = await phase('stamps', () => loadStamps(sp));
  const files = new FileCache();
  // The fingerprint is taken before the store is read: a change after it shows next time.
  const fp = storeFingerprint(cfg.store);
  const hit = stamps.plans[target];
  let d: Awaited<ReturnType<typeof assess>>;
  let fpLearned = false;
  if (fp && hit?.storeFiles === fp && hit.checkpoint.startsWith('plan2:')) {
    // The store's files are as they were when this plan was checked: no SQLite needed.
    d = await phase('plan+decide', () => ({ ...decide(hit.plan, files, stamps), cached: true }));
  } else {
    const store = await phase('plan+decide', () => openPlanStore(cfg.store));
    try {
      d = await phase('plan+decide', () => assess(store, target, stamps, files));
    } finally {
      await store.close();
    }
    const entry = stamps.plans[target];
    if (fp && entry && entry.storeFiles !== fp) { entry.storeFiles = fp; fpLearned = true; }
  }
  const staleCount = d.decisions.filter((x) => x.stale).length;
  const out: string[] = [];
  if (!flags.json) {
    if (flags.explain || flags.dryRun) out.push(explainText(d, Boolean(flags.dryRun)));
    if (d.hazards.length) process.stderr.write(hazardText(d) + '\n');
  }
  if (flags.dryRun || staleCount === 0) {
    // The stamp file is rewritten only when it learned something (a no-op stays read-only).
    if (!flags.dryRun && (stampFresh(d, files, stamps) > 0 || !d.cached || fpLearned)) saveStamps(sp, stamps);
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
  const { result, after: replanned } = await runCaptured(cfg, d, stamps, jobs, isInteractive && !flags.json, Boolean(flags.cold), target);
  if (result.failed || !replanned) {
    const f = result.failed!;
    saveStamps(sp, stamps);
    if (flags.json) process.stdout.write(JSON.stringify(jsonOf(d, d.cached, result), null, 2) + '\n');
    else {
      process.stdout.write(f.stdout);
      process.stderr.write(f.stderr);
      process.stderr.write(`prov rebuild: \`${show(f.cmd.argv)}\` failed (${f.signal ? `signal ${f.signal}` : `exit ${f.code}`}); stopped\n`);
    }
    return 1;
  }
  const after = replanned;
  await phase('stamp', () => { stampFresh(after, new FileCache(), stamps); saveStamps(sp, stamps); });
  const still = after.decisions.filter((x) => x.stale);
  if (flags.json) process.stdout.write(JSON.stringify({ ...(jsonOf(d, d.cached, result) as object), staleAfter: still.map((x) => ({ argv: x.cmd.argv, reasons: x.reasons })) }, null, 2) + '\n');
  else {
    for (const o of result.ran) if (o.stdout) process.stdout.write(o.stdout);
    for (const x of result.skipped) process.stdout.write(`not run: ${show(x.cmd.argv)} (${x.why})\n`);
    process.stdout.write(`rebuilt ${file}: ran ${result.ran.length} of ${d.decisions.length} commands${result.skipped.length ? `, ${result.skipped.length} cut off` : ''}\n`);
    if (still.length) process.stderr.write(`prov rebuild: ${still.length} commands still look stale after the run: ${still.map((x) => `\`${show(x.cmd.argv)}\` (${x.reasons[0]})`).join('; ')}\n`);
  }
  return 0;
}
