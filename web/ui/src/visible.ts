/**
 * @module web/ui/visible
 * What part of the fetched lineage is on screen: the view's answer merged with the lineage
 * fetched when the user expanded nodes, minus whatever lies only behind a collapsed node.
 */
import type { Subgraph } from './api.js';

/** Which way a view walks PROV edges from its focus (ancestors: effect→cause, i.e. forward). */
export type Walk = 'forward' | 'backward' | 'both';

/** Union of subgraphs, nodes and edges once each. */
export function mergeSubgraphs(parts: Subgraph[]): Subgraph {
  if (parts.length === 1) return parts[0]!;
  const nodes = new Map<string, Subgraph['nodes'][number]>();
  const edges = new Map<string, Subgraph['edges'][number]>();
  const gaps = new Map<string, Subgraph['gaps'][number]>();
  let truncated = false;
  for (const p of parts) {
    for (const n of p.nodes) nodes.set(n.id, n);
    for (const e of p.edges) edges.set(`${e.kind}|${e.from}|${e.to}|${e.pos}`, e);
    for (const g of p.gaps) gaps.set(g.id, g);
    truncated ||= p.truncated;
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()], gaps: [...gaps.values()], truncated };
}

/** The nodes still reachable from `focus` when the walk stops at collapsed nodes. */
export function hideCollapsed(sub: Subgraph, focus: string | undefined, walk: Walk, collapsed: ReadonlySet<string>): Subgraph {
  if (collapsed.size === 0 || !focus || !sub.nodes.some((n) => n.id === focus)) return sub;
  const next = new Map<string, string[]>();
  const add = (a: string, b: string): void => { (next.get(a) ?? next.set(a, []).get(a)!).push(b); };
  for (const e of sub.edges) {
    if (walk !== 'backward') add(e.from, e.to);
    if (walk !== 'forward') add(e.to, e.from);
  }
  const seen = new Set([focus]);
  const stack = [focus];
  while (stack.length) {
    const id = stack.pop()!;
    if (collapsed.has(id)) continue;
    for (const o of next.get(id) ?? []) if (!seen.has(o)) { seen.add(o); stack.push(o); }
  }
  return {
    ...sub,
    nodes: sub.nodes.filter((n) => seen.has(n.id)),
    edges: sub.edges.filter((e) => seen.has(e.from) && seen.has(e.to)),
  };
}
