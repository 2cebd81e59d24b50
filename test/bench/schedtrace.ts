/**
 * @module test/bench/schedtrace
 * What an application's pause was made of, from the kernel's scheduler: a private ftrace
 * instance (`/sys/kernel/tracing/instances/<name>`, CLOCK_MONOTONIC timestamps, so they line up
 * with the workload drivers' and the daemons' own clocks) records sched_switch, sched_wakeup and
 * FUSE request send/end while a bench round runs; {@link SchedTrace.breakdown} then says, for a
 * stretch of time, how long each watched thread (the application, the request loops) was running,
 * runnable but waiting for a CPU, or asleep, what ran on each CPU meanwhile, and how long the
 * FUSE requests inside took. This is how the longest operations of the Figure 5 runs were taken
 * apart (V8 compiler threads on the loop's CPU, the other CPU idle; a successor's loop preempted
 * by both daemons' main threads; the machine's own other work).
 *
 * Root only; the instance is private (other users of tracefs are not disturbed) and removed by
 * {@link SchedTrace.stop}.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';

const EVENTS = ['sched/sched_switch', 'sched/sched_wakeup', 'fuse/fuse_request_send', 'fuse/fuse_request_end'];
/** Process events only: forks, execs and exits (for {@link SchedTrace.processes}). */
export const PROCESS_EVENTS = ['sched/sched_process_fork', 'sched/sched_process_exec', 'sched/sched_process_exit'];

/** One process as the scheduler saw it: who forked it, what it ran, when (CLOCK_MONOTONIC ns). */
export interface TracedProcess { pid: number; parent?: number; forkedAt?: number; exe?: string; execAt?: number; exitAt?: number }

interface Ev { comm: string; pid: number; cpu: number; ts: number; ev: string; rest: string }

/** Who a thread is, for the breakdown: a label, or null for "someone else" (shown by its name). */
export type Labeller = (tid: number, comm: string) => string | null;

export class SchedTrace {
  private events: Ev[] = [];
  private constructor(private readonly dir: string, private readonly enabled: string[]) {}

  /** Start tracing `events` into a new private instance; null (and why) when tracefs cannot be used here. */
  static start(name: string, events = EVENTS): SchedTrace | { error: string } {
    const root = '/sys/kernel/tracing/instances';
    if (!existsSync(root)) return { error: 'no tracefs at /sys/kernel/tracing' };
    const dir = `${root}/${name}`;
    try {
      if (!existsSync(dir)) mkdirSync(dir);
      const w = (f: string, v: string): void => writeFileSync(`${dir}/${f}`, v);
      w('tracing_on', '0');
      w('trace', '');
      w('trace_clock', 'mono');
      w('buffer_size_kb', '32768');
      for (const e of events) if (existsSync(`${dir}/events/${e}`)) w(`events/${e}/enable`, '1');
      w('tracing_on', '1');
    } catch (e) {
      try { rmdirSync(dir); } catch { /* not made */ }
      return { error: `tracefs: ${(e as Error).message}` };
    }
    return new SchedTrace(dir, events);
  }

  /** Stop, keep the events in memory, remove the instance. */
  stop(): void {
    try {
      writeFileSync(`${this.dir}/tracing_on`, '0');
      const text = readFileSync(`${this.dir}/trace`, 'utf8');
      for (const l of text.split('\n')) {
        const m = /^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+): (\w+): (.*)$/.exec(l);
        if (m) this.events.push({ comm: m[1]!, pid: Number(m[2]), cpu: Number(m[3]), ts: Math.round(Number.parseFloat(m[4]!) * 1e9), ev: m[5]!, rest: m[6]! });
      }
      for (const e of this.enabled) if (existsSync(`${this.dir}/events/${e}`)) writeFileSync(`${this.dir}/events/${e}/enable`, '0');
      writeFileSync(`${this.dir}/trace`, '');
    } finally {
      try { rmdirSync(this.dir); } catch { /* busy: left for the next start to reuse */ }
    }
  }

  /** Every process the {@link PROCESS_EVENTS} saw, by pid (a pid reused meanwhile: its last life). */
  processes(): Map<number, TracedProcess> {
    const procs = new Map<number, TracedProcess>();
    const get = (pid: number): TracedProcess => procs.get(pid) ?? procs.set(pid, { pid }).get(pid)!;
    for (const e of this.events) {
      if (e.ev === 'sched_process_fork') {
        const m = / pid=(\d+) child_comm=.* child_pid=(\d+)/.exec(e.rest);
        if (!m) continue;
        const child = Number(m[2]);
        procs.set(child, { pid: child, parent: Number(m[1]), forkedAt: e.ts });
      } else if (e.ev === 'sched_process_exec') {
        const m = /filename=(\S+) pid=(\d+)/.exec(e.rest);
        if (!m) continue;
        const p = get(Number(m[2]));
        p.exe = m[1];
        p.execAt = e.ts;
      } else if (e.ev === 'sched_process_exit') {
        const m = /pid=(\d+)/.exec(e.rest);
        // Thread exits are reported too: the last thread out ends the process.
        if (m && /group_dead=true/.test(e.rest)) get(Number(m[1])).exitAt ??= e.ts;
      }
    }
    return procs;
  }

  /**
   * The stretch [a, b] (CLOCK_MONOTONIC ns) taken apart: for each watched thread (tid → label)
   * its running / waiting for a CPU / asleep time; per CPU, who ran (µs, the five longest); the
   * FUSE requests that ended inside (opcode and time from send to end, µs).
   */
  breakdown(a: number, b: number, watch: Map<number, string>, label: Labeller): string {
    const state = new Map<number, { s: 'run' | 'wait' | 'sleep'; since: number }>();
    const acc = new Map<number, { run: number; wait: number; sleep: number }>();
    const onCpu = new Map<number, { who: string; since: number }>();
    const cpuTime = new Map<number, Map<string, number>>();
    const sent = new Map<string, { op: string; t: number }>();
    const fuse: string[] = [];
    const clip = (from: number, to: number): number => Math.max(0, Math.min(to, b) - Math.max(from, a));
    const add = (tid: number, s: 'run' | 'wait' | 'sleep', from: number, to: number): void => {
      const x = acc.get(tid) ?? { run: 0, wait: 0, sleep: 0 };
      x[s] += clip(from, to);
      acc.set(tid, x);
    };
    const ran = (cpu: number, who: string, from: number, to: number): void => {
      const m = cpuTime.get(cpu) ?? new Map<string, number>();
      m.set(who, (m.get(who) ?? 0) + clip(from, to));
      cpuTime.set(cpu, m);
    };
    const name = (tid: number, comm: string): string => (tid === 0 ? 'idle' : label(tid, comm) ?? comm);
    const move = (tid: number, s: 'run' | 'wait' | 'sleep', at: number): void => {
      if (!watch.has(tid)) return;
      const cur = state.get(tid);
      if (cur) add(tid, cur.s, cur.since, at);
      state.set(tid, { s, since: at });
    };
    for (const e of this.events) {
      if (e.ts < a - 50e6) continue;
      if (e.ts > b) break;
      if (e.ev === 'sched_switch') {
        const m = /prev_comm=(.*) prev_pid=(\d+) .*prev_state=(\S+) ==> next_comm=(.*) next_pid=(\d+)/.exec(e.rest);
        if (!m) continue;
        const cur = onCpu.get(e.cpu);
        if (cur) ran(e.cpu, cur.who, cur.since, e.ts);
        onCpu.set(e.cpu, { who: name(Number(m[5]), m[4]!), since: e.ts });
        move(Number(m[2]), m[3]!.startsWith('R') ? 'wait' : 'sleep', e.ts);
        move(Number(m[5]), 'run', e.ts);
      } else if (e.ev === 'sched_wakeup') {
        const m = /pid=(\d+) /.exec(e.rest);
        const tid = Number(m?.[1]);
        if (state.get(tid)?.s !== 'run') move(tid, 'wait', e.ts);
      } else if (e.ev === 'fuse_request_send') {
        const m = /req (\d+) opcode \d+ \((\w+)\)/.exec(e.rest);
        if (m) sent.set(m[1]!, { op: m[2]!.replace('FUSE_', ''), t: e.ts });
      } else if (e.ev === 'fuse_request_end') {
        const m = /req (\d+)/.exec(e.rest);
        const s = m ? sent.get(m[1]!) : undefined;
        if (s && e.ts >= a) fuse.push(`${s.op} ${((e.ts - s.t) / 1e3).toFixed(0)}`);
      }
    }
    for (const [tid, cur] of state) add(tid, cur.s, cur.since, b);
    for (const [cpu, cur] of onCpu) ran(cpu, cur.who, cur.since, b);
    const us = (ns: number): string => (ns / 1e3).toFixed(0);
    const threads = [...watch].map(([tid, l]) => { const x = acc.get(tid); return x ? `${l} run ${us(x.run)} wait ${us(x.wait)} sleep ${us(x.sleep)}` : `${l} -`; }).join('; ');
    const cpus = [...cpuTime].sort((x, y) => x[0] - y[0]).map(([c, m]) => `cpu${c}: ` + [...m].filter(([, ns]) => ns > 0).sort((x, y) => y[1] - x[1]).slice(0, 5).map(([w, ns]) => `${w} ${us(ns)}`).join(', ')).join(' | ');
    return `${threads} (µs) | ${cpus} | FUSE requests ended, µs from send: ${fuse.slice(0, 12).join(', ') || 'none'}`;
  }
}
