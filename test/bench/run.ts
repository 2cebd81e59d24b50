/**
 * @module test/bench/run
 * `npm run bench`: runs every benchmark module (`dist/test/bench/*.bench.js`), each in its own
 * child process with its own time budget and temp directory, records the machine (cores,
 * memory, kernel, load before and after each module), and writes test/bench/REPORT.md, the
 * raw results (results.json) and the plots (plots/).
 *
 *   npm run bench -- [--only NAME[,NAME]] [--quick] [--json] [--budget MINUTES]
 *
 * --only re-runs those modules and keeps the other families' last results (each section says
 * when it was measured). --quick passes quick to the modules (a sanity check of about a minute
 * per module) and writes REPORT-quick.md / results-quick.json instead, so a sanity run never
 * replaces the committed report. --json prints this run's results as JSON on stdout. --render
 * rewrites the report from the last results.json without running anything.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem, tmpdir, hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BenchOptions, BenchResult } from './types.js';
import { writeReport, type RunRecord, type ModuleRecord, type MachineFacts } from './report.js';

const HERE = fileURLToPath(new URL('.', import.meta.url)); // dist/test/bench/
export const REPO = resolve(HERE, '../../..');
const SRC_DIR = join(REPO, 'test', 'bench');

/** Modules in the order the report shows them; unknown ones follow alphabetically. */
const ORDER = ['fs', 'provfs', 'capture', 'sync', 'rebuild', 'journal', 'join', 'graph', 'neo4j', 'web'];

/** Wall-time budget per module for a full run, in minutes (a module past it is stopped). */
const BUDGET_MIN: Record<string, number> = { fs: 16, provfs: 15, capture: 12, sync: 15, neo4j: 15, web: 10, graph: 12 };
const DEFAULT_BUDGET_MIN = 12;
const QUICK_BUDGET_MIN = 3;

interface Args { only: string[] | null; quick: boolean; json: boolean; budget: number | null; render: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { only: null, quick: false, json: false, budget: null, render: false };
  for (let i = 0; i < argv.length; i++) {
    const x = argv[i]!;
    if (x === '--quick') a.quick = true;
    else if (x === '--json') a.json = true;
    else if (x === '--render') a.render = true;
    else if (x === '--only' || x.startsWith('--only=')) {
      const v = x.includes('=') ? x.slice(7) : argv[++i];
      if (!v) throw new Error('--only needs a list of module names, e.g. --only fs,provfs');
      a.only = v.split(',').map((s) => s.trim().replace(/\.bench(\.[jt]s)?$/, '')).filter(Boolean);
    } else if (x === '--budget' || x.startsWith('--budget=')) {
      const v = Number(x.includes('=') ? x.slice(9) : argv[++i]);
      if (!(v > 0)) throw new Error('--budget needs a number of minutes per module');
      a.budget = v;
    } else if (x === '--help' || x === '-h') {
      process.stdout.write('usage: npm run bench -- [--only NAME[,NAME]] [--quick] [--json] [--budget MINUTES] [--render]\n' +
        '  --render  rewrite REPORT.md (and plots) from results.json without running anything\n');
      process.exit(0);
    } else throw new Error(`unknown argument ${x} (try --help)`);
  }
  return a;
}

/** The bench modules compiled into dist/test/bench, in report order. */
export function discoverModules(): string[] {
  const names = readdirSync(HERE).filter((f) => f.endsWith('.bench.js')).map((f) => f.slice(0, -'.bench.js'.length));
  const rank = (n: string) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return names.sort((x, y) => rank(x) - rank(y) || x.localeCompare(y));
}

function machineFacts(): MachineFacts {
  const c = cpus();
  let rootfs = '';
  try {
    const line = readFileSync('/proc/mounts', 'utf8').split('\n').find((l) => l.split(' ')[1] === '/');
    if (line) { const f = line.split(' '); rootfs = `${f[2]} (${f[3]})`; }
  } catch { /* not Linux */ }
  return {
    host: hostname(), cores: c.length, cpuModel: c[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    kernel: release(), node: process.version, rootfs, date: new Date().toISOString(), commit: gitHead(),
  };
}

function gitHead(): string {
  try {
    const r = spawnSyncText('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']);
    const dirty = spawnSyncText('git', ['-C', REPO, 'status', '--porcelain', '--untracked-files=no']);
    return r.trim() + (dirty.trim() ? ' (with uncommitted changes)' : '');
  } catch { return 'unknown'; }
}

function spawnSyncText(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout;
}

/** BPF pin directories of other captures (other tenants' tracers slow every traced syscall host-wide). */
function foreignCaptures(ownPid?: number): string[] {
  try {
    return readdirSync('/sys/fs/bpf').filter((n) => !n.endsWith('.debug') && n !== `prov-bench-${ownPid}`);
  } catch { return []; }
}

const load = () => loadavg().map((x) => Math.round(x * 100) / 100) as [number, number, number];

/** All CPUs' time so far and the part the hypervisor stole, in ticks (/proc/stat); null without it. */
export function cpuSteal(text?: string): { steal: number; total: number } | null {
  let t = text;
  try { t ??= readFileSync('/proc/stat', 'latin1'); } catch { return null; }
  const m = /^cpu +(.*)$/m.exec(t);
  if (!m) return null;
  const f = m[1]!.trim().split(/ +/).map(Number);
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return null;
  // user nice system idle iowait irq softirq steal (guest time is counted in user already)
  return { steal: f[7]!, total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** Percent of the CPUs' time stolen between two readings (one decimal), or undefined. */
export function stealPercent(a: ReturnType<typeof cpuSteal>, b: ReturnType<typeof cpuSteal>): number | undefined {
  if (!a || !b || b.total <= a.total) return undefined;
  return Math.round((1000 * (b.steal - a.steal)) / (b.total - a.total)) / 10;
}

/** Everything a child left mounted under its temp root: unmount lazily (only ours). */
function unmountUnder(root: string): string[] {
  const left: string[] = [];
  try {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
      .map((l) => l.split(' ')[4] ?? '').map((m) => m.replace(/\\040/g, ' '))
      .filter((m) => m === root || m.startsWith(root + '/'));
    for (const m of mounts.reverse()) {
      const r = spawnSync('umount', ['-l', m], { encoding: 'utf8' });
      left.push(r.status === 0 ? `${m} (unmounted after the module ended)` : `${m} (could not unmount: ${r.stderr.trim()})`);
    }
  } catch { /* no /proc */ }
  return left;
}

/** Run one module in a child process group with its own TMPDIR; stop it at the budget. */
async function runModule(name: string, quick: boolean, budgetMin: number, runRoot: string): Promise<ModuleRecord> {
  const tmp = mkdtempSync(join(runRoot, `${name}-`));
  const out = join(tmp, 'result.json');
  const before = load();
  const stealBefore = cpuSteal();
  const capturesBefore = foreignCaptures();
  const t0 = Date.now();
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', join(HERE, `${name}.bench.js`), '--out', out, ...(quick ? ['--quick'] : [])], {
    cwd: REPO, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, TMPDIR: tmp },
  });
  // The module's own output goes to stderr, so stdout stays clean for --json.
  child.stdout!.on('data', (d: Buffer) => process.stderr.write(d));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); process.stderr.write(d); if (stderr.length > 200_000) stderr = stderr.slice(-100_000); });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    process.stderr.write(`bench: ${name} passed its budget of ${budgetMin} min: stopping it\n`);
    try { process.kill(child.pid!, 'SIGTERM'); } catch { /* gone */ }
    setTimeout(() => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 15_000).unref();
  }, budgetMin * 60_000);
  const code = await new Promise<number | null>((res) => child.once('exit', (c, sig) => res(c ?? (sig ? 128 : null))));
  clearTimeout(timer);
  // Whatever the module started in the child's process group and left behind.
  try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* none left */ }
  const leftovers = unmountUnder(tmp);
  const pin = `/sys/fs/bpf/prov-bench-${child.pid}`;
  if (existsSync(pin)) { rmSync(pin, { recursive: true, force: true }); leftovers.push(`${pin} (BPF pins removed after the module ended)`); }
  const capturesAfter = foreignCaptures(child.pid);
  const rec: ModuleRecord = {
    name, quick, startedAt: new Date(t0).toISOString(), seconds: Math.round((Date.now() - t0) / 100) / 10,
    loadBefore: before, loadAfter: load(), budgetMinutes: budgetMin,
  };
  const steal = stealPercent(stealBefore, cpuSteal());
  if (steal !== undefined) rec.stealPercent = steal;
  if (leftovers.length) rec.leftovers = leftovers;
  const others = [...new Set([...capturesBefore, ...capturesAfter])];
  if (others.length) rec.otherCaptures = others;
  let payload: { result?: BenchResult; error?: string; peakRssMiB?: number } | null = null;
  try { payload = JSON.parse(readFileSync(out, 'utf8')); } catch { /* crashed before writing */ }
  if (payload?.result) rec.result = payload.result;
  if (payload?.peakRssMiB) rec.peakRssMiB = payload.peakRssMiB;
  if (!rec.result) {
    const lastLines = stderr.trim().split('\n').slice(-3).join(' | ');
    rec.error = timedOut ? `stopped after its budget of ${budgetMin} min` : payload?.error ?? `exited with ${code}${lastLines ? `: ${lastLines}` : ''}`;
  }
  rmSync(tmp, { recursive: true, force: true });
  return rec;
}

/** Child mode: import one module, run it, write {result} or {error} to --out. */
async function child(argv: string[]): Promise<void> {
  const mod = argv[argv.indexOf('--child') + 1]!;
  const out = argv[argv.indexOf('--out') + 1]!;
  const opts: BenchOptions = { quick: argv.includes('--quick') };
  let stopping = false;
  process.on('SIGTERM', () => {
    if (stopping) return;
    stopping = true;
    writeFileSync(out, JSON.stringify({ error: 'stopped: time budget spent' }));
    // Give the module's finally blocks no chance to hang: leave, the parent cleans mounts up.
    process.exit(143);
  });
  try {
    const m = (await import(pathToFileURL(mod).href)) as { run?: (o: BenchOptions) => Promise<BenchResult> };
    if (typeof m.run !== 'function') throw new Error(`${basename(mod)} exports no run(opts)`);
    const result = await m.run(opts);
    writeFileSync(out, JSON.stringify({ result, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) }));
  } catch (e) {
    writeFileSync(out, JSON.stringify({ error: (e as Error).message ?? String(e) }));
    process.exitCode = 1;
  }
  // Modules may leave timers or handles open; the result is written, so leave now.
  setTimeout(() => process.exit(process.exitCode ?? 0), 200).unref();
}

/** Merge this run's modules with the last results of the others, write results*.json and REPORT*.md. */
async function save(run: RunRecord, modules: ModuleRecord[], all: string[], quick: boolean): Promise<string> {
  const suffix = quick ? '-quick' : '';
  const resultsFile = join(SRC_DIR, `results${suffix}.json`);
  // Keep the families this run did not measure (from the last run), each with its own date.
  let previous: ModuleRecord[] = [];
  try { previous = (JSON.parse(readFileSync(resultsFile, 'utf8')) as RunRecord).modules; } catch { /* first run */ }
  const merged = [...modules, ...previous.filter((p) => !modules.some((m) => m.name === p.name) && all.includes(p.name))];
  merged.sort((a, b) => all.indexOf(a.name) - all.indexOf(b.name));
  const full: RunRecord = { ...run, modules: merged };
  mkdirSync(SRC_DIR, { recursive: true });
  writeFileSync(resultsFile, JSON.stringify(full, null, 1) + '\n');
  return writeReport(full, { dir: SRC_DIR, file: `REPORT${suffix}.md`, repo: REPO, thisRun: modules.map((m) => m.name) });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv.includes('--child')) return child(argv);
  const args = parseArgs(argv);
  const all = discoverModules();
  if (args.render) {
    const file = join(SRC_DIR, `results${args.quick ? '-quick' : ''}.json`);
    const last = JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
    const report = await writeReport(last, { dir: SRC_DIR, file: `REPORT${args.quick ? '-quick' : ''}.md`, repo: REPO, thisRun: last.modules.map((m) => m.name) });
    process.stderr.write(`bench: rewrote ${report} from ${file}\n`);
    return;
  }
  const chosen = args.only ?? all;
  const unknown = chosen.filter((n) => !all.includes(n));
  if (unknown.length) throw new Error(`no bench module named ${unknown.join(', ')} (have: ${all.join(', ')})`);
  const machine = machineFacts();
  const runRoot = mkdtempSync(join(tmpdir(), 'prov-bench-run-'));
  const modules: ModuleRecord[] = [];
  const t0 = Date.now();
  try {
    for (const name of chosen) {
      process.stderr.write(`bench: ${name}${args.quick ? ' (quick)' : ''} — load ${load().join(' ')}\n`);
      const budget = args.budget ?? (args.quick ? QUICK_BUDGET_MIN : BUDGET_MIN[name] ?? DEFAULT_BUDGET_MIN);
      const rec = await runModule(name, args.quick, budget, runRoot);
      process.stderr.write(`bench: ${name} ${rec.error ? `FAILED: ${rec.error}` : `done: ${rec.result!.rows.length} figures`} in ${rec.seconds} s\n`);
      modules.push(rec);
      // The report is rewritten after every module, so a long run leaves a usable report early.
      await save({ machine, quick: args.quick, seconds: Math.round((Date.now() - t0) / 1000), modules }, modules, all, args.quick);
    }
  } finally {
    rmSync(runRoot, { recursive: true, force: true });
  }
  const run: RunRecord = { machine, quick: args.quick, seconds: Math.round((Date.now() - t0) / 1000), modules };
  const report = await save(run, modules, all, args.quick);
  process.stderr.write(`bench: wrote ${report} in ${run.seconds} s\n`);
  if (args.json) process.stdout.write(JSON.stringify(run, null, 1) + '\n');
  if (modules.some((m) => m.error)) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((e: Error) => { process.stderr.write(`bench: ${e.message}\n`); process.exitCode = 2; });
}
