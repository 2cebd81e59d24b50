/**
 * @module test/bench/rebuild-one
 * The quick form of rebuild.bench's headline: one .c changed in the 4-file project, the client
 * + resident server (`dist/cli/prov rebuild app`) against `make` (and `make -j2`), interleaved
 * (A B C, B C A, …), each run given a fresh change and leaving a working binary; the server's
 * median timeline (PROV_REBUILD_TRACE=json) beside it, and the client's own side (exec, connect,
 * frames back) as what is left of the wall time.
 * Run: node dist/test/bench/rebuild-one.js [ROUNDS [QUIET_MS [cli|sched]]] (REBUILD_ONE_TRACE=0: no timeline;
 * REBUILD_ONE_JSON=1: the scheduler split also as one JSON line)
 * `sched`: the scheduler's process events (a private ftrace instance) split each run's wall time
 * into the commands' own (exec to exit of each command the runner started) and the runner's
 * (from its exec to the first command's, between commands, from the last command's exit to its
 * own): the commands' time is most of the total and varies run to run far more than the
 * runner's, so the runner's time is what tells prov's own cost from make's.
 */
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCaptured } from '../../ebpf/run-captured.js';
import { runPipeline } from '../../collector/pipeline.js';
import { openStore } from '../../graph/open.js';
import { ebpfDecoders } from '../../ebpf/decode.js';
import { resolveConfig } from '../../cli/config.js';
import { joinStatePath } from '../../cli/actions/ingest.js';
import { writeCProject } from '../rebuild/project.js';
import { median, spread } from './types.js';
import { settle } from './rebuild.bench.js';
import { PROCESS_EVENTS, SchedTrace, type TracedProcess } from './schedtrace.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../cli/prov', import.meta.url));

interface Timed {
  ms: number; pid: number; /** CLOCK_MONOTONIC ns at the spawn (the scheduler's events are on that clock). */ hr0: number;
  /** ms since the epoch at the spawn (the client's and the server's marks are on that clock). */ at0: number;
  trace: Array<{ name: string; ms: number }> | null; marks: Array<[string, number]>;
}

/** Put a server timeline line (PROV_REBUILD_TRACE=json) on the run's timeline. */
function addServerTrace(t: Timed, line: string): void {
  const j = JSON.parse(line) as { trace: NonNullable<Timed['trace']>; at: number };
  t.trace = j.trace;
  for (const m of j.trace) t.marks.push([`server: ${m.name}`, j.at + m.ms - t.at0]);
  t.marks.sort((a, b) => a[1] - b[1]);
}

/**
 * The server's timeline of the run just made, from PROV_REBUILD_TRACE_FILE (read once the run's
 * background ingest is in: the client that ran the commands exits before the server writes it).
 */
function takeServerTrace(t: Timed, file: string): void {
  if (!existsSync(file)) return;
  for (const line of readFileSync(file, 'utf8').split('\n')) if (line.startsWith('{"trace"')) addServerTrace(t, line);
  writeFileSync(file, '');
}

function timed(argv: string[], cwd: string, env: NodeJS.ProcessEnv = process.env): Timed {
  const hr0 = Number(process.hrtime.bigint());
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, encoding: 'utf8', env });
  const t1 = performance.now();
  const ms = t1 - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  // One timeline in ms since the bench spawned the command: the client's steps, the server's marks.
  const t: Timed = { ms, pid: r.pid ?? 0, hr0, at0: performance.timeOrigin + t0, trace: null, marks: [['bench: spawn', 0], ['bench: child reaped', ms]] };
  for (const line of r.stderr.split('\n')) {
    if (line.startsWith('{"trace"')) addServerTrace(t, line);
    else if (line.startsWith('{"client"')) {
      for (const m of (JSON.parse(line) as { client: Array<{ name: string; at: number }> }).client) t.marks.push([`client: ${m.name}`, m.at - t.at0]);
    }
  }
  t.marks.sort((a, b) => a[1] - b[1]);
  return t;
}

/** One run split by the scheduler's process events (ms): the runner's own time and its commands'. */
interface Split { pre: number; between: number; post: number; commands: number; n: number }

/** The commands `parent` started within `top`'s lifetime (exec to exit), in exec order. */
function commandsOf(procs: Map<number, TracedProcess>, top: TracedProcess, parent: number): TracedProcess[] {
  return [...procs.values()]
    .filter((p) => p.parent === parent && p.execAt !== undefined && p.exitAt !== undefined && p.execAt >= top.execAt! && p.exitAt <= top.exitAt!)
    .sort((a, b) => a.execAt! - b.execAt!);
}

/**
 * `runner`: the process the bench started (make, or prov's client); `parent`: who starts the
 * commands (make itself, or the rebuild server). Null when the events do not cover the run.
 */
function splitRun(procs: Map<number, TracedProcess>, runner: number, parent: number): Split | null {
  const top = procs.get(runner);
  if (top?.execAt === undefined || top.exitAt === undefined) return null;
  const cmds = commandsOf(procs, top, parent);
  if (cmds.length === 0) return null;
  const ms = (ns: number): number => ns / 1e6;
  let between = 0, commands = 0, lastExit = cmds[0]!.execAt!;
  for (const c of cmds) {
    between += Math.max(0, c.execAt! - lastExit);
    commands += c.exitAt! - c.execAt!;
    lastExit = Math.max(lastExit, c.exitAt!);
  }
  return { pre: ms(cmds[0]!.execAt! - top.execAt), between: ms(between), post: ms(top.exitAt - lastExit), commands: ms(commands), n: cmds.length };
}

/** The scheduler's view of a served run on its timeline: the client's exec and exit, each command's. */
function addSchedMarks(procs: Map<number, TracedProcess>, t: Timed, parent: number): void {
  const top = procs.get(t.pid);
  if (top?.execAt === undefined || top.exitAt === undefined) return;
  const at = (ns: number): number => (ns - t.hr0) / 1e6;
  t.marks.push(['sched: client exec', at(top.execAt)], ['sched: client exit', at(top.exitAt)]);
  const cmds = commandsOf(procs, top, parent);
  cmds.forEach((c, i) => t.marks.push([`sched: command ${i + 1} exec`, at(c.execAt!)], [`sched: command ${i + 1} exit`, at(c.exitAt!)]));
  t.marks.sort((a, b) => a[1] - b[1]);
}

function checkApp(dir: string): void {
  const r = spawnSync(join(dir, 'app'), { encoding: 'utf8' });
  if (r.status !== 0 || r.stdout !== '42\n') throw new Error(`app broken after a run: ${r.status} ${r.stdout}`);
}

async function main(): Promise<void> {
  const repeats = Number(process.argv[2] ?? 9);
  // Milliseconds of quiet before each run, for every contender alike: an edit takes a person
  // longer than that, and the rebuild's shortcut trusts the store's files only once they are
  // 100 ms old (before that the server reads the store's checkpoint to trust its cached plan).
  const pause = Number(process.argv[3] ?? 0);
  // `cli`: a command-line rebuild (node dist/cli/main.js) takes a turn too, as in rebuild.bench.
  const withCli = process.argv[4] === 'cli';
  const quiet = (): Promise<void> => new Promise((r) => setTimeout(r, pause));
  const home = mkdtempSync(join(tmpdir(), 'prov-rb1-home-'));
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rb1-c-')));
  const rt = mkdtempSync('/tmp/prov-rb1-rt-');
  const pin = `/sys/fs/bpf/prov-rb1-warm-${process.pid}`;
  const env: NodeJS.ProcessEnv = { ...process.env, PROV_RUNTIME_DIR: rt, PROV_REBUILD_PIN_DIR: pin, PROV_LOG: 'warn' };
  const s = spawn(process.execPath, [CLI, 'rebuild-server', '--idle-minutes', '10'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let log = '';
    await new Promise<void>((resolve, reject) => {
      s.stderr!.on('data', (d: Buffer) => { log += d.toString(); if (log.includes('listening on')) resolve(); });
      s.once('exit', (code) => reject(new Error(`rebuild-server exited (${code}): ${log}`)));
    });
    const cfg = resolveConfig({ home });
    writeCProject(dir, Number(process.env.REBUILD_ONE_FILES ?? 4));
    const r = await runCaptured(['make'], { cwd: dir, journalDir: cfg.journal, timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`make failed under capture: ${r.stderr}`);
    const store = await openStore(cfg.store);
    try { await runPipeline({ journalDir: cfg.journal, store, statePath: joinStatePath(cfg), decoders: ebpfDecoders }); } finally { await store.close(); }
    // REBUILD_ONE_TRACE=0: the served runs without the timeline (its JSON goes to the client as an
    // extra frame before the exit code), for the scheduler's split alone.
    // The server's timelines go to a file (read after each run): the client that ran the commands does not wait for them.
    const traceFile = join(rt, 'trace.jsonl');
    const traceEnv = process.env.REBUILD_ONE_TRACE === '0' ? env : { ...env, PROV_REBUILD_TRACE: 'json', PROV_REBUILD_TRACE_FILE: traceFile, PROV_CLIENT_TRACE: '1' };
    // REBUILD_ONE_HEADER=1: the header changes instead (3 compiles + link); REBUILD_ONE_JOBS=N:
    // prov --jobs N against make -jN (default 1 and make).
    const header = process.env.REBUILD_ONE_HEADER === '1';
    const jobs = process.env.REBUILD_ONE_JOBS;
    const served = ['--home', home, 'rebuild', 'app', ...(jobs ? ['--jobs', jobs] : [])];
    timed([CLIENT, ...served, '--dry-run'], dir, traceEnv);
    // Two warm-up rounds (first request plans, warm attach made).
    for (let i = 0; i < 2; i++) { appendFileSync(join(dir, 'util.c'), `int warm_${i};\n`); timed([CLIENT, ...served], dir, traceEnv); await settle(cfg); }
    if (existsSync(traceFile)) writeFileSync(traceFile, ''); // the warm-up runs' timelines
    const srv: Timed[] = [], make: number[] = [], makeJ: number[] = [], cliRuns: number[] = [], makePids: number[] = [];
    let n = 0;
    const change = (): void => {
      if (header) appendFileSync(join(dir, 'util.h'), `__attribute__((used)) static int hdr_${n++} = 1;\n`);
      else appendFileSync(join(dir, 'util.c'), `int bench_${n++}(void) { return 1; }\n`);
    };
    const cs: Array<() => Promise<void>> = [
      async () => { await quiet(); change(); const t = timed([CLIENT, ...served], dir, traceEnv); await settle(cfg); takeServerTrace(t, traceFile); srv.push(t); checkApp(dir); },
      async () => { await quiet(); change(); const t = timed(['make', `-j${jobs ?? 1}`], dir); make.push(t.ms); makePids.push(t.pid); checkApp(dir); },
      async () => { await quiet(); change(); makeJ.push(timed(['make', '-j2'], dir).ms); checkApp(dir); },
    ];
    if (withCli) cs.push(async () => { await quiet(); change(); cliRuns.push(timed([process.execPath, CLI, ...served], dir, env).ms); await settle(cfg); checkApp(dir); });
    // `cold`: a command-line rebuild with its own attach takes a turn too.
    if (process.argv[4] === 'cold') cs.push(async () => { await quiet(); change(); cliRuns.push(timed([process.execPath, CLI, ...served, '--cold'], dir, env).ms); await settle(cfg); checkApp(dir); });
    let sched: SchedTrace | null = null;
    if (process.argv[4] === 'sched') {
      const t = SchedTrace.start('prov-rebuild-one', PROCESS_EVENTS);
      if (!(t instanceof SchedTrace)) throw new Error(`sched: ${t.error}`);
      sched = t;
    }
    const l0 = loadavg()[0]!.toFixed(2);
    try {
      for (let i = 0; i < repeats; i++) for (let k = 0; k < cs.length; k++) await cs[(i + k) % cs.length]!();
    } finally {
      sched?.stop();
    }
    const l1 = loadavg()[0]!.toFixed(2);
    const sm = srv.map((t) => t.ms);
    console.log(`${header ? 'the header' : 'one .c'} changed, ${process.env.REBUILD_ONE_FILES ?? 4}-file project, prov --jobs ${jobs ?? 'default'} vs make -j${jobs ?? 1}, ${repeats} rounds, ${pause} ms quiet before each run, load ${l0} → ${l1}`);
    console.log(`  served prov  median ${median(sm).toFixed(2)} ms  spread ${spread(sm).toFixed(2)}`);
    console.log(`  make         median ${median(make).toFixed(2)} ms  spread ${spread(make).toFixed(2)}`);
    console.log(`  make -j2     median ${median(makeJ).toFixed(2)} ms  spread ${spread(makeJ).toFixed(2)}`);
    if (cliRuns.length) console.log(`  plain CLI    median ${median(cliRuns).toFixed(2)} ms  spread ${spread(cliRuns).toFixed(2)}`);
    console.log(`  prov/make = ${(median(sm) / median(make)).toFixed(3)}   prov/make-j2 = ${(median(sm) / median(makeJ)).toFixed(3)}`);
    if (sched) {
      const procs = sched.processes();
      const show = (name: string, splits: Array<Split | null>): Split | null => {
        const ok = splits.filter((x): x is Split => x !== null);
        if (!ok.length) { console.log(`  ${name}: no run found in the scheduler's events`); return null; }
        const m = (f: (x: Split) => number): number => median(ok.map(f));
        const r = { pre: m((x) => x.pre), between: m((x) => x.between), post: m((x) => x.post), commands: m((x) => x.commands), n: m((x) => x.n) };
        console.log(`  ${name.padEnd(11)} runner's own ${(r.pre + r.between + r.post).toFixed(2)} ms (before the first command ${r.pre.toFixed(2)}, between ${r.between.toFixed(2)}, after the last ${r.post.toFixed(2)}); ${r.n} commands ${r.commands.toFixed(2)} ms (medians of ${ok.length} runs)`);
        return r;
      };
      console.log('  split by the scheduler (exec and exit of the runner and of each command it started):');
      // The commands' parent: the client, which runs them (collector/rebuild/remote), or the server.
      const parents = srv.map((t) => (splitRun(procs, t.pid, t.pid) ? t.pid : s.pid!));
      const p = show('served prov', srv.map((t, i) => splitRun(procs, t.pid, parents[i]!)));
      srv.forEach((t, i) => addSchedMarks(procs, t, parents[i]!));
      const mk = show('make', makePids.map((pid) => splitRun(procs, pid, pid)));
      // REBUILD_ONE_JSON=1: the split as one JSON line too, for rebuild.bench.
      if (p && mk && process.env.REBUILD_ONE_JSON === '1') console.log(JSON.stringify({ split: { prov: p, make: mk, wall: median(sm) / median(make) } }));
      if (p && mk) console.log(`  prov's own time − make's: ${(p.pre + p.between + p.post - mk.pre - mk.between - mk.post).toFixed(2)} ms; commands under prov / under make: ${(p.commands / mk.commands).toFixed(3)}`);
    }
    console.log(`  served runs that found the capture armed: ${srv.filter((t) => t.trace?.some((m) => m.name === 'warm: armed ahead')).length} of ${srv.length}`);
    // The median timeline: each mark's median time after the request arrived.
    const gap = (t: Timed, a: string, b: string): string => {
      const x = t.marks.find((m) => m[0] === a)?.[1], y = t.marks.find((m) => m[0] === b)?.[1];
      return x === undefined || y === undefined ? '?' : (y - x).toFixed(2);
    };
    console.log(`  per run, server exit → client first frame (ms): ${srv.map((t) => gap(t, 'server: exit', 'client: first frame')).join(' ')}`);
    console.log(`  per run, request sent → spawn (ms): ${srv.map((t) => gap(t, 'client: request sent', t.marks.some((m) => m[0] === 'client: first command spawned') ? 'client: first command spawned' : 'server: spawn cc -O1 -g')).join(' ')}`);
    // REBUILD_ONE_GAPS="mark a>mark b;…": those gaps per run as well.
    for (const pair of (process.env.REBUILD_ONE_GAPS ?? '').split(';').filter(Boolean)) {
      const [a, b] = pair.split('>') as [string, string];
      console.log(`  per run, ${a} → ${b} (ms): ${srv.map((t) => gap(t, a, b)).join(' ')}`);
    }
    const names: string[] = [];
    for (const t of srv) for (const [name] of t.marks) if (!names.includes(name)) names.push(name);
    const med = names.map((name) => [name, median(srv.map((t) => t.marks.find((m) => m[0] === name)?.[1]).filter((x): x is number => x !== undefined))] as const);
    console.log('  timeline (median ms since the bench spawned the client; client clock and server clock lined up by CLOCK_REALTIME):');
    let prev = 0;
    for (const [name, v] of [...med].sort((a, b) => a[1] - b[1])) {
      console.log(`    ${v.toFixed(2).padStart(7)}  +${(v - prev).toFixed(2).padStart(6)}  ${name}`);
      prev = v;
    }
  } finally {
    if (s.exitCode === null) { const gone = new Promise((r) => s.once('exit', r)); process.kill(s.pid!, 'SIGTERM'); await gone; }
    const { detachWarm } = await import('../../ebpf/warm.js');
    process.env.PROV_REBUILD_PIN_DIR = pin;
    try { detachWarm(); } catch { /* the server detached it */ }
    for (const d of [home, dir, rt]) rmSync(d, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('rebuild-one.js')) main().catch((e) => { console.error(`rebuild-one bench: ${(e as Error).message}`); process.exitCode = 1; });
