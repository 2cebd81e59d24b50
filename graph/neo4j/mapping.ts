/**
 * @module graph/neo4j/mapping
 * How the PROV model maps onto Neo4j, and back.
 *
 * - Every lineage node has the label `ProvNode` (unique `id`) plus one PROV label per kind:
 *   File, Process, Pipe, Socket, User. Relationship types are the PROV relations in Neo4j's
 *   UPPER_SNAKE style: USED, WAS_GENERATED_BY, WAS_INFORMED_BY, WAS_DERIVED_FROM,
 *   WAS_INVALIDATED_BY, WAS_ASSOCIATED_WITH. They point effect → cause, as in graph/model.ts.
 * - Node attributes are free-form (argv arrays, nested objects) but Neo4j properties are flat,
 *   so each attribute is its own property `a_<name>` holding JSON. `SET n += $props` then gives
 *   exactly the model's merge rule (later attributes overwrite, absent ones are kept).
 *   A few attributes are also kept as plain, indexed properties for queries: `path`, `exe`,
 *   `ident` (file identity without version) and `ver`.
 * - Edge attributes are written once (an edge is immutable), as one JSON property `attrs`; its
 *   `rule` and `via` are also plain properties (the strict rule and the process tree filter on them).
 */
import type { EdgeKind, GraphEdge, GraphNode, NodeKind } from '../model.js';

export const NODE_LABEL: Record<NodeKind, string> = {
  process: 'Process', file: 'File', pipe: 'Pipe', socket: 'Socket', user: 'User',
};

export const REL_TYPE: Record<EdgeKind, string> = {
  used: 'USED',
  wasGeneratedBy: 'WAS_GENERATED_BY',
  wasInformedBy: 'WAS_INFORMED_BY',
  wasDerivedFrom: 'WAS_DERIVED_FROM',
  wasInvalidatedBy: 'WAS_INVALIDATED_BY',
  wasAssociatedWith: 'WAS_ASSOCIATED_WITH',
};

const EDGE_KIND: Record<string, EdgeKind> = Object.fromEntries(
  Object.entries(REL_TYPE).map(([k, v]) => [v, k as EdgeKind]),
);

export const NODE_KINDS = Object.keys(NODE_LABEL) as NodeKind[];
export const EDGE_KINDS = Object.keys(REL_TYPE) as EdgeKind[];

const ATTR = 'a_';

/** The file identity (`file:<host>:<dev>:<ino>`) of a file version id. */
export function identityOf(fileVersionId: string): string {
  const i = fileVersionId.lastIndexOf(':');
  return i > 0 ? fileVersionId.slice(0, i) : fileVersionId;
}

/** One UNWIND row for a node upsert: identity, plus the property map to `+=`. */
export function nodeRow(n: GraphNode, i: number): { id: string; i: number; p: Record<string, unknown> } {
  const p: Record<string, unknown> = { kind: n.kind, host: n.host, label: n.label, ts: n.ts };
  for (const [k, v] of Object.entries(n.attrs ?? {})) {
    if (v !== undefined) p[ATTR + k] = JSON.stringify(v);
  }
  const a = n.attrs ?? {};
  if (n.kind === 'file') {
    p.ident = identityOf(n.id);
    if (typeof a.version === 'number') p.ver = a.version;
    if (typeof a.path === 'string') p.path = a.path;
  }
  if (n.kind === 'process' && typeof a.exe === 'string') p.exe = a.exe;
  return { id: n.id, i, p };
}

/** One UNWIND row for an edge merge. */
export function edgeRow(e: GraphEdge): Record<string, unknown> {
  const a = e.attrs ?? {};
  return {
    from: e.from, to: e.to, pos: e.pos, ts: e.ts,
    attrs: e.attrs ? JSON.stringify(e.attrs) : null,
    rule: typeof a.rule === 'string' ? a.rule : null,
    via: typeof a.via === 'string' ? a.via : null,
  };
}

/** A node's property map (as `n {.*}` returns it) back to the model. */
export function toNode(p: Record<string, unknown>): GraphNode {
  const attrs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith(ATTR) && typeof v === 'string') attrs[k.slice(ATTR.length)] = JSON.parse(v);
  }
  return {
    id: String(p.id), kind: p.kind as NodeKind, host: String(p.host ?? ''),
    label: String(p.label ?? ''), ts: Number(p.ts ?? 0), attrs,
  };
}

/** A relationship (type, ends, property map) back to the model. */
export function toEdge(type: string, from: string, to: string, p: Record<string, unknown>): GraphEdge {
  const e: GraphEdge = { kind: EDGE_KIND[type]!, from, to, ts: Number(p.ts), pos: String(p.pos) };
  if (typeof p.attrs === 'string') e.attrs = JSON.parse(p.attrs) as Record<string, unknown>;
  return e;
}

/** The identity of an edge for de-duplication in results. */
export function edgeKey(e: GraphEdge): string {
  return `${e.kind}\u0000${e.from}\u0000${e.to}\u0000${e.pos}`;
}
