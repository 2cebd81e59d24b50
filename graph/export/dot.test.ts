/**
 * @module graph/export/dot.test
 * DOT export: structure, and hostile file names checked by Graphviz itself (dot -Tjson shows
 * how DOT parsed each string; dot -Tsvg shows what a viewer renders).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../contract.js';
import type { Subgraph } from '../store.js';
import { toDot, visibleText, labelLines } from './dot.js';
import { renderDot } from './svg.js';
import { CapabilityError } from '../errors.js';

const HOSTILE = [
  'plain.c', 'a"quote', 'back\\slash', 'trailing\\', 'evil\\N\\G\\E\\T\\H\\L\\l\\r', 'new\nline', 'cr\rhere',
  '<script>alert(1)</script>', '"; n99 [label="pwned"]; n0 -> n99; "', 'emoji 😀 ünï', 'del\u007fc1\u0085', 'x\\"y',
];

function hostileGraph(): { g: Subgraph; files: string[] } {
  const b = new GraphBuilder();
  const p = b.proc(1, 1, { argv: ['sh', '-c', 'cat "$1" > \\out'] });
  const files = HOSTILE.map((name, i) => b.file(i + 1, 0, `/h/${name}`, 2));
  files.forEach((f, i) => b.used(p, f, 3 + i));
  const out = b.file(100, 1, '/h/out', 50);
  b.generated(out, p, 50);
  const batch = b.batch();
  return { g: { nodes: batch.nodes, edges: batch.edges, gaps: [], truncated: false }, files };
}

/** Graphviz escString processing of a label: \\ → \, \n \l \r → line break. */
function decodeLabel(s: string): string[] {
  return s.replace(/\\(\\|n|l|r)/g, (_m, c: string) => (c === '\\' ? '\\' : '\n')).split('\n');
}

async function graphviz(dot: string, format: 'json' | 'svg'): Promise<string> {
  try {
    return await renderDot(dot, { format });
  } catch (err) {
    if (err instanceof CapabilityError) assert.fail('Graphviz `dot` is missing: install it (graphviz is in scripts/apt-packages.txt; run scripts/bootstrap.sh)');
    throw err;
  }
}

describe('DOT export', () => {
  it('writes a left-to-right digraph with PROV shapes and one statement per node and edge', () => {
    const { g } = hostileGraph();
    const dot = toDot(g, { title: 'lineage of /h/out' });
    assert.match(dot, /^digraph prov \{\n/);
    assert.match(dot, /rankdir=LR/);
    assert.match(dot, /label="lineage of \/h\/out"/);
    assert.equal(dot.match(/^ {2}n\d+ \[id=/gm)?.length, g.nodes.length);
    assert.equal(dot.match(/^ {2}n\d+ -> n\d+ /gm)?.length, g.edges.length);
    assert.match(dot, /shape=box/);
    assert.match(dot, /shape=ellipse/);
    assert.ok(dot.endsWith('}\n'));
  });

  it('escapes hostile names so that Graphviz parses exactly the intended labels', async () => {
    const { g } = hostileGraph();
    const dot = toDot(g, { maxLabel: 1000 });
    const parsed = JSON.parse(await graphviz(dot, 'json')) as { objects: Array<{ name: string; label: string; id: string }>; edges?: unknown[] };
    assert.equal(parsed.objects.length, g.nodes.length, 'no node was injected');
    assert.equal(parsed.edges?.length, g.edges.length, 'no edge was injected');
    for (let i = 0; i < g.nodes.length; i++) {
      const obj = parsed.objects.find((o) => o.name === `n${i}`)!;
      assert.deepEqual(decodeLabel(obj.label), labelLines(g.nodes[i]!).map(visibleText), `label of ${JSON.stringify(g.nodes[i]!.attrs.path)}`);
      assert.equal(obj.id, g.nodes[i]!.id);
    }
  });

  it('renders to SVG with names shown literally and markup escaped', async () => {
    const { g } = hostileGraph();
    const svg = await graphviz(toDot(g, { maxLabel: 1000 }), 'svg');
    assert.ok(!svg.includes('<script'), 'no live script element');
    assert.ok(svg.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
    const texts = [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!
      .replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"')
      .replace(/&#(\d+);/g, (_m, d: string) => String.fromCodePoint(Number(d))).replace(/&amp;/g, '&'));
    assert.ok(texts.includes('/h/back\\slash'), 'a backslash stays a backslash');
    assert.ok(texts.includes('/h/trailing\\'));
    assert.ok(texts.includes('/h/evil\\N\\G\\E\\T\\H\\L\\l\\r'), 'label escapes in a name are not interpreted');
    assert.ok(texts.includes('/h/new\u2424line'), 'a newline in a name is shown as ␤, not as a line break');
    assert.ok(texts.includes('/h/"; n99 [label="pwned"]; n0 -> n99; "'));
    assert.ok(!texts.includes('pwned'));
    assert.ok(texts.includes('/h/emoji 😀 ünï'));
  });

  it('shortens long labels in the middle and notes truncation and gaps', () => {
    const b = new GraphBuilder();
    b.file(1, 0, `/${'d'.repeat(100)}/end.txt`, 1);
    const batch = b.batch();
    const dot = toDot({ nodes: batch.nodes, edges: [], gaps: [{ id: 'g', host: 'h1', src: 'ebpf', from: 1, to: 2, count: 7, reason: 'ring "full"' }], truncated: true }, { maxLabel: 20 });
    assert.match(dot, /"end\.txt\\n\/ddddddddd…d\/end\.txt"/);
    assert.match(dot, /result truncated/);
    assert.match(dot, /7 events lost \(ring \\"full\\"\)/);
  });

  it('makes control characters visible', () => {
    assert.equal(visibleText('a\nb\tc\u0000d\u007f\u0085'), 'a\u2424b\u2409c\u2400d\u2421\\x85');
    assert.equal(visibleText('ok \uD800 lone'), 'ok \uFFFD lone');
    assert.equal(visibleText('😀'), '😀');
  });
});
