/**
 * @module test/bench/join.bench
 * Throughput of the join engine (default and strict rule) and of the stream merge, on a
 * generated workload of shell pipelines (`sh -c 'cat a b | sort > out'` with dash's fd
 * choreography, each on fresh pids and inodes) interleaved with provfs double-witness writes.
 * No baseline exists for the join; the figure to compare with is the store's ingest rate
 * (the issue asks ≥ 200,000 events/s end to end). Run alone: `node dist/test/bench/join.bench.js [--quick]`.
 */
import { JoinEngine } from '../../collector/join/engine.js';
import { FUSE, O_RDONLY, Scenario, WRITE_NEW, file } from '../../collector/join/testkit.js';
import { StreamMerger } from '../../collector/merge.js';
import type { JournalRecord } from '../../collector/journal/api.js';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';

function workload(iterations: number): JournalRecord[] {
  const s = new Scenario();
  for (let i = 0; i < iterations; i++) {
    const sh = 10_000 + i * 4;
    const [c1, c2, w] = [sh + 1, sh + 2, sh + 3];
    const ino = 100_000 + i * 8;
    const a = file(ino, `/w/${i}/a`);
    const b = file(ino + 1, `/w/${i}/b`);
    const out = file(ino + 2, `/w/${i}/out`);
    const m = file(ino + 3, `/mnt/${i}`, FUSE);
    s.exec(sh, ['sh', '-c', 'cat a b | sort > out']);
    s.pipe(sh, 3, 4, ino + 4);
    s.fork(sh, c1);
    s.close(sh, 4);
    s.fork(sh, c2);
    s.close(sh, 3);
    s.close(c1, 3); s.close(c1, 1); s.dup(c1, 4, 1); s.close(c1, 4);
    s.exec(c1, ['cat', 'a', 'b']);
    s.close(c2, 0); s.dup(c2, 3, 0); s.close(c2, 3);
    s.open(c2, 3, out, WRITE_NEW, true); s.close(c2, 1); s.dup(c2, 3, 1); s.close(c2, 3);
    s.exec(c2, ['sort']);
    s.open(c1, 3, a, O_RDONLY); s.close(c1, 3);
    s.open(c1, 3, b, O_RDONLY); s.close(c1, 3);
    s.close(c1, 1); s.exit(c1);
    s.exit(c2);
    s.exit(sh);
    s.exec(w, ['tee']);
    s.provfs(w, { op: 'open', file: m, flags: WRITE_NEW, fh: i, created: true });
    s.open(w, 5, m, WRITE_NEW, true);
    s.close(w, 5);
    s.provfs(w, { op: 'close', file: m, fh: i });
    s.exit(w);
  }
  return s.records;
}

/**
 * CPU seconds (user + system) of this process since `c0`: the machine is shared (2 vCPUs, other
 * tenants), so CPU time says more about the code than wall time; GC on helper threads counts too.
 */
function cpuSeconds(c0: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(c0);
  return (d.user + d.system) / 1e6;
}

function joinRate(records: JournalRecord[], strict: boolean): number {
  const e = new JoinEngine({ strict });
  const c0 = process.cpuUsage();
  for (let i = 0; i < records.length; i++) {
    e.apply(records[i]);
    if ((i & 4095) === 4095) e.takeBatch();
  }
  e.takeBatch();
  return records.length / cpuSeconds(c0);
}

function mergeRate(records: JournalRecord[]): number {
  const m = new StreamMerger<JournalRecord>({ now: () => 0 });
  const c0 = process.cpuUsage();
  let n = 0;
  for (const r of records) {
    m.push(r);
    while (m.pop()) n++;
  }
  n += m.flush().length;
  const s = cpuSeconds(c0);
  if (n !== records.length) throw new Error(`merge lost records: ${n} of ${records.length}`);
  return records.length / s;
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const iterations = opts.quick ? 3_000 : 30_000;
  const repeats = opts.quick ? 3 : 7;
  const records = workload(iterations);
  const plain: number[] = [];
  const strict: number[] = [];
  const merge: number[] = [];
  let peak = process.memoryUsage().rss;
  for (let r = 0; r < repeats; r++) {
    plain.push(joinRate(records, false));
    strict.push(joinRate(records, true));
    merge.push(mergeRate(records));
    peak = Math.max(peak, process.memoryUsage().rss);
  }
  const row = (figure: string, xs: number[], note: string): BenchRow => ({
    figure, unit: 'events per CPU-second', prov: Math.round(median(xs)), baseline: null, ratio: null, better: 'higher',
    spread: { prov: Number(spread(xs).toFixed(3)) }, repeats, goal: 'well above the store ingest goal of 200,000 events/s', note,
  });
  const note = `${records.length} records (${iterations} pipelines + provfs writes), A/B/C interleaved`;
  return {
    name: 'join',
    rows: [
      row('join engine, default rule', plain, note),
      row('join engine, strict rule', strict, note),
      row('stream merge (2 streams, push+pop)', merge, note),
    ],
    memory: { 'join bench peak RSS': Math.round(peak / 2 ** 20) },
  };
}

if (process.argv[1]?.endsWith('join.bench.js')) {
  process.env.PROV_LOG ??= 'warn';
  run({ quick: process.argv.includes('--quick') }).then((r) => console.log(JSON.stringify(r, null, 2)));
}
