/**
 * @module test/bench/sync.bench
 * `prov sync` against rsync on the same trees, in the same run, interleaved.
 *
 * Two captures: provfs (SRC is a provfs mount, whose journal stream holds SRC's operations
 * only; rsync reads the backing ext4 directory, so FUSE costs it nothing) and eBPF (SRC is a
 * plain ext4 directory, capture is system-wide: the journal holds every process's events).
 * Per tree size: build SRC (N small files in N/15 directories), copy it to one DST per tool,
 * then per repeat:
 * - untimed: syncs that consume what the bench itself put in the journal since the last
 *   repeat (rsync runs, tree hashing: a user runs prov sync or rsync, not both); a snapshot of
 *   SRC (inode, size, mtime of every entry);
 * - SRC is changed by a child process under capture (~10 % of N as 4 % appends, 3 % deletes,
 *   3 % renames, as in notes/bench.md); a second snapshot gives the net change set;
 * - untimed, measured apart: the capture lag (until a probe made after the workload is in the
 *   journal), so that every tool starts with capture caught up and caches in the same state;
 * - timed: `prov sync` in-process (the engine as `--watch` or a resident server runs it) and
 *   the command `prov sync --delete SRC DST` in a process of its own (node start-up and module
 *   loading included), in alternating order; then, rotating: the floor (the net change set
 *   applied by a C program, sync-floor.ts: the kernel work no tool can avoid), `rsync -a
 *   --delete` (the fair baseline: it keeps times, as prov does), `rsync -r --delete` (Bento's)
 *   and `rsync -a --delete --checksum`. The prov runs come first because what runs before them
 *   is in their journal window (rsync reads all of SRC) where a user's journal would not have it;
 * - every DST is verified against SRC by tree hash (contents + modes + mtimes; contents only
 *   for `rsync -r`, which keeps neither).
 * A third case keeps the small tree's number of changes on the large tree: prov's time should
 * follow the changes, rsync's the files. Tables close the output: the growth (every case,
 * every tool, wall and CPU time) and where prov's time went (capture lag, read with the
 * barrier, plan, apply, save, the command's start-up; records read, under SRC, passed over).
 *
 * Run alone: node dist/test/bench/sync.bench.js [--quick] [--only CAPTURE:FILES:CHANGES[:REPEATS]]
 * (needs root: eBPF; cc for the floor)
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
import { buildFloor, netOps, runFloor, snapshot } from './sync-floor.js';

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

type Tool = 'prov' | 'prov-cli' | 'floor' | 'rsync-a' | 'rsync-r' | 'rsync-c';
const TOOLS: Tool[] = ['prov', 'prov-cli', 'floor', 'rsync-a', 'rsync-r', 'rsync-c'];
type Rsync = 'rsync-a' | 'rsync-r' | 'rsync-c';
const RSYNCS: Rsync[] = ['rsync-a', 'rsync-r', 'rsync-c'];
const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
/** Extra node arguments for the command (e.g. `--cpu-prof`), to study it: SYNC_BENCH_CLI_NODE_ARGS="…". */
const CLI_NODE_ARGS = (process.env.SYNC_BENCH_CLI_NODE_ARGS ?? '').split(' ').filter(Boolean);
const RSYNC_ARGS: Record<Rsync, string[]> = {
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
interface CaseResult {
  files: number; changes: number; capture: CaptureKind; times: Record<Tool, number[]>; cpu: Record<Tool, number[]>;
  records: number[]; relevant: number[]; passed: number[]; phases: string[]; phaseTimes: Phases[]; fallbacks: string[];
  /** prov-cli: its own phases (s), and its start-up (process start to the sync's own clock). */
  cliPhases: Phases[]; cliStartup: number[];
  /** Capture's lag after the workload: its end until a probe made then is in the journal (s). */
  settle: number[];
  /** The net change set the floor applied (renames, deletes, copies, directory times). */
  net: string[];
}
type CaptureKind = 'ebpf' | 'provfs';

/**
 * Wait (untimed for the tools) until capture has journaled everything up to now: a probe
 * directory made in SRC by a child process must be readable in the journal. Returns the wait (s).
 * Reads with its own feed, passing over undecoded every record that does not name the probe.
 */
async function settle(journal: string, src: string, from: Record<string, number>): Promise<number> {
  const t0 = process.hrtime.bigint();
  const name = `.prov-sync-settle-${process.pid}-${Date.now()}`;
  const needle = Buffer.from(name);
  await exec('mkdir', ['--', `${src}/${name}`]);
  fs.rmdirSync(`${src}/${name}`);
  const feed = new JournalFeed(journal, ebpfDecoders);
  const keep = (_s: string, _c: number, buf: Uint8Array, start: number, len: number): boolean =>
    Buffer.from(buf.buffer, buf.byteOffset + start, len).indexOf(needle) >= 0;
  try {
    const pos = { ...from };
    for (;;) {
      for await (const r of feed.read(pos, keep)) {
        pos[r.stream] = r.seq;
        const ev = r.event as { op: string; file?: { path?: string } };
        if (ev.op === 'mkdir' && ev.file?.path?.endsWith(name)) return secs(t0);
      }
      if (secs(t0) > 120) throw new Error('settle: capture did not record the probe within 120 s');
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally { await feed.close(); }
}

async function runCase(base: string, capture: CaptureKind, files: number, changeCounts: number[], repeats: number, seed: number, floorBin: string): Promise<CaseResult[]> {
  const journal = `${base}/journal`, state = `${base}/state`, cliHome = `${base}/cli-home`;
  // provfs: SRC is the mount; rsync reads the backing directory (plain ext4, the same files)
  // so that it pays nothing for FUSE. eBPF: SRC is a plain directory, capture is system-wide.
  const backing = `${base}/src`;
  const src = capture === 'provfs' ? `${base}/mnt` : backing;
  const dst: Record<Tool, string> = {
    prov: `${base}/dst-prov`, 'prov-cli': `${base}/dst-cli`, floor: `${base}/dst-floor`,
    'rsync-a': `${base}/dst-a`, 'rsync-r': `${base}/dst-r`, 'rsync-c': `${base}/dst-c`,
  };
  fs.mkdirSync(backing, { recursive: true });
  fs.mkdirSync(cliHome, { mode: 0o700 });
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
  const cliFeed = new JournalFeed(journal, ebpfDecoders);
  const opts: SyncOptions = { src, dst: dst.prov, delete: true, feed, stateDir: state };
  // prov-cli: the command a user types, in a process of its own (node start-up, module loading),
  // with its own DST and checkpoint (the checkpoint in PROV_HOME/sync, as the CLI keeps it).
  const cliOpts: SyncOptions = { src, dst: dst['prov-cli'], delete: true, feed: cliFeed, stateDir: `${cliHome}/sync` };
  const cliEnv = { ...process.env, PROV_HOME: cliHome, PROV_JOURNAL: journal, PROV_LOG: 'warn' };
  const results: CaseResult[] = [];
  const empty = (): Record<Tool, number[]> => ({ prov: [], 'prov-cli': [], floor: [], 'rsync-a': [], 'rsync-r': [], 'rsync-c': [] });
  try {
    // Establish the checkpoints (a full comparison: there is none yet); untimed.
    for (const o of [opts, cliOpts]) {
      const first = await syncOnce(o);
      if (first.mode !== 'full') throw new Error('first sync should be a full comparison');
    }
    for (const changeSteps of changeCounts) {
    const out: CaseResult = { files, changes: changeSteps, capture, times: empty(), cpu: empty(), records: [], relevant: [], passed: [], phases: [], phaseTimes: [], fallbacks: [], cliPhases: [], cliStartup: [], settle: [], net: [] };
    results.push(out);
    for (let rep = 0; rep < repeats; rep++) {
      // Consume what the bench itself put in the journal since (rsync runs, tree hashing): a
      // user runs prov sync or rsync, not both, and never hashes the tree between syncs.
      await syncOnce(opts);
      await syncOnce(cliOpts);
      const heads = await feed.heads();
      const before = snapshot(backing);
      await exec(process.execPath, [RUNNER, src, String(seed * 1000 + changeSteps + rep), String(changeSteps), ...MUTATION_ONLY], { maxBuffer: 1 << 20 });
      const net = netOps(before, snapshot(backing));
      out.net.push(`${net.counts.renames} renames, ${net.counts.deletes} deletes, ${net.counts.copies} copies, ${net.counts.dirs} directory times`);
      // Every tool starts with capture caught up (the same state for all; what a user who syncs
      // a moment after the changes sees). The wait is reported on its own: a sync started while
      // capture still drains the changes waits for it in its barrier.
      out.settle.push(capture === 'ebpf' ? await settle(journal, src, heads) : 0);
      // Both prov runs first (whatever runs before them is in their journal window: rsync's
      // reads of SRC would be, a user's journal would not hold them), in rotating order; then
      // the floor and the rsyncs, rotating.
      const provs: Tool[] = rep % 2 ? ['prov-cli', 'prov'] : ['prov', 'prov-cli'];
      const rest: Tool[] = ['floor', ...RSYNCS];
      const order: Tool[] = [...provs, ...rest.map((_, i) => rest[(i + rep) % rest.length]!)];
      for (const tool of order) {
        const t0 = process.hrtime.bigint();
        const c0 = ownCpu() + childCpu();
        if (tool === 'prov') {
          const r = await syncOnce(opts);
          if (process.env.PROV_LOG === 'debug') log(`timed prov sync: hrtime ${t0 / 1000n}..${process.hrtime.bigint() / 1000n} µs`);
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
        } else if (tool === 'prov-cli') {
          const { stdout } = await exec(process.execPath, [...CLI_NODE_ARGS, CLI, 'sync', '--delete', '--json', src, dst['prov-cli']], { env: cliEnv, maxBuffer: 1 << 24 });
          const wall = secs(t0);
          out.times['prov-cli'].push(wall);
          out.cpu['prov-cli'].push(ownCpu() + childCpu() - c0);
          const r = JSON.parse(stdout.trim().split('\n').at(-1)!) as { mode: string; reason?: string; seconds: number; phases: Phases };
          if (r.mode !== 'incremental') { out.fallbacks.push(`cli: ${r.reason ?? '?'}`); log(`prov-cli fell back to a full comparison: ${r.reason}`); }
          out.cliPhases.push(r.phases);
          out.cliStartup.push(wall - r.seconds);
        } else if (tool === 'floor') {
          await runFloor(floorBin, backing, dst.floor, net.input);
          out.times.floor.push(secs(t0));
          out.cpu.floor.push(ownCpu() + childCpu() - c0);
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
      log(`${capture}: ${files} files, ${changeSteps} changes (${out.net.at(-1)}), capture lag ${out.settle.at(-1)!.toFixed(3)} s, repeat ${rep + 1}/${repeats}: ` + TOOLS.map((t) => `${t} ${out.times[t].at(-1)!.toFixed(3)} s (CPU ${out.cpu[t].at(-1)!.toFixed(2)})`).join(', ') + `; prov read ${out.records.at(-1)} records (${out.relevant.at(-1)} under SRC, ${out.passed.at(-1)} passed over undecoded), ${out.phases.at(-1)}; prov-cli start-up ${out.cliStartup.at(-1)!.toFixed(3)} s; trees verified; load ${loadavg()[0]!.toFixed(2)}`);
    }
    }
  } finally {
    await feed.close();
    await cliFeed.close();
    if (cap) await stopCaptureChild(cap);
    if (mount) await mount.stop({ lazy: true });
  }
  return results;
}

const NAMES: Record<Tool, string> = {
  prov: 'prov sync (in-process)', 'prov-cli': 'prov sync (the command, own process)', floor: 'floor (net changes applied by a C program)',
  'rsync-a': 'rsync -a --delete', 'rsync-r': 'rsync -r --delete', 'rsync-c': 'rsync -a --delete --checksum',
};

function row(figure: string, c: CaseResult, tool: Tool, baseline: Tool, note: string, goal?: string, paper?: string, what: 'times' | 'cpu' = 'times'): BenchRow {
  const p = median(c[what][tool]), b = median(c[what][baseline]);
  return {
    figure, unit: 's', prov: p, baseline: b, baselineName: NAMES[baseline],
    ratio: b / p, better: 'lower', spread: { prov: spread(c[what][tool]), baseline: spread(c[what][baseline]) }, repeats: c.times[tool].length,
    goal, paper, note,
  };
}

const f3 = (x: number): string => x.toFixed(3);

/** Growth (time against files and against changes) and prov's phases, one row per case. */
function tables(cases: CaseResult[]): BenchTable[] {
  const cols = ['capture', 'files', 'changes', 'prov', 'prov (command)', 'floor', 'rsync -a --delete', 'rsync -r --delete', 'rsync -a --delete --checksum', 'prov vs -a', 'prov vs -r', 'prov vs --checksum', 'command vs -a', 'command vs -r', 'floor vs -a', 'floor vs -r'];
  const grow = (what: 'times' | 'cpu'): string[][] => cases.map((c) => {
    const b = (t: Tool): number => median(c[what][t]);
    const x = (num: Tool, den: Tool): string => `${(b(num) / b(den)).toFixed(1)}×`;
    return [c.capture, String(c.files), String(c.changes), ...(['prov', 'prov-cli', 'floor', 'rsync-a', 'rsync-r', 'rsync-c'] as Tool[]).map((t) => f3(b(t))),
      x('rsync-a', 'prov'), x('rsync-r', 'prov'), x('rsync-c', 'prov'), x('rsync-a', 'prov-cli'), x('rsync-r', 'prov-cli'), x('rsync-a', 'floor'), x('rsync-r', 'floor')];
  });
  const growth: BenchTable = {
    title: 'sync: time against tree size and number of changes (median s)',
    columns: cols,
    rows: grow('times'),
    caption: 'prov should grow with the changes (rows of one tree size), not with the files (rows with the same number of changes); rsync grows with the files. floor: the net change set applied by a C program (renames, unlinks, copy_file_range copies via temp + rename, futimens, directory times): the kernel work alone, what no tool that applies the changes can avoid; "floor vs rsync" is the best ratio any such tool could reach.',
  };
  const growthCpu: BenchTable = {
    title: 'sync: CPU time (user + system, median s) against tree size and number of changes',
    columns: cols,
    rows: grow('cpu'),
    caption: 'CPU seconds of prov (its threads and the probe; the command: its whole process) and of rsync (all its processes): less sensitive than wall time to the other tenants of the machine. Not counted: the capture daemon, which runs anyway.',
  };
  const med = (xs: Phases[], k: keyof Phases): string => f3(median(xs.map((p) => p[k])));
  const phases: BenchTable = {
    title: 'prov sync: where the time goes (median s per phase)',
    columns: ['capture', 'files', 'changes', 'net change set', 'capture lag after the changes', 'read (barrier incl.)', 'barrier', 'plan', 'apply', 'save', 'command: start-up', 'command: barrier', 'command: apply', 'records read', 'under SRC', 'passed over undecoded'],
    rows: cases.map((c) => [c.capture, String(c.files), String(c.changes), c.net[0] ?? '', f3(median(c.settle)), med(c.phaseTimes, 'read'), med(c.phaseTimes, 'barrier'), med(c.phaseTimes, 'plan'), med(c.phaseTimes, 'apply'), med(c.phaseTimes, 'save'),
      f3(median(c.cliStartup)), med(c.cliPhases, 'barrier'), med(c.cliPhases, 'apply'),
      String(median(c.records)), String(median(c.relevant)), String(median(c.passed))]),
    caption: 'capture lag: from the end of the workload until a probe made then is in the journal (untimed for every tool: all start with capture caught up; a sync started during the lag waits for it in its barrier). barrier: probe in SRC, wait until capture has journaled it, fold the records up to it (part of read). command start-up: node start, module loading, argument parsing (its wall time minus the sync\'s own clock).',
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
    const floorBin = await buildFloor(root);
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
        const cs = await runCase(dir, capture, files, changeCounts, opts.only?.repeats ?? repeats, 7 + i, floorBin);
        fs.rmSync(dir, { recursive: true, force: true });
        cases.push(...cs);
        for (const c of cs) {
          const label = `${c.files} files, ${c.changes} changes (${Math.round((100 * c.changes) / c.files)} %)`;
          const note = `${capture === 'provfs' ? 'provfs (SRC is a provfs mount; rsync reads its backing ext4 directory)' : 'eBPF, system-wide capture (SRC on ext4)'}; prov read ${median(c.records)} journal records (${median(c.relevant)} under SRC) per sync; prov phases ${c.phases.join(' | ')}${c.fallbacks.length ? `; FULL COMPARISON in ${c.fallbacks.length} of ${c.times.prov.length} runs (${c.fallbacks[0]})` : ''}; load ${loadavg()[0]!.toFixed(2)}`;
          const what = `${label}, ${capture}`;
          rows.push(row(`sync time, ${what}, vs rsync -a`, c, 'prov', 'rsync-a', note, '≥ 10× faster than rsync'));
          rows.push(row(`sync time, ${what}, vs rsync -r (Bento's baseline)`, c, 'prov', 'rsync-r', note, '≥ 10× faster than rsync', 'Bento-prov sync: 5.8× slower than rsync -r on 20,000 files'));
          rows.push(row(`sync time, ${what}, vs rsync --checksum`, c, 'prov', 'rsync-c', note));
          rows.push(row(`sync time, ${what}, the command (own process) vs rsync -a`, c, 'prov-cli', 'rsync-a', `start-up ${f3(median(c.cliStartup))} s; ${note}`, '≥ 10× faster than rsync'));
          rows.push(row(`sync time, ${what}, the command (own process) vs rsync -r`, c, 'prov-cli', 'rsync-r', `start-up ${f3(median(c.cliStartup))} s`, '≥ 10× faster than rsync'));
          rows.push(row(`sync time, ${what}: floor (net changes by a C program) vs rsync -a: the best ratio possible`, c, 'floor', 'rsync-a', `net change set ${c.net[0]}`));
          rows.push(row(`sync time, ${what}: floor vs rsync -r: the best ratio possible`, c, 'floor', 'rsync-r', `net change set ${c.net[0]}`));
          rows.push(row(`sync time, ${what}: prov vs the floor`, c, 'prov', 'floor', 'ratio < 1: the floor is faster; 1× would be prov at the kernel\'s cost'));
          rows.push(row(`sync CPU time, ${what}, vs rsync -a`, c, 'prov', 'rsync-a', note, undefined, undefined, 'cpu'));
          rows.push(row(`sync CPU time, ${what}, vs rsync -r`, c, 'prov', 'rsync-r', note, undefined, undefined, 'cpu'));
          log(rows.slice(-10).map((x) => `${x.figure}: prov ${x.prov.toFixed(3)} s, ${x.baselineName} ${x.baseline!.toFixed(3)} s, ${x.ratio!.toFixed(2)}×`).join('\n'));
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
