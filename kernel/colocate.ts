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
 * stretch all came from one thread, it looks up that thread's CPU (/proc/TID/stat) and pins
 * itself there; when they come from several threads it lets the scheduler place it anywhere
 * again (a multi-threaded caller keeps every CPU busy anyway). Checked at most every
 * {@link CHECK_MS} and only after {@link MIN_REQUESTS} requests, so its cost is negligible.
 */
import { readFileSync } from 'node:fs';
import * as libc from './libc.js';

/** How often the placement is reconsidered while requests flow. */
export const CHECK_MS = 20;
/** Requests seen since the last check before reconsidering (a trickle is not worth a pin). */
export const MIN_REQUESTS = 64;

/** The CPU a thread last ran on (field 39 of /proc/TID/stat), or -1. */
export function cpuOfThread(tid: number): number {
  let text: string;
  try { text = readFileSync(`/proc/${tid}/stat`, 'latin1'); } catch { return -1; }
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const cpu = Number(rest[39 - 3]);
  return Number.isInteger(cpu) ? cpu : -1;
}

export class Colocator {
  private pinned = -1;
  private count = 0;
  private lastCheck = 0;
  /** The caller of the stretch so far (0: none yet; -1: several). */
  private caller = 0;
  /** Number of times the thread was pinned or unpinned (for tests and logs). */
  moves = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Note a request from thread `tid` (its in_header.pid); moves this thread when it is time. */
  note(tid: number): void {
    // pid 0: requests the kernel sends on nobody's behalf (RELEASE, FORGET).
    if (tid !== 0 && this.caller !== tid) this.caller = this.caller === 0 ? tid : -1;
    if (++this.count < MIN_REQUESTS) return;
    const t = this.now();
    if (t - this.lastCheck < CHECK_MS) return;
    this.lastCheck = t;
    this.count = 0;
    const single = this.caller > 0 ? this.caller : 0;
    this.caller = 0;
    const cpu = single ? cpuOfThread(single) : -1;
    if (cpu === this.pinned) return;
    if (libc.pinThread(cpu)) {
      this.pinned = cpu;
      this.moves++;
    }
  }

  /** Back to every CPU (before the thread does anything else, e.g. at a handover). */
  release(): void {
    if (this.pinned >= 0 && libc.pinThread(-1)) this.pinned = -1;
  }
}
