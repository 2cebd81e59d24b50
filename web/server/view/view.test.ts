/**
 * @module web/server/view/view.test
 * Tests of the drawable view shared by the UI and the SVG export: sibling grouping (and its
 * cascade), expanded groups, gap flags, the layered layout's invariants, SVG escaping.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GraphEdge, GraphNode } from '../../../graph/model.js';
import type { Subgraph } from '../../../graph/store.js';
import { toViewGraph, siblingPattern } from './grouping.js';
import { layoutGraph } from './layout.js';
import { renderSvg, escapeXml } from './svg.js';

const file = (id: string, path: string, ts = 10): GraphNode => ({ id, kind: 'file', host: 'h', label: path.slice(path.lastIndexOf('/') + 1), ts, attrs: { path, version: 0 } });
const proc = (id: string, exe: string, ts = 10, end = ts + 5): GraphNode => ({ id, kind: 'process', host: 'h', label: exe, ts, attrs: { exe, start: ts, end } });
const e = (kind: GraphEdge['kind'], from: string, to: string, ts = 20): GraphEdge => ({ kind, from, to, ts, pos: `t:${from}>${to}` });

/** lib.a ← ar ← n × (k.o ← cc_k ← k.c) */
function archive(n: number): Subgraph {
  const nodes: GraphNode[] = [file('file:h:1:1:0', '/p/lib.a', 100), proc('proc:h:1:1', '/usr/bin/ar', 90)];
  const edges: GraphEdge[] = [e('wasGeneratedBy', 'file:h:1:1:0', 'proc:h:1:1', 99)];
  for (let k = 0; k < n; k++) {
    nodes.push(file(`file:h:1:${100 + k}:0`, `/p/obj/f${k}.o`, 50), proc(`proc:h:${100 + k}:1`, '/usr/bin/cc', 40), file(`file:h:1:${1000 + k}:0`, `/p/src/f${k}.c`, 1));
    edges.push(e('used', 'proc:h:1:1', `file:h:1:${100 + k}:0`, 91), e('wasGeneratedBy', `file:h:1:${100 + k}:0`, `proc:h:${100 + k}:1`, 45), e('used', `proc:h:${100 + k}:1`, `file:h:1:${1000 + k}:0`, 41));
  }
  return { nodes, edges, gaps: [], truncated: false };
}

describe('grouping', () => {
  it('folds many similar siblings, and the fold cascades to their causes', () => {
    const g = toViewGraph(archive(500), { focus: 'file:h:1:1:0' });
    const groups = g.nodes.filter((n) => n.kind === 'group');
    assert.deepEqual(groups.map((n) => n.members!.length), [500, 500, 500]);
    assert.deepEqual(groups.map((n) => n.pattern).sort(), ['/p/obj/*.o', '/p/src/*.c', 'cc']);
    assert.equal(g.nodes.length, 2 + 3);
    const toAr = g.edges.find((x) => x.target === 'proc:h:1:1')!;
    assert.equal(toAr.count, 500, 'the 500 used edges merge into one counted edge');
  });
  it('leaves few siblings alone and draws an expanded group member by member', () => {
    assert.equal(toViewGraph(archive(5), { focus: 'file:h:1:1:0' }).nodes.filter((n) => n.kind === 'group').length, 0);
    const first = toViewGraph(archive(20), { focus: 'file:h:1:1:0' });
    const objects = first.nodes.find((n) => n.pattern === '/p/obj/*.o')!;
    const open = toViewGraph(archive(20), { focus: 'file:h:1:1:0', expanded: new Set([objects.id]) });
    assert.equal(open.nodes.filter((n) => n.kind === 'file' && n.id.startsWith('file:h:1:1') && (n.node!.attrs.path as string).endsWith('.o')).length, 20);
    assert.ok(!open.nodes.some((n) => n.pattern === '/p/src/*.c'), 'the sources now hang off distinct objects');
  });
  it('marks nodes and edges inside a window of lost events', () => {
    const sub = archive(2);
    sub.gaps = [{ id: 'g', host: 'h', src: 'ebpf', from: 90, to: 92, count: 3, reason: 'test' }];
    const g = toViewGraph(sub, { focus: 'file:h:1:1:0' });
    assert.ok(g.nodes.find((n) => n.id === 'proc:h:1:1')!.gap, 'ar ran across the gap');
    assert.ok(g.edges.filter((x) => x.gap).every((x) => x.target === 'proc:h:1:1'));
    assert.equal(g.edges.filter((x) => x.gap).length, 2);
    assert.ok(!g.nodes.find((n) => n.id === 'file:h:1:1000:0')!.gap);
  });
  it('names the sibling pattern by directory and extension, or by program', () => {
    assert.equal(siblingPattern(file('x', '/a/b/c.tar.gz')), '/a/b/*.gz');
    assert.equal(siblingPattern(proc('p', '/usr/bin/cc')), 'cc');
  });
});

describe('layout', () => {
  it('puts every cause left of its effect and keeps boxes apart', () => {
    const g = toViewGraph(archive(30), { focus: 'file:h:1:1:0', threshold: Infinity });
    const l = layoutGraph(g, { pack: 'sink' });
    const at = new Map(l.nodes.map((n) => [n.id, n]));
    for (const x of l.edges) assert.ok(at.get(x.source)!.x < at.get(x.target)!.x, `${x.source} left of ${x.target}`);
    const seen = new Set(l.nodes.map((n) => `${n.x},${n.y}`));
    assert.equal(seen.size, l.nodes.length, 'no two boxes on the same spot');
    assert.equal(Math.max(...l.nodes.map((n) => n.x)), at.get('file:h:1:1:0')!.x, 'the focus of an ancestors view is rightmost');
  });
  it('draws a graph with a cycle instead of failing', () => {
    const l = layoutGraph({ nodes: [{ id: 'a', kind: 'file', label: 'a', gap: false }, { id: 'b', kind: 'file', label: 'b', gap: false }],
      edges: [{ id: '1', kind: 'used', source: 'a', target: 'b', count: 1, gap: false }, { id: '2', kind: 'used', source: 'b', target: 'a', count: 1, gap: false }] });
    assert.equal(l.nodes.length, 2);
    assert.equal(l.edges.length, 2);
  });
  it('lays out 5,000 nodes in one piece', () => {
    const g = toViewGraph(archive(1700), { focus: 'file:h:1:1:0', threshold: Infinity });
    assert.ok(g.nodes.length > 5000);
    const l = layoutGraph(g, {});
    assert.equal(l.nodes.length, g.nodes.length);
  });
});

describe('svg', () => {
  it('escapes names and argv', () => {
    const sub: Subgraph = { nodes: [file('file:h:1:1:0', '/p/<script>alert(1)</script>&.c'), proc('proc:h:1:1', '"><svg onload=x>')], edges: [e('used', 'proc:h:1:1', 'file:h:1:1:0')], gaps: [], truncated: false };
    const svg = renderSvg(layoutGraph(toViewGraph(sub)), 'a & b');
    assert.doesNotMatch(svg, /<script|<svg onload/);
    assert.match(svg, /&lt;script&gt;/);
    assert.match(svg, /<title>a &amp; b<\/title>/);
    assert.equal(escapeXml('a\u0001b'), 'a\ufffdb');
  });
});
