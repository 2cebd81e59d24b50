/**
 * @module graph/sqlite/codec
 * Conversions between the model's nodes and edges and their SQLite rows: kinds as small
 * integers, attributes as JSON text, file identity and version split out of file ids.
 */
import type { EdgeKind, GraphEdge, GraphNode, NodeKind } from '../model.js';

export const NODE_KINDS: readonly NodeKind[] = ['process', 'file', 'pipe', 'socket', 'user'];
export const EDGE_KINDS: readonly EdgeKind[] = ['used', 'wasGeneratedBy', 'wasInformedBy', 'wasDerivedFrom', 'wasInvalidatedBy', 'wasAssociatedWith'];
export const NODE_CODE = new Map<string, number>(NODE_KINDS.map((k, i) => [k, i]));
export const EDGE_CODE = new Map<string, number>(EDGE_KINDS.map((k, i) => [k, i]));

export interface NodeRow {
  nid: number;
  id: string;
  kind: number;
  host: string;
  label: string;
  ts: number;
  attrs: string;
}

export interface EdgeRow {
  src: number;
  kind: number;
  dst: number;
  pos: string;
  ts: number;
  strict: number;
  attrs: string | null;
}

export function nodeFromRow(r: NodeRow): GraphNode {
  return { id: r.id, kind: NODE_KINDS[r.kind]!, host: r.host, label: r.label, ts: r.ts, attrs: JSON.parse(r.attrs) as Record<string, unknown> };
}

export function edgeFromRow(r: EdgeRow, idOf: (nid: number) => string): GraphEdge {
  const e: GraphEdge = { kind: EDGE_KINDS[r.kind]!, from: idOf(r.src), to: idOf(r.dst), ts: r.ts, pos: r.pos };
  if (r.attrs !== null) e.attrs = JSON.parse(r.attrs) as Record<string, unknown>;
  return e;
}

/** The searchable name of a node: a file's path, a process's executable, a socket's address. */
export function searchPath(n: GraphNode): string | null {
  const a = n.attrs;
  const v = n.kind === 'file' ? a.path : n.kind === 'process' ? a.exe : n.kind === 'socket' ? a.addr : undefined;
  return typeof v === 'string' ? v : null;
}

/** Attributes as stored: JSON text, `null` for an absent or empty edge attribute object. */
export function edgeAttrsText(attrs: Record<string, unknown> | undefined): string | null {
  if (!attrs) return null;
  for (const _ in attrs) return JSON.stringify(attrs);
  return null;
}
