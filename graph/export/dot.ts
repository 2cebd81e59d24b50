/**
 * @module graph/export/dot
 * A Subgraph as Graphviz DOT, laid out left to right with causes on the left.
 *
 * File names are untrusted, so every string goes through two steps: {@link visibleText} makes
 * control characters visible (a newline in a name is shown as ␤, never as a line break, so a
 * name cannot fake a second line) and {@link dotQuote} escapes for DOT's quoted strings, where
 * the label escapes `\n`, `\N`, `\G`… would otherwise act on a backslash in a name. Nodes get
 * synthetic names (n0, n1…); the store id goes in the `id` attribute (the SVG element id).
 *
 * Edges keep PROV's meaning (the arrow points at the cause) but are written cause → effect
 * with `dir=back`, so Graphviz ranks inputs before outputs.
 */
import type { GraphNode } from '../model.js';
import type { Subgraph } from '../store.js';

export interface DotOptions {
  /** A title shown above the graph. */
  title?: string;
  /** Longer labels are shortened in the middle with '…' (default 48 characters per line). */
  maxLabel?: number;
}

const STYLE: Record<GraphNode['kind'], string> = {
  // W3C PROV's conventional shapes and colours.
  file: 'shape=ellipse, style=filled, fillcolor="#fffc87"',
  pipe: 'shape=ellipse, style="filled,dashed", fillcolor="#fffc87"',
  socket: 'shape=ellipse, style="filled,dotted", fillcolor="#fffc87"',
  process: 'shape=box, style=filled, fillcolor="#9fb1fc"',
  user: 'shape=house, style=filled, fillcolor="#fed37f"',
};

/** Control characters shown as visible symbols; lone surrogates as U+FFFD. */
export function visibleText(s: string): string {
  return s
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
      const code = c.charCodeAt(0);
      if (code === 0x0a) return '\u2424'; // ␤
      if (code < 0x20) return String.fromCharCode(0x2400 + code); // ␀…␟
      if (code === 0x7f) return '\u2421'; // ␡
      return `\\x${code.toString(16)}`;
    });
}

/** A DOT quoted string whose label-escape processing yields exactly `s` (after {@link visibleText}). */
export function dotQuote(s: string): string {
  return `"${escapeInner(s)}"`;
}

/** Several lines as one DOT quoted string, joined by the `\n` label escape. */
export function dotLines(lines: string[]): string {
  return `"${lines.map(escapeInner).join('\\n')}"`;
}

function escapeInner(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

function shorten(s: string, max: number): string {
  const chars = Array.from(s);
  if (chars.length <= max) return s;
  const keep = max - 1;
  const head = Math.ceil(keep / 2);
  return `${chars.slice(0, head).join('')}…${chars.slice(chars.length - (keep - head)).join('')}`;
}

/** The lines of a node's label: its label, then the path or command line when that says more. */
export function labelLines(n: GraphNode): string[] {
  const lines = [n.label];
  const a = n.attrs;
  if (n.kind === 'file' && typeof a.path === 'string' && a.path !== n.label) lines.push(a.path);
  if (n.kind === 'file' && typeof a.version === 'number' && a.version > 0) lines.push(`version ${a.version}`);
  if (n.kind === 'process') {
    if (Array.isArray(a.argv) && a.argv.join(' ') !== n.label) lines.push(a.argv.map(String).join(' '));
    if (typeof a.pid === 'number') lines.push(`pid ${a.pid}`);
  }
  return lines;
}

/** Convert a Subgraph to DOT text. */
export function toDot(g: Subgraph, opts: DotOptions = {}): string {
  const max = opts.maxLabel ?? 48;
  const name = new Map<string, string>();
  const out: string[] = ['digraph prov {'];
  const notes: string[] = [];
  if (opts.title) notes.push(opts.title);
  if (g.truncated) notes.push('result truncated at the node limit');
  for (const gap of g.gaps) notes.push(`gap on ${gap.host}: ${gap.count} events lost (${gap.reason})`);
  const graphLabel = notes.length > 0 ? `, labelloc=t, label=${dotLines(notes.map(visibleText))}` : '';
  out.push(`  graph [rankdir=LR, fontname="Helvetica", fontsize=10${graphLabel}];`);
  out.push('  node [fontname="Helvetica", fontsize=10];');
  out.push('  edge [fontname="Helvetica", fontsize=8, dir=back];');
  g.nodes.forEach((n, i) => {
    const id = `n${i}`;
    name.set(n.id, id);
    const lines = labelLines(n).map(visibleText);
    const label = dotLines(lines.map((l) => shorten(l, max)));
    out.push(`  ${id} [id=${dotQuote(visibleText(n.id))}, label=${label}, tooltip=${dotLines(lines)}, ${STYLE[n.kind] ?? STYLE.file}];`);
  });
  for (const e of g.edges) {
    const from = name.get(e.from);
    const to = name.get(e.to);
    if (from === undefined || to === undefined) continue; // an edge to a node outside the subgraph
    const via = typeof e.attrs?.via === 'string' ? ` (${e.attrs.via})` : '';
    out.push(`  ${to} -> ${from} [label=${dotQuote(visibleText(e.kind + via))}];`);
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}
