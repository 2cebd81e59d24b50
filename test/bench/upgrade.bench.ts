/**
 * @module test/bench/upgrade.bench
 * Crash survival of provfs, phase by phase: a prov mount with its fd keeper, one thread creating
 * and deleting files (Bento's Figure 5 workload (a)), SIGKILL of the daemon 300 ms in. Per round,
 * interleaved: the keeper's warm standby takes over, or (PROV_KEEPER_STANDBY=0) a daemon starts
 * cold. Reported: the application's pause (its longest stretch without a completed operation
 * that overlaps the takeover, from the kill to the new daemon's first reply), beside a control:
 * the same measure over a window as long just before the kill (the machine's own noise), errors
 * (any ENOTCONN, ECONNABORTED or EIO would count), creates missing from or
 * doubled in the journal, and where the pause went — the CLOCK_MONOTONIC marks the keeper, the
 * standby and its request loop leave in the mount's takeover trace (kernel/takeovertrace),
 * relative to the kill: exitSeen (keeper saw the pidfd), goSent (byte on the standby's go wire),
 * go (the standby's loop woke), table (node table current), resend (FUSE_NOTIFY_RESEND written),
 * firstRead, firstReply, then off the pause: goMsg, loopServing, journal (the dead daemon's
 * records journaled), readyMsg (the keeper heard).
 *
 * Run alone (root): `node dist/test/bench/upgrade.bench.js --kill [--repeats N] [--no-cold] [--sched-trace]`
 * (`--kill` is also what `npm run bench` runs, with 5 repeats, 3 with --quick);
 * PROV_BENCH_VERBOSE=1 also prints the first twelve requests the new daemon answered (opcode,
 * when, and how long each took to handle). `--sched-trace` records the scheduler's view of each
 * round (test/bench/schedtrace) and says what each pause was made of: how long the application
 * and the new loop ran, waited for a CPU or slept, and who had the CPUs meanwhile.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';
import { SchedTrace } from './schedtrace.js';

const PROVFSD = fileURLToPath(new URL('../../kernel/provfsd.js', import.meta.url));

/** One thread: create, close, unlink a-<i> until durMs; every stretch over 1 ms without a completed operation, errors by errno. */
const DRIVER_C = String.raw`
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <errno.h>
static long long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
#define MAXGAPS 4096
static long long gaps[MAXGAPS][2]; static long ngaps = 0; static int errs[4096]; static long nerr = 0;
int main(int argc, char **argv) {
  const char *dir = argv[1]; long long end = now() + atoll(argv[2]) * 1000000LL, last = now(); long i = 0, ops = 0; char name[4096];
  while (now() < end) {
    snprintf(name, sizeof name, "%s/a-%ld", dir, i++);
    int fd = open(name, O_CREAT | O_WRONLY | O_EXCL, 0644);
    if (fd < 0) { if (nerr < 4096) errs[nerr] = errno; nerr++; }
    else { close(fd); if (unlink(name)) { if (nerr < 4096) errs[nerr] = errno; nerr++; } }
    long long b = now(); ops++;
    if (b - last > 1000000 && ngaps < MAXGAPS) { gaps[ngaps][0] = last; gaps[ngaps][1] = b; ngaps++; }
    last = b;
  }
  printf("{\"ops\":%ld,\"created\":%ld,\"errors\":%ld,\"errnos\":[", ops, i, nerr);
  for (long k = 0; k < nerr && k < 4096; k++) printf("%s%d", k ? "," : "", errs[k]);
  printf("],\"gaps\":[");
  for (long k = 0; k < ngaps; k++) printf("%s[%lld,%lld]", k ? "," : "", gaps[k][0], gaps[k][1]);
  printf("]}\n");
  return 0;
}
`;

/** Phases in takeover order (who: phase); the first group is the pause, the second follows it. */
const PHASES = ['keeper:exitSeen', 'keeper:dying', 'keeper:info', 'keeper:goSent', 'loop:go', 'loop:table', 'loop:resend', 'loop:firstRead', 'loop:firstReply',
  'standby:goMsg', 'standby:loopServing', 'standby:journal', 'keeper:readyMsg'];

interface Round { control: number; pause: number; /** The part of the pause from the kill on (a stretch may begin before it: the daemon's own noise). */ afterKill: number; errors: number; errnos: number[]; missing: number; doubled: number; phases: Record<string, number>; /** --sched-trace: what the pause was made of. */ madeOf?: string }

/** Labels for the threads of process `pid` (`tag:main`, `tag:loop` for `loopTid`, `tag:thread`). */
function threadLabels(pid: number, tag: string, loopTid?: number): Map<number, string> {
  const out = new Map<number, string>();
  try {
    for (const t of readdirSync(`/proc/${pid}/task`)) {
      const tid = Number(t);
      out.set(tid, `${tag}:${tid === pid ? 'main' : tid === loopTid ? 'loop' : 'thread'}`);
    }
  } catch { /* gone */ }
  return out;
}

function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


async function startProvfs(backing: string, mnt: string, journal: string, env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, [PROVFSD, '--backing', backing, '--mountpoint', mnt, '--mode', 'prov', '--journal', journal, '--keeper'],
    { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  await new Promise<void>((res, rej) => {
    child.once('message', (m: { type: string; message?: string }) => (m.type === 'ready' ? res() : rej(new Error(m.message))));
    child.once('exit', (c) => rej(new Error(`provfsd exited ${c}`)));
  });
  child.removeAllListeners('exit');
  if (child.connected) child.disconnect();
  return child;
}

/** kill -9 rounds, standby and cold interleaved (see the module comment). */
export async function runKill(repeats: number, cold = true, schedTrace = false): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the kill bench mounts FUSE file systems: run it as root');
  const work = mkdtempSync(join(tmpdir(), 'provfs-killbench-'));
  process.env.PROV_RUNTIME_DIR = join(work, 'run');
  const { daemonInfoPath, nodeLogPath, standbyPids } = await import('../../kernel/runtime.js');
  const { journalStreamName } = await import('../../kernel/daemon.js');
  const { openJournalReader } = await import('../../collector/journal/reader.js');
  const { unmount } = await import('../../kernel/mount.js');
  const { readTakeoverTrace, takeoverTracePath } = await import('../../kernel/takeovertrace.js');
  const { keeperStatePath } = await import('../../kernel/runtime.js');
  const daemonLoop = (mnt: string): number | undefined => { try { return (JSON.parse(readFileSync(daemonInfoPath(mnt), 'utf8')) as { loopTid?: number }).loopTid; } catch { return undefined; } };
  const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
  const hows = cold ? (['standby', 'cold'] as const) : (['standby'] as const);
  const out = new Map<string, Round[]>(hows.map((h) => [h, []]));
  let k = 0;
  try {
    const driver = join(work, 'driver');
    writeFileSync(join(work, 'driver.c'), DRIVER_C);
    const cc = spawnSync('cc', ['-O2', '-o', driver, join(work, 'driver.c')], { encoding: 'utf8' });
    if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr}`);
    for (let r = 0; r < repeats; r++) {
      for (const how of hows) {
        const backing = join(work, `b${k}`), mnt = join(work, `m${k}`), journal = join(work, `j${k}`);
        k++;
        mkdirSync(backing); mkdirSync(mnt);
        const d = await startProvfs(backing, mnt, journal, how === 'cold' ? { PROV_KEEPER_STANDBY: '0' } : {});
        // The standby warm: its process up, then time for Node, the loop and its warm-up.
        for (let i = 0; how === 'standby' && i < 100 && standbyPids(mnt).length === 0; i++) await sleep(50);
        await sleep(2000);
        let trace: SchedTrace | null = null;
        if (schedTrace) {
          const t = SchedTrace.start('provfs-killbench');
          if (t instanceof SchedTrace) trace = t; else process.stderr.write(`--sched-trace: ${t.error}\n`);
        }
        const child = spawn(driver, [mnt, '1500'], { stdio: ['ignore', 'pipe', 'inherit'] });
        let text = '';
        child.stdout!.setEncoding('utf8');
        child.stdout!.on('data', (c: string) => { text += c; });
        const exited = new Promise<void>((res) => child.once('exit', () => res()));
        await sleep(300);
        // Who is who, for --sched-trace: the daemon about to die, its keeper, the standby.
        const labels = new Map<number, string>([[child.pid!, 'app'], ...threadLabels(d.pid!, 'dead', daemonLoop(mnt))]);
        if (trace) {
          try { for (const [t, l] of threadLabels((JSON.parse(readFileSync(keeperStatePath(mnt), 'utf8')) as { pid: number }).pid, 'keeper')) labels.set(t, l); } catch { /* none */ }
          for (const sb of standbyPids(mnt)) for (const [t, l] of threadLabels(sb, 'new')) labels.set(t, l);
        }
        const at = Number(process.hrtime.bigint());
        process.kill(d.pid!, 'SIGKILL');
        await exited;
        const newLoop = daemonLoop(mnt);
        if (newLoop !== undefined) labels.set(newLoop, 'new:loop');
        trace?.stop();
        const res = JSON.parse(text) as { errors: number; errnos: number[]; gaps: Array<[number, number]>; created: number };
        const phases: Record<string, number> = {};
        const nodeLog = nodeLogPath(mnt);
        for (const m of readTakeoverTrace(takeoverTracePath(nodeLog))) {
          const key = `${m.who}:${m.phase}`;
          if (m.at >= at && phases[key] === undefined) phases[key] = (m.at - at) / 1e6;
        }
        // The pause: the longest stretch without a completed operation that overlaps the takeover
        // (from the kill to the new daemon's first reply; a signal takes a moment to land, so the
        // stretch may begin a little after the kill).
        const end = at + 1e6 * (phases['loop:firstReply'] ?? 2000);
        const gapOf = res.gaps.filter(([a, b]) => a <= end && b >= at).sort((x, y) => (y[1] - y[0]) - (x[1] - x[0]))[0];
        const pause = gapOf ? (gapOf[1] - gapOf[0]) / 1e6 : 0;
        const afterKill = gapOf ? (gapOf[1] - Math.max(gapOf[0], at)) / 1e6 : 0;
        // The control: the same measure over a window as long (at most 200 ms), ending 30 ms
        // before the kill: the machine's own noise.
        const longest = (from: number, to: number): number => Math.max(0, ...res.gaps.filter(([a, b]) => a <= to && b >= from).map(([a, b]) => (b - a) / 1e6));
        const control = longest(at - 30e6 - Math.min(end - at, 200e6), at - 30e6);
        let servingPid = 0;
        try { servingPid = (JSON.parse(readFileSync(daemonInfoPath(mnt), 'utf8')) as { pid: number }).pid; } catch { /* gone */ }
        try { unmount(mnt, false); } catch { unmount(mnt, true); }
        for (let i = 0; servingPid && i < 100; i++) { try { process.kill(servingPid, 0); await sleep(20); } catch { break; } }
        await sleep(1200); // the keeper notices the unmount and ends its standby
        const reader = openJournalReader(journal);
        const seen = new Map<number, number>();
        for (const x of reader.readBatch(10_000_000, [journalStreamName(mnt)])) {
          if (x.event.op !== 'create') continue;
          const i = Number((x.event as { file: { name: string } }).file.name.slice(2));
          seen.set(i, (seen.get(i) ?? 0) + 1);
        }
        reader.close();
        // Every create the driver made (0 … created-1; the last may have been cut by the deadline) once.
        let missing = 0, doubled = 0;
        for (let i = 0; i < res.created - 1; i++) { const c = seen.get(i) ?? 0; if (c === 0) missing++; else if (c > 1) doubled++; }
        const round: Round = { control, pause, afterKill, errors: res.errors, errnos: res.errnos, missing, doubled, phases };
        if (trace && gapOf) {
          const watch = new Map<number, string>([[child.pid!, 'app'], ...(newLoop !== undefined ? [[newLoop, 'new:loop'] as [number, string]] : [])]);
          round.madeOf = trace.breakdown(gapOf[0], gapOf[1], watch, (tid) => labels.get(tid) ?? null);
        }
        out.get(how)!.push(round);
        const ph = PHASES.filter((p) => phases[p] !== undefined).map((p) => `${p.split(':')[1]} ${phases[p]!.toFixed(2)}`).join(', ');
        const replies = Object.entries(phases).filter(([p]) => p.startsWith('loop:reply')).sort((a, b) => a[1] - b[1]).map(([p, t]) => `${p.split(':')[2]} ${t.toFixed(2)} (${p.split(':')[3]})`).join(', ');
        if (process.env.PROV_BENCH_VERBOSE) process.stderr.write(`  first replies (ms after the kill): ${replies}\n`);
        process.stderr.write(`kill -9 (${how}) round ${r}: pause ${pause.toFixed(2)} ms${gapOf ? ` (${((gapOf[0] - at) / 1e6).toFixed(2)} … ${((gapOf[1] - at) / 1e6).toFixed(2)} from the kill)` : ''}, control ${control.toFixed(2)} ms, ${res.errors} errors${res.errors ? ` (errno ${[...new Set(res.errnos)].join(',')})` : ''}, ${missing} creates missing, ${doubled} doubled; ms after the kill: ${ph || '(no trace)'}${round.madeOf ? `\n    the pause was made of: ${round.madeOf}` : ''}\n`);
        rmSync(join(work, `b${k - 1}`), { recursive: true, force: true });
      }
    }
  } finally {
    for (let i = 0; i < k; i++) {
      const mnt = join(work, `m${i}`);
      if (isMounted(mnt)) { try { unmount(mnt, true); } catch { /* gone */ } }
    }
    rmSync(work, { recursive: true, force: true });
  }
  const load1 = loadavg().map((x) => x.toFixed(2)).join(' ');
  const p95 = (xs: number[]): number => { const q = [...xs].sort((a, b) => a - b); return q[Math.min(q.length - 1, Math.ceil(0.95 * q.length) - 1)] ?? NaN; };
  const coldPause = (out.get('cold') ?? []).map((x) => x.pause);
  const rows: BenchRow[] = hows.map((how) => {
    const rs = out.get(how)!;
    const pauses = rs.map((x) => x.pause);
    const phaseNote = PHASES.map((p) => {
      const xs = rs.map((x) => x.phases[p]).filter((x): x is number => typeof x === 'number');
      return xs.length ? `${p.split(':')[1]} ${median(xs).toFixed(2)}/${Math.max(...xs).toFixed(2)}` : '';
    }).filter(Boolean).join(', ');
    return {
      figure: `kill -9 of the daemon under workload (a), fd keeper with ${how === 'standby' ? 'a warm standby' : 'a cold restart'}: application pause`, unit: 'ms',
      prov: Math.round(median(pauses) * 100) / 100,
      baseline: how === 'standby' && coldPause.length ? Math.round(median(coldPause) * 10) / 10 : null, baselineName: 'cold restart (same run, interleaved)',
      ratio: how === 'standby' && coldPause.length && median(pauses) > 0 ? Math.round(median(coldPause) / median(pauses) * 10) / 10 : null,
      better: 'lower', repeats: pauses.length, spread: { prov: Math.round(spread(pauses) * 100) / 100 },
      goal: how === 'standby' ? 'pause ≤ 5 ms, no error' : 'a pause, no error',
      note: `${rs.some((x) => x.madeOf) ? `the longest pause was made of (scheduler trace): ${rs.reduce((m, x) => (x.pause > m.pause ? x : m)).madeOf}; ` : ''}max ${Math.max(...pauses).toFixed(2)} p95 ${p95(pauses).toFixed(2)} ms; pauses ${pauses.map((x) => x.toFixed(2)).join(' ')}; the same from the kill on (a stretch may begin before it) median ${median(rs.map((x) => x.afterKill)).toFixed(2)} max ${Math.max(...rs.map((x) => x.afterKill)).toFixed(2)} ms; control (the same measure over a window as long before the kill: the machine's own noise) median ${median(rs.map((x) => x.control)).toFixed(2)} max ${Math.max(...rs.map((x) => x.control)).toFixed(2)} ms; errors ${rs.reduce((a, x) => a + x.errors, 0)}; creates missing ${rs.map((x) => x.missing).join(' ')}, doubled ${rs.map((x) => x.doubled).join(' ')}; phases after the kill, median/max ms: ${phaseNote}; load average ${load0} → ${load1}`,
    };
  });
  return { name: 'provfs-takeover', rows };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  return runKill(opts.quick ? 3 : 5);
}

function argAfter(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  runKill(Number(argAfter('--repeats') ?? 5), !process.argv.includes('--no-cold'), process.argv.includes('--sched-trace')).then((r) => {
    for (const row of r.rows) {
      console.log(`${row.figure}: ${row.prov} ${row.unit}` + (row.baseline !== null ? ` vs ${row.baseline} (${row.ratio}× shorter)` : '') +
        ` (spread ${row.spread?.prov}, n=${row.repeats}) [goal ${row.goal}] — ${row.note}`);
    }
  }, (e: Error) => { console.error(e.message); process.exitCode = 1; });
}
