/**
 * @module graph/lineage.test
 * The store-independent walk on an in-memory adjacency: the rules without any database.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EdgeKind } from './model.js';
import { crossEdge, shortestPath, walk, walkOptions, type WalkEdge } from './lineage.js';
import { InputError } from './errors.js';

function graph(list: Array<[EdgeKind, string, string, number, boolean?]>) {
  const edges: WalkEdge<string>[] = list.map(([kind, src, dst, ts, strict], i) => ({ kind, src, dst, ts, pos: `t:${i}`, strict: strict ?? false }));
  const fetched: string[] = [];
  const fetch = (frontier: string[], dir: 'up' | 'down'): WalkEdge<string>[] => {
    fetched.push(...frontier);
    const f = new Set(frontier);
    return edges.filter((e) => f.has(dir === 'up' ? e.src : e.dst));
  };
  return { fetch, fetched };
}

describe('lineage walk (store-independent)', () => {
  const o = walkOptions(undefined, 'test');

  it('applies the history bound up and down, and resets it at entities', async () => {
    const g = graph([
      ['used', 'P', 'in1', 10], ['wasGeneratedBy', 'out1', 'P', 20], ['used', 'P', 'in2', 30], ['wasGeneratedBy', 'out2', 'P', 40],
      ['wasGeneratedBy', 'in1', 'Q', 5], ['used', 'Q', 'old', 100], // Q wrote in1 at 5; a read at 100 cannot matter
    ]);
    assert.deepEqual((await walk('out1', 'up', o, g.fetch)).nodes, ['out1', 'P', 'in1', 'Q']);
    assert.deepEqual((await walk('out2', 'up', o, g.fetch)).nodes.sort(), ['P', 'Q', 'in1', 'in2', 'out2']);
    assert.deepEqual((await walk('in2', 'down', o, g.fetch)).nodes, ['in2', 'P', 'out2']);
    assert.deepEqual((await walk('old', 'down', o, g.fetch)).nodes, ['old', 'Q']);
  });

  it('counts depth in edges and stops at the limit', async () => {
    const g = graph([['wasGeneratedBy', 'a', 'P', 5], ['used', 'P', 'b', 1], ['used', 'P', 'c', 2], ['used', 'P', 'd', 3]]);
    assert.deepEqual((await walk('a', 'up', { ...o, depth: 1 }, g.fetch)).nodes, ['a', 'P']);
    const r = await walk('a', 'up', { ...o, limit: 3 }, g.fetch);
    assert.equal(r.nodes.length, 3);
    assert.equal(r.truncated, true);
    assert.equal(r.edges.length, 2);
  });

  it('fetches each node once per walk, even when it is reached again with a better bound', async () => {
    const g = graph([
      ['used', 'Q', 'early', 46], ['used', 'Q', 'final', 47], ['wasGeneratedBy', 'result', 'Q', 50],
      ['wasGeneratedBy', 'early', 'P', 10], ['wasGeneratedBy', 'final', 'P', 40], ['used', 'P', 'a', 5], ['used', 'P', 'late', 20],
    ]);
    const r = await walk('result', 'up', o, g.fetch);
    assert.ok(r.nodes.includes('late'));
    assert.equal(r.edges.length, 7);
    assert.equal(new Set(g.fetched).size, g.fetched.length, 'no node fetched twice');
    // P is first reached from early-out (bound 10): a reached, late not yet; then from final-out (bound 40).
    const viaEarly = await walk('early', 'up', o, g.fetch);
    assert.ok(!viaEarly.nodes.includes('late'));
  });

  it('expands a process again when a later level reaches it with a better bound', async () => {
    const g = graph([
      ['wasGeneratedBy', 'result', 'Q', 50], ['used', 'Q', 'early', 46], ['used', 'Q', 'mid', 47],
      ['wasGeneratedBy', 'mid', 'R', 45], ['used', 'R', 'final', 44],
      ['wasGeneratedBy', 'early', 'P', 10], ['wasGeneratedBy', 'final', 'P', 40], ['used', 'P', 'late', 20],
    ]);
    // P is reached at depth 3 through early (bound 10: late refused), and at depth 5 through final (bound 40).
    const r = await walk('result', 'up', o, g.fetch);
    assert.ok(r.nodes.includes('late'));
    assert.equal(new Set(g.fetched).size, g.fetched.length, 'P\'s edges come from the walk\'s cache the second time');
    const shallow = await walk('result', 'up', { ...o, depth: 5 }, g.fetch);
    assert.ok(!shallow.nodes.includes('late'), 'depth 5 reaches P again but not late (depth 6)');
  });

  it('says truncated when a level had more edges than it may fetch', async () => {
    const many: WalkEdge<string>[] = Array.from({ length: 20_000 }, (_, i) => ({ kind: 'used' as const, src: `p${i}`, dst: 'libc', ts: i, pos: `t:${i}`, strict: false }));
    let asked = 0;
    const fetch = (frontier: string[], _dir: 'up' | 'down', max: number): WalkEdge<string>[] => {
      asked = max;
      return frontier.includes('libc') ? many.slice(0, max) : [];
    };
    const r = await walk('libc', 'down', { ...o, limit: 100 }, fetch);
    assert.equal(asked, 10_000, 'at most max(10000, 4 × limit) edges per level');
    assert.equal(r.nodes.length, 100);
    assert.equal(r.truncated, true);
    const few = await walk('libc', 'down', { ...o, limit: 100_000 }, (f, _d, max) => (f.includes('libc') ? many.slice(0, Math.min(max, 50)) : []));
    assert.equal(few.truncated, false, 'fewer edges than the cap: complete');
  });

  it('strict follows only strict derivations; history skips them', () => {
    const strict = { kind: 'wasDerivedFrom' as const, src: 'b', dst: 'a', ts: 1, pos: 'x', strict: true };
    assert.equal(crossEdge(strict, 'up', Infinity, { ...o, rule: 'strict' }), Infinity);
    assert.ok(Number.isNaN(crossEdge(strict, 'up', Infinity, o)));
    assert.ok(Number.isNaN(crossEdge({ ...strict, kind: 'used' }, 'up', Infinity, { ...o, rule: 'strict' })));
    assert.ok(Number.isNaN(crossEdge({ ...strict, strict: false }, 'up', Infinity, { ...o, rule: 'strict' })));
  });

  it('finds shortest paths under the same rules', async () => {
    const g = graph([['wasGeneratedBy', 'out', 'P', 20], ['used', 'P', 'late', 30], ['used', 'P', 'in', 10]]);
    assert.deepEqual((await shortestPath('out', 'in', 'up', o, g.fetch))?.map((e) => e.pos), ['t:0', 't:2']);
    assert.equal(await shortestPath('out', 'late', 'up', o, g.fetch), null, 'late was read after out was written');
    assert.deepEqual(await shortestPath('out', 'out', 'up', o, g.fetch), []);
  });

  it('validates options', () => {
    assert.throws(() => walkOptions({ depth: 1.5 }, 'here'), InputError);
    assert.throws(() => walkOptions({ limit: 0 }, 'here'), /here: limit/);
    assert.throws(() => walkOptions({ since: Number.NaN }, 'here'), InputError);
    assert.deepEqual(walkOptions({}, 'x', { depth: 32 }), { depth: 32, limit: 5000, rule: 'history', since: -Infinity, until: Infinity });
  });
});
