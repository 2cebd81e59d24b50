/**
 * @module kernel/takeovertrace
 * Where the pause of a crash takeover goes: the fd keeper, the standby's main thread and its
 * request loop each note CLOCK_MONOTONIC timestamps of their phases (the daemon's exit seen,
 * the standby told, the node table ready, FUSE_NOTIFY_RESEND written, the first request read
 * and answered, the journal recovered …) and append them, once the takeover is over, as JSON
 * lines `{"pid","who","phase","at"}` to `<node log>.takeover` (0600, in the private runtime
 * directory). The clock is shared by every process, so `prov`'s kill bench lines them up with
 * the moment it sent SIGKILL. Nothing is written on the takeover path itself.
 */
import { appendFileSync, readFileSync } from 'node:fs';

/** The trace file of the mount whose node log is `nodeLog`. */
export function takeoverTracePath(nodeLog: string): string {
  return `${nodeLog}.takeover`;
}

/** CLOCK_MONOTONIC ns now. */
export const monotonicNs = (): number => Number(process.hrtime.bigint());

export class TakeoverTrace {
  private marks: Array<[string, number]> = [];

  /** `nodeLog` undefined: marks are kept but never written. */
  constructor(private readonly nodeLog: string | undefined, private readonly who: string) {}

  mark(phase: string, at: number = monotonicNs()): void {
    this.marks.push([phase, at]);
  }

  /** Append the marks so far to the trace file (errors ignored: a trace is no reason to fail). */
  write(): void {
    if (!this.nodeLog || this.marks.length === 0) return;
    const lines = this.marks.map(([phase, at]) => JSON.stringify({ pid: process.pid, who: this.who, phase, at }) + '\n').join('');
    this.marks = [];
    try { appendFileSync(takeoverTracePath(this.nodeLog), lines, { mode: 0o600 }); } catch { /* no trace */ }
  }
}

/** One line of a trace file. */
export interface TraceMark { pid: number; who: string; phase: string; at: number }

/** The marks in a trace file, in time order (none when there is no file). */
export function readTakeoverTrace(path: string): TraceMark[] {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch { return []; }
  const out: TraceMark[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    try { out.push(JSON.parse(line) as TraceMark); } catch { /* a torn line */ }
  }
  return out.sort((a, b) => a.at - b.at);
}
