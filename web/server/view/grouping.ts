/**
 * @module web/server/view/grouping
 * Turns a Subgraph into a ViewGraph, folding many similar siblings into one group node
 * (500 object files linked by one `ld` become "500 × /src/obj/*.o"). Siblings are nodes at the
 * same distance from the focus, of the same kind and name pattern, reached from the same
 * (already folded) neighbours; folding therefore cascades: the 500 `cc` processes that wrote
 * those objects fold too, then the 500 sources they read.
 */
import type { Gap, GraphEdge, GraphNode } from '../../../graph/model.js';
import type { Subgraph } from '../../../graph/store.js';
import type { ViewEdge, ViewGraph, ViewNode } from './types.js';

export interface GroupingOptions {
  /** Node the view is about; distances are measured from it (from the roots when absent or not in the graph). */
  focus?: string;
  /** Group ids the user opened: their members are drawn one by one. */
  expanded?: ReadonlySet<string>;
  /** Fewest siblings that make a group. Default 8. */
  threshold?: number;
}

/** The name pattern siblings must share: directory and extension for files, program name for processes. */
export function siblingPattern(n: GraphNode): string {
  const a = n.attrs;
  if (n.kind === 'file') {
    const path = typeof a.path === 'string' ? a.path : n.label;
    const slash = path.lastIndexOf('/');
    const dir = slash >= 0 ? path.slice(0, slash + 1) : '';
    const base = path.slice(slash + 1);
    const dot = base.lastIndexOf('.');
    return `${dir}*${dot > 0 ? base.slice(dot) : ''}`;
  }
  if (n.kind === 'process') {
    const exe = typeof a.exe === 'string' ? a.exe : Array.isArray(a.argv) && typeof a.argv[0] === 'string' ? a.argv[0] : n.label.split(' ')[0] ?? '';
    return exe.slice(exe.lastIndexOf('/') + 1);
  }
  return n.kind;
}

/**
 * The text of a box: a file's label with its version when it has had more than one (two "app"
 * boxes must differ); a process's command with the program's directory dropped
 * (`cc1 -quiet …`, not `/usr/lib/gcc/x86_64-linux-gnu/12/cc1 -quiet …`).
 */
export function boxLabel(n: GraphNode): string {
  const v = n.attrs.version;
  if (n.kind === 'file') return typeof v === 'number' && v > 0 ? `${n.label} · v${v}` : n.label;
  const argv = n.attrs.argv;
  if (n.kind === 'process' && Array.isArray(argv) && argv.length > 0) {
    const [prog, ...args] = argv.map(String);
    return [prog!.startsWith('/') ? prog!.slice(prog!.lastIndexOf('/') + 1) : prog!, ...args].join(' ');
  }
  return n.label;
}

/** The pattern's last directory and name (`…/big/*.o`), short enough for a box. */
function shortPattern(p: string): string {
  const parts = p.split('/');
  return parts.length > 2 ? `…/${parts.slice(-2).join('/')}` : p;
}

/** True when [start, end] overlaps a gap of the same host. */
function inGap(gaps: Gap[], host: string, start: number, end: number): boolean {
  return gaps.some((g) => g.host === host && g.from <= end && start <= g.to);
}

function nodeSpan(n: GraphNode): [number, number] {
  const end = typeof n.attrs.end === 'number' ? n.attrs.end : typeof n.attrs.closedAt === 'number' ? n.attrs.closedAt : n.ts;
  return [n.ts, end];
}

/** Build the drawable graph of `sub`, grouping similar siblings unless their group is expanded. */
export function toViewGraph(sub: Subgraph, opts: GroupingOptions = {}): ViewGraph {
  const threshold = opts.threshold ?? 8;
  const expanded = opts.expanded ?? new Set<string>();
  const byId = new Map(sub.nodes.map((n) => [n.id, n]));
  const neighbours = new Map<string, Array<{ other: string; edge: GraphEdge }>>();
  for (const e of sub.edges) {
    if (!byId.has(e.from) || !byId.has(e.to)) continue;
    (neighbours.get(e.from) ?? neighbours.set(e.from, []).get(e.from)!).push({ other: e.to, edge: e });
    (neighbours.get(e.to) ?? neighbours.set(e.to, []).get(e.to)!).push({ other: e.from, edge: e });
  }

  // Breadth-first distances from the focus (or from every node no edge leads to, then from leftovers).
  const dist = new Map<string, number>();
  const order: string[] = [];
  const bfs = (starts: string[]): void => {
    let frontier = starts.filter((s) => !dist.has(s));
    for (const s of frontier) dist.set(s, 0);
    let d = 0;
    while (frontier.length > 0) {
      order.push(...frontier);
      const next: string[] = [];
      for (const id of frontier) for (const { other } of neighbours.get(id) ?? []) {
        if (!dist.has(other)) { dist.set(other, d + 1); next.push(other); }
      }
      frontier = next;
      d++;
    }
  };
  if (opts.focus && byId.has(opts.focus)) bfs([opts.focus]);
  const hasCause = new Set(sub.edges.map((e) => e.from));
  bfs(sub.nodes.filter((n) => !hasCause.has(n.id)).map((n) => n.id));
  bfs(sub.nodes.map((n) => n.id));

  // Fold siblings layer by layer so a group's members can make their own neighbours siblings.
  const rep = new Map<string, string>();
  const groups: ViewNode[] = [];
  let i = 0;
  while (i < order.length) {
    const d = dist.get(order[i]!)!;
    let j = i;
    while (j < order.length && dist.get(order[j]!) === d) j++;
    const buckets = new Map<string, GraphNode[]>();
    for (const id of order.slice(i, j)) {
      const n = byId.get(id)!;
      if (id === opts.focus) continue;
      const parents = new Set<string>();
      for (const { other, edge } of neighbours.get(id) ?? []) {
        if (dist.get(other) === d - 1) parents.add(`${edge.kind}${edge.from === id ? '>' : '<'}${rep.get(other) ?? other}`);
      }
      const key = `${n.kind}|${siblingPattern(n)}|${[...parents].sort().join(',')}`;
      (buckets.get(key) ?? buckets.set(key, []).get(key)!).push(n);
    }
    for (const [key, members] of buckets) {
      if (members.length < threshold) continue;
      const id = `group:${key}`;
      if (expanded.has(id)) continue;
      const pattern = siblingPattern(members[0]!);
      for (const m of members) rep.set(m.id, id);
      groups.push({
        id, kind: 'group', memberKind: members[0]!.kind, members: members.map((m) => m.id), pattern,
        label: `${members.length} × ${shortPattern(pattern)}`,
        gap: members.some((m) => inGap(sub.gaps, m.host, ...nodeSpan(m))),
      });
    }
    i = j;
  }

  const nodes: ViewNode[] = sub.nodes
    .filter((n) => !rep.has(n.id))
    .map((n) => ({ id: n.id, kind: n.kind, label: boxLabel(n), node: n, gap: inGap(sub.gaps, n.host, ...nodeSpan(n)) }));
  nodes.push(...groups);

  const edges = new Map<string, ViewEdge>();
  for (const e of sub.edges) {
    if (!byId.has(e.from) || !byId.has(e.to)) continue;
    const source = rep.get(e.to) ?? e.to;
    const target = rep.get(e.from) ?? e.from;
    if (source === target) continue;
    const id = `${e.kind}|${source}|${target}`;
    const host = byId.get(e.from)!.host;
    const gap = inGap(sub.gaps, host, e.ts, e.ts);
    const seen = edges.get(id);
    if (seen) { seen.count++; seen.gap ||= gap; }
    else edges.set(id, { id, kind: e.kind, source, target, count: 1, gap });
  }
  return { nodes, edges: [...edges.values()] };
}
