/**
 * @module graph/store
 * The GraphStore contract. Every store (SQLite, Neo4j) implements it and passes the one
 * contract suite in graph/contract.ts. All methods are async because some stores are remote.
 */
import type { Checkpoint, EdgeKind, Gap, GraphEdge, GraphNode, IngestBatch, NameRecord, NodeKind } from './model.js';

/**
 * Which derivation rule a lineage query follows.
 * - `history` (default): through processes. A process's inputs count for an output only if it
 *   used them no later than the output version was generated (the time bound is carried along
 *   the walk: reaching a process through an edge at time t admits only its `used` and
 *   `wasInformedBy` edges with ts ≤ t; reaching an entity version resets the bound).
 * - `strict` (Bento-prov): only `wasDerivedFrom` edges with attrs.rule = 'strict' (a file
 *   opened for writing depends on the files open for reading at that moment).
 */
export type DerivationRule = 'history' | 'strict';

export interface LineageOptions {
  /** Maximum number of edges walked from the start node. Default 10. */
  depth?: number;
  /** Only edges with ts ≥ since (ns). */
  since?: number;
  /** Only edges with ts ≤ until (ns). */
  until?: number;
  /** Default 'history'. */
  rule?: DerivationRule;
  /** Maximum number of nodes returned; `truncated` says when it was hit. Default 5000. */
  limit?: number;
}

/** A piece of the graph answering a query. Gaps are those of the same hosts overlapping the edges' time span. */
export interface Subgraph {
  nodes: GraphNode[];
  edges: GraphEdge[];
  gaps: Gap[];
  truncated: boolean;
}

export interface SearchQuery {
  /** Path prefix (a name this file has or had starts with it). */
  prefix?: string;
  /** Glob over the whole path (picomatch syntax: *, **, ?, [..]). */
  glob?: string;
  /** Restrict to a node kind; default 'file'. Processes match on exe path. */
  kind?: NodeKind;
  host?: string;
  limit?: number;
  offset?: number;
}

export interface Page<T> {
  items: T[];
  total: number;
}

/** Everything the UI's detail panel shows about one node. */
export interface NodeDetails {
  node: GraphNode;
  /** For a file: the name history of its inode (all versions). */
  names: NameRecord[];
  /** For a file: every version of the same inode, oldest first. */
  versions: GraphNode[];
  /** Edges leaving this node (its causes), with the other end. */
  out: Array<{ edge: GraphEdge; node: GraphNode }>;
  /** Edges arriving at this node (its effects), with the other end. */
  in: Array<{ edge: GraphEdge; node: GraphNode }>;
  /** True when `out` or `in` was cut at {@link NodeOptions.edgeLimit} (additive, optional). */
  truncated?: boolean;
}

/** Options of {@link GraphStore.node} (additive, optional). */
export interface NodeOptions {
  /**
   * At most this many edges in `out` and this many in `in`: the most recent ones, still in
   * time order. A file every process reads (libc) has millions of effects. Default: all.
   */
  edgeLimit?: number;
}

export interface StoreStats {
  nodes: Partial<Record<NodeKind, number>>;
  edges: Partial<Record<EdgeKind, number>>;
  gaps: number;
  hosts: number;
  checkpoint: Checkpoint;
}

export interface HistogramBucket {
  from: number;
  to: number;
  count: number;
}

export interface GraphStore {
  /** A short description, e.g. "sqlite:/var/lib/prov/graph.db". */
  readonly url: string;

  /** Apply a batch atomically with its checkpoint. Replaying an applied batch changes nothing. */
  ingest(batch: IngestBatch): Promise<void>;
  /** The checkpoint of the last applied batch ({} for an empty store). */
  checkpoint(): Promise<Checkpoint>;

  node(id: string, opts?: NodeOptions): Promise<NodeDetails | null>;
  /** The file version that holds `path` (the latest one; or the one current at `at` ns). */
  resolvePath(path: string, at?: number, host?: string): Promise<GraphNode | null>;
  search(q: SearchQuery): Promise<Page<GraphNode>>;

  ancestors(id: string, opts?: LineageOptions): Promise<Subgraph>;
  descendants(id: string, opts?: LineageOptions): Promise<Subgraph>;
  /** A shortest path along the edges' direction from `from` to `to` (or the reverse), or null. */
  path(from: string, to: string, opts?: LineageOptions): Promise<Subgraph | null>;
  /** Processes and their fork/exec edges below `rootId` (or every root when absent). */
  processTree(rootId?: string, opts?: LineageOptions): Promise<Subgraph>;

  /** Edge counts per time bucket (for the UI's activity histogram). */
  histogram(buckets: number, since?: number, until?: number): Promise<HistogramBucket[]>;
  /** Nodes ingested after `cursor` in ingest order (for live streams), with the next cursor. */
  feed(cursor: number, limit: number): Promise<{ nodes: GraphNode[]; cursor: number }>;

  hosts(): Promise<string[]>;
  stats(): Promise<StoreStats>;
  /**
   * Everything journalled is in the store now (a one-shot collector run has drained the
   * journal): a store that tracks promised ingests may forget the orphaned ones (optional).
   */
  caughtUp?(): Promise<void>;
  close(): Promise<void>;
}
