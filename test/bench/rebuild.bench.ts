/**
 * @module test/bench/rebuild.bench
 * `prov rebuild` against make on the same recorded C project (root, real eBPF capture), each
 * contender given a fresh change of the same kind after a 200 ms pause (a person's edit),
 * interleaved (A B C, B C A, …) in the same directory — except the command-line rebuilds of a
 * change, which work on a copy with a store of their own (their ingests would change the store
 * the served runs plan from); every run must leave a working binary.
 * 1. 4-file project, one .c changed: `prov rebuild app` through the native client and the
 *    resident server (cli/rebuild-server) and through the plain CLI (warm attach an earlier
 *    rebuild left; the ingest goes to the background) vs `make` vs `make -jN` vs
 *    `prov rebuild app --cold` (own eBPF attach and detach) vs `node -e 0` (the floor: starting
 *    node and doing nothing); no-op: client vs CLI vs make;
 * 2. 4-file project, the header changed (3 compiles + link), always at the same parallelism:
 *    served `prov rebuild --jobs 1` vs `make -j1` and served and CLI `--jobs N` vs `make -jN`
 *    (N = CPUs, prov's default; make's default is 1);
 * 3. 100-file project: no-op (client, command, and the action inside a running process), one
 *    .c changed, the header changed (99 compiles + link; --jobs 1 vs -j1, --jobs N vs -jN).
 * Also, in CPU time (getrusage of waited-for children; wall time on this shared machine swings
 * far more than the effect): the compile and link under the warm capture vs with nothing
 * attached vs make re-making the same two targets — the capture's cost on the commands.
 * After each prov run the bench waits until its background ingest is in the store (the
 * store's pending-ingest marker is gone) before the next contender starts, and reports that
 * time separately: the user's terminal was free by then, but the machine was not.
 * A timeline of each prov run (PROV_REBUILD_TRACE=json) gives the breakdown table.
 * 4. rebuild-one's scheduler split (4 and 100 files, one .c changed): prov's own time against
 *    make's, apart from the commands', whose run-to-run noise decides the wall-time ratios.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg, availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCaptured } from '../../ebpf/run-captured.js';
import { runPipeline } from '../../collector/pipeline.js';
import { openStore } from '../../graph/open.js';
import { ebpfDecoders } from '../../ebpf/decode.js';
import { resolveConfig, type ProvConfig } from '../../cli/config.js';
import { joinStatePath } from '../../cli/actions/ingest.js';
import rebuild from '../../cli/actions/rebuild.js';
import { writeCProject } from '../rebuild/project.js';
import { detachWarm, warmCapture } from '../../ebpf/warm.js';
import { spawnFast } from '../../collector/rebuild/spawn.js';
import koffi from 'koffi';
import { pendingPath } from '../../graph/sqlite/pending.js';
import { printResult } from './standalone.js';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow, type BenchTable } from './types.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
/** The native client (cli/prov-client.c, built by cli/build.sh). */
const CLIENT = fileURLToPath(new URL('../../cli/prov', import.meta.url));

/**
 * Start `prov rebuild-server` on a private runtime directory; resolves once it listens.
 * Returns its stop (SIGTERM by pid, waits for the exit).
 */
async function startServer(env: NodeJS.ProcessEnv): Promise<{ pid: number; stop(): Promise<void> }> {
  const s = spawn(process.execPath, [CLI, 'rebuild-server', '--idle-minutes', '10'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    s.stderr!.on('data', (d: Buffer) => { log += d.toString(); if (log.includes('listening on')) resolve(); });
    s.once('exit', (code) => reject(new Error(`rebuild-server exited (${code}) before listening: ${log}`)));
  });
  return {
    pid: s.pid!,
    async stop() {
      if (s.exitCode !== null) return;
      const gone = new Promise((r) => s.once('exit', r));
      process.kill(s.pid!, 'SIGTERM');
      await gone;
    },
  };
}

async function recordMake(cfg: ProvConfig, dir: string): Promise<void> {
  const r = await runCaptured(['make'], { cwd: dir, journalDir: cfg.journal, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`make failed under capture: ${r.stderr}`);
  const store = await openStore(cfg.store);
  try {
    await runPipeline({ journalDir: cfg.journal, store, statePath: joinStatePath(cfg), decoders: ebpfDecoders });
  } finally {
    await store.close();
  }
}

interface Timed { s: number; trace: Array<{ name: string; ms: number }> | null; stderr: string }

function timed(argv: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Timed {
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, encoding: 'utf8', env });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  let trace: Timed['trace'] = null;
  for (const line of r.stderr.split('\n')) if (line.startsWith('{"trace"')) trace = (JSON.parse(line) as { trace: Timed['trace'] }).trace;
  return { s: ms / 1000, trace, stderr: r.stderr };
}

/**
 * Milliseconds of quiet before every timed rebuild of a change, for every contender alike: a
 * person's edit takes longer than that, and prov's no-op shortcut and fast start trust the store's
 * files only once they are 100 ms old (rebuild-one uses the same pause).
 */
const EDIT_PAUSE_MS = 200;
const editPause = (): Promise<void> => new Promise((r) => setTimeout(r, EDIT_PAUSE_MS));

/** Seconds until the store's pending-ingest marker is gone (the background ingest is in). */
export async function settle(cfg: ProvConfig): Promise<number> {
  const marker = pendingPath(join(cfg.home, 'graph.db'));
  const t0 = performance.now();
  while (existsSync(marker)) {
    if (performance.now() - t0 > 60_000) throw new Error('background ingest still pending after 60 s');
    await new Promise((r) => setTimeout(r, 2));
  }
  return (performance.now() - t0) / 1000;
}

function checkApp(dir: string): void {
  const r = spawnSync(join(dir, 'app'), { encoding: 'utf8' });
  if (r.status !== 0 || r.stdout !== '42\n') throw new Error(`app broken after a run: ${r.status} ${r.stdout}`);
}

function row(figure: string, prov: number[], base: number[] | null, baseName: string, goal: string, note: string, unit = 's'): BenchRow {
  const p = median(prov);
  const b = base ? median(base) : null;
  return {
    figure, unit, prov: Number(p.toFixed(4)), baseline: b === null ? null : Number(b.toFixed(4)), baselineName: base ? baseName : undefined,
    ratio: b === null ? null : Number((b / p).toFixed(3)), better: 'lower',
    spread: { prov: Number(spread(prov).toFixed(3)), ...(base ? { baseline: Number(spread(base).toFixed(3)) } : {}) },
    repeats: prov.length, goal, note: b === null ? note : `${note}; prov/${baseName} = ${(p / b).toFixed(2)} (goal ≤ 1)`,
  };
}

/** Phases of one prov run's timeline, in ms (see collector/rebuild/trace). */
function phases(trace: NonNullable<Timed['trace']>, wallS: number): Record<string, number> {
  const at = (name: string): number | undefined => [...trace].reverse().find((m) => m.name === name)?.ms;
  const first = (prefix: string): number | undefined => trace.find((m) => m.name.startsWith(prefix))?.ms;
  const last = (prefix: string): number | undefined => [...trace].reverse().find((m) => m.name.startsWith(prefix))?.ms;
  const boot = at('node: bootstrap complete') ?? at('request received') ?? 0;
  const shortcut = at('answered from the no-op shortcut');
  if (shortcut !== undefined) {
    return {
      'node start-up (to bootstrap complete)': boot,
      'prov CLI parse + the no-op shortcut (stat every file)': shortcut - boot,
      'process exit (after the action)': Math.max(0, wallS * 1000 - (at('exit') ?? shortcut)),
    };
  }
  const entered = at('rebuild action entered') ?? boot;
  const stamps = at('stamps done') ?? entered;
  const planned = at('plan+decide done') ?? stamps;
  const attached = at('attach done') ?? planned;
  const ran = at('run done') ?? attached;
  const detached = at('detach done') ?? ran;
  const handed = at('handoff done') ?? detached;
  const exit = at('exit') ?? handed;
  const spawn = first('spawn ') ?? attached;
  const lastExit = last('exit ') ?? ran;
  return {
    'node start-up (to bootstrap complete)': boot,
    'prov modules + CLI parse': entered - boot,
    'wait for an earlier background ingest + load stamps': stamps - entered,
    'plan + decide (cached plan, stat/hash inputs)': planned - stamps,
    'capture attach (load libbpf/koffi, track pid, open journal)': attached - planned,
    'commands (first spawn → last exit)': lastExit - spawn,
    'drain + detach': detached - ran,
    'hand-off to the background ingest': handed - detached,
    'process exit (after the action)': Math.max(0, wallS * 1000 - exit),
  };
}

function breakdownTable(title: string, traces: Array<{ trace: Timed['trace']; s: number }>, bg: number[]): BenchTable {
  const rows = traces.filter((t) => t.trace).map((t) => phases(t.trace!, t.s));
  const keys = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const table = keys.map((k) => [k, median(rows.map((r) => r[k] ?? 0)).toFixed(1)]);
  table.push(['total (wall, measured outside)', (median(traces.map((t) => t.s)) * 1000).toFixed(1)]);
  if (bg.length) table.push(['background ingest after exit (not in the total)', (median(bg) * 1000).toFixed(1)]);
  return { title, columns: ['phase', 'median ms'], rows: table, caption: `${rows.length} runs; PROV_REBUILD_TRACE=json timelines` };
}

/** CPU seconds (user + system) of this process's waited-for children so far (getrusage RUSAGE_CHILDREN, µs resolution). */
let getrusage: ((who: number, out: Buffer) => number) | null = null;
function childrenCpu(): number {
  getrusage ??= koffi.load('libc.so.6').func('int getrusage(int who, _Out_ uint8_t *usage)') as (who: number, out: Buffer) => number;
  const b = Buffer.alloc(256);
  if (getrusage(-1, b) !== 0) throw new Error('getrusage failed');
  const tv = (o: number): number => Number(b.readBigInt64LE(o)) + Number(b.readBigInt64LE(o + 8)) / 1e6;
  return tv(0) + tv(16);
}

/**
 * The capture's cost on the commands themselves, in CPU time (wall time on this shared machine
 * is too noisy for a 10 % effect): the compile and link of one changed .c run from this
 * process with posix_spawn as the rebuild runs them, under the warm attach (tracked, drained
 * into a scratch journal) and not, against `make` re-making the same two targets. Interleaved.
 */
async function commandCpu(dir: string, repeats: number): Promise<{ captured: number[]; plain: number[]; make: number[] }> {
  const journalDir = mkdtempSync(join(tmpdir(), 'prov-rbb-cpu-j-'));
  const cmds = [['cc', '-O1', '-g', '-c', 'util.c', '-o', 'util.o'], ['cc', '-g', '-o', 'app', 'main.o', 'util.o', 'plain.o', 'm3.o']];
  const runBoth = async (): Promise<number> => {
    const c0 = childrenCpu();
    for (const a of cmds) {
      const o = await spawnFast('/usr/bin/cc', a, process.env, dir)!.done;
      if (o.code !== 0) throw new Error(`${a.join(' ')} failed: ${o.stderr}`);
    }
    return childrenCpu() - c0;
  };
  const out = { captured: [] as number[], plain: [] as number[], make: [] as number[] };
  try {
    for (let i = 0; i < repeats; i++) {
      const h = await warmCapture({ journalDir, stream: 'cpu', ringBytes: 16 << 20 });
      if (!h) throw new Error('the warm attach is busy');
      try { out.captured.push(await runBoth()); } finally { await h.stop(); }
      out.plain.push(await runBoth());
      const c0 = childrenCpu();
      const m = spawnSync('make', ['-B', '-o', 'main.o', '-o', 'plain.o', '-o', 'm3.o'], { cwd: dir, stdio: 'ignore' });
      if (m.status !== 0) throw new Error('make -B failed');
      out.make.push(childrenCpu() - c0);
    }
  } finally {
    rmSync(journalDir, { recursive: true, force: true });
  }
  return out;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the rebuild bench needs root (eBPF capture)');
  const repeats = opts.quick ? 3 : 7;
  const rows: BenchRow[] = [];
  const tables: BenchTable[] = [];
  const tmp: string[] = [];
  const traceEnv: NodeJS.ProcessEnv = { ...process.env, PROV_REBUILD_TRACE: 'json' };
  const prov = (home: string, ...extra: string[]): string[] => [process.execPath, CLI, '--home', home, 'rebuild', 'app', ...extra];
  // The warm attach the rebuilds leave (ebpf/warm) is the bench's own, detached at the end.
  const prevPin = process.env.PROV_REBUILD_PIN_DIR;
  process.env.PROV_REBUILD_PIN_DIR = `/sys/fs/bpf/prov-rbbench-warm-${process.pid}`;
  traceEnv.PROV_REBUILD_PIN_DIR = process.env.PROV_REBUILD_PIN_DIR;
  if (!existsSync(CLIENT)) throw new Error(`${CLIENT} is missing: run bash cli/build.sh (needs cc)`);
  // The resident server (cli/rebuild-server) on a private runtime directory; the client reaches it there.
  const rt = mkdtempSync('/tmp/prov-rbb-rt-');
  // The server's timelines go to a file: the client that ran the commands exits without waiting for them.
  const traceFile = join(rt, 'trace.jsonl');
  const servedEnv: NodeJS.ProcessEnv = { ...traceEnv, PROV_RUNTIME_DIR: rt, PROV_REBUILD_TRACE_FILE: traceFile };
  const server = await startServer({ ...process.env, PROV_RUNTIME_DIR: rt, PROV_LOG: 'warn' });
  const served = (home: string, ...extra: string[]): string[] => [CLIENT, '--home', home, 'rebuild', 'app', ...extra];
  // A no-op the native client answers itself from the shortcut (no server, no node): without a
  // trace requested, which it leaves to the server.
  const clientEnv: NodeJS.ProcessEnv = { ...servedEnv, PROV_REBUILD_TRACE: '' };
  const upToDate = (t: Timed): Timed => {
    if (t.stderr.includes('"trace"')) throw new Error('a no-op went to the server or node');
    return t;
  };
  // Called once the run's background ingest is in (settle): the server wrote its timeline by then.
  const isServed = (t: Timed): Timed => {
    if (!t.trace && existsSync(traceFile)) {
      for (const line of readFileSync(traceFile, 'utf8').split('\n')) if (line.startsWith('{"trace"')) t.trace = (JSON.parse(line) as { trace: Timed['trace'] }).trace;
      writeFileSync(traceFile, '');
    }
    if (!t.trace?.some((m) => m.name === 'request received')) throw new Error(`the client did not reach the server: ${t.stderr}`);
    return t;
  };
  /**
   * The project the command-line contenders rebuild: a copy with a store of its own. Their
   * ingests would otherwise change the store the served runs plan from, and a served run right
   * after one could use neither the no-op shortcut's fingerprint nor the fast start.
   */
  const cliCopy = async (files: number): Promise<{ home: string; dir: string; cfg: ProvConfig }> => {
    const home = mkdtempSync(join(tmpdir(), 'prov-rbb-home-cli-'));
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rbb-c-cli-')));
    tmp.push(home, dir);
    const cfg = resolveConfig({ home });
    writeCProject(dir, files);
    await recordMake(cfg, dir);
    timed(prov(home), dir); // plans, stamps
    return { home, dir, cfg };
  };
  try {
    // 1 and 2: a small project (4 files), make vs rebuild in the same directory.
    {
      const home = mkdtempSync(join(tmpdir(), 'prov-rbb-home-'));
      const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rbb-c-')));
      tmp.push(home, dir);
      const cfg = resolveConfig({ home });
      writeCProject(dir, 4);
      await recordMake(cfg, dir);
      timed(prov(home), dir); // stamps
      const { home: cliHome, dir: cliDir, cfg: cliCfg } = await cliCopy(4);
      const warm: Timed[] = [], make: number[] = [], cold: number[] = [], floor: number[] = [], bg: number[] = [];
      const srv: Timed[] = [], srvBg: number[] = [], makeJ: number[] = [];
      isServed(timed(served(home, '--dry-run'), dir, servedEnv));
      const contenders: Array<() => Promise<void>> = [
        async () => { appendFileSync(join(dir, 'util.c'), `int bench_s${srv.length}(void) { return 1; }\n`); const t = timed(served(home), dir, servedEnv); srvBg.push(await settle(cfg)); srv.push(isServed(t)); checkApp(dir); },
        async () => { appendFileSync(join(cliDir, 'util.c'), `int bench_a${warm.length}(void) { return 1; }\n`); warm.push(timed(prov(cliHome), cliDir, traceEnv)); bg.push(await settle(cliCfg)); checkApp(cliDir); },
        async () => { appendFileSync(join(dir, 'util.c'), `int bench_b${make.length}(void) { return 1; }\n`); make.push(timed(['make'], dir).s); checkApp(dir); },
        async () => { appendFileSync(join(cliDir, 'util.c'), `int bench_c${cold.length}(void) { return 1; }\n`); cold.push(timed(prov(cliHome, '--cold'), cliDir).s); await settle(cliCfg); checkApp(cliDir); },
        async () => { floor.push(timed([process.execPath, '-e', '0'], dir).s); },
        async () => { appendFileSync(join(dir, 'util.c'), `int bench_j${makeJ.length}(void) { return 1; }\n`); makeJ.push(timed(['make', `-j${availableParallelism()}`], dir).s); checkApp(dir); },
      ];
      for (let i = 0; i < repeats; i++) for (let k = 0; k < contenders.length; k++) { await editPause(); await contenders[(i + k) % contenders.length]!(); }
      const load = loadavg()[0]!.toFixed(2);
      const ws = warm.map((t) => t.s);
      rows.push({ ...row('rebuild after one .c changed (compile + link), 4-file project: prov rebuild vs make', ws, make, 'make', 'prov/make ≤ 1',
        `prov: node start, plan, capture through the warm attach, commands, drain; the ingest runs in the background after exit (median ${(median(bg) * 1000).toFixed(0)} ms more, waited for before the next run); rotated A B C D, ${EDIT_PAUSE_MS} ms pause before each, load ${load}`), headline: true });
      rows.push(row('rebuild after one .c changed, 4-file project: prov rebuild --cold (own eBPF attach/detach) vs make', cold, make, 'make', 'prov/make ≤ 1', `same rounds, load ${load}`));
      rows.push(row('floor: node -e 0 (starting node, nothing else) vs make after one .c changed', floor, make, 'make', 'none (reference)', `same rounds: what any prov command costs before it does anything, load ${load}`));
      rows.push({ ...row('rebuild after one .c changed, 4-file project: prov rebuild through the client + resident server vs make', srv.map((t) => t.s), make, 'make', 'prov/make ≤ 1',
        `dist/cli/prov → prov rebuild-server (modules, capture, plans warm); same rounds; background ingest after the answer median ${(median(srvBg) * 1000).toFixed(0)} ms; load ${load}`), headline: true });
      rows.push(row(`rebuild after one .c changed, 4-file project: prov rebuild through the client + server vs make -j${availableParallelism()}`, srv.map((t) => t.s), makeJ, `make -j${availableParallelism()}`, 'prov/make ≤ 1',
        `same rounds (compile then link: nothing to run in parallel for either); prov's --jobs defaults to the CPU count (${availableParallelism()}), make's -j to 1; load ${load}`));
      rows.push(row('rebuild after one .c changed, 4-file project: client + server vs the plain CLI (node dist/cli/main.js)', srv.map((t) => t.s), ws, 'plain CLI', 'served ≤ CLI', `same rounds; load ${load}`));
      tables.push(breakdownTable('prov rebuild after one .c changed, 4-file project: where the time goes', warm, bg));
      tables.push({ ...breakdownTable('served prov rebuild (client + resident server) after one .c changed, 4-file project: where the time goes', srv, srvBg),
        caption: `${srv.length} runs; the server's timeline starts when the request arrives ("node start-up" is 0; "process exit" is the client's exec, connect and the frames back)` });
      // CPU time of the two commands: captured vs not vs make (what is left of the gap to make).
      {
        const cpu = await commandCpu(dir, repeats * 3);
        const cl = loadavg()[0]!.toFixed(2);
        rows.push(row('CPU time (user+sys) of compile + link under the warm capture (posix_spawn, tracked, drained) vs make re-making the same two targets', cpu.captured, cpu.make, 'make (make + its commands)', 'none (reference)',
          `the capture's cost on the commands themselves; getrusage(RUSAGE_CHILDREN); interleaved; load ${cl}`));
        rows.push(row('CPU time of the same compile + link with nothing attached vs make', cpu.plain, cpu.make, 'make (make + its commands)', 'none (reference)', `same rounds; load ${cl}`));
        rows.push(row('CPU time of compile + link: under the warm capture vs nothing attached', cpu.captured, cpu.plain, 'not captured', 'none (reference)', `same rounds; load ${cl}`));
        checkApp(dir);
      }
      // The same 4-file project, nothing changed: make vs the plain CLI vs the served one.
      {
        const nm: number[] = [], nc: number[] = [], ns: number[] = [];
        const nr: Array<() => void> = [
          () => { nm.push(timed(['make'], dir).s); },
          () => { nc.push(timed(prov(home), dir).s); },
          () => { ns.push(upToDate(timed(served(home), dir, clientEnv)).s); },
        ];
        for (let i = 0; i < repeats * 2; i++) for (let k = 0; k < nr.length; k++) nr[(i + k) % nr.length]!();
        const nl = loadavg()[0]!.toFixed(2);
        rows.push(row('no-op rebuild, 4-file project: prov rebuild through the native client (answers from the no-op shortcut itself) vs make', ns, nm, 'make', 'prov/make ≤ 1', `rotated; load ${nl}`));
        rows.push(row('no-op rebuild, 4-file project: the plain CLI vs make', nc, nm, 'make', 'prov/make ≤ 1', `same rounds; load ${nl}`));
      }

      // 2. The header changed: every object that includes it changes (a used static in it).
      // Compared at the same parallelism: prov --jobs N against make -jN, for N = 1 and N = CPUs.
      const N = availableParallelism();
      const hp: Timed[] = [], hm: number[] = [], hj: number[] = [], hs1: number[] = [], hsN: number[] = [];
      let n = 0;
      const touchHeader = (): void => appendFileSync(join(dir, 'util.h'), `__attribute__((used)) static int hdr_${n++} = 1;\n`);
      const touchCliHeader = (): void => appendFileSync(join(cliDir, 'util.h'), `__attribute__((used)) static int hdr_${n++} = 1;\n`);
      const hc: Array<() => Promise<void>> = [
        async () => { touchHeader(); const t = timed(served(home, '--jobs', '1'), dir, servedEnv); await settle(cfg); hs1.push(isServed(t).s); checkApp(dir); },
        async () => { touchHeader(); const t = timed(served(home, '--jobs', String(N)), dir, servedEnv); await settle(cfg); hsN.push(isServed(t).s); checkApp(dir); },
        async () => { touchCliHeader(); hp.push(timed(prov(cliHome, '--jobs', String(N)), cliDir, traceEnv)); await settle(cliCfg); checkApp(cliDir); },
        async () => { touchHeader(); hm.push(timed(['make', '-j1'], dir).s); checkApp(dir); },
        async () => { touchHeader(); hj.push(timed(['make', `-j${N}`], dir).s); checkApp(dir); },
      ];
      for (let i = 0; i < repeats; i++) for (let k = 0; k < hc.length; k++) { await editPause(); await hc[(i + k) % hc.length]!(); }
      const hl = loadavg()[0]!.toFixed(2);
      rows.push({ ...row('rebuild after the header changed (3 compiles + link), 4-file project: prov rebuild --jobs 1 through the client + server vs make -j1', hs1, hm, 'make -j1', 'prov/make ≤ 1',
        `same parallelism (one command at a time); rotated, ${EDIT_PAUSE_MS} ms pause before each; load ${hl}`), headline: true });
      rows.push({ ...row(`rebuild after the header changed, 4-file project: prov rebuild --jobs ${N} through the client + server vs make -j${N}`, hsN, hj, `make -j${N}`, 'prov/make ≤ 1',
        `same parallelism (${N} = CPUs, prov's default); same rounds; load ${hl}`), headline: true });
      rows.push(row(`rebuild after the header changed, 4-file project: the plain CLI, prov rebuild --jobs ${N}, vs make -j${N}`, hp.map((t) => t.s), hj, `make -j${N}`, 'prov/make ≤ 1', `same rounds; load ${hl}`));
      rows.push(row(`rebuild after the header changed, 4-file project: client + server vs the plain CLI, both --jobs ${N}`, hsN, hp.map((t) => t.s), 'plain CLI', 'served ≤ CLI', `same rounds; load ${hl}`));
    }
    // 3. A 100-file project.
    {
      const home = mkdtempSync(join(tmpdir(), 'prov-rbb-home-'));
      const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rbb-c100-')));
      tmp.push(home, dir);
      const cfg = resolveConfig({ home });
      writeCProject(dir, 100);
      await recordMake(cfg, dir);
      timed(prov(home), dir); // first: plans, stamps
      await new Promise((r) => setTimeout(r, 150)); // the store's files settle: the next one learns their fingerprint
      timed(prov(home), dir);
      const noop: Timed[] = [], make: number[] = [], action: number[] = [], floor: number[] = [], noopSrv: number[] = [];
      const out = process.stdout.write.bind(process.stdout);
      for (let i = 0; i < repeats * 2; i++) {
        noopSrv.push(upToDate(timed(served(home), dir, clientEnv)).s);
        noop.push(timed(prov(home), dir, traceEnv));
        make.push(timed(['make'], dir).s);
        floor.push(timed([process.execPath, '-e', '0'], dir).s);
        process.stdout.write = (() => true) as typeof process.stdout.write;
        const t0 = performance.now();
        try { await rebuild(cfg, join(dir, 'app'), {}); } finally { process.stdout.write = out; }
        action.push((performance.now() - t0) / 1000);
      }
      const note = `100 .c files + header, 101 recorded commands; interleaved; load ${loadavg()[0]!.toFixed(2)}`;
      rows.push({ ...row('no-op rebuild, 100-file project: prov rebuild command vs make', noop.map((t) => t.s), make, 'make', '≤ 0.1 s', note), headline: true });
      rows.push(row('no-op rebuild, 100-file project: rebuild action in a running process (no node start, no shortcut)', action, null, 'make', '≤ 0.1 s', note));
      rows.push(row('floor: node -e 0 in the same no-op rounds', floor, make, 'make', 'none (reference)', `${note}; the no-op command answers from the shortcut (collector/rebuild/quick) once the store's files are older than 100 ms`));
      rows.push({ ...row('no-op rebuild, 100-file project: prov rebuild through the native client (answers from the no-op shortcut itself) vs make', noopSrv, make, 'make', 'prov/make ≤ 1', note), headline: true });
      tables.push(breakdownTable('no-op prov rebuild, 100-file project: where the time goes', noop, []));
      const { home: cliHome, dir: cliDir, cfg: cliCfg } = await cliCopy(100);
      const provOne: Timed[] = [], makeOne: number[] = [], bg: number[] = [], srvOne: Timed[] = [], srvOneBg: number[] = [];
      for (let i = 0; i < repeats; i++) {
        await editPause();
        appendFileSync(join(dir, 'm50.c'), `int bench_s${i};\n`);
        const t = timed(served(home), dir, servedEnv);
        srvOneBg.push(await settle(cfg));
        srvOne.push(isServed(t));
        checkApp(dir);
        await editPause();
        appendFileSync(join(cliDir, 'm50.c'), `int bench_a${i};\n`);
        provOne.push(timed(prov(cliHome), cliDir, traceEnv));
        bg.push(await settle(cliCfg));
        checkApp(cliDir);
        await editPause();
        appendFileSync(join(dir, 'm50.c'), `int bench_b${i};\n`);
        makeOne.push(timed(['make'], dir).s);
        checkApp(dir);
      }
      rows.push(row('rebuild after one .c changed, 100-file project: prov rebuild vs make', provOne.map((t) => t.s), makeOne, 'make', 'prov/make ≤ 1',
        `${note}; background ingest after exit median ${(median(bg) * 1000).toFixed(0)} ms`));
      rows.push(row('rebuild after one .c changed, 100-file project: prov rebuild through the client + server vs make', srvOne.map((t) => t.s), makeOne, 'make', 'prov/make ≤ 1', `${note}; ${EDIT_PAUSE_MS} ms pause before each`));
      tables.push({ ...breakdownTable('served prov rebuild after one .c changed, 100-file project: where the time goes', srvOne, srvOneBg),
        caption: `${srvOne.length} runs, alternating with a command-line rebuild (on a copy with its own store) and make; ${EDIT_PAUSE_MS} ms pause before each` });
      tables.push(breakdownTable('prov rebuild after one .c changed, 100-file project: where the time goes', provOne, bg));
      // The header changed: 99 compiles + link, at the same parallelism for prov and make.
      const N = availableParallelism();
      const hp: number[] = [], hm: number[] = [], hj: number[] = [], hs1: number[] = [], hsN: number[] = [];
      let n = 0;
      const touchHeader = (): void => appendFileSync(join(dir, 'util.h'), `__attribute__((used)) static int hdr_${n++} = 1;\n`);
      const touchCliHeader = (): void => appendFileSync(join(cliDir, 'util.h'), `__attribute__((used)) static int hdr_${n++} = 1;\n`);
      for (let i = 0; i < (opts.quick ? 1 : 3); i++) {
        await editPause(); touchCliHeader(); hp.push(timed(prov(cliHome, '--jobs', String(N)), cliDir).s); await settle(cliCfg); checkApp(cliDir);
        await editPause(); touchHeader(); hm.push(timed(['make', '-j1'], dir).s); checkApp(dir);
        await editPause(); touchHeader(); hj.push(timed(['make', `-j${N}`], dir).s); checkApp(dir);
        await editPause(); touchHeader(); const t1 = timed(served(home, '--jobs', '1'), dir, servedEnv); await settle(cfg); hs1.push(isServed(t1).s); checkApp(dir);
        await editPause(); touchHeader(); const tN = timed(served(home, '--jobs', String(N)), dir, servedEnv); await settle(cfg); hsN.push(isServed(tN).s); checkApp(dir);
      }
      const hl = `99 compiles + link; ${EDIT_PAUSE_MS} ms pause before each; load ${loadavg()[0]!.toFixed(2)}`;
      rows.push(row('rebuild after the header changed, 100-file project: prov rebuild --jobs 1 through the client + server vs make -j1', hs1, hm, 'make -j1', 'prov/make ≤ 1', hl));
      rows.push(row(`rebuild after the header changed, 100-file project: prov rebuild --jobs ${N} through the client + server vs make -j${N}`, hsN, hj, `make -j${N}`, 'prov/make ≤ 1', hl));
      rows.push(row(`rebuild after the header changed, 100-file project: the plain CLI, prov rebuild --jobs ${N}, vs make -j${N}`, hp, hj, `make -j${N}`, 'prov/make ≤ 1', hl));
    }
  } finally {
    await server.stop();
    rmSync(rt, { recursive: true, force: true });
    detachWarm();
    if (prevPin === undefined) delete process.env.PROV_REBUILD_PIN_DIR; else process.env.PROV_REBUILD_PIN_DIR = prevPin;
    for (const d of tmp) rmSync(d, { recursive: true, force: true });
  }
  // 4. The wall times above are mostly the compiler's, which moves by more from run to run than
  // prov's own part: the scheduler's process events split each served run into the runner's own
  // time and its commands' (test/bench/rebuild-one.ts, its own server and project).
  for (const files of [4, 100]) rows.push(...schedSplit(files, opts.quick ? 4 : 12));
  return { name: 'rebuild', rows, tables };
}

/**
 * rebuild-one's scheduler split of served `prov rebuild` (one .c changed) against make: the
 * runner's own time (its start to the first command's exec, between commands, the last exit
 * to its own exit) and its commands', medians of `rounds` runs each.
 */
function schedSplit(files: number, rounds: number): BenchRow[] {
  const script = fileURLToPath(new URL('./rebuild-one.js', import.meta.url));
  const r = spawnSync(process.execPath, [script, String(rounds), '200', 'sched'], {
    encoding: 'utf8', env: { ...process.env, REBUILD_ONE_FILES: String(files), REBUILD_ONE_TRACE: '0', REBUILD_ONE_JSON: '1' }, timeout: 600_000,
  });
  type Side = { pre: number; between: number; post: number; commands: number };
  const line = r.stdout.split('\n').find((l) => l.startsWith('{"split"'));
  if (r.status !== 0 || !line) throw new Error(`rebuild-one (${files} files) gave no scheduler split (exit ${r.status}): ${(r.stderr || r.stdout).slice(-400)}`);
  const { prov: p, make: mk, wall: w } = (JSON.parse(line) as { split: { prov: Side; make: Side; wall: number } }).split;
  const own = (x: Side): number => x.pre + x.between + x.post;
  const f2 = (x: number): string => x.toFixed(2);
  const wall = w.toFixed(3);
  const note = `medians of ${rounds} runs each, 200 ms of quiet before each; prov: ${f2(p.pre)} before the first command, ${f2(p.between)} between, ${f2(p.post)} after the last; make: ${f2(mk.pre)}, ${f2(mk.between)}, ${f2(mk.post)}; the commands took ${(p.commands / mk.commands).toFixed(3)}× as long under prov; wall prov/make ${wall}; load ${loadavg()[0]!.toFixed(2)}`;
  return [{ ...row(`rebuild after one .c changed, ${files}-file project: prov's own time (served: client start → first command, between, last exit → exit; scheduler events) vs make's own`, [own(p)], [own(mk)], 'make', 'prov/make ≤ 1', note, 'ms'), headline: files === 4 }];
}

if (process.argv[1]?.endsWith('rebuild.bench.js')) {
  process.env.PROV_LOG ??= 'warn';
  run({ quick: process.argv.includes('--quick') }).then(
    (r) => {
      if (process.argv.includes('--json')) { console.log(JSON.stringify(r, null, 2)); return; }
      for (const t of r.tables ?? []) {
        console.log(`\n${t.title}`);
        for (const row of t.rows) console.log(`  ${row[0]!.padEnd(64)}${row[1]!.padStart(9)}`);
      }
      console.log('');
      printResult(r);
    },
    (e) => { console.error(`rebuild bench: ${(e as Error).message}`); process.exitCode = 1; },
  );
}
