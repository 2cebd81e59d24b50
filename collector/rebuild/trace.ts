/**
 * @module collector/rebuild/trace
 * A timeline of one `prov rebuild` for finding where its milliseconds go: named marks in ms
 * since the process started (node's own start-up milestones included), printed to stderr at
 * exit when PROV_REBUILD_TRACE is set (`=json` for one JSON line; appended to the file
 * PROV_REBUILD_TRACE_FILE names instead, when set: the rebuild server's client that ran the
 * commands has exited by the time the server's timeline ends, and a benchmark should not make it
 * wait). Costs one array push per mark otherwise.
 */
import { appendFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const marks: Array<[string, number]> = [];
/** Where the timeline starts: 0 for the process, a request's arrival in the rebuild server. */
let origin = 0;

/**
 * Start a new timeline at `at` (default now; the rebuild server, cli/rebuild-server, for each
 * request, from its connection's arrival): the marks so far are dropped and later ones count
 * from there; node's start-up is not shown.
 */
export function restartTrace(at = performance.now()): void {
  marks.length = 0;
  origin = at;
}

/** Record that `name` happened now (or at `at`, a performance.now() taken earlier). */
export function mark(name: string, at = performance.now()): void {
  marks.push([name, at]);
}

/** The marks so far, node's start-up milestones first (ms since the process started). */
export function timeline(): Array<[string, number]> {
  if (origin > 0) return marks.map(([name, ms]) => [name, ms - origin]);
  const t = performance.nodeTiming;
  const node: Array<[string, number]> = [
    ['node: v8 started', t.v8Start], ['node: environment', t.environment], ['node: bootstrap complete', t.bootstrapComplete],
  ];
  return [...node.filter(([, v]) => v > 0), ...marks];
}

/** Print the timeline to stderr when PROV_REBUILD_TRACE asks for it. */
export function printTimeline(): void {
  const mode = process.env.PROV_REBUILD_TRACE;
  if (!mode) return;
  const tl = timeline();
  if (mode === 'json') {
    // `at`: the timeline's zero in ms since the epoch (to line it up with another process's clock).
    const at = Number((performance.timeOrigin + origin).toFixed(3));
    const line = `${JSON.stringify({ trace: tl.map(([name, ms]) => ({ name, ms: Number(ms.toFixed(2)) })), at })}\n`;
    const file = process.env.PROV_REBUILD_TRACE_FILE;
    if (file) appendFileSync(file, line, { mode: 0o600 });
    else process.stderr.write(line);
    return;
  }
  let prev = 0;
  for (const [name, ms] of tl) {
    process.stderr.write(`${ms.toFixed(1).padStart(8)} ms  +${(ms - prev).toFixed(1).padStart(6)}  ${name}\n`);
    prev = ms;
  }
}
