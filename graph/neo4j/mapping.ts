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
 *   A few facts are also kept as plain, indexed properties for queries: `spath` (the searchable
 *   name: a file's path, a process's executable, a socket's address), `ident` (file identity
 *   without version) and `ver`.
 * - Edge attributes are written once (an edge is immutable), as one JSON property `attrs`; its
 *   `rule` and `via` are also plain properties (the strict rule and the process tree filter on them).
 */
import type { EdgeKind, GraphEdge, GraphNode, NodeKind } from '../model.js';
import { hostFromId, kindFromId, splitFileVersion } from '../model.js';

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

/** The searchable name of a node: a file's path, a process's executable, a socket's address. */
function searchPath(kind: NodeKind, a: Record<string, unknown>): string | undefined {
  const v = kind === 'file' ? a.path : kind === 'process' ? a.exe : kind === 'socket' ? a.addr : undefined;
  return typeof v === 'string' ? v : undefined;
}

export interface NodeRowParams { id: string; i: number; p: Record<string, unknown> }

/** One UNWIND row for a node upsert: identity, position in the batch, and the property map to `+=`. */
export function nodeRow(n: GraphNode, i: number): NodeRowParams {
  const a = n.attrs ?? {};
  const p: Record<string, unknown> = { kind: n.kind, host: typeof n.host === 'string' ? n.host : '', label: typeof n.label === 'string' ? n.label : n.id, ts: n.ts };
  for (const [k, v] of Object.entries(a)) {
    if (v !== undefined) p[ATTR + k] = JSON.stringify(v);
  }
  const fv = n.kind === 'file' ? splitFileVersion(n.id) : null;
  if (fv) { p.ident = fv.ident; p.ver = fv.ver; }
  const sp = searchPath(n.kind, a);
  if (sp !== undefined) p.spath = sp;
  return { id: n.id, i, p };
}

/** A row for a placeholder node: an edge names a node no batch has described yet. */
export function placeholderRow(id: string, ts: number, i: number): NodeRowParams {
  const kind = kindFromId(id);
  const p: Record<string, unknown> = { kind, host: hostFromId(id), label: id, ts };
  const fv = kind === 'file' ? splitFileVersion(id) : null;
  if (fv) { p.ident = fv.ident; p.ver = fv.ver; }
  return { id, i, p };
}

/** One UNWIND row for an edge merge. */
export function edgeRow(e: GraphEdge): Record<string, unknown> {
  const a = e.attrs ?? {};
  return {
    from: e.from, to: e.to, pos: e.pos, ts: e.ts,
    attrs: e.attrs && Object.keys(e.attrs).length > 0 ? JSON.stringify(e.attrs) : null,
    rule: typeof a.rule === 'string' ? a.rule : null,
    via: typeof a.via === 'string' ? a.via : null,
  };
}

/** A relationship type back to its edge kind. */
export function edgeKindOf(type: string): EdgeKind {
  return EDGE_KIND[type]!;
}

/** A node's property map (as `n {.*}` returns it) back to the model. */
export function toNode(p: Record<string, unknown>): GraphNode {
  const attrs: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith(ATTR) && typeof v === 'string') attrs[k.slice(ATTR.length)] = JSON.parse(v);
  }
  return {
    id: String(p.id), kind: p.kind as NodeKind, host: String(p.host ?? ''),
    label: String(p.label ?? p.id), ts: Number(p.ts ?? 0), attrs,
  };
}

/** A relationship (type, ends, property map) back to the model. */
export function toEdge(type: string, from: string, to: string, p: Record<string, unknown>): GraphEdge {
  const e: GraphEdge = { kind: EDGE_KIND[type]!, from, to, ts: Number(p.ts), pos: String(p.pos) };
  if (typeof p.attrs === 'string') e.attrs = JSON.parse(p.attrs) as Record<string, unknown>;
  return e;
}
