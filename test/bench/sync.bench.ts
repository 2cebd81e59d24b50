/**
 * @module test/bench/sync.bench
 * `prov sync` against rsync on the same trees, in the same run, interleaved.
 *
 * Two captures: provfs (SRC is a provfs mount, whose journal stream holds SRC's operations
 * only; rsync reads the backing ext4 directory, so FUSE costs it nothing) and eBPF (SRC is a
 * plain ext4 directory, capture is system-wide: the journal holds every process's events).
 * Per tree size: build SRC (N small files in N/15 directories), copy it to one DST per tool,
 * then per repeat: an untimed prov sync consumes the journal records the bench itself caused
 * (rsync runs, tree hashing); SRC is changed by a child process under capture (~10 % of N as
 * 4 % appends, 3 % deletes, 3 % renames, as in notes/bench.md); then `prov sync` (in-process,
 * incremental from the journal, barrier probe included) runs first, and `rsync -a --delete`
 * (the fair baseline), `rsync -r --delete` (Bento's) and `rsync -a --delete --checksum` follow
 * in an order that rotates every repeat; every DST is verified against SRC by tree hash
 * (contents + modes + mtimes; contents only for `rsync -r`, which keeps neither). A third case
 * keeps the small tree's number of changes on the large tree: prov's time should follow the
 * changes, rsync's the files. Two tables close the output: the growth (every case, every tool)
 * and where prov's time went (read with the barrier, plan, apply, save; records read, under
 * SRC, passed over undecoded).
 *
 * Run alone: node dist/test/bench/sync.bench.js [--quick]   (needs root: eBPF)
 */
import * as fs from 'node:fs';
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { loadavg } from 'node:os';
import koffi from 'koffi';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow, type BenchTable } from './types.js';
import { ebpfDecoders } from '../../ebpf/capture.js';
import { JournalFeed } from '../../collector/sync/journalfeed.js';
import { syncOnce, type SyncOptions } from '../../collector/sync/engine.js';
import { treeHash } from '../../collector/sync/treehash.js';
import { Workload } from '../../collector/sync/workload.js';
import { mountProvfs, type ProvfsMount } from '../../kernel/daemon.js';
import { excludePid } from '../../ebpf/loader.js';
import { startCaptureChild, stopCaptureChild } from '../../collector/sync/capture-child.js';

const exec = promisify(execFile);
const RUNNER = fileURLToPath(new URL('../../collector/sync/workload-run.js', import.meta.url));
const MUTATION_ONLY = ['--without', 'create,truncate,chmod,renameOver,renameDir,deleteDir,mkdir,symlink,tempSave,tempDiscard,touch'];
/**
 * provfs (in this process) keeps a descriptor per file it has looked up: a 100,000-file tree
 * needs more than the usual 20,000. Raise RLIMIT_NOFILE (root may, up to fs.nr_open).
 */
function raiseFileLimit(want: number): void {
  const libc = koffi.load('libc.so.6');
  const setrlimit = libc.func('int setrlimit(int resource, const void *rlim)') as (r: number, b: Buffer) => number;
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(want), 0);
  b.writeBigUInt64LE(BigInt(want), 8);
  if (setrlimit(7 /* RLIMIT_NOFILE */, b) !== 0) log(`could not raise the open-file limit to ${want} (errno ${koffi.errno()})`);
}
const log = (m: string): void => { process.stderr.write(`sync.bench: ${m}\n`); };

type Tool = 'prov' | 'rsync-a' | 'rsync-r' | 'rsync-c';
const TOOLS: Tool[] = ['prov', 'rsync-a', 'rsync-r', 'rsync-c'];
const RSYNC_ARGS: Record<Exclude<Tool, 'prov'>, string[]> = {
  'rsync-a': ['-a', '--delete'],
  'rsync-r': ['-r', '--delete'],
  'rsync-c': ['-a', '--delete', '--checksum'],
};


const secs = (t0: bigint): number => Number(process.hrtime.bigint() - t0) / 1e9;
/**
 * CPU seconds (user + system) of this process's children that have been waited for (rsync and
 * the processes it forks; the probe's mkdir): /proc/self/stat cutime + cstime, in clock ticks.
 * CPU time is what stays meaningful when the shared machine's load makes wall time noisy.
 */
function childCpu(): number {
  const f = fs.readFileSync('/proc/self/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[13]) + Number(rest[14])) / CLK_TCK;
}
const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux
const ownCpu = (): number => { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; };

interface Phases { barrier: number; read: number; plan: number; apply: number; save: number }
interface CaseResult { files: number; changes: number; capture: CaptureKind; times: Record<Tool, number[]>; cpu: Record<Tool, number[]>; records: number[]; relevant: number[]; passed: number[]; phases: string[]; phaseTimes: Phases[]; fallbacks: string[] }
type CaptureKind = 'ebpf' | 'provfs';

async function runCase(base: string, capture: CaptureKind, files: number, changeCounts: number[], repeats: number, seed: number): Promise<CaseResult[]> {
  const journal = `${base}/journal`, state = `${base}/state`;
  // provfs: SRC is the mount; rsync reads the backing directory (plain ext4, the same files)
  // so that it pays nothing for FUSE. eBPF: SRC is a plain directory, capture is system-wide.
  const backing = `${base}/src`;
  const src = capture === 'provfs' ? `${base}/mnt` : backing;
  const dst: Record<Tool, string> = { prov: `${base}/dst-prov`, 'rsync-a': `${base}/dst-a`, 'rsync-r': `${base}/dst-r`, 'rsync-c': `${base}/dst-c` };
  fs.mkdirSync(backing, { recursive: true });
  log(`${files} files: building SRC`);
  new Workload(backing, seed).populate(Math.max(10, Math.round(files / 15)), files);
  for (const t of TOOLS) await exec('rsync', ['-a', `${backing}/`, `${dst[t]}/`]);
  let cap: ChildProcess | null = null;
  let mount: ProvfsMount | null = null;
  const pinDir = `/sys/fs/bpf/prov-sync-bench-${process.pid}`;
  if (capture === 'ebpf') {
    cap = await startCaptureChild(journal, pinDir);
    // The bench's own reads (tree hashing) are not part of what a user's journal would hold.
    // prov sync's barrier probe runs as a child process, so it is still recorded.
    excludePid(process.pid, pinDir);
  }
  else {
    fs.mkdirSync(src);
    mount = await mountProvfs({ backing, mountpoint: src, mode: 'prov', journalDir: journal });
  }
  const feed = new JournalFeed(journal, ebpfDecoders);
  const opts: SyncOptions = { src, dst: dst.prov, delete: true, feed, stateDir: state };
  const results: CaseResult[] = [];
  try {
    // Establish the checkpoint (a full comparison: there is none yet); untimed.
    const first = await syncOnce(opts);
    if (first.mode !== 'full') throw new Error('first sync should be a full comparison');
    for (const changeSteps of changeCounts) {
    const out: CaseResult = { files, changes: changeSteps, capture, times: { prov: [], 'rsync-a': [], 'rsync-r': [], 'rsync-c': [] }, cpu: { prov: [], 'rsync-a': [], 'rsync-r': [], 'rsync-c': [] }, records: [], relevant: [], passed: [], phases: [], phaseTimes: [], fallbacks: [] };
    results.push(out);
    for (let rep = 0; rep < repeats; rep++) {
      // Consume what the bench itself put in the journal since (rsync runs, tree hashing): a
      // user runs prov sync or rsync, not both, and never hashes the tree between syncs.
      await syncOnce(opts);
      await exec(process.execPath, [RUNNER, src, String(seed * 1000 + changeSteps + rep), String(changeSteps), ...MUTATION_ONLY], { maxBuffer: 1 << 20 });
      // prov runs right after the changes (nothing else in its window); the rsyncs rotate.
      const rs = TOOLS.slice(1);
      const order: Tool[] = ['prov', ...rs.map((_, i) => rs[(i + rep) % rs.length]!)];
      for (const tool of order) {
        const t0 = process.hrtime.bigint();
        const c0 = ownCpu() + childCpu();
        if (tool === 'prov') {
          const r = await syncOnce(opts);
          out.times.prov.push(secs(t0));
          out.cpu.prov.push(ownCpu() + childCpu() - c0);
          // A gap (e.g. the ring buffer overflowed under load) makes prov compare in full: that
          // time counts, and the fallback is reported.
          if (r.mode !== 'incremental') { out.fallbacks.push(r.reason ?? '?'); log(`prov fell back to a full comparison: ${r.reason}`); }
          out.records.push(r.records);
          out.relevant.push(r.relevant);
          out.passed.push(r.passedOver);
          out.phaseTimes.push(r.phases);
          out.phases.push(`read ${r.phases.read.toFixed(3)} (barrier ${r.phases.barrier.toFixed(3)}) + plan ${r.phases.plan.toFixed(3)} + apply ${r.phases.apply.toFixed(3)} + save ${r.phases.save.toFixed(3)} s`);
        } else {
          await exec('rsync', [...RSYNC_ARGS[tool], `${backing}/`, `${dst[tool]}/`], { maxBuffer: 1 << 24 });
          out.times[tool].push(secs(t0));
          out.cpu[tool].push(ownCpu() + childCpu() - c0);
        }
      }
      const want = treeHash(backing, { mtimes: true }), wantContent = treeHash(backing, { modes: false });
      for (const t of TOOLS) {
        // rsync -r keeps neither modes nor times: contents, names and types only.
        const ok = t === 'rsync-r' ? treeHash(dst[t], { modes: false }) === wantContent : treeHash(dst[t], { mtimes: true }) === want;
        if (!ok) throw new Error(`repeat ${rep}: ${t} left a DST that differs from SRC`);
      }
      log(`${capture}: ${files} files, ${changeSteps} changes, repeat ${rep + 1}/${repeats}: ` + TOOLS.map((t) => `${t} ${out.times[t].at(-1)!.toFixed(3)} s (CPU ${out.cpu[t].at(-1)!.toFixed(2)})`).join(', ') + `; prov read ${out.records.at(-1)} records (${out.relevant.at(-1)} under SRC, ${out.passed.at(-1)} passed over undecoded), ${out.phases.at(-1)}; trees verified; load ${loadavg()[0]!.toFixed(2)}`);
    }
    }
  } finally {
    await feed.close();
    if (cap) await stopCaptureChild(cap);
    if (mount) await mount.stop({ lazy: true });
  }
  return results;
}

function row(figure: string, c: CaseResult, baseline: Exclude<Tool, 'prov'>, note: string, goal?: string, paper?: string, what: 'times' | 'cpu' = 'times'): BenchRow {
  const p = median(c[what].prov), b = median(c[what][baseline]);
  return {
    figure, unit: 's', prov: p, baseline: b, baselineName: `${baseline === 'rsync-a' ? 'rsync -a --delete' : baseline === 'rsync-r' ? 'rsync -r --delete' : 'rsync -a --delete --checksum'}`,
    ratio: b / p, better: 'lower', spread: { prov: spread(c[what].prov), baseline: spread(c[what][baseline]) }, repeats: c.times.prov.length,
    goal, paper, note,
  };
}

const f3 = (x: number): string => x.toFixed(3);

/** Growth (time against files and against changes) and prov's phases, one row per case. */
function tables(cases: CaseResult[]): BenchTable[] {
  const growth: BenchTable = {
    title: 'sync: time against tree size and number of changes (median s)',
    columns: ['capture', 'files', 'changes', 'prov', 'rsync -a --delete', 'rsync -r --delete', 'rsync -a --delete --checksum', 'vs -a', 'vs -r', 'vs --checksum'],
    rows: cases.map((c) => {
      const p = median(c.times.prov);
      const b = (t: Tool): number => median(c.times[t]);
      return [c.capture, String(c.files), String(c.changes), f3(p), f3(b('rsync-a')), f3(b('rsync-r')), f3(b('rsync-c')),
        `${(b('rsync-a') / p).toFixed(1)}×`, `${(b('rsync-r') / p).toFixed(1)}×`, `${(b('rsync-c') / p).toFixed(1)}×`];
    }),
    caption: 'prov should grow with the changes (rows of one tree size), not with the files (rows with the same number of changes); rsync grows with the files.',
  };
  const growthCpu: BenchTable = {
    title: 'sync: CPU time (user + system, median s) against tree size and number of changes',
    columns: ['capture', 'files', 'changes', 'prov', 'rsync -a --delete', 'rsync -r --delete', 'rsync -a --delete --checksum', 'vs -a', 'vs -r', 'vs --checksum'],
    rows: cases.map((c) => {
      const p = median(c.cpu.prov);
      const b = (t: Tool): number => median(c.cpu[t]);
      return [c.capture, String(c.files), String(c.changes), f3(p), f3(b('rsync-a')), f3(b('rsync-r')), f3(b('rsync-c')),
        `${(b('rsync-a') / p).toFixed(1)}×`, `${(b('rsync-r') / p).toFixed(1)}×`, `${(b('rsync-c') / p).toFixed(1)}×`];
    }),
    caption: 'CPU seconds of prov (its threads and the probe) and of rsync (all its processes): less sensitive than wall time to the other tenants of the machine. Not counted: the capture daemon, which runs anyway.',
  };
  const med = (c: CaseResult, k: keyof Phases): string => f3(median(c.phaseTimes.map((p) => p[k])));
  const phases: BenchTable = {
    title: 'prov sync: where the time goes (median s per phase)',
    columns: ['capture', 'files', 'changes', 'read (barrier incl.)', 'barrier', 'plan', 'apply', 'save', 'records read', 'under SRC', 'passed over undecoded'],
    rows: cases.map((c) => [c.capture, String(c.files), String(c.changes), med(c, 'read'), med(c, 'barrier'), med(c, 'plan'), med(c, 'apply'), med(c, 'save'),
      String(median(c.records)), String(median(c.relevant)), String(median(c.passed))]),
    caption: 'barrier: probe in SRC, wait until capture has journaled it, fold the records up to it (part of read).',
  };
  return [growth, growthCpu, phases];
}

/** One case only (from the command line): capture, tree size, changes, repeats. */
export interface OnlyCase { capture: CaptureKind; files: number; changes: number; repeats: number }

export async function run(opts: BenchOptions & { only?: OnlyCase }): Promise<BenchResult> {
  const repeats = opts.quick ? 2 : 3;
  const load0 = loadavg()[0]!;
  raiseFileLimit(1 << 20);
  const root = fs.mkdtempSync('/var/tmp/prov-sync-bench-');
  const rows: BenchRow[] = [];
  const cases: CaseResult[] = [];
  try {
    // provfs keeps a descriptor per looked-up file in its (this) process and the open-file
    // limit here is 20,000 and cannot be raised (no CAP_SYS_RESOURCE); 16,000 files already
    // exhaust it (EMFILE): its trees stay at 12,000.
    const sizes: Record<CaptureKind, [number, number]> = opts.quick
      ? { provfs: [2_000, 8_000], ebpf: [4_000, 20_000] }
      : { provfs: [3_000, 12_000], ebpf: [20_000, 100_000] };
    let i = 0;
    for (const capture of ['provfs', 'ebpf'] as CaptureKind[]) {
      if (opts.only && opts.only.capture !== capture) continue;
      const [small, big] = sizes[capture];
      // Each tree once (one provfs mount per tree): the big tree takes the small tree's number
      // of changes first, then 10 %.
      const plan: Array<[number, number[]]> = opts.only
        ? [[opts.only.files, [opts.only.changes]]]
        : [[small, [Math.round(small * 0.1)]], [big, [Math.round(small * 0.1), Math.round(big * 0.1)]]];
      for (const [files, changeCounts] of plan) {
        const dir = `${root}/${i++}`;
        const cs = await runCase(dir, capture, files, changeCounts, opts.only?.repeats ?? repeats, 7 + i);
        fs.rmSync(dir, { recursive: true, force: true });
        cases.push(...cs);
        for (const c of cs) {
          const label = `${c.files} files, ${c.changes} changes (${Math.round((100 * c.changes) / c.files)} %)`;
          const note = `${capture === 'provfs' ? 'provfs (SRC is a provfs mount; rsync reads its backing ext4 directory)' : 'eBPF, system-wide capture (SRC on ext4)'}; prov read ${median(c.records)} journal records (${median(c.relevant)} under SRC) per sync; prov phases ${c.phases.join(' | ')}${c.fallbacks.length ? `; FULL COMPARISON in ${c.fallbacks.length} of ${c.times.prov.length} runs (${c.fallbacks[0]})` : ''}; load ${loadavg()[0]!.toFixed(2)}`;
          const what = `${label}, ${capture}`;
          rows.push(row(`sync time, ${what}, vs rsync -a`, c, 'rsync-a', note, '≥ 10× faster than rsync'));
          rows.push(row(`sync time, ${what}, vs rsync -r (Bento's baseline)`, c, 'rsync-r', note, '≥ 10× faster than rsync', 'Bento-prov sync: 5.8× slower than rsync -r on 20,000 files'));
          rows.push(row(`sync time, ${what}, vs rsync --checksum`, c, 'rsync-c', note));
          rows.push(row(`sync CPU time, ${what}, vs rsync -a`, c, 'rsync-a', note, undefined, undefined, 'cpu'));
          rows.push(row(`sync CPU time, ${what}, vs rsync -r`, c, 'rsync-r', note, undefined, undefined, 'cpu'));
          log(rows.slice(-5).map((x) => `${x.figure}: prov ${x.prov.toFixed(3)} s, ${x.baselineName} ${x.baseline!.toFixed(3)} s, ${x.ratio!.toFixed(2)}×`).join('\n'));
        }
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
  log(`load average ${load0.toFixed(2)} at start, ${loadavg()[0]!.toFixed(2)} at end`);
  return { name: 'sync', rows, tables: tables(cases) };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === fs.realpathSync(process.argv[1])) {
  process.env.PROV_LOG ??= 'warn';
  // --only CAPTURE:FILES:CHANGES[:REPEATS], e.g. --only ebpf:100000:10000:2
  const o = process.argv[process.argv.indexOf('--only') + 1];
  const only = process.argv.includes('--only') && o ? (([c, f, ch, rp]) => ({ capture: c as CaptureKind, files: Number(f), changes: Number(ch), repeats: Number(rp ?? 3) }))(o.split(':')) : undefined;
  const r = await run({ quick: process.argv.includes('--quick'), only });
  for (const x of r.rows) {
    process.stdout.write(`${x.figure}: prov ${x.prov.toFixed(3)} s, ${x.baselineName} ${x.baseline!.toFixed(3)} s → ${x.ratio!.toFixed(1)}× (spread prov ${(x.spread!.prov * 100).toFixed(0)} %, baseline ${((x.spread!.baseline ?? 0) * 100).toFixed(0)} %, n=${x.repeats}) — ${x.note}\n`);
  }
  for (const t of r.tables ?? []) {
    process.stdout.write(`\n${t.title}\n${t.columns.join(' | ')}\n${t.rows.map((x) => x.join(' | ')).join('\n')}\n${t.caption ?? ''}\n`);
  }
  process.stdout.write(JSON.stringify(r) + '\n');
}
