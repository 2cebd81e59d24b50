/**
 * @module kernel/rtprio
 * Real-time scheduling for the few moments of a crash takeover. On a loaded machine a thread
 * that wakes (the fd keeper seeing the daemon die, the standby's loop told to take over) waits
 * for a CPU for milliseconds even at nice -10; a SCHED_FIFO thread runs at once. Only threads
 * that sleep almost always get it, and only while it matters: the keeper's watch, the standby's
 * wait for the go word, and the new loop's first requests (kernel/loop). Without the right
 * (CAP_SYS_NICE) it is a no-op.
 */
import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { setScheduler, gettid } from './libc.js';

const SCHED_OTHER = 0, SCHED_FIFO = 1, SCHED_RESET_ON_FORK = 0x40000000;
/** A low real-time priority: above every ordinary task, below the kernel's own. */
const RT_PRIORITY = 10;

/**
 * The calling thread real-time (SCHED_FIFO) or back to ordinary scheduling. `resetOnFork`:
 * processes and threads it creates start ordinary. Returns whether it took effect.
 */
export function realtime(on: boolean, resetOnFork = true, tid = 0): boolean {
  const policy = (on ? SCHED_FIFO : SCHED_OTHER) | (resetOnFork ? SCHED_RESET_ON_FORK : 0);
  return setScheduler(tid, policy, on ? RT_PRIORITY : 0);
}

/**
 * Every thread of this process real-time (a small process that mostly sleeps, whose threads
 * are all on the path that matters: the fd keeper's main thread and the libuv pool threads that
 * poll its pidfds). What they create starts ordinary.
 */
export function realtimeProcess(): void {
  let tids: string[];
  try { tids = readdirSync('/proc/self/task'); } catch { return; }
  for (const t of tids) realtime(true, true, Number(t));
}

/**
 * Threads `tids` (default: the calling one) ordinary and at nice `nice` (19: below every
 * application). An old daemon after its handover: its main thread's last journal work and its
 * loop's teardown (closing every fd of its table, tens of thousands after a busy hour) are
 * nobody's wait any more, and must not take a CPU from the applications or from the successor,
 * which at that moment serves its first requests. Errors are ignored (a thread gone meanwhile).
 */
export function windDown(tids: number[] = [gettid()], nice = 19): void {
  for (const tid of tids) {
    realtime(false, true, tid);
    try { if (getPriority(tid) < nice) setPriority(tid, nice); } catch { /* gone */ }
  }
}
