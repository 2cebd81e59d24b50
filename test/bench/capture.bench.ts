/**
 * @module test/bench/capture.bench
 * eBPF capture costs, measured live on this host (families, all by default; pick some with
 * PROV_CAPTURE_BENCH=overhead,split,kernel,bursts,loaded,drain,sustained):
 * - overhead: wall time of four workloads (fork+exec loop, untar of a large tree, a C build,
 *   grep -r) with capture attached host-wide and draining into a journal (from this process,
 *   and from a `prov capture start --nice 19` daemon), against the same workload with nothing
 *   attached, interleaved (A B C A B C …), medians and spread;
 * - split: grep -r with nothing attached / probes attached and no consumer (the in-kernel cost)
 *   / the `prov capture start` daemon draining / the same at `--nice 19`, interleaved, wall and
 *   the workload's own CPU;
 * - kernel: CPU cost per traced open+close and per chmod, probes attached with no consumer;
 * - bursts: 200k chmods, 200k open+close of small files, a parallel make, into a 64 MiB ring
 *   (PROV_CAPTURE_BENCH_RING_MIB=16,64,… for others): loss %, drain rate until caught up,
 *   bytes per ring record of each kind;
 * - loaded: a long open+close storm beside 8 busy loops in their own sessions, drained by the
 *   daemon with and without its priority boost: loss %;
 * - drain: a backlog of ~1 M records drained from the pinned ring into the journal;
 * - sustained: 100,000 events/s for 60 s (10 s with --quick) while draining: drops must be 0;
 *   CPU time of the collector (this process: drain worker + journal writer) per second.
 *
 * Run alone: node dist/test/bench/capture.bench.js [--quick]
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';
import { attachCapture, detachCapture, readCounters } from '../../ebpf/loader.js';
import { captureToJournal, startCapture, stopCapture } from '../../ebpf/capture.js';
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

/* burst MODE N: a burst of traced syscalls as fast as one thread can issue them.
 * chmod: N chmods of one file by relative path (setattr records);
 * openclose: N × open(O_RDONLY)+close over 100 small files (open + close records). */
const BURST_C = `
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
  long n = atol(argv[2]);
  char name[64];
  if (!strcmp(argv[1], "chmod")) {
    close(open("burst-file", O_CREAT | O_WRONLY, 0644));
    for (long i = 0; i < n; i++) if (chmod("burst-file", (i & 1) ? 0600 : 0644)) return 1;
    return 0;
  }
  for (int k = 0; k < 100; k++) { snprintf(name, sizeof name, "small-%d", k); int fd = open(name, O_CREAT | O_WRONLY, 0644); write(fd, "x\\n", 2); close(fd); }
  for (long i = 0; i < n; i++) {
    snprintf(name, sizeof name, "small-%ld", i % 100);
    int fd = open(name, O_RDONLY);
    if (fd < 0) return 1;
    close(fd);
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
  const rnd = randomBytes(2048 * 101);
  for (let d = 0; d < files / 100; d++) {
    const sub = join(tree, 't', `d${Math.floor(d / 10)}`, `e${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(join(sub, `f${f}.txt`), rnd.subarray(2048 * f, 2048 * f + 2048 + d).toString('base64'));
  }
  sh('tar cf big.tar t', tree);
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

async function overhead(dir: string, quick: boolean, ws: Workload[]): Promise<BenchRow[]> {
  const repeats = quick ? 3 : 9;
  const rows: BenchRow[] = [];
  const pinDir = `/sys/fs/bpf/prov-bench-${process.pid}`;
  for (const w of ws) {
    w.setup?.();
    const base: number[] = [], prov: number[] = [], yielding: number[] = [];
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
      // `prov capture start --nice 19`: the collector daemon yields the CPU while its ring is calm
      const sd = mkdtempSync(join(tmpdir(), 'prov-bench-state-')), jd2 = mkdtempSync(join(tmpdir(), 'prov-bench-j-'));
      const pin = `${pinDir}-d`;
      try {
        await startCapture({ journalDir: jd2, pinDir: pin, stateDir: sd, calmNice: 19 });
        yielding.push(await timeIt(w.run));
      } finally {
        await stopCapture({ pinDir: pin, stateDir: sd }).catch(() => undefined);
        rmSync(sd, { recursive: true, force: true });
        rmSync(jd2, { recursive: true, force: true });
      }
      w.cleanup?.();
    }
    const mb = median(base);
    for (const [times, how] of [[prov, 'capture host-wide → journal'], [yielding, 'capture host-wide, `prov capture start --nice 19` collector daemon']] as const) {
      const mp = median(times);
      rows.push({
        figure: `overhead: ${w.name}, ${how} vs nothing attached`, unit: 's',
        prov: mp, baseline: mb, baselineName: 'no capture', ratio: mb / mp, better: 'lower',
        spread: { prov: spread(times), baseline: spread(base) }, repeats, goal: '≤ 5 % slower (ratio ≥ 0.95)',
        note: `overhead ${(100 * (mp / mb - 1)).toFixed(1)} %`,
      });
    }
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

/** A host-wide capture drained into a temp journal, with per-kind record counts and bytes. */
async function drainedCapture(ringBytes: number, boostNice: number | null = -10) {
  const pinDir = `/sys/fs/bpf/prov-bench-${process.pid}`;
  const jd = mkdtempSync(join(tmpdir(), 'prov-bench-j-'));
  attachCapture({ pinDir, ringBytes });
  const writer = openJournalWriter({ dir: jd, stream: 'ebpf', segmentBytes: 256 << 20 });
  const kinds = new Map<number, { n: number; bytes: number }>();
  const drainer = await Drainer.start({
    pinDir, sink: writer, boostNice,
    onBatch: (ps) => {
      for (const p of ps) {
        const k = p[0]! | (p[1]! << 8);
        const e = kinds.get(k) ?? { n: 0, bytes: 0 };
        e.n++; e.bytes += p.length;
        kinds.set(k, e);
      }
    },
  });
  return {
    pinDir, drainer, kinds,
    /** Wait until everything the kernel emitted up to now was drained (or `ms` passed). */
    async caughtUp(ms = 60000): Promise<void> {
      const target = readCounters(pinDir).emitted;
      const until = Date.now() + ms;
      while (drainer.stats.records < target && Date.now() < until) await new Promise((r) => setTimeout(r, 2));
    },
    async stop(): Promise<void> {
      detachCapture(pinDir);
      try { await drainer.stop(); } finally { await writer.close(); rmSync(jd, { recursive: true, force: true }); }
    },
  };
}

const KIND_NAME: Record<number, string> = {
  1: 'fork', 2: 'exec (ABI 1)', 3: 'exit', 4: 'fd', 5: 'open', 6: 'sock', 7: 'msg', 8: 'fs (ABI 1)', 9: 'lost', 10: 'setattr (ABI 1)',
  11: 'exec', 12: 'fs', 13: 'setattr',
};

interface Burst { name: string; kinds: number[]; setup?: (dir: string) => void; run: (dir: string) => Promise<void> }

function bursts(burstBin: string, quick: boolean): Burst[] {
  const n = quick ? 100_000 : 200_000;
  const targets = quick ? 150 : 400;
  return [
    { name: `${n / 1000}k chmods`, kinds: [10, 13], run: (d) => shAsync(burstBin, ['chmod', String(n)], d) },
    { name: `${n / 1000}k open+close of small files`, kinds: [4, 5], run: (d) => shAsync(burstBin, ['openclose', String(n)], d) },
    {
      name: `parallel make (${targets} targets, -j8, cp + sh)`, kinds: [1, 2, 3, 4, 5, 11],
      setup: (d) => {
        writeFileSync(join(d, 'src.txt'), 'x\n'.repeat(100));
        const ts = Array.from({ length: targets }, (_, i) => `o${i}.txt`);
        writeFileSync(join(d, 'Makefile'), `all: ${ts.join(' ')}\n%.txt: src.txt\n\tcp src.txt $@ && chmod 644 $@\n`);
      },
      run: (d) => shAsync('bash', ['-c', 'rm -f o*.txt; make -s -j8'], d),
    },
  ];
}

/**
 * Bursts: a short storm of events into a ring of `ringBytes` drained into the journal. Loss
 * (records the kernel dropped, host-wide, over all records of the run), drain rate (records
 * drained from the burst's start until the ring is empty again, per second of that window),
 * and the bytes per ring record of the burst's own record kinds.
 */
async function burstRows(dir: string, burstBin: string, quick: boolean, ringBytes: number): Promise<BenchRow[]> {
  const repeats = quick ? 2 : 3;
  const rows: BenchRow[] = [];
  for (const b of bursts(burstBin, quick)) {
    const wd = mkdtempSync(join(dir, 'burst-'));
    b.setup?.(wd);
    const loss: number[] = [], rate: number[] = [], evs: number[] = [], burstRate: number[] = [], lag: number[] = [];
    const sizes = new Map<number, { n: number; bytes: number }>();
    for (let r = 0; r < repeats; r++) {
      const cap = await drainedCapture(ringBytes);
      try {
        const c0 = readCounters(cap.pinDir);
        const d0 = cap.drainer.stats.records;
        const t0 = process.hrtime.bigint();
        await b.run(wd);
        const tBurst = Number(process.hrtime.bigint() - t0) / 1e9;
        await cap.caughtUp();
        const tAll = Number(process.hrtime.bigint() - t0) / 1e9;
        const c1 = readCounters(cap.pinDir);
        const emitted = c1.emitted - c0.emitted, dropped = c1.dropped - c0.dropped;
        loss.push((100 * dropped) / Math.max(1, emitted + dropped));
        rate.push((cap.drainer.stats.records - d0) / tAll);
        lag.push(tAll - tBurst);
        evs.push(emitted + dropped);
        burstRate.push((emitted + dropped) / tBurst);
        for (const k of b.kinds) {
          const e = cap.kinds.get(k);
          if (!e) continue;
          const s = sizes.get(k) ?? { n: 0, bytes: 0 };
          s.n += e.n; s.bytes += e.bytes;
          sizes.set(k, s);
        }
      } finally {
        await cap.stop();
      }
    }
    rmSync(wd, { recursive: true, force: true });
    const sizeNote = [...sizes].map(([k, s]) => `${KIND_NAME[k]} ${(s.bytes / s.n).toFixed(0)} B`).join(', ');
    const ring = `${ringBytes >> 20} MiB ring`;
    rows.push({
      figure: `burst ${b.name}, ${ring}: events lost`, unit: '%', prov: median(loss), baseline: null, ratio: null, better: 'lower',
      spread: { prov: spread(loss) }, repeats, goal: '0',
      note: `per run: ${loss.map((x) => x.toFixed(1)).join(' / ')} % of ${evs.map((x) => Math.round(x / 1000) + 'k').join(' / ')} events; burst ${burstRate.map((x) => (x / 1e6).toFixed(2)).join(' / ')} M events/s; record bytes: ${sizeNote}`,
    });
    rows.push({
      figure: `burst ${b.name}, ${ring}: drain rate until caught up`, unit: 'events/s', prov: median(rate), baseline: null, ratio: null, better: 'higher',
      spread: { prov: spread(rate) }, repeats, goal: '≥ 1,000,000 events/s',
      note: `from the burst's start until drained (bounded by the workload's own rate when it is slower); caught up ${lag.map((x) => (1000 * x).toFixed(0)).join(' / ')} ms after the burst ended`,
    });
  }
  return rows;
}

/**
 * Loss under CPU contention: `hogs` busy loops, each in its own session (load ≈ hogs + 1 on top
 * of the host's, like the load 10–25 of session 1's fs bench) while a
 * long open+close storm fills a small ring, drained by the `prov capture start` collector
 * daemon (its own session, so its own autogroup); its priority boost (nice -10 for its threads
 * and its autogroup while the ring is over a quarter full) against none, interleaved.
 */
async function loadedRows(dir: string, burstBin: string, quick: boolean): Promise<BenchRow[]> {
  const hogsN = 8, n = quick ? 500_000 : 1_000_000, ringBytes = 16 << 20, repeats = quick ? 2 : 3;
  const wd = mkdtempSync(join(dir, 'loaded-'));
  const res: Record<'on' | 'off', { loss: number[]; wall: number[] }> = { on: { loss: [], wall: [] }, off: { loss: [], wall: [] } };
  for (let i = 0; i < repeats; i++) {
    for (const mode of (i % 2 ? ['off', 'on'] : ['on', 'off']) as ('on' | 'off')[]) {
      // each busy loop in its own session (own autogroup), like other users' jobs
      const hogs = Array.from({ length: hogsN }, () => spawn('bash', ['-c', 'while :; do :; done'], { stdio: 'ignore', detached: true }));
      const pinDir = `/sys/fs/bpf/prov-bench-loaded-${process.pid}`;
      const stateDir = mkdtempSync(join(tmpdir(), 'prov-bench-state-'));
      const journalDir = mkdtempSync(join(tmpdir(), 'prov-bench-j-'));
      try {
        await startCapture({ journalDir, pinDir, stateDir, ringBytes, boostNice: mode === 'on' ? -10 : null });
        const c0 = readCounters(pinDir);
        res[mode].wall.push(await timeIt(() => shAsync(burstBin, ['openclose', String(n)], wd)));
        for (const h of hogs) h.kill('SIGKILL');
        const c1 = readCounters(pinDir);
        const emitted = c1.emitted - c0.emitted, dropped = c1.dropped - c0.dropped;
        res[mode].loss.push((100 * dropped) / Math.max(1, emitted + dropped));
      } finally {
        for (const h of hogs) h.kill('SIGKILL');
        await stopCapture({ pinDir, stateDir }).catch(() => undefined);
        rmSync(stateDir, { recursive: true, force: true });
        rmSync(journalDir, { recursive: true, force: true });
      }
    }
  }
  rmSync(wd, { recursive: true, force: true });
  return [{
    figure: `loaded: ${2 * n / 1e6} M open+close events beside ${hogsN} busy loops, 16 MiB ring, collector daemon: events lost, priority boost vs none`, unit: '%',
    prov: median(res.on.loss), baseline: median(res.off.loss), baselineName: 'no boost', ratio: null, better: 'lower',
    spread: { prov: spread(res.on.loss), baseline: spread(res.off.loss) }, repeats, goal: '0',
    note: `per run boost ${res.on.loss.map((x) => x.toFixed(1)).join(' / ')} %, none ${res.off.loss.map((x) => x.toFixed(1)).join(' / ')} %; workload wall median ${median(res.on.wall).toFixed(2)} s boosted vs ${median(res.off.wall).toFixed(2)} s`,
  }];
}

/**
 * In-kernel cost per traced call: the burst binary's own CPU time (user + system) with nothing
 * attached against probes attached host-wide with no consumer (a ring large enough for the run),
 * interleaved; (attached − none) / calls.
 */
async function kernelCostRows(dir: string, burstBin: string, quick: boolean): Promise<BenchRow[]> {
  const n = 200_000, repeats = quick ? 5 : 9;
  const pinDir = `/sys/fs/bpf/prov-bench-kcost-${process.pid}`;
  const wd = mkdtempSync(join(dir, 'kcost-'));
  const rows: BenchRow[] = [];
  for (const [mode, what] of [['openclose', 'open+close of a small file (2 traced syscalls, 2 records)'], ['chmod', 'chmod by relative path (1 traced syscall, 1 record)']] as const) {
    const none: number[] = [], att: number[] = [];
    for (let i = 0; i < repeats; i++) {
      for (const on of i % 2 ? [true, false] : [false, true]) {
        if (on) attachCapture({ pinDir, ringBytes: 256 << 20 });
        try {
          const t = await timedShell(`${burstBin} ${mode} ${n}`, wd);
          (on ? att : none).push(t.user + t.sys);
        } finally {
          if (on) detachCapture(pinDir);
        }
      }
    }
    const a = median(none), b = median(att);
    rows.push({
      figure: `in-kernel cost per ${what}, probes attached (no consumer) vs nothing`, unit: 'ns of CPU per call',
      prov: ((b - a) / n) * 1e9, baseline: null, ratio: null, better: 'lower', spread: { prov: spread(att), baseline: spread(none) }, repeats,
      note: `workload CPU per call ${((a / n) * 1e9).toFixed(0)} ns untraced, ${((b / n) * 1e9).toFixed(0)} ns traced`,
    });
  }
  rmSync(wd, { recursive: true, force: true });
  return rows;
}

/** `bash -c 'time …'`: the workload's wall, user and system seconds (its children included). */
function timedShell(cmd: string, cwd: string): Promise<{ wall: number; user: number; sys: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn('bash', ['-c', `TIMEFORMAT='%R %U %S'; time ( ${cmd} ) > /dev/null`], { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    c.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('close', (code) => {
      const m = /([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(err);
      if (code !== 0 || !m) reject(new Error(`bench workload failed: ${cmd}: ${err}`));
      else resolve({ wall: Number(m[1]), user: Number(m[2]), sys: Number(m[3]) });
    });
  });
}

/**
 * The overhead split on grep -r: nothing attached (A), attached with no consumer (B: the
 * in-kernel cost alone; the ring is large enough to hold the whole run), attached and drained
 * into the journal by the `prov capture start` collector daemon (C), the same daemon yielding
 * the CPU while its ring is calm (D). Interleaved A B C D with a rotated order, medians of wall
 * and of the workload's own CPU (user + system).
 */
async function overheadSplit(dir: string, quick: boolean): Promise<BenchRow[]> {
  const tree = join(dir, 'tree');
  const cmd = 'for i in 1 2 3; do grep -r -c zzzzqqq t; done || true';
  const repeats = quick ? 5 : 11;
  const pinDir = `/sys/fs/bpf/prov-bench-split-${process.pid}`;
  const res: Record<'A' | 'B' | 'C' | 'D', { wall: number[]; cpu: number[] }> = { A: { wall: [], cpu: [] }, B: { wall: [], cpu: [] }, C: { wall: [], cpu: [] }, D: { wall: [], cpu: [] } };
  await timedShell(cmd, tree);
  const modes = ['A', 'B', 'C', 'D'] as const;
  for (let i = 0; i < repeats; i++) {
    for (let j = 0; j < modes.length; j++) {
      const m = modes[(i + j) % modes.length]!;
      let t: { wall: number; user: number; sys: number };
      if (m === 'A') t = await timedShell(cmd, tree);
      else if (m === 'B') {
        attachCapture({ pinDir, ringBytes: 256 << 20 });
        try { t = await timedShell(cmd, tree); } finally { detachCapture(pinDir); }
      } else {
        // the production path: `prov capture start`'s collector daemon, default ring and priorities
        // (C), or yielding the CPU while its ring is calm (D: `prov capture start --nice 19`)
        const stateDir = mkdtempSync(join(tmpdir(), 'prov-bench-state-'));
        const journalDir = mkdtempSync(join(tmpdir(), 'prov-bench-j-'));
        const pin = `/sys/fs/bpf/prov-bench-splitd-${process.pid}`;
        try {
          await startCapture({ journalDir, pinDir: pin, stateDir, ...(m === 'D' ? { calmNice: 19 } : {}) });
          t = await timedShell(cmd, tree);
        } finally {
          await stopCapture({ pinDir: pin, stateDir }).catch(() => undefined);
          rmSync(stateDir, { recursive: true, force: true });
          rmSync(journalDir, { recursive: true, force: true });
        }
      }
      res[m].wall.push(t.wall);
      res[m].cpu.push(t.user + t.sys);
    }
  }
  const rows: BenchRow[] = [];
  for (const [m, label] of [['B', 'probes attached, no consumer (in-kernel cost)'], ['C', 'probes attached + collector daemon draining into the journal'], ['D', 'probes attached + collector daemon at nice 19 while its ring is calm (--nice 19)']] as const) {
    for (const what of ['wall', 'cpu'] as const) {
      const a = median(res.A[what]), x = median(res[m][what]);
      rows.push({
        figure: `overhead split, grep -r: ${label}, workload ${what === 'wall' ? 'wall time' : 'CPU time (user+sys)'}`, unit: 's',
        prov: x, baseline: a, baselineName: 'nothing attached', ratio: a / x, better: 'lower',
        spread: { prov: spread(res[m][what]), baseline: spread(res.A[what]) }, repeats, goal: '≤ 5 % slower (ratio ≥ 0.95)',
        note: `overhead ${(100 * (x / a - 1)).toFixed(1)} %`,
      });
    }
  }
  return rows;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const dir = mkdtempSync(join(tmpdir(), 'prov-bench-capture-'));
  try {
    const gen = buildGen(dir);
    writeFileSync(join(dir, 'burst.c'), BURST_C);
    const burstBin = join(dir, 'burst');
    execFileSync('gcc', ['-O2', '-o', burstBin, join(dir, 'burst.c')]);
    const only = (process.env.PROV_CAPTURE_BENCH ?? 'overhead,split,kernel,bursts,loaded,drain,sustained').split(',');
    const rows: BenchRow[] = [];
    if (only.includes('overhead') || only.includes('split')) {
      const ws = workloads(dir, opts.quick);
      if (only.includes('overhead')) rows.push(...await overhead(dir, opts.quick, ws));
      if (only.includes('split')) rows.push(...await overheadSplit(dir, opts.quick));
    }
    if (only.includes('kernel')) rows.push(...await kernelCostRows(dir, burstBin, opts.quick));
    if (only.includes('bursts')) {
      for (const mib of (process.env.PROV_CAPTURE_BENCH_RING_MIB ?? '64').split(',').map(Number)) rows.push(...await burstRows(dir, burstBin, opts.quick, mib << 20));
    }
    if (only.includes('loaded')) rows.push(...await loadedRows(dir, burstBin, opts.quick));
    if (only.includes('drain')) rows.push(await drainRate(dir, gen, opts.quick));
    if (only.includes('sustained')) rows.push(...await sustained(dir, gen, opts.quick));
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
