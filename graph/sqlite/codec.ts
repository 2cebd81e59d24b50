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

/** For a file version id `file:<host>:<dev>:<ino>:<version>`: its identity and version number. */
export function splitFileVersion(id: string): { ident: string; ver: number } | null {
  const i = id.lastIndexOf(':');
  if (i <= 0) return null;
  const ver = Number(id.slice(i + 1));
  if (!Number.isInteger(ver)) return null;
  return { ident: id.slice(0, i), ver };
}

/** The searchable name of a node: a file's path, a process's executable, a socket's address. */
export function searchPath(n: GraphNode): string | null {
  const a = n.attrs;
  const v = n.kind === 'file' ? a.path : n.kind === 'process' ? a.exe : n.kind === 'socket' ? a.addr : undefined;
  return typeof v === 'string' ? v : null;
}

/** The node kind implied by an id's prefix (for a placeholder created by an edge). */
export function kindFromId(id: string): NodeKind {
  const p = id.slice(0, id.indexOf(':'));
  switch (p) {
    case 'proc': return 'process';
    case 'pipe': return 'pipe';
    case 'sock': return 'socket';
    case 'user': return 'user';
    default: return 'file';
  }
}

/** The host part of a model id (`<prefix>:<host>:…`), or '' when it has none. */
export function hostFromId(id: string): string {
  const a = id.indexOf(':');
  const b = id.indexOf(':', a + 1);
  return a >= 0 && b > a ? id.slice(a + 1, b) : '';
}

/** Attributes as stored: JSON text, `null` for an absent or empty edge attribute object. */
export function edgeAttrsText(attrs: Record<string, unknown> | undefined): string | null {
  if (!attrs) return null;
  for (const _ in attrs) return JSON.stringify(attrs);
  return null;
}
