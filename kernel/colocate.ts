/**
 * @module kernel/colocate
 * Keep the request loop's thread on the CPU of a single-threaded caller.
 *
 * A FUSE request is a round trip between two threads: the caller sleeps until the daemon
 * answers, the daemon sleeps until the next request. When the two run on different CPUs every
 * request costs two cross-CPU wake-ups, which on the virtual machine this was measured on
 * (2 vCPUs, Firecracker with nested virtualization) cost several times the work of the request:
 * a create+unlink loop over a tmpfs backing directory ran at 5–12k ops/s with daemon and caller
 * pinned to different CPUs and 17–26k with both on one CPU (passthrough_ll: 4–5k and 19–40k);
 * a pipe ping-pong between two processes takes 7 µs across CPUs and 1.8 µs on one. The
 * scheduler does not bring them together by itself (a woken thread goes back to its previous
 * CPU while that is idle), so the loop does: when the requests of the last
 * stretch all came from one thread, it looks up that thread's CPU (/proc/TID/stat, kept open) and pins
 * itself there; when they come from several threads it lets the scheduler place it anywhere
 * again (a multi-threaded caller keeps every CPU busy anyway). Checked at most every
 * {@link PLACE_MS} and only after {@link MIN_REQUESTS} requests, so its cost is small.
 *
 * Pinning alone does not keep the two together: the reply wakes the caller while the loop still
 * runs on their shared CPU, so the scheduler, seeing that CPU busy and the other idle, moves the
 * caller there (select_idle_sibling), and the loop follows 20 ms later — on a quiet two-CPU
 * machine they spent most of the time apart (uncached stat 30–35k/s, both pinned apart 21k, both
 * pinned together 73k; passthrough_ll -o default_permissions 60–78k). So while pinned the loop
 * also runs SCHED_IDLE: a CPU whose only runnable thread is SCHED_IDLE counts as idle when a
 * wakee is placed (sched_idle_cpu), and the woken caller preempts the loop at once. The caller
 * then stays on the loop's CPU, each reply hands the CPU straight to the caller and each request
 * straight back, with no idle CPU woken by an inter-processor interrupt in between. The loop
 * only ever runs while its caller waits for it, so yielding to that caller costs it nothing;
 * yielding to anything else is a risk: a SCHED_IDLE thread gets almost no CPU beside a busy
 * ordinary one (measured: with the machine loaded, 62k/s yielding against 95k/s not). And it is
 * only needed while another CPU sits idle (a busy one draws no wakee). So the loop yields only
 * while the machine is quiet: the other CPUs idle at least {@link QUIET_IDLE_SHARE} of the last
 * {@link QUIET_WINDOW_MS} (/proc/stat) and nothing but itself and its caller runnable when it
 * looks (/proc/loadavg); it looks again every {@link CHECK_MS} while yielding and goes back to
 * ordinary scheduling at once when either fails. The caller's and the daemon's own CPU time count
 * as idle there, and the daemon's own runnable threads as nothing: a caller the scheduler had
 * moved to the other CPU kept that CPU busy and so kept the loop from yielding, the one thing
 * that brings the caller back — a create+unlink loop swapped CPUs with the daemon every 2–4 ms
 * (19k ops/s on tmpfs backings; 24k with this accounting, 33k with the caller pinned). Only a
 * thread that may leave SCHED_IDLE again (CAP_SYS_NICE, or RLIMIT_NICE allowing nice 0) takes it; PROV_FUSE_YIELD=0 turns it off,
 * PROV_FUSE_YIELD=always yields whenever pinned, quiet or not (to measure the rule: the
 * provfs bench's `--variants`).
 *
 * Yielding does not keep the two together all the time: the reply still wakes the caller on
 * the other CPU now and then (about 250 times a second under a create+unlink loop here; likely
 * when something else is runnable on the shared CPU for a moment, such as the kernel's RCU and
 * softirq threads, which ran there about 100 times a second each), and
 * until the loop's next placement check the pair worked apart — a quarter of the time, 1.1 ms
 * at a time. Apart, the loop sleeps on nearly every read; together it almost never does (it is
 * preempted, not asleep, while its caller runs). So while yielding it counts its sleeps every
 * {@link SPLIT_EVERY} requests (getrusage, one system call) and checks its placement at once
 * when it slept on most of them: apart 7.6 % of the time, 0.3 ms at a time, and create+unlink
 * 11–16 % faster in both modes with the caller unpinned, no slower with it pinned.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { CAP, hasCapability, statFields, ThreadCpuProbe } from '../collector/proc.js';
import * as libc from './libc.js';

/** Policies set with SCHED_RESET_ON_FORK: a thread this one starts meanwhile starts ordinary. */
const SCHED_RESET_ON_FORK = 0x40000000;
const SCHED_OTHER = 0 | SCHED_RESET_ON_FORK, SCHED_IDLE = 5 | SCHED_RESET_ON_FORK;
/** The other CPUs must have been idle at least this share of the last {@link QUIET_WINDOW_MS} for the loop to yield. */
export const QUIET_IDLE_SHARE = 0.5;
/** The window over which the other CPUs' idle time is judged (/proc/stat counts in 10 ms ticks). */
export const QUIET_WINDOW_MS = 100;

/** Idle and total time of each CPU so far, in ticks (/proc/stat cpuN lines), or null. */
export function cpuTimes(): Array<[idle: number, total: number]> | null {
  let text: string;
  try { text = readFileSync('/proc/stat', 'latin1'); } catch { return null; }
  const out: Array<[number, number]> = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('cpu') || line[3] === ' ') continue;
    const m = /^cpu(\d+) (.*)$/.exec(line);
    if (!m) break;
    const f = m[2]!.split(' ').map(Number);
    out[Number(m[1])] = [f[3]! + f[4]!, f.slice(0, 8).reduce((a, b) => a + b, 0)];
  }
  return out;
}

/** Tasks runnable right now, system-wide (the 4th field of /proc/loadavg counts the reader too), or -1. */
export function runnableNow(): number {
  try { return Number(/ (\d+)\//.exec(readFileSync('/proc/loadavg', 'latin1'))![1]); } catch { return -1; }
}

/**
 * CPU time (clock ticks, as /proc/stat counts) of this process's threads other than the calling
 * one, or -1: the daemon's own main thread and helpers, which run beside the loop and its caller.
 */
export function ownOtherTicks(): number {
  const ticks = (f: string[] | null): number => (f ? Number(f[14 - 3]) + Number(f[15 - 3]) : NaN);
  // The process's stat counts every thread; the calling thread's own is taken off.
  const v = ticks(statFields(process.pid)) - ticks(statFields(process.pid, libc.gettid()));
  return Number.isFinite(v) ? v : -1;
}

/** Threads of this process runnable or running now (the calling one included), or -1. */
export function ownRunning(): number {
  let n = 0;
  try {
    for (const tid of readdirSync('/proc/self/task')) if (statFields(process.pid, Number(tid))?.[0] === 'R') n++;
  } catch { return -1; }
  return n;
}

/** Whether this process may go back from SCHED_IDLE to ordinary scheduling (see sched(7)). */
function mayLeaveIdle(): boolean {
  if (hasCapability(CAP.SYS_NICE)) return true;
  try {
    const lim = /Max nice priority\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'latin1'));
    return lim !== null && Number(lim[1]) >= 20; // nice 0 allowed
  } catch {
    return false;
  }
}

/** How often the yielding is reconsidered (the machine still quiet?) while requests flow. */
export const CHECK_MS = 20;
/**
 * How often the caller's CPU is looked up again while requests flow. Anything else waking on the
 * shared CPU (a 200 Hz timer of another process will do) makes the scheduler place the woken
 * caller on the other CPU, and the pair stays apart until the loop follows: looked up every
 * 20 ms, an idle 200 Hz ticker elsewhere on the machine took uncached stat from 75–80k/s to
 * 44k/s; every 2 ms, 78k/s. A lookup is one pread of the caller's /proc/TID/stat (2–3 µs).
 */
export const PLACE_MS = 2;
/** Requests seen since the last check before reconsidering (a trickle is not worth a pin). */
export const MIN_REQUESTS = 64;
/**
 * While pinned and yielding, every this many requests the loop counts the times it slept
 * meanwhile. Beside its single caller and yielding to it, it hardly ever sleeps: the caller runs while the
 * loop is preempted and has sent its next request when the loop gets the CPU back. Sleeping on
 * most reads means the scheduler woke the caller on another CPU, and every request now costs two
 * cross-CPU wake-ups: a create+unlink loop spent a quarter of its time apart so, 1.1 ms at a time
 * (median of 286 splits in 1.2 s), until the loop's next placement check followed it.
 */
export const SPLIT_EVERY = 8;
/** Sleeps in {@link SPLIT_EVERY} requests that bring the placement check forward to now. */
export const SPLIT_SLEEPS = 4;

/** What the colocator reads about the machine (replaceable in tests). */
export interface Probe {
  /** Idle and total ticks per CPU ({@link cpuTimes}). */
  times: () => Array<[number, number]> | null;
  /** Tasks runnable now, system-wide ({@link runnableNow}). */
  runnable: () => number;
  /** This process's CPU ticks outside the loop's thread ({@link ownOtherTicks}). */
  ownOther?: () => number;
  /** This process's runnable threads ({@link ownRunning}). */
  ownRunning?: () => number;
  /** The calling thread's voluntary context switches so far (libc.threadSleeps). */
  sleeps?: () => number;
  /** The caller's CPU and CPU time ({@link ThreadCpuProbe}). */
  caller?: { cpu(tid: number): number; readonly ticks: number; close(): void };
}

export class Colocator {
  private pinned = -1;
  private count = 0;
  private lastCheck = 0;
  /** The caller of the stretch so far (0: none yet; -1: several). */
  private caller = 0;
  /** Number of times the thread was pinned or unpinned (for tests and logs). */
  moves = 0;

  /**
   * A thread of this process to keep off the CPU the loop is pinned to (0: none): prov mode's
   * draining thread (kernel/serving). Woken by its timer, it was placed on the loop's CPU, which
   * counts as idle while the loop yields, and held the loop and so its caller off it for the
   * length of a drain.
   */
  keepOff = 0;
  private keptOff = -1;
  /** The CPUs {@link keepOff} may run on when first moved (what it gets back), or null. */
  private keepOffAllowed: Buffer | null = null;

  /** Running SCHED_IDLE now (see the module comment). */
  idle = false;
  /** False while something else owns this thread's scheduling (a handover's boost): never SCHED_IDLE then. */
  allowIdle = true;
  /** Times the loop stopped yielding because the machine got busy (for tests and logs). */
  busy = 0;
  private readonly yieldToCaller: boolean;
  /** PROV_FUSE_YIELD=always: yield whenever pinned, quiet or not (for measuring the rule). */
  private readonly always = process.env.PROV_FUSE_YIELD === 'always';
  private idleCheck = 0;
  private readonly callerCpu: NonNullable<Probe['caller']>;
  /** When {@link quiet} was last asked before yielding (at most every {@link CHECK_MS}). */
  private lastQuietTry = -Infinity;
  /** /proc/stat at the start of the current quiet window, when, and the partners' CPU time then. */
  private windowStart: { t: number; times: Array<[number, number]>; partners: number; caller: number } | null = null;
  /** The caller's CPU time (clock ticks) at the last placement check, or -1, and which thread that was. */
  private callerTicks = -1;
  private callerTid = 0;
  /** The other CPUs' idle share over the last whole window (-1: none measured yet). */
  private otherIdle = -1;

  constructor(private readonly now: () => number = () => performance.now(), yieldToCaller = process.env.PROV_FUSE_YIELD !== '0' && mayLeaveIdle(),
    private readonly probe: Probe = { times: cpuTimes, runnable: runnableNow, ownOther: ownOtherTicks, ownRunning }) {
    this.yieldToCaller = yieldToCaller;
    this.callerCpu = probe.caller ?? new ThreadCpuProbe();
  }

  /**
   * Whether the machine is quiet enough to yield (see the module comment): the other CPUs'
   * idle share over the last whole window, and nothing else runnable now.
   */
  private quiet(t: number): boolean {
    if (this.always) return true;
    const w = this.windowStart;
    if (!w || t - w.t >= QUIET_WINDOW_MS) {
      const times = this.probe.times();
      if (!times) return false;
      const own = this.probe.ownOther?.() ?? -1;
      const partners = own >= 0 && this.callerTicks >= 0 ? own + this.callerTicks : -1;
      if (w) {
        let idle = 0, total = 0;
        times.forEach(([i, tot], cpu) => {
          if (cpu === this.pinned || !w.times[cpu]) return;
          idle += i - w.times[cpu]![0];
          total += tot - w.times[cpu]![1];
        });
        // The caller's and this daemon's own time count as idle (see the module comment).
        if (partners >= 0 && w.partners >= 0 && w.caller === this.callerTid) idle = Math.min(total, idle + Math.max(0, partners - w.partners));
        this.otherIdle = total > 0 ? idle / total : 1;
      }
      this.windowStart = { t, times, partners, caller: this.callerTid };
    }
    if (this.otherIdle < QUIET_IDLE_SHARE) return false;
    const r = this.probe.runnable();
    if (r >= 0 && r <= 2) return true;
    // More runnable than the loop and one more: quiet still if the rest are this daemon's own threads.
    const own = r >= 0 ? this.probe.ownRunning?.() ?? -1 : -1;
    return own >= 1 && r - own <= 1;
  }

  /** Requests since the sleeps were last counted, and the count then (see {@link SPLIT_EVERY}). */
  private sinceSleeps = 0;
  private sleeps = -1;
  /** Placement checks brought forward because the loop slept (for tests and logs). */
  splits = 0;

  /** Note a request from thread `tid` (its in_header.pid); moves this thread when it is time. */
  note(tid: number): void {
    // pid 0: requests the kernel sends on nobody's behalf (RELEASE, FORGET).
    if (tid !== 0 && this.caller !== tid) this.caller = this.caller === 0 ? tid : -1;
    // Only while yielding: a loop in ordinary scheduling finishes its request and sleeps before its caller runs, together or not.
    if (this.idle && ++this.sinceSleeps >= SPLIT_EVERY) this.countSleeps();
    if (this.idle) {
      // Yielding: the starvation check is due every CHECK_MS, however few requests came.
      if (!this.allowIdle) this.ordinary();
      else {
        const t = this.now();
        if (t - this.idleCheck >= CHECK_MS) this.idleCheckAt(t);
      }
    }
    if (++this.count < MIN_REQUESTS) return;
    const t = this.now();
    if (t - this.lastCheck < PLACE_MS) return;
    this.lastCheck = t;
    this.count = 0;
    const single = this.caller > 0 ? this.caller : 0;
    this.caller = 0;
    const cpu = single ? this.callerCpu.cpu(single) : -1;
    this.callerTicks = single ? this.callerCpu.ticks : -1;
    this.callerTid = single;
    if (cpu !== this.pinned && libc.pinThread(cpu)) {
      this.pinned = cpu;
      this.moves++;
    }
    this.keepOffPinned();
    if (this.pinned < 0) this.ordinary();
    else if (!this.idle && this.yieldToCaller && this.allowIdle && t - this.lastQuietTry >= CHECK_MS) {
      this.lastQuietTry = t;
      if (this.quiet(t) && libc.setScheduler(0, SCHED_IDLE, 0)) {
        this.idle = true;
        this.idleCheck = t;
      }
    }
  }

  /** See {@link SPLIT_EVERY}: a loop that slept on most of the last requests checks its placement at once. */
  private countSleeps(): void {
    this.sinceSleeps = 0;
    const now = this.probe.sleeps ? this.probe.sleeps() : libc.threadSleeps();
    const slept = this.sleeps >= 0 && now >= 0 ? (now - this.sleeps) >>> 0 : 0;
    this.sleeps = now;
    if (slept < SPLIT_SLEEPS || this.caller <= 0) return;
    this.count = MIN_REQUESTS;
    this.lastCheck = -Infinity;
    this.splits++;
  }

  /**
   * While SCHED_IDLE, every {@link CHECK_MS}: back to ordinary scheduling when the machine is no
   * longer quiet, or when the requests paused (the burst is over: the next one may come from
   * anywhere; the loop yields again after a placement check finds one caller).
   */
  private idleCheckAt(t: number): void {
    const span = t - this.idleCheck;
    this.idleCheck = t;
    if (span > 10 * CHECK_MS) this.ordinary();
    else if (!this.quiet(t)) { this.ordinary(); this.busy++; }
  }

  /** Keep {@link keepOff} off the pinned CPU (on the CPUs it had again once the loop is not pinned). */
  private keepOffPinned(): void {
    if (this.keepOff === 0 || this.keptOff === this.pinned) return;
    const allowed = this.keepOffAllowed ??= libc.getAffinity(this.keepOff);
    if (allowed && libc.avoidCpu(this.keepOff, allowed, this.pinned)) { this.keptOff = this.pinned; return; }
    // Refused (the only CPU it may use, or the thread is gone): leave it where it was allowed.
    if (allowed) libc.avoidCpu(this.keepOff, allowed, -1);
    this.keepOff = 0;
  }

  /** Back to ordinary scheduling (SCHED_OTHER) if yielding. */
  ordinary(): void {
    if (!this.idle || !libc.setScheduler(0, SCHED_OTHER, 0)) return;
    this.idle = false;
    // The sleeps counted from here on are ordinary scheduling's: start the count afresh when yielding again.
    this.sleeps = -1;
    this.sinceSleeps = 0;
  }

  /** Back to every CPU and ordinary scheduling (before the thread does anything else, e.g. at a handover). */
  release(): void {
    this.ordinary();
    this.callerCpu.close();
    if (this.pinned >= 0 && libc.pinThread(-1)) this.pinned = -1;
    this.keepOffPinned();
  }
}
