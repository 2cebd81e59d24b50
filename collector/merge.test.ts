/**
 * @module collector/merge.test
 * Timestamp merge of streams with a watermark: order, skew, ties, idle and closed streams,
 * late and unordered records, and a randomized check that live streams always merge sorted.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { StreamMerger } from './merge.js';

const MS = 1_000_000;

interface R { stream: string; seq: number; event: { ts: number } }
const seqs = new Map<string, number>();
function r(stream: string, tsMs: number, seq?: number): R {
  const n = seq ?? (seqs.set(stream, (seqs.get(stream) ?? 0) + 1), seqs.get(stream)!);
  return { stream, seq: n, event: { ts: tsMs * MS } };
}
const show = (xs: R[]) => xs.map((x) => `${x.stream}${x.event.ts / MS}`);

function clock() {
  let t = 0;
  return { now: () => t, tick: (ms: number) => { t += ms; } };
}

describe('merge: watermark with skew', () => {
  it('holds a record until every other live stream passed its ts + skew', () => {
    const c = clock();
    const m = new StreamMerger<R>({ now: c.now });
    m.add('ebpf');
    m.add('provfs');
    m.push(r('ebpf', 10));
    assert.equal(m.pop(), undefined, 'provfs has said nothing yet');
    m.push(r('provfs', 15));
    assert.equal(m.pop(), undefined, 'provfs at 15 < 10 + 20');
    m.push(r('provfs', 25)); // arrives before provfs's 31 but within skew of ebpf 10
    m.push(r('provfs', 31));
    assert.deepEqual(show(m.drain()), ['ebpf10'], 'provfs passed 30; ebpf (at 10) holds provfs 15 back');
    m.push(r('ebpf', 12)); // ebpf's late-delivered record still comes before provfs 15
    m.push(r('ebpf', 60));
    assert.deepEqual(show(m.drain()), [], 'ebpf 12 waits for provfs to pass 32');
    m.push(r('provfs', 40));
    assert.deepEqual(show(m.drain()), ['ebpf12', 'provfs15', 'provfs25', 'provfs31', 'provfs40'], 'ebpf 60 waits for provfs to pass 80');
    m.close('provfs');
    assert.deepEqual(show(m.drain()), ['ebpf60'], 'a closed stream holds nothing back');
    assert.deepEqual(m.stats(), { released: 7, late: 0, unordered: 0 });
  });

  it('breaks ties by stream, then seq', () => {
    const m = new StreamMerger<R>({ now: () => 0 });
    m.push(r('b', 5, 1));
    m.push(r('a', 5, 7));
    m.push(r('a', 5, 8));
    m.push(r('c', 4, 1));
    assert.deepEqual(m.flush().map((x) => `${x.stream}:${x.seq}`), ['c:1', 'a:7', 'a:8', 'b:1']);
  });

  it('an idle stream stops holding others back; its record after that is late', () => {
    const c = clock();
    const m = new StreamMerger<R>({ now: c.now, idleMs: 100 });
    m.push(r('ebpf', 10));
    m.push(r('provfs', 11));
    assert.deepEqual(show(m.drain()), [], 'each waits for the other to pass its ts + 20');
    c.tick(150); // both silent for 150 ms: neither holds the other back
    assert.deepEqual(show(m.drain()), ['ebpf10', 'provfs11']);
    m.push(r('ebpf', 50));
    assert.deepEqual(show(m.drain()), ['ebpf50'], 'provfs is idle');
    m.push(r('provfs', 40)); // too late to be placed before ebpf50
    assert.deepEqual(show(m.drain()), [], 'provfs is live again and waits for ebpf to pass 60');
    c.tick(150);
    assert.deepEqual(show(m.drain()), ['provfs40']);
    assert.equal(m.stats().late, 1);
  });

  it('a heartbeat advances a quiet stream without a record', () => {
    const m = new StreamMerger<R>({ now: () => 0 });
    m.push(r('ebpf', 10));
    m.add('provfs');
    assert.equal(m.pop(), undefined);
    m.advance('provfs', 30 * MS);
    assert.deepEqual(show(m.drain()), ['ebpf10']);
  });

  it('keeps a stream’s own order when its ts go backwards (counted)', () => {
    const m = new StreamMerger<R>({ now: () => 0 });
    m.push(r('ebpf', 10, 1));
    m.push(r('ebpf', 8, 2));
    m.push(r('provfs', 9, 1));
    assert.deepEqual(m.flush().map((x) => `${x.stream}:${x.seq}`), ['provfs:1', 'ebpf:1', 'ebpf:2']);
    assert.equal(m.stats().unordered, 1);
  });

  it('live streams delivered with random delays always merge into (ts, stream, seq) order', () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    for (let round = 0; round < 50; round++) {
      const m = new StreamMerger<R>({ now: () => 0 });
      const names = ['ebpf', 'provfs-1', 'provfs-2'];
      const pending = names.map((name) => {
        let ts = Math.floor(rnd() * 5);
        return Array.from({ length: 200 }, (_, i) => ({ stream: name, seq: i + 1, event: { ts: (ts += Math.floor(rnd() * 3)) * MS } }));
      });
      for (const n of names) m.add(n);
      const out: R[] = [];
      while (pending.some((q) => q.length)) {
        const q = pending[Math.floor(rnd() * pending.length)];
        for (let k = Math.floor(rnd() * 8); k > 0 && q.length; k--) m.push(q.shift()!);
        if (q.length === 0) m.close(q === pending[0] ? 'ebpf' : q === pending[1] ? 'provfs-1' : 'provfs-2');
        out.push(...m.drain());
      }
      out.push(...m.flush());
      const sorted = [...out].sort((a, b) => a.event.ts - b.event.ts || (a.stream < b.stream ? -1 : a.stream > b.stream ? 1 : 0) || a.seq - b.seq);
      assert.equal(out.length, 600);
      assert.deepEqual(out, sorted, `round ${round}`);
      assert.equal(m.stats().late, 0);
      assert.equal(m.size, 0);
    }
  });
});
