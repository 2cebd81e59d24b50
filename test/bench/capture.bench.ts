/**
 * @module test/bench/capture.bench
 * eBPF capture costs, measured live on this host:
 * - overhead: wall time of four workloads (fork+exec loop, untar of a large tree, a C build,
 *   grep -r) with capture attached host-wide and draining into a journal, against the same
 *   workload with nothing attached, interleaved (A B A B …), medians and spread;
 * - drain rate: a backlog of ~1 M records drained from the pinned ring into the journal;
 * - sustained: 100,000 events/s for 60 s (10 s with --quick) while draining: drops must be 0;
 *   CPU time of the collector (this process: drain worker + journal writer) per second.
 *
 * Run alone: node dist/test/bench/capture.bench.js [--quick]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';
import { attachCapture, detachCapture, readCounters } from '../../ebpf/loader.js';
import { captureToJournal } from '../../ebpf/capture.js';
import { Drainer } from '../../ebpf/drain.js';
import { openJournalWriter } from '../../collector/journal/writer.js';

const GEN_C = `
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
/* gen N RATE: N × (dup + close) = 2N traced syscalls, paced to RATE events/s (0: flat out) */
int main(int argc, char **argv) {
  long n = atol(argv[1]), rate = argc > 2 ? atol(argv[2]) : 0;
  struct timespec t0, now;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    close(dup(0));
    if (rate && (i & 255) == 0) {
      double due = (double)(2 * i) / rate;
      for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
        if (el >= due) break;
        struct timespec s = { 0, (long)((due - el) * 1e9) };
        nanosleep(&s, 0);
      }
    }
  }
  return 0;
}
`;

function sh(cmd: string, cwd: string): void {
  const r = spawnSync('bash', ['-c', cmd], { cwd, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`bench workload failed: ${cmd}: ${r.stderr}`);
}

/**
 * Run a command without blocking this thread: the collector (journal appends) runs on it, so a
 * synchronous spawn would stall draining and hide its cost.
 */
function shAsync(file: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(file, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`bench workload failed: ${file} ${args.join(' ')}: ${err}`))));
  });
}

async function timeIt(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

interface Workload { name: string; setup?: () => void; run: () => Promise<void>; cleanup?: () => void }

function workloads(dir: string, quick: boolean): Workload[] {
  const files = quick ? 2000 : 10000;
  const tree = join(dir, 'tree');
  mkdirSync(tree);
  // a large tree: files in 2-level directories, a few KiB each
  sh(`for d in $(seq 0 ${files / 100 - 1}); do mkdir -p t/d$((d/10))/e$d; for f in $(seq 0 99); do head -c 2048 /dev/urandom | base64 > t/d$((d/10))/e$d/f$f.txt; done; done; tar cf big.tar t`, tree);
  const src = join(dir, 'csrc');
  mkdirSync(src);
  const n = quick ? 8 : 20;
  for (let i = 0; i < n; i++) writeFileSync(join(src, `m${i}.c`), `#include <stdio.h>\n#include <string.h>\nint f${i}(const char *s) { return (int)strlen(s) + ${i}; }\n`);
  writeFileSync(join(src, 'main.c'), `int main(void) { return 0; }\n`);
  const loops = quick ? 300 : 1000;
  return [
    { name: `fork+exec loop (${loops} × /bin/true)`, run: () => shAsync('bash', ['-c', `for i in $(seq ${loops}); do /bin/true; done`], dir) },
    {
      name: `untar of ${files} files`,
      run: () => shAsync('bash', ['-c', 'mkdir -p x && tar xf big.tar -C x'], tree),
      cleanup: () => rmSync(join(tree, 'x'), { recursive: true, force: true }),
    },
    {
      name: `C build (${n + 1} files, make -j2)`,
      setup: () => writeFileSync(join(src, 'Makefile'), `OBJS=$(patsubst %.c,%.o,$(wildcard *.c))\nprog: $(OBJS)\n\tgcc -o $@ $^\n%.o: %.c\n\tgcc -O1 -c $< -o $@\n`),
      run: () => shAsync('make', ['-s', '-j2'], src),
      cleanup: () => sh('rm -f *.o prog', src),
    },
    { name: `grep -r over ${files} files`, run: () => shAsync('bash', ['-c', 'grep -r -c zzzzqqq t > /dev/null || true'], tree) },
  ];
}

async function overhead(dir: string, quick: boolean): Promise<BenchRow[]> {
  const repeats = quick ? 3 : 9;
  const rows: BenchRow[] = [];
  const pinDir = `/sys/fs/bpf/prov-bench-${process.pid}`;
  for (const w of workloads(dir, quick)) {
    w.setup?.();
    const base: number[] = [], prov: number[] = [];
    await w.run(); w.cleanup?.(); // warm the page cache
    for (let i = 0; i < repeats; i++) {
      base.push(await timeIt(w.run)); w.cleanup?.();
      const jd = mkdtempSync(join(tmpdir(), 'prov-bench-j-'));
      const h = await captureToJournal({ journalDir: jd, pinDir, ringBytes: 64 << 20 });
      try {
        prov.push(await timeIt(w.run));
      } finally {
        await h.stop();
        rmSync(jd, { recursive: true, force: true });
      }
      w.cleanup?.();
    }
    const mb = median(base), mp = median(prov);
    rows.push({
      figure: `overhead: ${w.name}, capture host-wide → journal vs nothing attached`, unit: 's',
      prov: mp, baseline: mb, baselineName: 'no capture', ratio: mb / mp, better: 'lower',
      spread: { prov: spread(prov), baseline: spread(base) }, repeats, goal: '≤ 5 % slower (ratio ≥ 0.95)',
      note: `overhead ${(100 * (mp / mb - 1)).toFixed(1)} %`,
    });
  }
  return rows;
}

function buildGen(dir: string): string {
  writeFileSync(join(dir, 'gen.c'), GEN_C);
  execFileSync('gcc', ['-O2', '-o', join(dir, 'gen'), join(dir, 'gen.c')]);
  return join(dir, 'gen');
}

async function drainRate(dir: string, gen: string, quick: boolean): Promise<BenchRow> {
  const pinDir = `/sys/fs/bpf/prov-bench-${process.pid}`;
  const repeats = quick ? 2 : 5;
  const iters = quick ? 250_000 : 600_000; // 2 events each, 96 B per record in the ring
  const rates: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const jd = mkdtempSync(join(tmpdir(), 'prov-bench-j-'));
    attachCapture({ pinDir, ringBytes: 256 << 20 });
    try {
      execFileSync(gen, [String(iters)]);
      const backlog = readCounters(pinDir).emitted;
      const writer = openJournalWriter({ dir: jd, stream: 'ebpf', segmentBytes: 256 << 20 });
      const t0 = process.hrtime.bigint();
      let done!: () => void;
      const finished = new Promise<void>((res) => { done = res; });
      let got = 0;
      const d = await Drainer.start({
        pinDir, sink: writer, pollMs: 1,
        onBatch: (ps) => { got += ps.length; if (got >= backlog) done(); },
      });
      await finished;
      const secs = Number(process.hrtime.bigint() - t0) / 1e9;
      rates.push(d.stats.records / secs);
      await d.stop();
      await writer.close();
      if (readCounters(pinDir).dropped) throw new Error('drops while building the backlog: ring too small');
    } finally {
      detachCapture(pinDir);
      rmSync(jd, { recursive: true, force: true });
    }
  }
  return {
    figure: 'drain rate: ring backlog → journal (raw records, appendEncoded, fsync groups)', unit: 'events/s',
    prov: median(rates), baseline: null, ratio: null, better: 'higher', spread: { prov: spread(rates) }, repeats,
    goal: '≥ 1,000,000 events/s', note: `backlog ≈ ${2 * iters} records per run (whole host traced)`,
  };
}

async function sustained(dir: string, gen: string, quick: boolean): Promise<BenchRow[]> {
  const pinDir = `/sys/fs/bpf/prov-bench-${process.pid}`;
  const seconds = quick ? 10 : 60;
  const rate = 100_000;
  const jd = mkdtempSync(join(tmpdir(), 'prov-bench-j-'));
  const h = await captureToJournal({ journalDir: jd, pinDir, ringBytes: 64 << 20 });
  let dropped = 0, emitted = 0, cpu = 0, wall = 0;
  try {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    await shAsync(gen, [String((rate / 2) * seconds), String(rate)]);
    await new Promise((r) => setTimeout(r, 300));
    wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const c = process.cpuUsage(c0);
    cpu = (c.user + c.system) / 1e6;
    ({ dropped, emitted } = readCounters(pinDir));
  } finally {
    await h.stop();
    rmSync(jd, { recursive: true, force: true });
  }
  return [
    {
      figure: `sustained ${rate.toLocaleString('en')} events/s for ${seconds} s into the journal: events dropped`, unit: 'events',
      prov: dropped, baseline: null, ratio: null, better: 'lower', repeats: 1, goal: '0',
      note: `${emitted} events emitted host-wide in ${wall.toFixed(1)} s`,
    },
    {
      figure: `collector CPU at ${rate.toLocaleString('en')} events/s (drain worker + journal writer)`, unit: '% of one core',
      prov: (100 * cpu) / wall, baseline: null, ratio: null, better: 'lower', repeats: 1,
      note: `${((cpu / Math.max(emitted, 1)) * 1e9).toFixed(0)} ns of CPU per event`,
    },
  ];
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'prov-bench-capture-'));
  try {
    const gen = buildGen(dir);
    const rows = [...await overhead(dir, opts.quick)];
    rows.push(await drainRate(dir, gen, opts.quick));
    rows.push(...await sustained(dir, gen, opts.quick));
    return { name: 'capture (eBPF)', rows, memory: { collector: process.memoryUsage().rss / 2 ** 20 } };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run({ quick: process.argv.includes('--quick') }).then((r) => {
    for (const row of r.rows) {
      const v = (x: number | null) => (x === null ? '-' : x >= 1000 ? Math.round(x).toLocaleString('en') : x.toFixed(3));
      process.stdout.write(`${row.figure}\n  prov ${v(row.prov)} ${row.unit}  baseline ${v(row.baseline)}  ratio ${row.ratio === null ? '-' : row.ratio.toFixed(3)}  spread ${row.spread ? `${row.spread.prov.toFixed(2)}/${row.spread.baseline?.toFixed(2) ?? '-'}` : '-'}  n=${row.repeats}  ${row.note ?? ''}  goal ${row.goal ?? '-'}\n`);
    }
    process.stdout.write(`collector RSS ${r.memory?.collector?.toFixed(0)} MiB\n`);
  }, (e) => { process.stderr.write(`capture bench: ${(e as Error).message}\n`); process.exitCode = 1; });
}
