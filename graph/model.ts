/**
 * @module graph/model
 * The lineage graph as W3C PROV-DM: what the join engine produces and every GraphStore keeps.
 *
 * Direction: every edge points from the effect to its cause, as PROV writes its relations
 * (`A used E`, `E wasGeneratedBy A`, `A2 wasInformedBy A1`, `E2 wasDerivedFrom E1`).
 * So the ancestors of a node are reached by following edges forward (from → to) and its
 * descendants by following them backward.
 *
 * Ids are strings that carry the host, so several hosts share one store without collisions:
 * - process image (activity):  `proc:<host>:<pid>:<startTs>`  (a fork starts one, each exec the next)
 * - file version (entity):     `file:<host>:<dev>:<ino>:<version>`  (version 0 = as first seen)
 * - pipe (entity):             `pipe:<host>:<ino>`
 * - socket flow (entity):      `sock:<host>:<ino>` (or the lower of the two peer inodes)
 * - user (agent):              `user:<host>:<uid>`
 */

/** Node kinds. `process` is a PROV activity, `user` an agent, the rest entities. */
export type NodeKind = 'process' | 'file' | 'pipe' | 'socket' | 'user';

/** Relation kinds (PROV-DM names). */
export type EdgeKind =
  | 'used'              // process → file|pipe|socket  (activity read the entity)
  | 'wasGeneratedBy'    // file|pipe|socket → process  (entity version written by the activity)
  | 'wasInformedBy'     // process → process           (fork, exec: child image informed by parent image)
  | 'wasDerivedFrom'    // file → file                 (strict Bento-prov rule, computed at ingest)
  | 'wasInvalidatedBy'  // file → process              (unlink of the last name)
  | 'wasAssociatedWith';// process → user

/**
 * A node and its attributes. On ingest, a node with an id that already exists is merged:
 * attributes given later overwrite earlier ones, absent ones are kept (so `exit` can add
 * `end` and `exitCode` to a process seen at `exec`).
 *
 * Attributes by kind (all optional unless noted):
 * - process: pid (req), ppid, comm, argv: string[], env: string[], cwd, exe (path), exeFile
 *   (file version id of the executable), uid, gid, start (req, ns), end (ns), exitCode
 * - file: dev, ino, version (req), path (name when this version began), type ('file'|'dir'|
 *   'symlink'|'fifo'), target (symlink), size, mode, closedAt (ns), deleted (bool), hash
 * - pipe/socket: ino, peer, addr
 * - user: uid
 */
export interface GraphNode {
  id: string;
  kind: NodeKind;
  host: string;
  /** Short human label: basename of a file, argv[0] + args of a process, "pipe:1234"… */
  label: string;
  /** When the node began to exist (ns, CLOCK_MONOTONIC of its host). */
  ts: number;
  attrs: Record<string, unknown>;
}

/**
 * An edge. Its identity for idempotent ingest is (kind, from, to, pos): replaying the same
 * journal position never doubles an edge.
 */
export interface GraphEdge {
  kind: EdgeKind;
  from: string;
  to: string;
  /** When the relation happened (ns). For `used`, the first read; for `wasGeneratedBy`, the close that ended the version. */
  ts: number;
  /** Journal position of the event that produced the edge ("<stream>:<seq>"). */
  pos: string;
  /** Extra facts: e.g. `rule: 'strict'` on wasDerivedFrom, `via: 'fork'|'exec'|'pipe'|'socket'` on wasInformedBy, `fd`, `flags`. */
  attrs?: Record<string, unknown>;
}

/**
 * A name a file had for a while. `file` is the identity id `file:<host>:<dev>:<ino>` (no
 * version): names belong to the inode, not to a version. `until` is unset while the name holds.
 */
export interface NameRecord {
  file: string;
  host: string;
  path: string;
  since: number;
  until?: number;
  pos: string;
}

/** A window in which a source lost events; lineage crossing it must be flagged. */
export interface Gap {
  id: string;
  host: string;
  src: string;
  from: number;
  to: number;
  count: number;
  reason: string;
}

/** Per-stream journal position: stream name → last applied seq. */
export type Checkpoint = Record<string, number>;

/**
 * One atomic unit of ingest. A store applies a batch all-or-nothing and records `checkpoint`
 * in the same transaction; applying the same batch twice changes nothing.
 */
export interface IngestBatch {
  checkpoint: Checkpoint;
  nodes: GraphNode[];
  edges: GraphEdge[];
  names: NameRecord[];
  /** Names that ended: (file, path, since) identifies the record, `until` closes it. */
  nameEnds: Array<{ file: string; path: string; until: number }>;
  gaps: Gap[];
}

/** An empty batch to fill. */
export function emptyBatch(checkpoint: Checkpoint = {}): IngestBatch {
  return { checkpoint, nodes: [], edges: [], names: [], nameEnds: [], gaps: [] };
}

/** Build the identity id of a file (all versions) from its parts. */
export function fileIdentity(host: string, dev: number, ino: number): string {
  return `file:${host}:${dev}:${ino}`;
}

/** Build the id of one version of a file. */
export function fileVersionId(host: string, dev: number, ino: number, version: number): string {
  return `file:${host}:${dev}:${ino}:${version}`;
}

/** Build the id of a process image. */
export function processId(host: string, pid: number, start: number): string {
  return `proc:${host}:${pid}:${start}`;
}

/** A file version id split into its identity (all versions) and its version number; null when it is not one. */
export function splitFileVersion(id: string): { ident: string; ver: number } | null {
  const i = id.lastIndexOf(':');
  if (i <= 0) return null;
  const ver = Number(id.slice(i + 1));
  return Number.isInteger(ver) ? { ident: id.slice(0, i), ver } : null;
}

/** The node kind an id's prefix implies (for a placeholder created by an edge). */
export function kindFromId(id: string): NodeKind {
  switch (id.slice(0, id.indexOf(':'))) {
    case 'proc': return 'process';
    case 'pipe': return 'pipe';
    case 'sock': return 'socket';
    case 'user': return 'user';
    default: return 'file';
  }
}

/**
 * The host part of a model id (`<prefix>:<host>:…`), or '' when it has none. A cross-host
 * socket flow (`sock:net:…`, graph/neo4j/flow.ts) belongs to no single host.
 */
export function hostFromId(id: string): string {
  if (id.startsWith('sock:net:')) return '';
  const a = id.indexOf(':');
  const b = id.indexOf(':', a + 1);
  return a >= 0 && b > a ? id.slice(a + 1, b) : '';
}
