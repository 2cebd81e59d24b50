/**
 * @module collector/rebuild/trace
 * A timeline of one `prov rebuild` for finding where its milliseconds go: named marks in ms
 * since the process started (node's own start-up milestones included), printed to stderr at
 * exit when PROV_REBUILD_TRACE is set (`=json` for one JSON line). Costs one array push per
 * mark otherwise.
 */
import { performance } from 'node:perf_hooks';

const marks: Array<[string, number]> = [];
/** Where the timeline starts: 0 for the process, a request's arrival in the rebuild server. */
let origin = 0;

/**
 * Start a new timeline now (the rebuild server, cli/rebuild-server, for each request): the
 * marks so far are dropped and later ones count from here; node's start-up is not shown.
 */
export function restartTrace(): void {
  marks.length = 0;
  origin = performance.now();
}

/** Record that `name` happened now. */
export function mark(name: string): void {
  marks.push([name, performance.now()]);
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
    process.stderr.write(`${JSON.stringify({ trace: tl.map(([name, ms]) => ({ name, ms: Number(ms.toFixed(2)) })) })}\n`);
    return;
  }
  let prev = 0;
  for (const [name, ms] of tl) {
    process.stderr.write(`${ms.toFixed(1).padStart(8)} ms  +${(ms - prev).toFixed(1).padStart(6)}  ${name}\n`);
    prev = ms;
  }
}
