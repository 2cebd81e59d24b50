/**
 * @module collector/proc
 * What `/proc/PID/stat` says about a process or thread: whether it can still act, when it
 * started (a pid is reused quickly, pid_max is small: the start time tells the process a file
 * names from a newer one with the same pid) and on which CPU it last ran; and which
 * capabilities this process holds (`/proc/self/status`).
 */
import { closeSync, openSync, readFileSync, readSync } from 'node:fs';

/**
 * The fields of `/proc/PID/stat` from field 3 (the state) on, so that field N is at index
 * N - 3; null when there is no such process. With `tid`, one thread's (its CPU times are its
 * own, not the group's). The command name (field 2) may hold spaces and parentheses, hence
 * counting from the last ')'.
 */
export function statFields(pid: number, tid?: number): string[] | null {
  let text: string;
  // /proc/PID/stat sums CPU times over the whole thread group; /proc/PID/task/TID/stat is one thread's.
  try { text = readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'latin1'); } catch { return null; }
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** A process's start time in clock ticks since boot (field 22), or null when it is gone. */
export function startTime(pid: number): string | null {
  return statFields(pid)?.[22 - 3] ?? null;
}

/** The CPU a thread last ran on (field 39), or -1 when it is gone. */
export function lastCpu(tid: number): number {
  const cpu = Number(statFields(tid)?.[39 - 3]);
  return Number.isInteger(cpu) ? cpu : -1;
}

/**
 * {@link lastCpu} for polling one thread every few milliseconds: its /proc/TID/stat stays open
 * and is read again with one pread, the field found by counting spaces in the bytes (2–3 µs
 * instead of 9–20 for open, read, close and a split). A thread gone reads as -1 (the open file
 * then fails with ESRCH; it is not confused with a newer thread given the same id).
 */
export class ThreadCpuProbe {
  private fd = -1;
  private tid = 0;
  private readonly buf = Buffer.alloc(1024);
  /** The CPU time (user + system, clock ticks) of the thread read by the last {@link cpu} call, or -1. */
  ticks = -1;

  /** The CPU thread `tid` last ran on, or -1 when it is gone (also sets {@link ticks}). */
  cpu(tid: number): number {
    this.ticks = -1;
    if (tid !== this.tid || this.fd < 0) {
      this.close();
      // /proc/TID/task/TID: the thread's own CPU times (/proc/TID/stat sums its whole group's).
      try { this.fd = openSync(`/proc/${tid}/task/${tid}/stat`, 'r'); } catch { return -1; }
      this.tid = tid;
    }
    let n: number;
    try { n = readSync(this.fd, this.buf, 0, this.buf.length, 0); } catch { this.close(); return -1; }
    const b = this.buf;
    let i = b.lastIndexOf(0x29, n - 1) + 2; // past ") ": field 3
    let ticks = 0;
    for (let field = 3; field < 39; field++) {
      if (field === 14 || field === 15) ticks += ThreadCpuProbe.number(b, i, n);
      i = b.indexOf(0x20, i) + 1;
      if (i === 0 || i >= n) return -1;
    }
    const cpu = ThreadCpuProbe.number(b, i, n);
    if (cpu >= 0) this.ticks = ticks;
    return cpu;
  }

  /** The decimal number at b[i] (-1: none). */
  private static number(b: Buffer, i: number, n: number): number {
    let v = 0, digits = 0;
    for (; i < n && b[i]! >= 0x30 && b[i]! <= 0x39; i++, digits++) v = v * 10 + b[i]! - 0x30;
    return digits > 0 ? v : -1;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    this.tid = 0;
  }
}

/**
 * Whether `pid` is a process that can still act: it exists (signal 0 reaches it, or it belongs
 * to another user) and is neither a zombie (dead, not yet reaped by its parent, which may be
 * blocked in a system call for long) nor a dead task.
 */
export function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch (e) {
    // Gone between the signal and the read; any other failure (a hidepid /proc): trust the signal.
    return (e as NodeJS.ErrnoException).code !== 'ENOENT' && (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  const state = text[text.lastIndexOf(')') + 2];
  return state !== 'Z' && state !== 'X';
}

/** Capability numbers (linux/capability.h) the project asks about. */
export const CAP = { SYS_ADMIN: 21, SYS_NICE: 23, PERFMON: 38, BPF: 39 } as const;

/** Whether this process holds capability `bit` in its effective set (false when /proc cannot say). */
export function hasCapability(bit: number): boolean {
  let text: string;
  try { text = readFileSync('/proc/self/status', 'latin1'); } catch { return false; }
  const eff = /CapEff:\s*([0-9a-f]+)/.exec(text)?.[1];
  return eff !== undefined && ((BigInt(`0x${eff}`) >> BigInt(bit)) & 1n) === 1n;
}
