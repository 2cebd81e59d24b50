/**
 * @module test/bench/standalone
 * Printing of one bench module's result when it is run alone (`node dist/test/bench/X.bench.js`).
 */
import type { BenchResult } from './types.js';

/** One line per figure, the memory figures, then the whole result as JSON. */
export function printResult(result: BenchResult): void {
  for (const r of result.rows) {
    const base = r.baseline === null ? '' : ` | baseline ${r.baseline} ${r.unit} (${r.baselineName}) | ratio ${r.ratio}`;
    console.log(`${r.figure}: ${r.prov} ${r.unit}${base}${r.note ? ` | ${r.note}` : ''}`);
  }
  console.log(`peak RSS MiB: ${JSON.stringify(result.memory)}`);
  console.log(JSON.stringify(result));
}
