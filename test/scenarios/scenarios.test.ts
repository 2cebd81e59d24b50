/**
 * @module test/scenarios/scenarios.test
 * The scenario suite, live: each workload in test/scenarios/ runs under eBPF capture, through
 * the journal, the join engine and SQLite; its outputs' lineage must match the hand-written
 * expectation exactly (recall and precision 1), and capture must have lost or rejected nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScenario, scenarioNames } from './runner.js';

for (const name of scenarioNames()) {
  test(`scenario ${name}: lineage recall and precision`, async () => {
    const r = await runScenario(name);
    assert.equal(r.code, 0, `workload failed: ${r.stderr}`);
    assert.deepEqual(r.rejected, [], 'journal records rejected');
    assert.equal(r.lost, 0, 'events lost');
    assert.deepEqual(r.execsMissing, [], `execs missing (seen: ${r.execs.join(' ')})`);
    assert.deepEqual(r.joinRejected, {}, 'records rejected by the join');
    assert.equal(r.readerRejected, 0, 'records the collector could not read');
    assert.equal(r.records, r.events, 'the collector applied every captured record');
    const detail = JSON.stringify(r.outputs, null, 1);
    assert.equal(r.recall, 1, `recall ${r.recall.toFixed(2)}: ${detail}`);
    assert.equal(r.precision, 1, `precision ${r.precision.toFixed(2)}: ${detail}`);
  });
}
