/**
 * @module graph/sqlite/cache
 * What the SQLite store keeps between queries: parsed nodes (evicted one by one when their
 * `fseq` moves, i.e. when a merge changed them) and each node's edges per direction (emptied on
 * any write, since edges are only ever added but which nodes got new ones is not tracked).
 * A write by another connection is noticed through `PRAGMA data_version`; one by this store is
 * announced with {@link ReadCache.afterWrite}.
 */
import type Database from 'better-sqlite3';
import type { GraphNode } from '../model.js';
import type { Direction, WalkEdge } from '../lineage.js';
import { EDGE_KINDS, NODE_KINDS } from './codec.js';

const NODE_COLS = 'nid, id, kind, host, label, ts, attrs';
const EDGE_COLS = 'src, kind, dst, pos, ts, strict, attrs';
/** Walk levels come back as one JSON array: one string to parse beats thousands of row objects. */
export const EDGE_JSON = 'json_group_array(json_array(src, kind, dst, pos, ts, strict, json(attrs)))';

type RawNode = [number, string, number, string, string, number, string];
type RawEdge = [number, number, number, string, number, number, Record<string, unknown> | null];

/** Parse the JSON array of edges built by {@link EDGE_JSON}. */
export function edgesOf(json: unknown): WalkEdge<number>[] {
  const rows = JSON.parse(json as string) as RawEdge[];
  const out = new Array<WalkEdge<number>>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    out[i] = { src: r[0], kind: EDGE_KINDS[r[1]]!, dst: r[2], pos: r[3], ts: r[4], strict: r[5] === 1, data: r[6] };
  }
  return out;
}

export interface ReadCacheOptions {
  /** Parsed nodes kept (entries; 0: off). */
  nodes: number;
  /** Edges kept in per-node adjacency lists (total; 0: off). */
  edges: number;
}

export class ReadCache {
  private readonly nodeMap = new Map<number, GraphNode>();
  private readonly adjacency = { up: new Map<number, WalkEdge<number>[]>(), down: new Map<number, WalkEdge<number>[]>() };
  private adjacencySize = 0;
  /** Nodes with fseq above this may have changed since they were cached. */
  private seenFseq = 0;
  private dataVersion = -1;
  private readonly stmts;

  constructor(private readonly db: Database.Database, private readonly max: ReadCacheOptions) {
    this.stmts = {
      nodesByNids: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE nid IN (SELECT value FROM json_each(?))`).raw(),
      edgesUp: db.prepare(`SELECT ${EDGE_JSON} FROM (SELECT ${EDGE_COLS} FROM edges WHERE src IN (SELECT value FROM json_each(?)) LIMIT ?)`).pluck(),
      edgesDown: db.prepare(`SELECT ${EDGE_JSON} FROM (SELECT ${EDGE_COLS} FROM edges WHERE dst IN (SELECT value FROM json_each(?)) LIMIT ?)`).pluck(),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      maxFseq: db.prepare('SELECT coalesce(max(fseq), 0) FROM nodes').pluck(),
      changedSince: db.prepare('SELECT nid FROM nodes WHERE fseq > ? ORDER BY fseq LIMIT 10001').pluck(),
    };
    this.afterWrite();
  }

  /** Nodes by key (those that exist), from the cache or one query. */
  nodes(nids: number[]): Map<number, GraphNode> {
    const out = new Map<number, GraphNode>();
    if (nids.length === 0) return out;
    this.freshen();
    const missing: number[] = [];
    for (const nid of nids) {
      const hit = this.nodeMap.get(nid);
      if (hit) out.set(nid, hit);
      else missing.push(nid);
    }
    if (missing.length === 0) return out;
    if (this.nodeMap.size + missing.length > this.max.nodes) this.nodeMap.clear();
    for (const r of this.stmts.nodesByNids.all(JSON.stringify(missing)) as RawNode[]) {
      const attrs = JSON.parse(r[6]) as Record<string, unknown>;
      const node: GraphNode = { id: r[1], kind: NODE_KINDS[r[2]]!, host: r[3], label: r[4], ts: r[5], attrs };
      if (this.max.nodes > 0) {
        // Shared between results from now on: frozen, so no caller can change what others see.
        Object.freeze(attrs);
        this.nodeMap.set(r[0], Object.freeze(node));
      }
      out.set(r[0], node);
    }
    return out;
  }

  /** The edges leaving (up) or entering (down) the frontier, at most `max` fetched (lineage.FetchEdges). */
  readonly edges = (frontier: number[], dir: Direction, max: number): WalkEdge<number>[] => {
    const stmt = dir === 'up' ? this.stmts.edgesUp : this.stmts.edgesDown;
    if (this.max.edges === 0) return edgesOf(stmt.get(JSON.stringify(frontier), max));
    this.freshen();
    const cache = this.adjacency[dir];
    const out: WalkEdge<number>[] = [];
    const missing: number[] = [];
    for (const nid of frontier) {
      const hit = cache.get(nid);
      if (hit) { for (const e of hit) out.push(e); } else missing.push(nid);
    }
    if (missing.length === 0) return out;
    const got = edgesOf(stmt.get(JSON.stringify(missing), max));
    if (got.length < max) {
      // The fetch was not cut, so these are the complete lists of the missing nodes: keep them.
      if (this.adjacencySize + got.length > this.max.edges) this.clearAdjacency();
      const lists = new Map<number, WalkEdge<number>[]>(missing.map((n) => [n, []]));
      for (const e of got) {
        if (e.data) Object.freeze(e.data);
        lists.get(dir === 'up' ? e.src : e.dst)?.push(Object.freeze(e));
      }
      for (const [nid, list] of lists) cache.set(nid, list);
      this.adjacencySize += got.length;
    }
    for (const e of got) out.push(e);
    return out;
  };

  /** Drop what may have changed: call after this connection wrote (another's writes are noticed). */
  afterWrite(): void {
    this.clearAdjacency();
    if (this.max.nodes === 0 && this.max.edges === 0) return;
    this.dataVersion = this.stmts.dataVersion.get() as number;
    // One read snapshot for both reads, so no change slips between them.
    this.db.transaction(() => {
      if (this.nodeMap.size > 0) {
        const changed = this.stmts.changedSince.all(this.seenFseq) as number[];
        if (changed.length > 10_000) this.nodeMap.clear();
        else for (const nid of changed) this.nodeMap.delete(nid);
      }
      this.seenFseq = this.stmts.maxFseq.get() as number;
    })();
  }

  private freshen(): void {
    if (this.stmts.dataVersion.get() !== this.dataVersion) this.afterWrite();
  }

  private clearAdjacency(): void {
    this.adjacency.up.clear();
    this.adjacency.down.clear();
    this.adjacencySize = 0;
  }
}
