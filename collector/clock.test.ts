import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { monotonicNs } from './clock.js';

/** The largest gap between monotonicNs and the middle of two process.hrtime reads around it, over `n` tries. */
function worstError(n: number): number {
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const before = process.hrtime.bigint();
    const ns = monotonicNs();
    const after = process.hrtime.bigint();
    assert.ok(Number.isInteger(ns), `a whole number of ns: ${ns}`);
    // Outside [before, after] by more than a microsecond is wrong whatever the scheduling.
    const lo = Number(before) - 1000, hi = Number(after) + 1000;
    assert.ok(ns >= lo && ns <= hi, `monotonicNs ${ns} outside process.hrtime's ${before}..${after}`);
    worst = Math.max(worst, Math.abs(ns - (Number(before) + Number(after)) / 2) - Number(after - before) / 2);
  }
  return worst;
}

test('monotonicNs reads process.hrtime\'s clock, as a number, on the main thread', () => {
  assert.ok(worstError(2000) <= 1000);
  let last = 0;
  for (let i = 0; i < 10000; i++) {
    const ns = monotonicNs();
    assert.ok(ns >= last, 'never goes back');
    last = ns;
  }
});

test('monotonicNs reads the same clock on a worker thread (its own time origin)', async () => {
  const w = new Worker(`
    const { parentPort } = require('node:worker_threads');
    import(${JSON.stringify(new URL('./clock.js', import.meta.url).href)}).then(({ monotonicNs }) => {
      const before = process.hrtime.bigint(); const ns = monotonicNs(); const after = process.hrtime.bigint();
      parentPort.postMessage([String(before), ns, String(after)]);
    });`, { eval: true });
  const [before, ns, after] = await new Promise<[string, number, string]>((res, rej) => { w.once('message', res); w.once('error', rej); });
  await w.terminate();
  assert.ok(ns >= Number(before) - 1000 && ns <= Number(after) + 1000, `worker's monotonicNs ${ns} outside ${before}..${after}`);
});
