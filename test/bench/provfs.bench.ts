/**
 * @module test/bench/provfs.bench
 * provfs against ext4 and against libfuse's C `passthrough_ll` (built here from Debian's
 * libfuse3-dev examples), all measured in one run, interleaved with the order reversed every other
 * round (A B C … C B A …: on two CPUs the target measured second of two ran 3–4 % faster than
 * the first, either way round, in a two-daemon A/B of 18 rounds per order), medians with
 * spread: create+unlink ops/s, stat ops/s with the attribute cache on and off (and the daemon's
 * CPU time per create+unlink and per uncached stat, all its threads, which the scheduler's
 * placement of caller and daemon and the machine's load move far less than the rates), sequential
 * and random read/write MB/s, untar of a tree, `grep -r`; daemon peak RSS.
 *
 * The workloads are a small C program (compiled here) so the measuring side costs the same on
 * every target. Every daemon is a separate process started and stopped by pid; every mount is
 * unmounted in `finally`.
 *
 * passthrough_ll runs as shipped (no permission checks) and with `-o default_permissions` (the
 * kernel checks permissions, as for provfs).
 *
 * Run alone: `node dist/test/bench/provfs.bench.js [--quick] [--no-figure5]`; only figure 5:
 * `--figure5 [--repeats N] [--scenarios plain,kill]`; only create+unlink and stat (metadata,
 * no figure 5): `--meta [--repeats N]`; every backing on a private tmpfs (see {@link run}):
 * `--tmpfs`; more uncached provfs targets with their own loop options, e.g.
 * `--variants yield:PROV_FUSE_YIELD=always,noyield:PROV_FUSE_YIELD=0`; request counts
 * per opcode: `node dist/test/bench/provfs.bench.js --counts [--mode prov]`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';
import { unmount } from '../../kernel/mount.js';

/** The daemon under test (PROV_BENCH_PROVFSD: another build's provfsd.js, to compare builds with this bench). */
const PROVFSD = process.env.PROV_BENCH_PROVFSD ?? fileURLToPath(new URL('../../kernel/provfsd.js', import.meta.url));
const EXAMPLES = '/usr/share/doc/libfuse3-dev/examples';

/** The workload driver: prints elapsed nanoseconds of the timed part. */
const DRIVER_C = String.raw`
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/syscall.h>
static long long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
static void die(const char *w) { perror(w); exit(1); }
/* Bento's Figure 5 workloads: (a) one thread creating and deleting files, (b) ten threads
   writing 64 KiB and fsync'ing to random files of the pre-populated set. Runs durMs, prints
   ops per 5 ms bucket, the longest operation, its start, and the error count as JSON. */
#include <pthread.h>
#include <errno.h>
#define BUCKETS 4000
static long long start_ns, end_ns, worst = 0, worst_at = 0; static long nfiles; static const char *dir;
static long buckets[BUCKETS], errors = 0; static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
/* Every stretch over 1 ms in which no operation completed (absolute CLOCK_MONOTONIC ns): the
   service gap applications saw, to set beside the stall the daemon measured. */
#define MAXGAPS 4096
static long long last_done = 0, gaps[MAXGAPS][2]; static long ngaps = 0;
static void note(long long a, long long b, int err) {
  pthread_mutex_lock(&mu);
  if (last_done && b - last_done > 1000000 && ngaps < MAXGAPS) { gaps[ngaps][0] = last_done; gaps[ngaps][1] = b; ngaps++; }
  if (b > last_done) last_done = b;
  long k = (b - start_ns) / 5000000; if (k >= 0 && k < BUCKETS) buckets[k]++;
  if (b - a > worst) { worst = b - a; worst_at = a - start_ns; }
  if (err) errors++;
  pthread_mutex_unlock(&mu);
}
static void *fig5a_thread(void *arg) {
  (void)arg; char name[4096]; long i = 0;
  while (now() < end_ns) {
    long long a = now(); int err = 0;
    snprintf(name, sizeof name, "%s/a-%ld", dir, i++);
    int fd = open(name, O_CREAT | O_WRONLY | O_EXCL, 0644);
    if (fd < 0) err = 1; else { close(fd); if (unlink(name)) err = 1; }
    note(a, now(), err);
  }
  return 0;
}
static void *fig5b_thread(void *arg) {
  unsigned s = (unsigned)(long)arg * 7919u + 1; char name[4096]; static char blk[65536];
  while (now() < end_ns) {
    long long a = now(); int err = 0;
    s = s * 1103515245u + 12345u;
    snprintf(name, sizeof name, "%s/pre-%ld", dir, (long)((s >> 4) % nfiles));
    int fd = open(name, O_WRONLY);
    if (fd < 0) err = 1; else { if (pwrite(fd, blk, sizeof blk, 0) != sizeof blk || fsync(fd)) err = 1; close(fd); }
    note(a, now(), err);
  }
  return 0;
}
static int fig5(int b, const char *path, long n, long durMs) {
  dir = path; nfiles = n; start_ns = now(); end_ns = start_ns + durMs * 1000000LL;
  int nt = b ? 10 : 1; pthread_t t[10];
  for (long i = 0; i < nt; i++) pthread_create(&t[i], 0, b ? fig5b_thread : fig5a_thread, (void *)i);
  for (int i = 0; i < nt; i++) pthread_join(t[i], 0);
  long nb = durMs / 5; printf("{\"worstNs\":%lld,\"worstAtNs\":%lld,\"errors\":%ld,\"buckets\":[", worst, worst_at, errors);
  for (long i = 0; i < nb && i < BUCKETS; i++) printf(i ? ",%ld" : "%ld", buckets[i]);
  printf("],\"gaps\":[");
  for (long i = 0; i < ngaps; i++) printf(i ? ",[%lld,%lld]" : "[%lld,%lld]", gaps[i][0], gaps[i][1]);
  printf("]}\n"); return 0;
}
int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: driver MODE PATH N [BS]\n"); return 2; }
  const char *mode = argv[1], *path = argv[2]; long n = atol(argv[3]); long bs = argc > 4 ? atol(argv[4]) : 1 << 20;
  char name[4096]; long long t0, t1; struct stat st;
  char *buf = aligned_alloc(4096, bs); memset(buf, 'p', bs);
  if (!strcmp(mode, "create")) {
    t0 = now();
    for (long i = 0; i < n; i++) {
      snprintf(name, sizeof name, "%s/f%ld", path, i);
      int fd = open(name, O_CREAT | O_WRONLY | O_EXCL, 0644); if (fd < 0) die("open"); close(fd);
      if (unlink(name)) die("unlink");
    }
    t1 = now();
  } else if (!strcmp(mode, "getppid")) {
    /* The machine's cost of entering the kernel and back: one FUSE request makes several such
       trips (the caller's system call, the daemon's read and write of /dev/fuse, its own calls). */
    t0 = now();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    t1 = now();
  } else if (!strcmp(mode, "stat")) {
    t0 = now();
    for (long i = 0; i < n; i++) if (stat(path, &st)) die("stat");
    t1 = now();
  } else if (!strcmp(mode, "seqwrite")) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644); if (fd < 0) die("open");
    t0 = now();
    for (long i = 0; i < n; i++) if (write(fd, buf, bs) != bs) die("write");
    if (fsync(fd)) die("fsync");
    t1 = now(); close(fd);
  } else if (!strcmp(mode, "seqread")) {
    int fd = open(path, O_RDONLY); if (fd < 0) die("open");
    t0 = now();
    for (long i = 0; i < n; i++) if (read(fd, buf, bs) != bs) die("read");
    t1 = now(); close(fd);
  } else if (!strcmp(mode, "randread") || !strcmp(mode, "randwrite")) {
    int w = mode[4] == 'w';
    int fd = open(path, w ? O_WRONLY : O_RDONLY); if (fd < 0) die("open");
    fstat(fd, &st); long blocks = st.st_size / bs; unsigned s = 12345;
    t0 = now();
    for (long i = 0; i < n; i++) {
      s = s * 1103515245u + 12345u; off_t off = (off_t)((s >> 4) % blocks) * bs;
      if ((w ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off)) != bs) die("io");
    }
    if (w && fdatasync(fd)) die("fdatasync");
    t1 = now(); close(fd);
  } else if (!strcmp(mode, "populate")) {
    for (long i = 0; i < n; i++) {
      snprintf(name, sizeof name, "%s/pre-%ld", path, i);
      int fd = open(name, O_CREAT | O_WRONLY, 0644); if (fd < 0) die("open"); close(fd);
    }
    return 0;
  } else if (!strcmp(mode, "fig5a") || !strcmp(mode, "fig5b")) {
    return fig5(mode[4] == 'b', path, n, argc > 4 ? atol(argv[4]) : 1000);
  } else { fprintf(stderr, "unknown mode %s\n", mode); return 2; }
  printf("%lld\n", t1 - t0);
  return 0;
}
`;

interface Target {
  name: string;
  dir: string;
  daemon?: ChildProcess;
  pid?: number;
  /** A provfs daemon's request loop thread (its 'ready' message says which). */
  loopTid?: number;
}

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: opts.cwd, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

function timeNs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0);
}

/** CPU time of every thread of process `pid` so far, in ns (/proc/PID/task/TID/schedstat). */
/** CPU time of one thread so far (ns), or NaN once it is gone. */
function threadCpuNs(pid: number, tid: number): number {
  try { return Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch { return NaN; }
}

function daemonCpuNs(pid: number): number {
  let ns = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try { ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]); } catch { /* thread gone */ }
    }
  } catch { return NaN; }
  return ns;
}

/**
 * Voluntary context switches of every thread of process `pid` so far: a daemon that sleeps in
 * read(2) for each request (its caller on another CPU, each request and reply an inter-processor
 * wake-up) shows one per request; one that shares its caller's CPU and is preempted by it, none.
 */
function daemonSleeps(pid: number): number {
  let n = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try { n += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1] ?? 0); } catch { /* thread gone */ }
    }
  } catch { return NaN; }
  return n;
}

function peakRssMiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
  } catch { return NaN; }
}

async function startProvfs(backing: string, mnt: string, mode: 'plain' | 'prov', extra: string[], env?: Record<string, string>): Promise<ChildProcess & { loopTid?: number }> {
  const child: ChildProcess & { loopTid?: number } = spawn(process.execPath, [PROVFSD, '--backing', backing, '--mountpoint', mnt, '--mode', mode, ...extra],
    { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, ...env } });
  await new Promise<void>((res, rej) => {
    child.once('message', (m: { type: string; message?: string; loopTid?: number }) => {
      if (m.type !== 'ready') return rej(new Error(m.message));
      child.loopTid = m.loopTid;
      res();
    });
    child.once('exit', (c) => rej(new Error(`provfsd exited ${c}`)));
  });
  child.removeAllListeners('exit');
  return child;
}

async function startPll(bin: string, backing: string, mnt: string, timeout: number, permissions = false): Promise<ChildProcess> {
  const child = spawn(bin, ['-f', '-o', `source=${backing},allow_other,timeout=${timeout}${permissions ? ',default_permissions' : ''}`, mnt], { stdio: ['ignore', 'ignore', 'inherit'] });
  const end = Date.now() + 10_000;
  while (!isMounted(mnt)) {
    if (Date.now() > end || child.exitCode !== null) throw new Error('passthrough_ll did not mount');
    await new Promise((r) => setTimeout(r, 20));
  }
  return child;
}

function isMounted(mnt: string): boolean {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === mnt);
}

/**
 * `tmpfsBacking` (`--tmpfs`): every backing directory and the direct target on a private tmpfs
 * instead of the ext4 of the temp directory. On ext4 a create+unlink loop is bound by the inode
 * allocator, not by FUSE: it skips inodes deleted in the last seconds, so each create scans
 * further through the group's inode table (find_get_block_common, recently_deleted in profiles)
 * and the daemon's CPU per create+unlink went from 25–40 µs to 80–400 µs with the state of the
 * block group a backing directory landed in (the >100 % spreads of that row); the same loop on
 * tmpfs measures the file systems in user space.
 */
/** An extra uncached provfs target (`--variants name:VAR=value+VAR=value,name2:…`): the same daemon with other loop options. */
export interface LoopVariant {
  name: string;
  env: Record<string, string>;
}

/** Parse `--variants`: `yield:PROV_FUSE_YIELD=1,noyield:PROV_FUSE_YIELD=0` (several variables joined by `+`). */
export function parseVariants(spec: string | undefined): LoopVariant[] {
  if (!spec) return [];
  return spec.split(',').map((v) => {
    const [name, vars] = v.split(':');
    if (!name || !/^[\w-]+$/.test(name) || vars === undefined) throw new Error(`--variants: "${v}" is not name:VAR=value[+VAR=value]`);
    const env: Record<string, string> = {};
    for (const kv of vars.split('+').filter(Boolean)) {
      const i = kv.indexOf('=');
      if (i <= 0) throw new Error(`--variants: "${kv}" in "${v}" is not VAR=value`);
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
    return { name, env };
  });
}

/**
 * The family (`npm run bench -- --only provfs`): every figure with the backings on the temp
 * directory's ext4 and Figure 5, then the metadata again with the backings on a tmpfs.
 * create+unlink runs in the tmpfs pass only: on ext4 each run's own 20,000 deletions make
 * the next runs' creates scan past recently deleted inodes, so those rows measured ext4's inode
 * allocator (spreads of 150–680 %, prov vs plain anywhere from 0.2× to 0.8×), not FUSE.
 */
export async function run(opts: BenchOptions): Promise<BenchResult> {
  const main = await measure(opts, true, false, undefined, false, [], false);
  const meta = await measure(opts, false, true, undefined, true);
  return {
    ...main,
    rows: [...main.rows, ...meta.rows],
    notMeasured: [...(main.notMeasured ?? []), {
      what: 'create+unlink with the backings on ext4',
      reason: 'each run\'s deletions make the next runs\' creates scan ext4\'s inode table past recently deleted inodes: the rows measured the allocator, not the file systems in user space; reported with the backings on tmpfs',
    }],
  };
}

/** One pass of the provfs bench (see {@link run}; the command line's forms call it directly). */
/**
 * The ratio of each round's two runs (measured one after the other), for a row whose two sides
 * drift with the machine during the bench: the median of those beside the ratio of the medians.
 */
function pairedNote(ours: number[] | undefined, base: number[] | undefined): string | undefined {
  if (!ours || !base || ours.length !== base.length || ours.length === 0) return undefined;
  const r = ours.map((v, i) => v / base[i]!);
  return `per round ${r.map((x) => x.toFixed(3)).join(' ')}; median of the rounds' ratios ${median(r).toFixed(3)}`;
}

export async function measure(opts: BenchOptions, figure5Too = true, metaOnly = false, repeatsWanted?: number, tmpfsBacking = false, variants: LoopVariant[] = [], createUnlink = true): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the provfs bench mounts FUSE file systems: run it as root');
  const q = opts.quick;
  const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
  const repeats = repeatsWanted ?? (q ? 3 : 5);
  const work = mkdtempSync(join(tmpdir(), 'provfs-bench-'));
  const targets: Target[] = [];
  const daemons: ChildProcess[] = [];
  /** The tmpfs holding the backings (`tmpfsBacking`), mounted here and unmounted in `finally`. */
  const tmpfs = tmpfsBacking ? join(work, 'tmpfs') : null;
  try {
    if (tmpfs) {
      mkdirSync(tmpfs);
      sh('mount', ['-t', 'tmpfs', '-o', `size=${q ? 2 : 4}g,mode=0700`, 'provfs-bench', tmpfs]);
    }
    const area = tmpfs ?? work;
    // ---- build the driver and the C baseline ----
    const driver = join(work, 'driver');
    writeFileSync(join(work, 'driver.c'), DRIVER_C);
    sh('cc', ['-O2', '-pthread', '-o', driver, join(work, 'driver.c')]);
    let pll: string | null = null;
    let pllNote: string | undefined;
    if (existsSync(join(EXAMPLES, 'passthrough_ll.c'))) {
      pll = join(work, 'passthrough_ll');
      // pkg-config is not a dependency of libfuse3-dev: fall back to Debian's paths.
      let flags = ['-I/usr/include/fuse3', '-lfuse3', '-lpthread'];
      try { flags = sh('pkg-config', ['fuse3', '--cflags', '--libs']).trim().split(/\s+/); } catch { /* keep the defaults */ }
      sh('cc', ['-O2', '-I', EXAMPLES, join(EXAMPLES, 'passthrough_ll.c'), ...flags, '-o', pll]);
    } else {
      pllNote = `passthrough_ll.c is missing from ${EXAMPLES}: no C baseline`;
    }

    // ---- targets ----
    const mk = (name: string): { backing: string; mnt: string } => {
      const backing = join(area, `${name}-backing`), mnt = join(work, `${name}-mnt`);
      mkdirSync(backing); mkdirSync(mnt);
      return { backing, mnt };
    };
    const ext4 = join(area, 'ext4');
    mkdirSync(ext4);
    targets.push({ name: 'ext4', dir: ext4 });
    for (const [name, mode, extra, env] of [
      ['plain', 'plain', []], ['prov', 'prov', ['--journal', join(work, 'journal')]], ['plain-nocache', 'plain', ['--timeout', '0']],
      // `--variants`: more plain uncached targets, each with its own environment (loop options).
      ...variants.map((v) => [`plain-nocache-${v.name}`, 'plain', ['--timeout', '0'], v.env]),
    ] as Array<[string, 'plain' | 'prov', string[], Record<string, string>?]>) {
      const { backing, mnt } = mk(name);
      // A runtime directory of their own: a `prov up` or `prov upgrade --all` elsewhere on this
      // machine must not find (and upgrade) the daemons being measured.
      const d = await startProvfs(backing, mnt, mode, extra, { ...env, PROV_RUNTIME_DIR: join(work, 'run') });
      daemons.push(d);
      targets.push({ name, dir: mnt, daemon: d, pid: d.pid, loopTid: d.loopTid });
    }
    if (pll) {
      // passthrough_ll as shipped checks no permissions (it serves every caller as root); with
      // -o default_permissions the kernel checks them as it does for provfs, which costs a
      // GETATTR of the directory after each change in it (its attributes are invalidated).
      for (const [name, timeout, dp] of [['pll', 1, false], ['pll-nocache', 0, false], ['pll-dp', 1, true], ['pll-dp-nocache', 0, true]] as Array<[string, number, boolean]>) {
        const { backing, mnt } = mk(name);
        const d = await startPll(pll, backing, mnt, timeout, dp);
        daemons.push(d);
        targets.push({ name, dir: mnt, daemon: d, pid: d.pid });
      }
    }
    const T = (n: string): Target | undefined => targets.find((t) => t.name === n);

    // ---- inputs ----
    const treeSrc = join(work, 'tree-src');
    const nFiles = q ? 2000 : 8000;
    for (let d = 0; d < nFiles / 50; d++) {
      mkdirSync(join(treeSrc, `dir${d}`), { recursive: true });
      for (let f = 0; f < 50; f++) writeFileSync(join(treeSrc, `dir${d}`, `file${f}.txt`), `line ${d} ${f}\n`.repeat(50 + ((d * 7 + f) % 200)) + (f === 7 ? 'NEEDLE\n' : ''));
    }
    const tarball = join(work, 'tree.tar');
    sh('tar', ['-cf', tarball, '-C', treeSrc, '.']);
    rmSync(treeSrc, { recursive: true });

    const seqMiB = q ? 256 : 1024;
    const randOps = q ? 20000 : 60000;
    // 20,000 creates: a quarter of a second at 5,000 (each run of prov mode then included its
    // start-up: the ring's first drain, the loop finding its caller's CPU) spread the prov runs
    // over 25–40 %.
    const createN = q ? 2000 : 20000;
    const statN = q ? 50000 : 200000;
    const samples = new Map<string, number[]>();
    const add = (k: string, v: number): void => { (samples.get(k) ?? samples.set(k, []).get(k)!).push(v); };
    const drive = (...a: string[]): number => Number(sh(driver, a).trim());

    // Steady state: every daemon's request paths compiled (prov mode has more of them: the
    // recorder, the ring, the drain, the journal) before the first measured round. Two passes
    // over the targets, 15,000 files each: V8 deoptimizes code at the first run of a path it has
    // no feedback for, and prov mode has late ones, the ring's wrap (8 MiB of records, about
    // 23,000 files) and the first record after the daemon sat idle (it wakes the draining
    // thread). With one pass of 5,000 files, prov's first measured round ran 0.83–0.84 of plain
    // in two runs of three (the later rounds 0.89–0.94), its trace full of deopts and recompiles.
    if (createUnlink) {
      for (let pass = 0; pass < 2; pass++) for (const t of targets) if (!t.name.endsWith('-nocache')) drive('create', t.dir, String(Math.min(createN, 15000)));
    }
    for (let r = 0; r < repeats; r++) {
      add('getppid:machine', drive('getppid', '/', '1000000') / 1e6);
      for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
        const noCache = t.name.endsWith('-nocache');
        const permsOnly = t.name.startsWith('pll-dp');
        // create+unlink
        // Daemon CPU per operation beside the rate: unlike wall time it hardly depends on where
        // the scheduler put the caller and the daemon, or on what else the machine runs.
        const cpu0 = t.pid ? daemonCpuNs(t.pid) : 0;
        const loop0 = t.pid && t.loopTid ? threadCpuNs(t.pid, t.loopTid) : NaN;
        if (!noCache && createUnlink) {
          add(`create:${t.name}`, createN / (drive('create', t.dir, String(createN)) / 1e9));
          if (t.pid) add(`createcpu:${t.name}`, (daemonCpuNs(t.pid) - cpu0) / createN / 1e3);
          // The request loop alone: on two CPUs it shares one with its caller, so its time per
          // file is what the rate follows; the draining thread and V8's helpers run on the other.
          if (t.pid && t.loopTid) add(`createloopcpu:${t.name}`, (threadCpuNs(t.pid, t.loopTid) - loop0) / createN / 1e3);
        }
        const cpu1 = t.pid ? daemonCpuNs(t.pid) : 0;
        const sleeps1 = t.pid ? daemonSleeps(t.pid) : 0;
        // stat (every target; *-nocache are the cache-off figures)
        writeFileSync(join(t.dir, 'statme'), 'x');
        add(`stat:${t.name}`, statN / (drive('stat', join(t.dir, 'statme'), String(statN)) / 1e9));
        if (t.pid && noCache) {
          add(`statcpu:${t.name}`, (daemonCpuNs(t.pid) - cpu1) / statN / 1e3);
          add(`statsleeps:${t.name}`, (daemonSleeps(t.pid) - sleeps1) / statN);
        }
        if (noCache || permsOnly || metaOnly) continue;
        // sequential write then read (1 MiB blocks), random 4 KiB read and write
        const f = join(t.dir, 'big');
        add(`seqwrite:${t.name}`, seqMiB / (drive('seqwrite', f, String(seqMiB)) / 1e9));
        add(`seqread:${t.name}`, seqMiB / (drive('seqread', f, String(seqMiB)) / 1e9));
        add(`randread:${t.name}`, (randOps * 4096) / 2 ** 20 / (drive('randread', f, String(randOps), '4096') / 1e9));
        add(`randwrite:${t.name}`, (randOps * 4096) / 2 ** 20 / (drive('randwrite', f, String(randOps), '4096') / 1e9));
        rmSync(f);
        // untar, grep -r
        const dest = join(t.dir, 'tree');
        mkdirSync(dest);
        add(`untar:${t.name}`, timeNs(() => sh('tar', ['-xf', tarball, '-C', dest])) / 1e9);
        add(`grep:${t.name}`, timeNs(() => sh('grep', ['-r', '-c', 'NEEDLE', dest])) / 1e9);
        rmSync(dest, { recursive: true });
      }
    }

    // ---- rows ----
    const rows: BenchRow[] = [];
    const row = (figure: string, unit: string, key: string, ours: string, base: string | null, better: 'higher' | 'lower', goal?: string, note?: string): void => {
      const p = samples.get(`${key}:${ours}`);
      if (!p) return;
      const b = base ? samples.get(`${key}:${base}`) ?? null : null;
      const pm = median(p), bm = b ? median(b) : null;
      const dg = unit === 's' ? 3 : 1;
      rows.push({
        figure, unit, prov: round(pm, dg), baseline: bm === null ? null : round(bm, dg), baselineName: base ?? undefined,
        ratio: bm === null ? null : round(better === 'higher' ? pm / bm : bm / pm, 3), better,
        spread: { prov: round(spread(p), 3), baseline: b ? round(spread(b), 3) : undefined }, repeats: p.length, goal,
        note: note ?? (base?.startsWith('pll') && pllNote ? pllNote : undefined),
      });
    };
    const pl = pll ? 'pll' : null, pl0 = pll ? 'pll-nocache' : null;
    row('create+unlink ops/s, provfs plain vs passthrough_ll', 'ops/s', 'create', 'plain', pl, 'higher', '≥ 1× passthrough_ll');
    row('create+unlink ops/s, provfs plain vs passthrough_ll -o default_permissions', 'ops/s', 'create', 'plain', pll ? 'pll-dp' : null, 'higher', '≥ 1× passthrough_ll');
    row('create+unlink ops/s, provfs plain vs ext4', 'ops/s', 'create', 'plain', 'ext4', 'higher');
    row('create+unlink ops/s, provfs prov vs plain', 'ops/s', 'create', 'prov', 'plain', 'higher', 'within 10 % of plain', pairedNote(samples.get('create:prov'), samples.get('create:plain')));
    row('stat ops/s (attr cache 1 s), provfs plain vs passthrough_ll', 'ops/s', 'stat', 'plain', pl, 'higher', '≥ 1× passthrough_ll');
    row('stat ops/s (attr cache off), provfs plain vs passthrough_ll', 'ops/s', 'stat', 'plain-nocache', pl0, 'higher', '≥ 1× passthrough_ll');
    row('stat ops/s (attr cache off), provfs plain vs passthrough_ll -o default_permissions', 'ops/s', 'stat', 'plain-nocache', pll ? 'pll-dp-nocache' : null, 'higher', '≥ 1× passthrough_ll');
    row('daemon CPU µs per create+unlink, provfs plain vs passthrough_ll', 'µs', 'createcpu', 'plain', pl, 'lower');
    row('daemon CPU µs per create+unlink, provfs plain vs passthrough_ll -o default_permissions', 'µs', 'createcpu', 'plain', pll ? 'pll-dp' : null, 'lower');
    row('daemon CPU µs per create+unlink, all threads, provfs prov vs plain', 'µs', 'createcpu', 'prov', 'plain', 'lower');
    row('request loop CPU µs per create+unlink (its thread alone), provfs prov vs plain', 'µs', 'createloopcpu', 'prov', 'plain', 'lower');
    row('daemon CPU µs per stat (attr cache off), provfs plain vs passthrough_ll', 'µs', 'statcpu', 'plain-nocache', pl0, 'lower');
    row('daemon CPU µs per stat (attr cache off), provfs plain vs passthrough_ll -o default_permissions', 'µs', 'statcpu', 'plain-nocache', pll ? 'pll-dp-nocache' : null, 'lower');
    for (const v of variants) {
      const t = `plain-nocache-${v.name}`, what = `provfs plain [${v.name}: ${Object.entries(v.env).map(([k, x]) => `${k}=${x}`).join(' ')}]`;
      row(`stat ops/s (attr cache off), ${what} vs provfs plain`, 'ops/s', 'stat', t, 'plain-nocache', 'higher');
      row(`stat ops/s (attr cache off), ${what} vs passthrough_ll -o default_permissions`, 'ops/s', 'stat', t, pll ? 'pll-dp-nocache' : null, 'higher', '≥ 1× passthrough_ll');
      row(`daemon CPU µs per stat (attr cache off), ${what} vs provfs plain`, 'µs', 'statcpu', t, 'plain-nocache', 'lower', undefined,
        `sleeps per stat per run ${(samples.get(`statsleeps:${t}`) ?? []).map((x) => x.toFixed(2)).join(' ')}`);
    }
    {
      // A diagnostic, not a goal: no ratio (a daemon that never sleeps would divide by zero).
      const dp = samples.get('statsleeps:pll-dp-nocache');
      row('daemon sleeps (voluntary context switches) per stat (attr cache off), provfs plain', 'switches', 'statsleeps', 'plain-nocache', null, 'lower', undefined,
        `per run ${(samples.get('statsleeps:plain-nocache') ?? []).map((x) => x.toFixed(2)).join(' ')}; passthrough_ll -o default_permissions ${dp ? median(dp).toFixed(2) : 'n/a'}; ` +
        'a stat is 3 requests here (GETATTR of the mount root, LOOKUP, GETATTR): about 3 per stat, the daemon slept for each request (its caller on another CPU); about 0, it shared its caller\'s CPU');
    }
    row('stat ops/s (attr cache 1 s), provfs plain vs ext4', 'ops/s', 'stat', 'plain', 'ext4', 'higher');
    row('stat ops/s, provfs prov vs plain', 'ops/s', 'stat', 'prov', 'plain', 'higher', 'within 10 % of plain');
    for (const [key, what] of [['seqwrite', 'sequential write 1 MiB blocks + fsync'], ['seqread', 'sequential read 1 MiB blocks (cached)'], ['randread', 'random read 4 KiB (cached)'], ['randwrite', 'random write 4 KiB + fdatasync']] as const) {
      row(`${what} MB/s, provfs plain vs ext4`, 'MiB/s', key, 'plain', 'ext4', 'higher', '≥ 0.9× ext4');
      row(`${what} MB/s, provfs prov vs plain`, 'MiB/s', key, 'prov', 'plain', 'higher', 'within 10 % of plain');
      row(`${what} MB/s, passthrough_ll vs ext4 (reference)`, 'MiB/s', key, 'pll', 'ext4', 'higher');
    }
    for (const [key, what] of [['untar', `untar of ${nFiles} files`], ['grep', `grep -r over ${nFiles} files`]] as const) {
      row(`${what} s, provfs plain vs ext4`, 's', key, 'plain', 'ext4', 'lower');
      row(`${what} s, provfs plain vs passthrough_ll`, 's', key, 'plain', pl, 'lower', '≥ 1× passthrough_ll');
      row(`${what} s, provfs prov vs plain`, 's', key, 'prov', 'plain', 'lower', 'within 10 % of plain');
    }
    const memory: Record<string, number> = {};
    for (const t of targets) if (t.pid) memory[`${t.name} daemon peak RSS`] = peakRssMiB(t.pid);
    // Stop the throughput daemons before the upgrade runs (they share the machine).
    for (const t of targets) if (t.daemon && isMounted(t.dir)) { try { unmount(t.dir, false); } catch { unmount(t.dir, true); } }
    const fig = figure5Too ? await figure5(work, driver, q) : { rows: [], plots: [] };
    rows.push(...fig.rows);
    const load = loadavg().map((x) => x.toFixed(2)).join(' ');
    if (tmpfs) {
      for (const r of rows) {
        if (r.figure.startsWith('Figure 5')) continue;
        r.figure = `${r.figure.replace(/\bext4\b/g, 'tmpfs')} (backings on tmpfs)`;
        if (r.baselineName === 'ext4') r.baselineName = 'tmpfs';
      }
    }
    // After the backings' renaming above: where the backings lie says nothing about this figure.
    row('system call getppid, ns (this machine\'s cost of entering the kernel; no goal)', 'ns', 'getppid', 'machine', null, 'lower', undefined,
      'every FUSE request crosses into the kernel several times, so daemon CPU and rates per file follow this figure from machine to machine: ' +
      'on a host whose kernel entries cost more, every FUSE rate is lower, plain and prov alike; compare ratios, not rates, across runs');
    if (rows[0]) rows[0].note = `${rows[0].note ? rows[0].note + '; ' : ''}load average at start ${load0}, at end ${load}`;
    return { name: 'provfs', rows, memory, plots: fig.plots };
  } finally {
    for (const t of targets) {
      if (t.daemon && isMounted(t.dir)) {
        try { unmount(t.dir, false); } catch { try { unmount(t.dir, true); } catch { /* gone */ } }
      }
    }
    for (const d of daemons) {
      if (d.exitCode === null && d.pid) {
        await Promise.race([new Promise((r) => d.once('exit', r)), new Promise((r) => setTimeout(r, 3000))]);
        if (d.exitCode === null) { try { process.kill(d.pid, 'SIGKILL'); } catch { /* gone */ } }
      }
    }
    if (tmpfs && isMounted(tmpfs)) { try { sh('umount', [tmpfs]); } catch { sh('umount', ['-l', tmpfs]); } }
    rmSync(work, { recursive: true, force: true });
  }
}

interface Fig5Run {
  scenario: string; workload: 'a' | 'b'; worstMs: number; worstAtMs: number; errors: number; buckets: number[]; stallMs?: number; firstMs?: number; durMs: number;
  /** The application's longest stretch without a completed operation over the stall (or the kill). */
  gapMs?: number; phases?: Record<string, unknown>; load: string;
  /** The same measure over a window as wide 300 ms before the event. */
  controlGapMs?: number;
  /**
   * The part of such a stretch from the event on: a stretch the event fell into began while the
   * old daemon still served (workload (b)'s threads all waiting for one ext4 commit, say), and
   * what came before the event is not an interruption it caused. The headline figure.
   */
  afterMs?: number;
  /** The same, from a moment 300 ms before the event. */
  controlAfterMs?: number;
  /** Workload (a), prov runs: creates journaled, doubled, missing. */
  journal?: { creates: number; doubled: number; gaps: number; missing: number };
}

/**
 * Bento's Figure 5: a provfs directory with many files; (a) one thread creating and deleting
 * files, (b) ten threads writing 64 KiB + fsync to random files; at 0.5 s the daemon is upgraded
 * (plain → prov; prov → prov with an explicitly named build) or killed with SIGKILL (the fd keeper
 * restarts it); stop at 2 s (3 s after an upgrade, whose successor may need over a second to start
 * warm on a loaded machine; 4 s after a kill). Throughput per 5 ms, the longest operation, the
 * application's gap over the switch, errors; for prov runs, whether every create after the switch
 * is in the journal exactly once.
 *
 * Each daemon first serves 1 s of the same workload, unmeasured (a daemon is upgraded after it
 * ran a while: a fresh one compiles its hot code on V8's helper threads for about a second, which
 * is not what is measured here). `repeats` rounds, interleaved (every scenario and workload once
 * per round); per scenario and workload the median and the maximum over the rounds are reported.
 */
async function figure5(work: string, driver: string, q: boolean, repeats = 1): Promise<{ rows: BenchRow[]; plots: string[] }> {
  const nFiles = q ? 20_000 : 400_000;
  const backing = join(work, 'fig5-backing'), mnt = join(work, 'fig5-mnt');
  mkdirSync(backing); mkdirSync(mnt);
  sh(driver, ['populate', backing, String(nFiles)]);
  const { daemonRequest } = await import('../../cli/actions/mount.js');
  const { daemonInfoPath, daemonSocketPath } = await import('../../kernel/runtime.js');
  const { journalStreamName } = await import('../../kernel/daemon.js');
  const { openJournalReader } = await import('../../collector/journal/reader.js');
  const { nodeLogPath } = await import('../../kernel/runtime.js');
  const { readTakeoverTrace, takeoverTracePath } = await import('../../kernel/takeovertrace.js');
  const runs: Fig5Run[] = [];
  const scenarios = [
    { name: 'no event (control)', start: 'plain', act: 'none', keeper: false },
    { name: 'plain → prov', start: 'plain', act: 'upgrade', keeper: false },
    { name: 'prov → prov (new build)', start: 'prov', act: 'upgrade-to', keeper: false },
    { name: 'kill -9 (fd keeper, warm standby)', start: 'prov', act: 'kill', keeper: true },
    { name: 'kill -9 (fd keeper, cold restart)', start: 'prov', act: 'kill', keeper: true, cold: true },
  ] as const;
  let k = 0;
  // `--scenarios kill,plain`: only those whose name contains one of the words (the control always runs).
  const only = argAfter('--scenarios')?.split(',');
  const chosen = scenarios.filter((x) => !only || x.act === 'none' || only.some((w) => x.name.includes(w)));
  for (let round = 0; round < repeats; round++) for (const sc of chosen) {
    for (const wl of ['a', 'b'] as const) {
      const journal = join(work, `fig5-journal-${k++}`);
      const extra = sc.start === 'prov' ? ['--journal', journal] : [];
      if (sc.keeper) extra.push('--keeper');
      const d = await startProvfs(backing, mnt, sc.start, extra, 'cold' in sc ? { PROV_KEEPER_STANDBY: '0' } : undefined);
      const daemonPid = d.pid!;
      const warmUp = Date.now();
      sh(driver, [wl === 'a' ? 'fig5a' : 'fig5b', mnt, String(nFiles), '1000']);
      // The keeper's standby starts after the mount: give it time to be warm (Node start-up and warm-up).
      if (sc.keeper) await new Promise((r) => setTimeout(r, Math.max(0, 2500 - (Date.now() - warmUp))));
      // The command comes at 0.5 s; a successor needs ~0.3–0.8 s to start warm on this machine
      // (a restart after kill -9 longer), so the run lasts long enough to contain the switch.
      const durMs = sc.act === 'kill' ? 4000 : sc.act === 'none' ? 2000 : 3000;
      const child = spawn(driver, [wl === 'a' ? 'fig5a' : 'fig5b', mnt, String(nFiles), String(durMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.setEncoding('utf8');
      child.stdout!.on('data', (c: string) => { out += c; });
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      await new Promise((r) => setTimeout(r, 500));
      let stallMs: number | undefined, firstMs: number | undefined, from = 0, phases: Record<string, unknown> | undefined;
      if (sc.act === 'kill') { from = Number(process.hrtime.bigint()); process.kill(daemonPid, 'SIGKILL'); }
      else if (sc.act !== 'none') {
        const rep = await daemonRequest(daemonSocketPath(mnt), { cmd: 'upgrade', mode: 'prov', journalDir: journal, daemon: sc.act === 'upgrade-to' ? PROVFSD : undefined });
        if (!rep.ok) throw new Error(`upgrade (${sc.name}) failed: ${String(rep.reason)}`);
        stallMs = rep.stallMs as number;
        from = rep.quiesceAtNs as number;
        phases = rep.phases as Record<string, unknown>;
        if (typeof rep.firstAnswerMs === 'number') firstMs = rep.firstAnswerMs;
      }
      await exited;
      if (sc.act === 'kill' && !('cold' in sc)) {
        // The takeover's phases and first replies, ms after the kill (kernel/takeovertrace).
        phases = {};
        for (const m of readTakeoverTrace(takeoverTracePath(nodeLogPath(mnt)))) {
          const key = m.phase.startsWith('reply') ? m.phase : `${m.who}:${m.phase}`;
          if (m.at >= from && phases[key] === undefined) phases[key] = (m.at - from) / 1e6;
        }
      }
      const r = JSON.parse(out) as { worstNs: number; worstAtNs: number; errors: number; buckets: number[]; gaps: Array<[number, number]> };
      // The window the switch occupies: the stall (quiesce → successor reading); after a kill, its
      // first 10 ms (the signal lands and the daemon dies a moment after it is sent: a pause that
      // begins then still counts).
      const to = from + (sc.act === 'kill' ? 10 : stallMs ?? 0) * 1e6;
      // `clip`: only the part of each stretch from a0 on.
      const longest = (a0: number, b0: number, clip = false): number => Math.max(0, ...r.gaps.filter(([a, b]) => a <= b0 && b >= a0).map(([a, b]) => (b - (clip ? Math.max(a, a0) : a)) / 1e6));
      const gapMs = from ? longest(from, to) : undefined;
      const afterMs = from ? longest(from, to, true) : undefined;
      // The same measures over a window as wide 300 ms earlier, nothing under way: the machine's (and the disk's) own gaps.
      const controlGapMs = from ? longest(from - 300e6, to - 300e6) : undefined;
      const controlAfterMs = from ? longest(from - 300e6, to - 300e6, true) : undefined;
      const run: Fig5Run = { scenario: sc.name, workload: wl, worstMs: r.worstNs / 1e6, worstAtMs: r.worstAtNs / 1e6, errors: r.errors, buckets: r.buckets, stallMs, firstMs, durMs, gapMs, controlGapMs, afterMs, controlAfterMs, phases, load: loadavg().map((x) => x.toFixed(2)).join(' ') };
      let servingPid = daemonPid;
      try { servingPid = (JSON.parse(readFileSync(daemonInfoPath(mnt), 'utf8')) as { pid: number }).pid; } catch { /* gone */ }
      try { unmount(mnt, false); } catch { unmount(mnt, true); }
      for (let i = 0; i < 100; i++) { try { process.kill(servingPid, 0); await new Promise((res) => setTimeout(res, 20)); } catch { break; } }
      for (const ext of ['.json', '.sock', '.nodes', '.log']) rmSync(daemonInfoPath(mnt).replace(/\.json$/, ext), { force: true });
      if (wl === 'a' && existsSync(journal)) {
        const reader = openJournalReader(journal);
        const recs = reader.readBatch(10_000_000, [journalStreamName(mnt)]);
        reader.close();
        // Only the measured run's creates (a-<i> from 0 again after the warm-up's): from the last restart of the numbering.
        const idxAll = recs.filter((x) => x.event.op === 'create').map((x) => Number((x.event as { file: { name: string } }).file.name.slice(2)));
        let startAt = 0;
        for (let i = 1; i < idxAll.length; i++) if (idxAll[i] === 0 && idxAll[i - 1]! > 0) startAt = i;
        const idx = idxAll.slice(startAt);
        const dup = idx.length - new Set(idx).size;
        let gaps = 0, missing = 0;
        for (let i = 1; i < idx.length; i++) if (idx[i] !== idx[i - 1]! + 1) { gaps++; missing += Math.max(0, idx[i]! - idx[i - 1]! - 1); }
        run.journal = { creates: idx.length, doubled: dup, gaps, missing };
      }
      runs.push(run);
      process.stderr.write(`figure 5 round ${round + 1}/${repeats}: ${sc.name} (${wl}): longest op ${run.worstMs.toFixed(2)} ms${gapMs !== undefined ? `, pause from the switch on ${afterMs!.toFixed(2)} ms (300 ms earlier ${controlAfterMs!.toFixed(2)}), gap over it ${gapMs.toFixed(2)} ms (300 ms earlier ${controlGapMs!.toFixed(2)})` : ''}${stallMs !== undefined ? `, stall ${stallMs.toFixed(2)} ms` : ''}${phases ? ` phases ${JSON.stringify(phases, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}` : ''}, ${run.errors} errors; load ${run.load}\n`);
    }
  }
  const fmt = (xs: number[]): string => `median ${median(xs).toFixed(2)}, max ${Math.max(...xs).toFixed(2)} (${xs.map((x) => x.toFixed(1)).join(' ')})`;
  const rows: BenchRow[] = [];
  for (const sc of chosen) for (const wl of ['a', 'b'] as const) {
    const rs = runs.filter((r) => r.scenario === sc.name && r.workload === wl);
    const control = runs.filter((c) => c.workload === wl && c.scenario.startsWith('no event'));
    if (rs.length === 0) continue;
    const worst = rs.map((r) => r.worstMs), gaps = rs.flatMap((r) => (r.gapMs !== undefined ? [r.gapMs] : [])), afters = rs.flatMap((r) => (r.afterMs !== undefined ? [r.afterMs] : [])), stalls = rs.flatMap((r) => (r.stallMs !== undefined ? [r.stallMs] : []));
    const firsts = rs.flatMap((r) => (r.firstMs !== undefined ? [r.firstMs] : []));
    const j = rs.flatMap((r) => (r.journal ? [r.journal] : []));
    const kill = sc.name.startsWith('kill');
    rows.push({
      figure: `Figure 5 (${wl === 'a' ? 'a: create+delete, 1 thread' : 'b: 64 KiB write+fsync, 10 threads'}), ${sc.name} at 0.5 s: ${sc.act === 'none' ? 'longest operation' : `application pause from the ${kill ? 'kill' : 'quiesce'} on`}`,
      unit: 'ms', prov: round(median(sc.act === 'none' ? worst : afters), 2), baseline: round(median(control.map((c) => c.worstMs)), 2),
      baselineName: 'median longest operation of the same workload with no event', ratio: null, better: 'lower', repeats: rs.length,
      spread: { prov: round(spread(sc.act === 'none' ? worst : afters), 2) },
      paper: 'Bento: 15 ms of service interruption', goal: kill && 'cold' in sc ? 'a pause, no error (the fallback without a warm standby)' : 'stall ≤ 5 ms, zero errors',
      note: [
        sc.act === 'none' ? '' : `application pause from the ${kill ? 'kill' : 'quiesce'} on (the longest stretch without a completed operation within the ${kill ? 'first 10 ms after the kill' : 'stall'}, counted from the event: a stretch may begin before it, while the old daemon still served) ${fmt(afters)} ms; the same from a moment 300 ms earlier ${fmt(rs.map((r) => r.controlAfterMs ?? 0))} ms; the whole stretch, with any part before the event, ${fmt(gaps)} ms; the whole stretch 300 ms earlier ${fmt(rs.map((r) => r.controlGapMs ?? 0))} ms`,
        `longest operation of the run ${fmt(worst)} ms`,
        stalls.length ? `stall measured by the old daemon (quiesce → successor reading) ${fmt(stalls)} ms` : '',
        firsts.length ? `→ successor's first reply ${fmt(firsts)} ms` : '',
        `${rs.reduce((x, r) => x + r.errors, 0)} errors`,
        j.length ? `journal (workload a, measured run): ${j.map((x) => `${x.creates} creates, ${x.doubled} doubled, ${x.gaps} gaps (${x.missing} missing)`).join('; ')}` : '',
        `ops/5 ms median ${median(rs.flatMap((r) => r.buckets.filter((x) => x > 0))) || 0}`,
        `load average ${rs.map((r) => r.load.split(' ')[0]).join(' ')} (1 min, per round)`,
        `${nFiles} files; daemon warmed by 1 s of the workload`,
      ].filter(Boolean).join('; '),
    });
  }
  const plot = join(REPO, 'test', 'artifacts', 'provfs-figure5.svg');
  mkdirSync(join(REPO, 'test', 'artifacts'), { recursive: true });
  writeFileSync(plot, svg(runs.filter((r, i) => runs.findIndex((x) => x.scenario === r.scenario && x.workload === r.workload) === i)));
  return { rows, plots: ['test/artifacts/provfs-figure5.svg'] };
}

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** Throughput per 5 ms, one panel per workload, one line per scenario. */
function svg(runs: Fig5Run[]): string {
  const W = 900, H = 260, pad = 40, colours = ['#7f7f7f', '#1f77b4', '#d62728', '#2ca02c', '#9467bd'];
  const panels = (['a', 'b'] as const).map((wl, p) => {
    const rs = runs.filter((r) => r.workload === wl);
    const max = Math.max(1, ...rs.flatMap((r) => r.buckets));
    const y0 = p * H + pad;
    const lines = rs.map((r, i) => {
      const pts = r.buckets.map((v, j) => `${(pad + ((j * 5) / 4000) * (W - 2 * pad)).toFixed(1)},${(y0 + (H - 2 * pad) * (1 - v / max)).toFixed(1)}`).join(' ');
      return `<polyline fill="none" stroke="${colours[i]}" stroke-width="1" points="${pts}"/>` +
        `<text x="${W - pad - 250}" y="${y0 + 14 * (i + 1)}" fill="${colours[i]}" font-size="12">${r.scenario}: longest op ${r.worstMs.toFixed(1)} ms, ${r.errors} errors</text>`;
    }).join('');
    const mid = pad + (W - 2 * pad) / 8;
    return `<text x="${pad}" y="${y0 - 8}" font-size="13">(${wl}) ${wl === 'a' ? 'create+delete, 1 thread' : '64 KiB write+fsync, 10 threads'} — ops per 5 ms (max ${max})</text>` +
      `<rect x="${pad}" y="${y0}" width="${W - 2 * pad}" height="${H - 2 * pad}" fill="none" stroke="#999"/>` +
      `<line x1="${mid}" y1="${y0}" x2="${mid}" y2="${y0 + H - 2 * pad}" stroke="#999" stroke-dasharray="4"/>` + lines +
      `<text x="${pad}" y="${y0 + H - 2 * pad + 14}" font-size="11">0 s</text><text x="${W - pad - 20}" y="${y0 + H - 2 * pad + 14}" font-size="11">4 s</text>`;
  }).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${2 * H}" font-family="sans-serif">${panels}</svg>\n`;
}

function round(x: number, digits = 1): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Only the live-upgrade figure (`--figure5`): builds the driver, runs {@link figure5}. */
async function runFigure5(quick: boolean): Promise<BenchResult> {
  const work = mkdtempSync(join(tmpdir(), 'provfs-fig5-'));
  // A private runtime directory: a `prov up` elsewhere on this machine must not find (and upgrade) these mounts.
  process.env.PROV_RUNTIME_DIR = join(work, 'run');
  try {
    const driver = join(work, 'driver');
    writeFileSync(join(work, 'driver.c'), DRIVER_C);
    sh('cc', ['-O2', '-pthread', '-o', driver, join(work, 'driver.c')]);
    const fig = await figure5(work, driver, quick, Number(argAfter('--repeats') ?? 1));
    return { name: 'provfs-figure5', rows: fig.rows, plots: fig.plots };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Direct stall measurement (`--stall [--nodes 1000] [--repeats N] [--cases plain:a,plain:b,prov:a,prov:b]`):
 * one mount per case, its node table filled by stat'ing `--nodes` files through it; then, round
 * after round and interleaved across the cases, the case's workload ((a) create+delete, one
 * thread; (b) 64 KiB write + fsync, ten threads) runs for 2.5 s and the daemon is upgraded to
 * prov at 200 ms through its control socket (`:2` after a case: state version 2 at most, to compare) — `plain:` from plain mode (switched back to plain
 * after the round, unmeasured), `prov:` from prov mode to a named build (`--to`). Per case:
 * the stall the old daemon reports (quiesce → successor's loop reading, CLOCK_MONOTONIC across
 * both processes) with median and p95, each phase inside it (median), and the service gap the
 * application saw (the longest stretch without a completed operation that overlaps the stall,
 * on the same clock). Load average before and after.
 */
async function runStall(nodes: number, repeats: number, cases: string[]): Promise<BenchResult> {
  if (process.getuid?.() !== 0) throw new Error('the stall bench mounts FUSE file systems: run it as root');
  const { statSync } = await import('node:fs');
  const work = mkdtempSync(join(tmpdir(), 'provfs-stall-'));
  // A private runtime directory: a `prov up` elsewhere on this machine must not find (and upgrade) these mounts.
  process.env.PROV_RUNTIME_DIR = join(work, 'run');
  const { daemonRequest } = await import('../../cli/actions/mount.js');
  const { daemonInfoPath, daemonSocketPath } = await import('../../kernel/runtime.js');
  type Phases = Record<string, number | undefined>;
  interface Case { name: string; from: 'plain' | 'prov'; wl: 'a' | 'b'; version?: number; mnt: string; journal: string; stalls: number[]; gaps: number[]; pre: number[]; post: number[]; control: number[]; inHand: Map<string, number>; phases: Phases[]; worst: number[]; errors: number; versions: Set<number> }
  const mounts: Case[] = [];
  const load0 = loadavg().map((x) => x.toFixed(2)).join(' ');
  try {
    const driver = join(work, 'driver');
    writeFileSync(join(work, 'driver.c'), DRIVER_C);
    sh('cc', ['-O2', '-pthread', '-o', driver, join(work, 'driver.c')]);
    for (const c of cases) {
      const [from, wl, v] = c.split(':') as ['plain' | 'prov', 'a' | 'b', string | undefined];
      if ((from !== 'plain' && from !== 'prov') || (wl !== 'a' && wl !== 'b')) throw new Error(`--cases: ${c} is not plain|prov:a|b[:state version]`);
      const tag = c.replace(/:/g, '-');
      const backing = join(work, `b-${tag}`), mnt = join(work, `m-${tag}`), journal = join(work, `j-${tag}`);
      mkdirSync(backing); mkdirSync(mnt);
      sh(driver, ['populate', backing, String(nodes)]);
      const d = await startProvfs(backing, mnt, from, ['--timeout', '3600', ...(from === 'prov' ? ['--journal', journal] : [])]);
      d.unref();
      for (let i = 0; i < nodes; i++) statSync(join(mnt, `pre-${i}`));
      mounts.push({ name: `${from} → prov, workload (${wl})${v ? `, state version ≤ ${v}` : ''}`, from, wl, version: v ? Number(v) : undefined, mnt, journal, stalls: [], gaps: [], pre: [], post: [], control: [], inHand: new Map(), phases: [], worst: [], errors: 0, versions: new Set() });
    }
    for (let r = 0; r < repeats; r++) {
      for (const m of mounts) {
        // 2.5 s: the handover (after the successor's start, 0.3–1 s on a loaded machine) must fall inside the workload.
        const child = spawn(driver, [m.wl === 'a' ? 'fig5a' : 'fig5b', m.mnt, String(nodes), '2500'], { stdio: ['ignore', 'pipe', 'inherit'] });
        let out = '';
        child.stdout!.setEncoding('utf8');
        child.stdout!.on('data', (c: string) => { out += c; });
        const exited = new Promise<void>((res) => child.once('exit', () => res()));
        await new Promise((res) => setTimeout(res, 200));
        const rep = await daemonRequest(daemonSocketPath(m.mnt), { cmd: 'upgrade', mode: 'prov', journalDir: m.journal, daemon: m.from === 'prov' ? PROVFSD : undefined, stateVersion: m.version });
        if (!rep.ok) throw new Error(`upgrade of ${m.name} failed: ${String(rep.reason)}`);
        await exited;
        const res = JSON.parse(out) as { worstNs: number; errors: number; gaps: Array<[number, number]> };
        const stall = rep.stallMs as number, q0 = rep.quiesceAtNs as number;
        // The application's longest gap overlapping the stall window (none over 1 ms: 0), how much
        // of it lay before the quiesce and after the successor began to read; and as a control,
        // the longest gap overlapping a window as wide 400 ms earlier (no handover under way).
        const over = (from: number, to: number): [number, number] | undefined =>
          res.gaps.filter(([a, b]) => a <= to && b >= from).sort((x, y) => (y[1] - y[0]) - (x[1] - x[0]))[0];
        const g = over(q0, q0 + stall * 1e6);
        const gap = g ? (g[1] - g[0]) / 1e6 : 0;
        const c = over(q0 - 400e6, q0 - 400e6 + stall * 1e6);
        m.stalls.push(stall);
        m.gaps.push(gap);
        m.pre.push(g ? Math.max(0, (q0 - g[0]) / 1e6) : 0);
        m.post.push(g ? Math.max(0, (g[1] - q0) / 1e6 - stall) : 0);
        m.control.push(c ? (c[1] - c[0]) / 1e6 : 0);
        m.phases.push((rep.phases ?? {}) as Phases);
        const inHand = (rep.phases as { inHand?: string } | undefined)?.inHand ?? '?';
        m.inHand.set(inHand, (m.inHand.get(inHand) ?? 0) + 1);
        m.versions.add(rep.stateVersion as number);
        m.worst.push(res.worstNs / 1e6);
        m.errors += res.errors;
        const ph = (rep.phases ?? {}) as Phases;
        process.stderr.write(`stall ${m.name} round ${r}: ${stall.toFixed(2)} ms (app gap ${gap.toFixed(2)} ms; in hand ${inHand}, seen ${ph.seen?.toFixed(2)} built ${ph.built?.toFixed(2)} deltaIn ${ph.deltaIn?.toFixed(2)} applied ${ph.applied?.toFixed(2)} first reply ${ph.firstReply?.toFixed(2)}), longest op ${(res.worstNs / 1e6).toFixed(2)} ms, ${res.errors} errors\n`);
        if (m.from === 'plain') {
          const back = await daemonRequest(daemonSocketPath(m.mnt), { cmd: 'upgrade', mode: 'plain' });
          if (!back.ok) throw new Error(`switching ${m.name} back to plain failed: ${String(back.reason)}`);
        }
      }
    }
  } finally {
    for (const m of mounts) {
      let pid = 0;
      try { pid = (JSON.parse(readFileSync(daemonInfoPath(m.mnt), 'utf8')) as { pid: number }).pid; } catch { /* gone */ }
      if (isMounted(m.mnt)) { try { unmount(m.mnt, false); } catch { unmount(m.mnt, true); } }
      for (let i = 0; pid && i < 100; i++) { try { process.kill(pid, 0); await new Promise((res) => setTimeout(res, 20)); } catch { break; } }
      for (const ext of ['.json', '.sock', '.nodes', '.log']) rmSync(daemonInfoPath(m.mnt).replace(/\.json$/, ext), { force: true });
    }
    rmSync(work, { recursive: true, force: true });
  }
  const load1 = loadavg().map((x) => x.toFixed(2)).join(' ');
  const p95 = (xs: number[]): number => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.ceil(0.95 * s.length) - 1)] ?? NaN; };
  const phaseNote = (ps: Phases[]): string => ['seen', 'built', 'written', 'deltaIn', 'applied', 'serving', 'firstReply'].map((k) => {
    const xs = ps.map((p) => p[k]).filter((x): x is number => typeof x === 'number');
    return xs.length ? `${k} ${median(xs).toFixed(2)}/${p95(xs).toFixed(2)}` : '';
  }).filter(Boolean).join(', ');
  const rows: BenchRow[] = mounts.map((m) => ({
    figure: `live upgrade stall (${m.name}), ${nodes} nodes in the table`, unit: 'ms',
    prov: round(median(m.stalls), 2), baseline: null, baselineName: 'Bento: 15 ms', ratio: null, better: 'lower', repeats: m.stalls.length,
    spread: { prov: round(spread(m.stalls), 2) }, paper: 'Bento: 15 ms of service interruption', goal: 'stall ≤ 5 ms',
    note: `p95 ${p95(m.stalls).toFixed(2)} ms; stalls ${m.stalls.map((x) => x.toFixed(1)).join(' ')}; application gap over the stall median ${median(m.gaps).toFixed(2)} p95 ${p95(m.gaps).toFixed(2)} ms (${m.gaps.map((x) => x.toFixed(1)).join(' ')}; before the quiesce median ${median(m.pre).toFixed(2)}, after the successor read median ${median(m.post).toFixed(2)}), control window 400 ms earlier median ${median(m.control).toFixed(2)} p95 ${p95(m.control).toFixed(2)} ms; phases from quiesce, median/p95 ms: ${phaseNote(m.phases)}; request in hand at the quiesce ${[...m.inHand].map(([k, v]) => `${k}×${v}`).join(' ')}; state version ${[...m.versions].join(',')}; longest op median ${median(m.worst).toFixed(1)} ms (max ${Math.max(...m.worst).toFixed(1)}); ${m.errors} errors; load average ${load0} → ${load1}`,
  }));
  return { name: 'provfs-stall', rows };
}

/**
 * FUSE requests per opcode that reach the daemon (`--counts [--mode plain|prov]`): each workload
 * of the fs family's driver (small writes and reads, create, delete, the three server mixes) and
 * untar / grep -r of a small tree, on a fresh provfs mount served in this process (the loop
 * counts every request it reads; the counts come back when it stops). For the mixes and grep
 * the tree is made first and the mount restarted, so only the measured part is counted; the mixes
 * run 300 ms and are reported per driver operation. Request counts do not depend on the machine's
 * load, unlike times: this is how a change to the protocol use is judged.
 */
async function runCounts(mode: 'plain' | 'prov'): Promise<void> {
  const { mountProvfs } = await import('../../kernel/daemon.js');
  const { OP_NAME } = await import('../../kernel/protocol.js');
  const { buildDriver } = await import('./workloads/driver.js');
  const { execFile } = await import('node:child_process');
  const run = (cmd: string, args: string[]): Promise<string> => new Promise((res, rej) => execFile(cmd, args, (e, out) => (e ? rej(e) : res(out))));
  const work = mkdtempSync(join(tmpdir(), 'provfs-counts-'));
  process.env.PROV_RUNTIME_DIR = join(work, 'run');
  try {
    const drv = buildDriver(work);
    // This bench's own driver, for the metadata loops exactly as measured (create+unlink, stat).
    const pdrv = join(work, 'pdriver');
    writeFileSync(join(work, 'pdriver.c'), DRIVER_C);
    sh('cc', ['-O2', '-pthread', '-o', pdrv, join(work, 'pdriver.c')]);
    const src = join(work, 'src');
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(src, `d${d}`), { recursive: true });
      for (let f = 0; f < 30; f++) writeFileSync(join(src, `d${d}`, `f${f}.c`), `line ${d} ${f}\n`.repeat(20) + (f === 7 ? 'NEEDLE\n' : ''));
    }
    sh('tar', ['-cf', join(work, 't.tar'), '-C', src, '.']);
    const MiB = 2 ** 20;
    type Step = { setup?: (dir: string) => Promise<unknown>; measure: (dir: string) => Promise<string>; timeouts?: { entry: number; attr: number; negative: number } };
    const mix = (m: string): Step => ({
      setup: async (dir) => { mkdirSync(join(dir, 'mix')); await run(drv, ['populate', join(dir, 'mix'), '300', '16384']); },
      measure: (dir) => run(drv, [m, join(dir, 'mix'), '300', '4', '300']),
    });
    const steps: Record<string, Step> = {
      'seqwrite 16 MiB in 4 KiB': { setup: (dir) => run(drv, ['prepare', dir, String(16 * MiB), '1']), measure: (dir) => run(drv, ['seqwrite', dir, '4096', String(16 * MiB), '1']) },
      'randwrite 16 MiB in 4 KiB': { setup: (dir) => run(drv, ['prepare', dir, String(16 * MiB), '1']), measure: (dir) => run(drv, ['randwrite', dir, '4096', String(16 * MiB), '1']) },
      'seqread 64 MiB in 4 KiB': { setup: (dir) => run(drv, ['prepare', dir, String(16 * MiB), '1']), measure: (dir) => run(drv, ['seqread', dir, '4096', String(64 * MiB), '1']) },
      'create 500': { measure: (dir) => run(drv, ['create', dir, '500', '1']) },
      'create+unlink 500 (the metadata bench loop)': { measure: (dir) => run(pdrv, ['create', dir, '500']) },
      'stat 1000 of one file, attr cache 1 s': { setup: async (dir) => writeFileSync(join(dir, 'statme'), 'x'), measure: (dir) => run(pdrv, ['stat', join(dir, 'statme'), '1000']) },
      'stat 1000 of one file, attr cache off': {
        setup: async (dir) => writeFileSync(join(dir, 'statme'), 'x'), measure: (dir) => run(pdrv, ['stat', join(dir, 'statme'), '1000']),
        timeouts: { entry: 0, attr: 0, negative: 0 },
      },
      'delete 500 (creates included)': { measure: (dir) => run(drv, ['delete', dir, '500', '1']) },
      varmail: mix('varmail'), fileserver: mix('fileserver'), webserver: mix('webserver'),
      'untar 300 files': { measure: async (dir) => { mkdirSync(join(dir, 'u')); return run('tar', ['-xf', join(work, 't.tar'), '-C', join(dir, 'u')]); } },
      'grep -r 300 files': {
        setup: async (dir) => { mkdirSync(join(dir, 'u')); await run('tar', ['-xf', join(work, 't.tar'), '-C', join(dir, 'u')]); },
        measure: (dir) => run('grep', ['-r', '-l', 'NEEDLE', join(dir, 'u')]),
      },
    };
    const only = argAfter('--only')?.split(',');
    for (const [name, st] of Object.entries(steps).filter(([n]) => !only || only.some((w) => n.includes(w)))) {
      const backing = join(work, 'b'), mnt = join(work, 'm');
      mkdirSync(backing); mkdirSync(mnt);
      const opts = { backing, mountpoint: mnt, mode, journalDir: mode === 'prov' ? join(work, 'journal') : undefined, timeouts: st.timeouts };
      if (st.setup) { const m0 = await mountProvfs(opts); try { await st.setup(mnt); } finally { await m0.stop(); } }
      const m = await mountProvfs(opts);
      let out = '';
      let info: Awaited<ReturnType<typeof m.stop>>;
      try { out = await st.measure(mnt); } finally { info = await m.stop(); }
      const ops = /^\d+ (\d+)$/.exec(out.trim())?.[1];
      const perOp = name in { varmail: 1, fileserver: 1, webserver: 1 } && ops ? Number(ops) : 0;
      const c = Object.entries(info.counts).map(([k, v]) => [OP_NAME[Number(k)] ?? k, v] as const).filter(([k]) => k !== 'INIT').sort((a, b) => b[1] - a[1]);
      const total = c.reduce((x, [, v]) => x + v, 0);
      console.log(`${name}: ${perOp ? `${(total / perOp).toFixed(2)} requests per operation (${perOp} operations)` : `${total} requests`}\n  ${c.map(([k, v]) => `${k} ${perOp ? (v / perOp).toFixed(2) : v}`).join(', ')}`);
      rmSync(backing, { recursive: true, force: true });
      rmSync(mnt, { recursive: true, force: true });
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function argAfter(flag: string): string | undefined {
  const i = process.argv.indexOf(flag);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const quick = process.argv.includes('--quick');
  if (process.argv.includes('--counts')) {
    runCounts(argAfter('--mode') === 'prov' ? 'prov' : 'plain').catch((e: Error) => { console.error(e.message); process.exitCode = 1; });
  } else if (process.argv.includes('--kill')) {
    console.error('provfs bench: the kill -9 bench is test/bench/upgrade.bench.ts: node dist/test/bench/upgrade.bench.js --kill [--repeats N]');
    process.exitCode = 2;
  } else (process.argv.includes('--stall')
    ? runStall(Number(argAfter('--nodes') ?? 1000), Number(argAfter('--repeats') ?? 7), (argAfter('--cases') ?? 'plain:a,plain:b,prov:a,prov:b').split(','))
    : process.argv.includes('--figure5') ? runFigure5(quick)
    : measure({ quick }, !process.argv.includes('--no-figure5') && !process.argv.includes('--meta'), process.argv.includes('--meta'), argAfter('--repeats') ? Number(argAfter('--repeats')) : undefined, process.argv.includes('--tmpfs'), parseVariants(argAfter('--variants')))).then((r) => {
    for (const row of r.rows) {
      console.log(`${row.figure}: ${row.prov} ${row.unit}` + (row.baseline !== null ? ` vs ${row.baseline} → ${row.ratio}×` : '') +
        ` (spread ${row.spread?.prov}${row.spread?.baseline !== undefined ? '/' + row.spread.baseline : ''}, n=${row.repeats})` + (row.goal ? ` [goal ${row.goal}]` : '') + (row.note ? ` — ${row.note}` : ''));
    }
    console.log('memory (MiB):', JSON.stringify(r.memory));
  }, (e: Error) => { console.error(e.message); process.exitCode = 1; });
}
