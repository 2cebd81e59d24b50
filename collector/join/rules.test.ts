/**
 * @module collector/join/rules.test
 * The strict (Bento-prov) rule against the default, versioning without cycles, and `lost`
 * records becoming gaps.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { E, O_RDONLY, O_RDWR, Scenario, WRITE_NEW, ancestors, edges, file, ver } from './testkit.js';

function bentoScenario() {
  const s = new Scenario();
  const a = file(1, '/w/a');
  const b = file(2, '/w/b');
  const c = file(3, '/w/c');
  const d = file(4, '/w/d');
  const input = file(5, '/w/in');
  const out = file(6, '/w/out');
  s.exec(100, ['cc']);
  const cc = s.img(100);
  s.open(100, 3, a, O_RDONLY);
  s.open(100, 4, b, O_RDONLY);
  s.open(100, 5, c, WRITE_NEW, true); // c ← a, b (open for reading at this moment)
  s.close(100, 3);
  s.open(100, 6, d, O_RDONLY);
  s.close(100, 5); // and at close: c ← d
  s.close(100, 4);
  s.close(100, 6);
  // cmd < in > out: the shell child holds `in` when it opens `out`
  s.exec(200, ['sh']);
  const sh = s.img(200);
  const child = s.fork(200, 201);
  s.open(201, 3, input, O_RDONLY);
  s.dup(201, 3, 0);
  s.close(201, 3);
  s.open(201, 3, out, WRITE_NEW, true);
  s.dup(201, 3, 1);
  s.close(201, 3);
  const cmd = s.exec(201, ['cmd']);
  s.exit(201);
  return { s, a, b, c, d, input, out, cc, sh, child, cmd };
}

describe('join: strict rule vs default', () => {
  it('strict adds exactly the wasDerivedFrom edges of files open for reading at open and at close', () => {
    const { s, a, b, c, d, input, out } = bentoScenario();
    const plain = s.run().batch;
    const strict = s.run({ strict: true }).batch;
    assert.deepEqual(edges(plain, ['wasDerivedFrom']), []);
    const extra = edges(strict).filter((l) => !edges(plain).includes(l));
    assert.deepEqual(extra, [
      E('wasDerivedFrom', ver(c, 0), ver(a, 0), 'strict'),
      E('wasDerivedFrom', ver(c, 0), ver(b, 0), 'strict'),
      E('wasDerivedFrom', ver(c, 0), ver(d, 0), 'strict'),
      E('wasDerivedFrom', ver(out, 0), ver(input, 0), 'strict'),
    ].sort());
    assert.equal(edges(strict).length, edges(plain).length + 4);
  });
});

describe('join: versions', () => {
  it('read-modify-write of one file makes a new version: used v0, generated v1, no cycle', () => {
    const s = new Scenario();
    const f = file(7, '/w/counter');
    s.exec(300, ['incr']);
    const p = s.img(300);
    s.open(300, 3, f, O_RDWR);
    s.close(300, 3);
    s.open(300, 3, f, O_RDONLY);
    s.close(300, 3);
    const { batch } = s.run({ strict: true });
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy', 'wasDerivedFrom']), [
      E('used', p, ver(f, 0)),
      E('wasGeneratedBy', ver(f, 1), p),
      E('wasDerivedFrom', ver(f, 1), ver(f, 0), 'strict'),
      E('used', p, ver(f, 1)),
    ].sort());
  });

  it('concurrent writers share one version; it ends when the last one closes; a reader meanwhile sees it', () => {
    const s = new Scenario();
    const log = file(8, '/w/log');
    s.exec(310, ['w1']);
    const w1 = s.img(310);
    s.exec(311, ['w2']);
    const w2 = s.img(311);
    s.exec(312, ['tail']);
    const tail = s.img(312);
    s.open(310, 3, log, WRITE_NEW, true);
    s.open(311, 3, log, 1 /* O_WRONLY */);
    s.open(312, 3, log, O_RDONLY);
    const c1 = s.close(310, 3);
    s.close(312, 3);
    const c2 = s.close(311, 3);
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy']), [
      E('wasGeneratedBy', ver(log, 0), w1),
      E('wasGeneratedBy', ver(log, 0), w2),
      E('used', tail, ver(log, 0)),
    ].sort());
    const gen = batch.edges.filter((e) => e.kind === 'wasGeneratedBy').map((e) => e.ts).sort();
    assert.deepEqual(gen, [c1, c2]);
    assert.equal(batch.nodes.find((n) => n.id === ver(log, 0))!.attrs.closedAt, c2);
  });
});

describe('join: appends', () => {
  it('an append keeps the old content: the new version’s lineage reaches the old one', () => {
    const s = new Scenario();
    const log = file(9, '/w/log');
    const copy = file(10, '/w/copy');
    s.exec(320, ['logger']);
    const logger = s.img(320);
    s.open(320, 3, log, 1 | 0o2000 /* O_WRONLY | O_APPEND */);
    s.close(320, 3);
    s.exec(321, ['cp']);
    const cp = s.img(321);
    s.open(321, 3, log, O_RDONLY);
    s.open(321, 4, copy, WRITE_NEW, true);
    s.close(321, 4);
    s.close(321, 3);
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy']), [
      E('used', logger, ver(log, 0), 'base'),
      E('wasGeneratedBy', ver(log, 1), logger),
      E('used', cp, ver(log, 1)),
      E('wasGeneratedBy', ver(copy, 0), cp),
    ].sort());
    assert.ok(ancestors(batch, ver(copy, 0)).has(ver(log, 0)));
  });
});

describe('join: lost records', () => {
  it('a lost record becomes a gap with its window', () => {
    const s = new Scenario();
    s.exec(400, ['x']);
    s.lost('ebpf', 5_000, 9_000, 42);
    const { batch, engine } = s.run();
    assert.deepEqual(batch.gaps, [{ id: 'gap:h:ebpf:5000-9000', host: 'h', src: 'ebpf', from: 5000, to: 9000, count: 42, reason: 'ring buffer full' }]);
    assert.equal(engine.stats().gaps, 1);
  });
});
