/**
 * @module kernel/helperthreads
 * Keep V8's helper threads from taking the CPU an application or the request loop waits for.
 *
 * A daemon's V8 compiles hot code on background threads (the platform's worker pool): jobs of
 * 1–20 ms each, for about a second after a daemon starts serving — a successor right after a
 * live upgrade (perf: TurboFan's `compiler::*` on those threads, a fifth of the successor's CPU in
 * its first 0.6 s, however long its warm-up) — and again after a deoptimization. Traced (ftrace
 * sched_switch) they ran 1–4 ms at a time on the CPU of the request loop, which follows its
 * caller's CPU (kernel/colocate) and cannot move, while the other CPU was idle.
 *
 * So a daemon started with `--single-threaded-gc` makes those threads SCHED_IDLE: a thread that
 * wakes preempts them at once, and a CPU running only them counts as idle where a woken thread
 * is placed. The flag is needed (on the command line: set at run time it breaks V8's heap) so
 * that no garbage collection waits for a helper preempted in the middle of its share of the work.
 *
 * Which threads: every thread of the process when this runs (before any Worker starts) except
 * the calling one and libuv's pool (file system calls, the journal's fsyncs stay ordinary). The
 * pool's threads are found by what they do: one read(2) per pool thread on a private FIFO blocks
 * each of them in that call, visible in /proc/self/task/TID/syscall; then the FIFO gets the bytes
 * and the reads return.
 */
import { closeSync, mkdtempSync, openSync, read, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';

const SCHED_IDLE = 5;
/** read(2)'s system call number, as /proc/TID/syscall shows it. */
const SYS_READ: Partial<Record<string, number>> = { x64: 0, arm64: 63 };
/** The V8 flag a daemon needs on its command line before its helpers may idle. */
export const SINGLE_THREADED_GC = '--single-threaded-gc';

/**
 * Node options for a daemon process this one starts (successor, standby, restart): the flag that
 * lets its helpers idle; none with PROV_PROVFS_IDLE_HELPERS=0.
 */
export function daemonNodeArgs(): string[] {
  return process.env.PROV_PROVFS_IDLE_HELPERS === '0' ? [] : [SINGLE_THREADED_GC];
}

/** Threads of this process (ids). */
function threads(): number[] {
  return readdirSync('/proc/self/task').map(Number);
}

/** Threads blocked right now in read(2) on `fd`. */
function readingFd(fd: number, nr: number): number[] {
  const out: number[] = [];
  for (const tid of threads()) {
    let s: string;
    try { s = readFileSync(`/proc/self/task/${tid}/syscall`, 'latin1'); } catch { continue; }
    const [call, arg0] = s.split(' ');
    if (Number(call) === nr && arg0 !== undefined && Number.parseInt(arg0, 16) === fd) out.push(tid);
  }
  return out;
}

/**
 * The libuv pool's thread ids, found by blocking each in a read of a private FIFO (see the
 * module comment); null when they could not be told apart within `waitMs`.
 */
export async function poolThreads(waitMs = 1000): Promise<number[] | null> {
  const nr = SYS_READ[process.arch];
  if (nr === undefined) return null;
  const size = Math.min(1024, Math.max(1, Number(process.env.UV_THREADPOOL_SIZE) || 4));
  const dir = mkdtempSync(join(tmpdir(), 'provfs-pool-'));
  const fifo = join(dir, 'f');
  let fd = -1;
  try {
    libc.mknodat(libc.AT.FDCWD, Buffer.from(fifo), libc.S.IFIFO | 0o600, 0);
    fd = openSync(fifo, 'r+'); // read-write: the open does not wait for a writer
    const one = Buffer.alloc(size);
    const done = Array.from({ length: size }, (_, i) => new Promise<void>((res) => read(fd, one, i, 1, null, () => res())));
    let found: number[] = [];
    for (const end = performance.now() + waitMs; performance.now() < end;) {
      found = readingFd(fd, nr);
      if (found.length >= size) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    writeSync(fd, Buffer.alloc(size)); // every read returns
    await Promise.all(done);
    return found.length === size ? found : null;
  } finally {
    if (fd >= 0) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Every V8 helper thread (all threads now but the calling one and libuv's pool) SCHED_IDLE, when
 * this process runs with {@link SINGLE_THREADED_GC}; call before any Worker starts. Returns how
 * many threads were made idle (0: not started with the flag, or the pool not told apart).
 */
export async function idleV8Helpers(): Promise<number> {
  if (!process.execArgv.includes(SINGLE_THREADED_GC)) return 0;
  const pool = await poolThreads();
  if (!pool) return 0;
  const keep = new Set([process.pid, libc.gettid(), ...pool]);
  let n = 0;
  for (const tid of threads()) {
    if (!keep.has(tid) && libc.setScheduler(tid, SCHED_IDLE, 0)) n++;
  }
  return n;
}
