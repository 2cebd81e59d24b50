/**
 * @module test/bench/rebuild.bench
 * `prov rebuild` against make on the same recorded C project (root, real eBPF capture):
 * 1. after one .c changed: `prov rebuild app` (plan, capture through the warm attach an earlier
 *    rebuild left, compile + link, drain, ingest, stamp) vs `make` vs `prov rebuild app --cold`
 *    (its own eBPF attach and detach), each given a fresh change of the same file; interleaved
 *    A B C in the same directory, each run must leave a working binary;
 * 2. on a 100-file project, the same after one change, and the no-op: the `prov rebuild app` command (a fresh node process) vs
 *    `make` (nothing to do), interleaved; and the rebuild action alone inside a running process
 *    (what the command costs beyond starting node).
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
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
import { detachWarm } from '../../ebpf/warm.js';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));

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

function timed(argv: string[], cwd: string): number {
  const t0 = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd, encoding: 'utf8' });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${argv.join(' ')} failed (${r.status}): ${r.stderr}`);
  return ms / 1000;
}

function checkApp(dir: string): void {
  const r = spawnSync(join(dir, 'app'), { encoding: 'utf8' });
  if (r.status !== 0 || r.stdout !== '42\n') throw new Error(`app broken after a run: ${r.status} ${r.stdout}`);
}

function row(figure: string, prov: number[], base: number[] | null, goal: string, note: string, unit = 's'): BenchRow {
  const p = median(prov);
  const b = base ? median(base) : null;
  return {
    figure, unit, prov: Number(p.toFixed(4)), baseline: b === null ? null : Number(b.toFixed(4)), baselineName: base ? 'make' : undefined,
    ratio: b === null ? null : Number((b / p).toFixed(3)), better: 'lower',
    spread: { prov: Number(spread(prov).toFixed(3)), ...(base ? { baseline: Number(spread(base).toFixed(3)) } : {}) },
    repeats: prov.length, goal, note,
  };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the rebuild bench needs root (eBPF capture)');
  const repeats = opts.quick ? 3 : 7;
  const rows: BenchRow[] = [];
  const tmp: string[] = [];
  // The warm attach the rebuilds leave (ebpf/warm) is the bench's own, detached at the end.
  const prevPin = process.env.PROV_REBUILD_PIN_DIR;
  process.env.PROV_REBUILD_PIN_DIR = `/sys/fs/bpf/prov-rbbench-warm-${process.pid}`;
  try {
    // 1. One change: a small project (4 files), make vs rebuild in the same directory.
    {
      const home = mkdtempSync(join(tmpdir(), 'prov-rbb-home-'));
      const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rbb-c-')));
      tmp.push(home, dir);
      const cfg = resolveConfig({ home });
      writeCProject(dir, 4);
      await recordMake(cfg, dir);
      timed([process.execPath, CLI, '--home', home, 'rebuild', 'app'], dir); // stamps
      const prov: number[] = [], make: number[] = [], cold: number[] = [];
      for (let i = 0; i < repeats; i++) {
        appendFileSync(join(dir, 'util.c'), `int bench_a${i}(void) { return ${i}; }\n`);
        prov.push(timed([process.execPath, CLI, '--home', home, 'rebuild', 'app'], dir));
        checkApp(dir);
        appendFileSync(join(dir, 'util.c'), `int bench_b${i}(void) { return ${i}; }\n`);
        make.push(timed(['make'], dir));
        checkApp(dir);
        appendFileSync(join(dir, 'util.c'), `int bench_c${i}(void) { return ${i}; }\n`);
        cold.push(timed([process.execPath, CLI, '--home', home, 'rebuild', 'app', '--cold'], dir));
        checkApp(dir);
      }
      const load = loadavg()[0]!.toFixed(2);
      rows.push(row('rebuild after one .c changed (compile + link), prov rebuild vs make', prov, make, 'ratio ≥ 1 (rebuild no slower than make)',
        `4-file project; prov includes node start, plan, capture (the warm attach an earlier rebuild left), ingest and stamping; A B C interleaved, load ${load}`));
      rows.push(row('rebuild after one .c changed, 4-file project, prov rebuild --cold (own eBPF attach/detach) vs make', cold, make, 'ratio ≥ 1',
        `same runs as above (A B C interleaved), load ${load}`));
    }
    // 2. No-op on a 100-file project.
    {
      const home = mkdtempSync(join(tmpdir(), 'prov-rbb-home-'));
      const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rbb-c100-')));
      tmp.push(home, dir);
      const cfg = resolveConfig({ home });
      writeCProject(dir, 100);
      await recordMake(cfg, dir);
      timed([process.execPath, CLI, '--home', home, 'rebuild', 'app'], dir); // first: plans, stamps
      const prov: number[] = [], make: number[] = [], action: number[] = [];
      const out = process.stdout.write.bind(process.stdout);
      for (let i = 0; i < repeats * 2; i++) {
        prov.push(timed([process.execPath, CLI, '--home', home, 'rebuild', 'app'], dir));
        make.push(timed(['make'], dir));
        process.stdout.write = (() => true) as typeof process.stdout.write;
        const t0 = performance.now();
        try { await rebuild(cfg, join(dir, 'app'), {}); } finally { process.stdout.write = out; }
        action.push((performance.now() - t0) / 1000);
      }
      const note = `100 .c files + header, 101 recorded commands; interleaved; load ${loadavg()[0]!.toFixed(2)}`;
      // One change in the same 100-file project.
      const provOne: number[] = [], makeOne: number[] = [];
      for (let i = 0; i < repeats; i++) {
        appendFileSync(join(dir, 'm50.c'), `int bench_a${i};\n`);
        provOne.push(timed([process.execPath, CLI, '--home', home, 'rebuild', 'app'], dir));
        checkApp(dir);
        appendFileSync(join(dir, 'm50.c'), `int bench_b${i};\n`);
        makeOne.push(timed(['make'], dir));
        checkApp(dir);
      }
      rows.push(row('rebuild after one .c changed, 100-file project, prov rebuild vs make', provOne, makeOne, 'ratio ≥ 1 (rebuild no slower than make)',
        `${note}; prov includes node start, plan, eBPF attach/detach, ingest and stamping`));
      rows.push(row('no-op rebuild, 100-file project: prov rebuild command vs make', prov, make, '≤ 0.1 s', note));
      rows.push(row('no-op rebuild, 100-file project: rebuild action in a running process (no node start)', action, null, '≤ 0.1 s', note));
    }
  } finally {
    detachWarm();
    if (prevPin === undefined) delete process.env.PROV_REBUILD_PIN_DIR; else process.env.PROV_REBUILD_PIN_DIR = prevPin;
    for (const d of tmp) rmSync(d, { recursive: true, force: true });
  }
  return { name: 'rebuild', rows };
}

if (process.argv[1]?.endsWith('rebuild.bench.js')) {
  process.env.PROV_LOG ??= 'warn';
  run({ quick: process.argv.includes('--quick') }).then((r) => console.log(JSON.stringify(r, null, 2)), (e) => { console.error(`rebuild bench: ${(e as Error).message}`); process.exitCode = 1; });
}
