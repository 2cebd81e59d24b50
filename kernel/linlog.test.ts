/**
 * @module kernel/linlog.test
 * The `.lin` log is filled by the thread that takes records from the loop's ring; a snapshot,
 * taken on the loop's side, adds what the ring holds beyond it, so an open sees every record
 * published before it exactly once (not a staged one), whether or not the drain got to it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { EventRing } from './eventring.js';
import { LinLog, LOCK_PATIENCE_MS } from './linlog.js';

const lines = (lin: LinLog, ring: EventRing): string[] => lin.snapshot(ring).all().toString().split('\n').filter(Boolean);
/** What the serving thread does on a drain: take, and add to the log in the same hold of it. */
const drain = (lin: LinLog, ring: EventRing): void => lin.locked(() => {
  const t = ring.take(true);
  ring.forEachRun(t, (bytes, from, to) => lin.appendRun(bytes, from, to));
});

test('a snapshot is the log and then the ring\'s untaken records, each once; a staged record is not in it', () => {
  const ring = EventRing.create(1 << 12), lin = new LinLog(1 << 12);
  assert.deepEqual(lines(lin, ring), []);
  ring.pushString('{"n":1}');
  ring.pushString('{"n":2}');
  assert.deepEqual(lines(lin, ring), ['{"n":1}', '{"n":2}'], 'nothing taken yet: all from the ring');
  drain(lin, ring);
  ring.pushString('{"n":3}');
  assert.deepEqual(lines(lin, ring), ['{"n":1}', '{"n":2}', '{"n":3}'], 'two from the log, one from the ring');
  assert.ok(ring.stageString('{"n":4}'));
  assert.deepEqual(lines(lin, ring), ['{"n":1}', '{"n":2}', '{"n":3}'], 'a staged record is not published yet');
  ring.publishStaged();
  drain(lin, ring);
  assert.deepEqual(lines(lin, ring), ['{"n":1}', '{"n":2}', '{"n":3}', '{"n":4}']);
});

test('untaken records are read across the ring\'s wrap-around', () => {
  const ring = EventRing.create(256), lin = new LinLog(1 << 12);
  // Taken records are committed as the journal would once they are durable: the ring wraps.
  const drainAndCommit = (): void => lin.locked(() => {
    const t = ring.take(true);
    ring.forEachRun(t, (bytes, from, to) => lin.appendRun(bytes, from, to));
    ring.commit(t.end);
  });
  const all: string[] = [];
  for (let i = 0; i < 60; i++) {
    const rec = `{"i":${i},"pad":"${'x'.repeat(i % 17)}"}`;
    if (!ring.pushString(rec)) { drainAndCommit(); assert.ok(ring.pushString(rec)); }
    all.push(rec);
    if (i % 3 === 2) drainAndCommit();
    assert.deepEqual(lines(lin, ring), all, `after record ${i}`);
  }
});

test('runs taken across the ring\'s wrap go into a log that wraps too, dropping its oldest records whole', () => {
  const ring = EventRing.create(300), lin = new LinLog(200);
  const all: string[] = [];
  for (let i = 0; i < 200; i++) {
    const rec = `{"i":${i},"p":"${'y'.repeat(i % 11)}"}`;
    if (!ring.pushString(rec)) {
      lin.locked(() => { const t = ring.take(true); ring.forEachRun(t, (b, f, e) => lin.appendRun(b, f, e)); ring.commit(t.end); });
      assert.ok(ring.pushString(rec));
    }
    all.push(rec);
    if (i % 4 === 3) lin.locked(() => { const t = ring.take(true); ring.forEachRun(t, (b, f, e) => lin.appendRun(b, f, e)); ring.commit(t.end); });
    const got = lines(lin, ring);
    // The newest records, in order, ending with the last one pushed: as many as 200 bytes of log hold, and the ring's untaken ones.
    assert.ok(got.length >= Math.min(4, all.length), `after record ${i}: ${got.length} lines`);
    assert.deepEqual(got, all.slice(all.length - got.length), `after record ${i}`);
  }
});

test('the log is shared: a snapshot on another thread waits for an append in progress and sees it whole', async () => {
  const lin = new LinLog(1 << 16);
  const ring = EventRing.create(1 << 12);
  // The other thread appends 2,000 records in holds of 100 while this one snapshots.
  const w = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.mod).then(({ LinLog }) => {
      const lin = new LinLog(workerData.shared);
      for (let b = 0; b < 20; b++) lin.locked(() => { for (let i = 0; i < 100; i++) lin.appendString(JSON.stringify({ b, i })); });
      parentPort.postMessage('done');
    });
  `, { eval: true, workerData: { shared: lin.shared, mod: new URL('./linlog.js', import.meta.url).href } });
  const done = new Promise((r) => w.once('message', r));
  let snaps = 0;
  for (;;) {
    const got = lines(lin, ring).map((l) => JSON.parse(l) as { b: number; i: number });
    assert.equal(got.length % 100, 0, 'only whole holds of 100 are seen');
    got.forEach((r, k) => assert.deepEqual(r, { b: Math.floor(k / 100), i: k % 100 }));
    snaps++;
    if (got.length === 2000) break;
    await new Promise((r) => setImmediate(r));
  }
  await done;
  await w.terminate();
  assert.ok(snaps >= 1);
});

test('a hold never released (its thread terminated inside it) is taken over after the patience, not waited for for ever', () => {
  const lin = new LinLog(1 << 12);
  Atomics.store(new Int32Array(lin.shared, 0, 1), 0, 1); // held by a thread that is gone
  const t0 = performance.now();
  lin.locked(() => lin.appendString('{"n":1}'));
  const waited = performance.now() - t0;
  assert.ok(waited >= LOCK_PATIENCE_MS - 5 && waited < LOCK_PATIENCE_MS + 1000, `waited ${waited.toFixed(0)} ms`);
  assert.equal(Atomics.load(new Int32Array(lin.shared, 0, 1), 0), 0, 'released after');
  assert.deepEqual(lines(lin, EventRing.create(1 << 10)), ['{"n":1}']);
});
