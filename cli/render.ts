/**
 * @module cli/render
 * Text rendering of lineage for the terminal: the subgraph as an indented tree from the start
 * node, each node once (repeats say "see above"), with gaps of lost events called out.
 */
import type { GraphEdge, GraphNode, EdgeKind } from '../graph/model.js';
import type { Subgraph } from '../graph/store.js';
import { formatTime } from './time.js';

const UP_VERB: Record<EdgeKind, string> = {
  used: 'used',
  wasGeneratedBy: 'written by',
  wasInformedBy: 'started by',
  wasDerivedFrom: 'derived from',
  wasInvalidatedBy: 'deleted by',
  wasAssociatedWith: 'run as',
};
const DOWN_VERB: Record<EdgeKind, string> = {
  used: 'read by',
  wasGeneratedBy: 'wrote',
  wasInformedBy: 'started',
  wasDerivedFrom: 'source of',
  wasInvalidatedBy: 'deleted',
  wasAssociatedWith: 'ran',
};

/** Make control characters in untrusted names visible instead of letting them drive the terminal. */
export function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** One line describing a node. */
export function describeNode(n: GraphNode): string {
  const a = n.attrs;
  switch (n.kind) {
    case 'file': {
      const path = typeof a.path === 'string' ? a.path : n.label;
      const bits = [`file v${a.version ?? '?'}`];
      if (a.deleted) bits.push('deleted');
      return `${printable(path)}  [${bits.join(', ')}]`;
    }
    case 'process': {
      const argv = Array.isArray(a.argv) ? (a.argv as string[]).join(' ') : n.label;
      const bits = [`pid ${a.pid ?? '?'}`];
      if (a.exitCode !== undefined) bits.push(`exit ${a.exitCode}`);
      if (a.uid !== undefined) bits.push(`uid ${a.uid}`);
      bits.push(formatTime(n.ts));
      const shown = argv.length > 100 ? `${argv.slice(0, 97)}...` : argv;
      return `${printable(shown)}  [${bits.join(', ')}]`;
    }
    default:
      return `${printable(n.label)}  [${n.kind}]`;
  }
}

/** Render a lineage subgraph as an indented tree rooted at `rootId`. */
export function renderLineage(g: Subgraph, rootId: string, direction: 'up' | 'down', asked?: string): string {
  const byId = new Map(g.nodes.map((n) => [n.id, n]));
  const next = new Map<string, GraphEdge[]>();
  for (const e of g.edges) {
    const key = direction === 'up' ? e.from : e.to;
    let list = next.get(key);
    if (!list) next.set(key, (list = []));
    list.push(e);
  }
  for (const list of next.values()) list.sort((x, y) => x.ts - y.ts);

  const lines: string[] = [];
  const seen = new Set<string>();
  const walk = (id: string, indent: string, verb: string): void => {
    const node = byId.get(id);
    const text = node ? describeNode(node) : id;
    if (seen.has(id)) {
      lines.push(`${indent}${verb}${text}  (see above)`);
      return;
    }
    seen.add(id);
    const path = node?.attrs.path;
    const renamed = id === rootId && asked !== undefined && typeof path === 'string' && path !== asked;
    const shown = renamed ? `${printable(asked)}  [file v${node!.attrs.version ?? '?'}, written as ${printable(path)}]` : text;
    lines.push(`${indent}${verb}${shown}`);
    for (const e of next.get(id) ?? []) {
      const other = direction === 'up' ? e.to : e.from;
      const v = (direction === 'up' ? UP_VERB : DOWN_VERB)[e.kind];
      walk(other, indent + '  ', `${direction === 'up' ? '←' : '→'} ${v}: `);
    }
  };
  walk(rootId, '', '');
  if (g.truncated) lines.push('… truncated: raise --limit or lower --depth to see the rest');
  for (const gap of g.gaps) {
    lines.push(
      `! events were lost on ${gap.host} (${gap.src}, ${gap.count} lost, ${gap.reason}) between ` +
        `${formatTime(gap.from)} and ${formatTime(gap.to)}: lineage in that window may be incomplete`,
    );
  }
  return lines.join('\n');
}
