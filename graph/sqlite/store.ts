/**
 * @module graph/sqlite/store
 * The embedded default GraphStore: one SQLite file (better-sqlite3), WAL, synchronous=NORMAL,
 * prepared statements, one transaction per ingest batch. Lineage walks run the store-independent
 * rules of graph/lineage.ts with one indexed query per level, each answering with one JSON
 * array (one string to parse instead of thousands of row objects). A recursive CTE would have to
 * carry the history rule's time bound per row and still hand every edge back; the bench compares
 * against a plain reachability CTE. Nodes and adjacency lists are cached between queries
 * (graph/sqlite/cache.ts); name search lives in graph/sqlite/search.ts.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Checkpoint, Gap, GraphEdge, GraphNode, IngestBatch, NameRecord } from '../model.js';
import type {
  GraphStore, HistogramBucket, LineageOptions, NodeDetails, NodeOptions, Page, SearchQuery, StoreStats, Subgraph,
} from '../store.js';
import { InputError, NotFoundError, ProvError, StoreError } from '../errors.js';
import { shortestPath, walk, walkOptions, type Direction, type WalkEdge, type WalkOptions } from '../lineage.js';
import { checkSchema, ensureSchema } from './schema.js';
import { SqliteIngester } from './ingest.js';
import { EDGE_JSON, ReadCache, edgesOf } from './cache.js';
import { PathQueries } from './search.js';
import { pendingState, releasePending, waitPending } from './pending.js';
import { logger } from '../../collector/log.js';
import { EDGE_CODE, EDGE_KINDS, NODE_CODE, NODE_KINDS, edgeFromRow, nodeFromRow, type EdgeRow, type NodeRow } from './codec.js';

export interface SqliteStoreOptions {
  /** Open an existing database for queries only (e.g. the web UI beside a running collector). */
  readonly?: boolean;
  /** SQLite page cache in MiB (default 64). */
  cacheMiB?: number;
  /** How long a writer waits for another writer's lock, in ms (default 5000). */
  busyTimeoutMs?: number;
  /**
   * Parsed nodes kept between queries (entries, default 50000, about 25 MB; 0 turns it off).
   * Entries are evicted when their node changes, also when another process writes the
   * database. Nodes in query results may therefore be shared between results: they are frozen.
   */
  nodeCache?: number;
  /**
   * Edges kept per node and direction between lineage queries (total edges, default 250000,
   * about 30 MB; 0 turns it off). Edges only ever get added, but which nodes got new ones is
   * not tracked, so any write to the database empties this cache.
   */
  edgeCache?: number;
  /**
   * Wait while a process holds the database's pending-ingest marker (graph/sqlite/pending:
   * a rebuild's records on their way in), so what it re-made is visible (default true; the
   * holder itself opens with false).
   */
  waitPendingIngest?: boolean;
}

const NODE_COLS = 'nid, id, kind, host, label, ts, attrs';
const EDGE_COLS = 'src, kind, dst, pos, ts, strict, attrs';
const INFORMED = EDGE_CODE.get('wasInformedBy')!;
const PROCESS = NODE_CODE.get('process')!;

/**
 * Open (creating if needed) the SQLite graph store at `path` (':memory:' for a throw-away one).
 * The file is created 0600 and a missing directory 0700.
 */
export async function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): Promise<SqliteGraphStore> {
  const where = `sqlite:${path}`;
  const memory = path === ':memory:';
  if (!memory && opts.waitPendingIngest !== false) {
    const st = await waitPending(path);
    if (st.state === 'held') logger('store').warn(`${path}: pid ${st.holder.pid} (${st.holder.what}) has been ingesting for a minute; opening without its records`);
    else if (st.state === 'orphaned') logger('store').warn(`${path}: ${st.holder.what} (pid ${st.holder.pid}) ended before ingesting what it recorded; its records are in the journal (prov ingest or the next prov rebuild brings them in)`);
  }
  let db: Database.Database;
  try {
    if (!memory && !opts.readonly) {
      mkdirSync(dirname(resolve(path)), { recursive: true, mode: 0o700 });
      if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
      for (const f of [path, `${path}-wal`, `${path}-shm`]) {
        if (existsSync(f) && (statSync(f).mode & 0o077) !== 0) chmodSync(f, 0o600);
      }
    }
    db = new Database(path, { readonly: opts.readonly ?? false, fileMustExist: opts.readonly ?? false });
  } catch (err) {
    throw new StoreError(`cannot open the graph database: ${(err as Error).message}`, where);
  }
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000))}`);
    if (!opts.readonly) {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
    }
    db.pragma(`cache_size = ${-Math.max(1, Math.floor(opts.cacheMiB ?? 64)) * 1024}`);
    db.pragma('temp_store = MEMORY');
    if (opts.readonly) {
      checkSchema(db, where);
    } else {
      ensureSchema(db, where);
    }
  } catch (err) {
    db.close();
    if (err instanceof ProvError) throw err;
    throw new StoreError(`cannot open the graph database: ${(err as Error).message}`, where);
  }
  return new SqliteGraphStore(db, where, opts);
}

/** The SQLite GraphStore. Create it with {@link openSqliteStore}. */
export class SqliteGraphStore implements GraphStore {
  private readonly ingester: SqliteIngester | null;
  private readonly stmts;
  private readonly cache: ReadCache;
  private readonly paths: PathQueries;
  private closed = false;

  constructor(private readonly db: Database.Database, readonly url: string, opts: SqliteStoreOptions = {}) {
    this.ingester = db.readonly ? null : new SqliteIngester(db, url);
    this.cache = new ReadCache(db, {
      nodes: Math.max(0, Math.floor(opts.nodeCache ?? 50_000)),
      edges: Math.max(0, Math.floor(opts.edgeCache ?? 250_000)),
    });
    this.paths = new PathQueries(db);
    this.stmts = {
      nidOf: db.prepare('SELECT nid FROM nodes WHERE id = ?').pluck(),
      nodeById: db.prepare(`SELECT ${NODE_COLS}, ident FROM nodes WHERE id = ?`),
      forkExecDown: db.prepare(`SELECT ${EDGE_JSON} FROM (SELECT ${EDGE_COLS} FROM edges WHERE dst IN (SELECT value FROM json_each(?)) AND kind = ${INFORMED}
        AND json_extract(attrs, '$.via') IN ('fork', 'exec') LIMIT ?)`).pluck(),
      // The parent end is checked in JS: `dst IN (list)` here made SQLite probe every src × dst pair.
      forkExecUp: db.prepare(`SELECT ${EDGE_JSON} FROM edges WHERE src IN (SELECT value FROM json_each(?)) AND kind = ${INFORMED}
        AND json_extract(attrs, '$.via') IN ('fork', 'exec')`).pluck(),
      outEdges: db.prepare(`SELECT ${EDGE_COLS} FROM edges WHERE src = ? ORDER BY ts DESC, kind, dst, pos LIMIT ?`),
      inEdges: db.prepare(`SELECT ${EDGE_COLS} FROM edges WHERE dst = ? ORDER BY ts DESC LIMIT ?`),
      namesOf: db.prepare('SELECT file, host, path, since, until, pos FROM names WHERE file = ? ORDER BY since, path'),
      versionsOf: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ident = ? ORDER BY ver`),
      gapsFor: db.prepare(`SELECT id, host, src, t_from, t_to, count, reason FROM gaps
        WHERE host IN (SELECT value FROM json_each(?)) AND t_from <= ? AND t_to >= ? ORDER BY t_from, id`),
      checkpoint: db.prepare('SELECT stream, seq FROM checkpoint ORDER BY stream'),
      hosts: db.prepare('SELECT host FROM hosts ORDER BY host').pluck(),
      feed: db.prepare(`SELECT ${NODE_COLS}, fseq FROM nodes WHERE fseq > ? ORDER BY fseq LIMIT ?`),
      edgeTsRange: db.prepare('SELECT min(ts) lo, max(ts) hi FROM edges'),
      histogram: db.prepare('SELECT CAST((ts - ?) / ? AS INTEGER) b, count(*) n FROM edges WHERE ts >= ? AND ts <= ? GROUP BY b'),
      counts: db.prepare('SELECT what, n FROM counts WHERE n > 0'),
      hostCount: db.prepare('SELECT count(*) FROM hosts').pluck(),
      processesInWindow: db.prepare(`SELECT nid FROM nodes WHERE kind = ${PROCESS} AND ts >= ? AND ts <= ? ORDER BY ts, nid LIMIT ?`).pluck(),
    };
  }

  private where(what: string): string {
    return `${this.url} ${what}`;
  }

  /** Runs a query, turning SQLite's own errors into a StoreError that names the store. */
  private guard<T>(what: string, fn: () => T): Promise<T> {
    try {
      if (this.closed) throw new StoreError('the store is closed', this.where(what));
      return Promise.resolve(fn());
    } catch (err) {
      if (err instanceof ProvError) return Promise.reject(err);
      return Promise.reject(new StoreError((err as Error).message, this.where(what)));
    }
  }

  private async guardAsync<T>(what: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError('the store is closed', this.where(what));
    try {
      return await fn();
    } catch (err) {
      if (err instanceof ProvError) throw err;
      throw new StoreError((err as Error).message, this.where(what));
    }
  }

  ingest(batch: IngestBatch): Promise<void> {
    return this.guard('ingest', () => {
      if (!this.ingester) throw new StoreError('the store was opened read-only', this.where('ingest'));
      if (!batch || typeof batch !== 'object') throw new InputError('a batch must be an object', this.where('ingest'));
      try {
        this.ingester.apply(batch);
      } finally {
        this.cache.afterWrite();
      }
    });
  }

  checkpoint(): Promise<Checkpoint> {
    return this.guard('checkpoint', () => {
      const cp: Checkpoint = {};
      for (const r of this.stmts.checkpoint.all() as Array<{ stream: string; seq: number }>) cp[r.stream] = r.seq;
      return cp;
    });
  }

  // --- nodes ---------------------------------------------------------------------------------

  node(id: string, opts: NodeOptions = {}): Promise<NodeDetails | null> {
    return this.guard('node', () => {
      const limit = opts.edgeLimit ?? -1;
      if (opts.edgeLimit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw new InputError(`edgeLimit must be a non-negative integer, got ${String(opts.edgeLimit)}`, this.where('node'));
      const row = this.stmts.nodeById.get(id) as (NodeRow & { ident: string | null }) | undefined;
      if (!row) return null;
      const node = nodeFromRow(row);
      const names = row.ident ? this.namesOf(row.ident) : [];
      const versions = row.ident ? (this.stmts.versionsOf.all(row.ident) as NodeRow[]).map(nodeFromRow) : [];
      // Newest first with one extra row to learn whether the limit cut anything; shown oldest first.
      const outRows = (this.stmts.outEdges.all(row.nid, limit < 0 ? -1 : limit + 1) as EdgeRow[]);
      const inRows = (this.stmts.inEdges.all(row.nid, limit < 0 ? -1 : limit + 1) as EdgeRow[]);
      const truncated = limit >= 0 && (outRows.length > limit || inRows.length > limit);
      if (limit >= 0) { outRows.length = Math.min(outRows.length, limit); inRows.length = Math.min(inRows.length, limit); }
      outRows.reverse();
      inRows.reverse();
      const others = this.nodesByNid([...outRows.map((e) => e.dst), ...inRows.map((e) => e.src)]);
      others.set(row.nid, node);
      const idOf = (nid: number): string => others.get(nid)!.id;
      return {
        node, names, versions, truncated,
        out: outRows.map((e) => ({ edge: edgeFromRow(e, idOf), node: others.get(e.dst)! })),
        in: inRows.map((e) => ({ edge: edgeFromRow(e, idOf), node: others.get(e.src)! })),
      };
    });
  }

  resolvePath(path: string, at?: number, host?: string): Promise<GraphNode | null> {
    return this.guard('resolvePath', () => this.paths.resolve(path, at, host, this.where('resolvePath')));
  }

  search(q: SearchQuery): Promise<Page<GraphNode>> {
    return this.guard('search', () => this.paths.search(q ?? {}, this.where('search')));
  }

  // --- lineage -------------------------------------------------------------------------------

  ancestors(id: string, opts?: LineageOptions): Promise<Subgraph> {
    return this.lineage(id, 'up', opts, 'ancestors');
  }

  descendants(id: string, opts?: LineageOptions): Promise<Subgraph> {
    return this.lineage(id, 'down', opts, 'descendants');
  }

  private lineage(id: string, dir: Direction, opts: LineageOptions | undefined, what: string): Promise<Subgraph> {
    return this.guardAsync(what, async () => {
      const o = walkOptions(opts, this.where(what));
      const start = this.requireNid(id, what);
      const r = await walk(start, dir, o, this.cache.edges);
      return this.subgraph(r.nodes, r.edges, r.truncated);
    });
  }

  path(from: string, to: string, opts?: LineageOptions): Promise<Subgraph | null> {
    return this.guardAsync('path', async () => {
      const o = walkOptions(opts, this.where('path'), { depth: 32 });
      const a = this.requireNid(from, 'path');
      const b = this.requireNid(to, 'path');
      const found = (await shortestPath(a, b, 'up', o, this.cache.edges)) ?? (await shortestPath(a, b, 'down', o, this.cache.edges));
      if (!found) return null;
      const nodes = [a];
      for (const e of found) nodes.push(nodes[nodes.length - 1] === e.src ? e.dst : e.src);
      return this.subgraph(nodes, found, false);
    });
  }

  processTree(rootId?: string, opts?: LineageOptions): Promise<Subgraph> {
    return this.guardAsync('processTree', async () => {
      const o: WalkOptions = { ...walkOptions(opts, this.where('processTree'), { depth: 64 }), rule: 'history' };
      if (rootId !== undefined) {
        const root = this.requireNid(rootId, 'processTree');
        const fetch = (frontier: number[], _dir: Direction, max: number): WalkEdge<number>[] => edgesOf(this.stmts.forkExecDown.get(JSON.stringify(frontier), max));
        const r = await walk(root, 'down', o, fetch);
        return this.subgraph(r.nodes, r.edges, r.truncated);
      }
      const nids = this.stmts.processesInWindow.all(o.since, o.until, o.limit + 1) as number[];
      const truncated = nids.length > o.limit;
      if (truncated) nids.length = o.limit;
      const among = new Set(nids);
      const edges = edgesOf(this.stmts.forkExecUp.get(JSON.stringify(nids)))
        .filter((e) => among.has(e.dst) && e.ts >= o.since && e.ts <= o.until);
      return this.subgraph(nids, edges, truncated);
    });
  }

  private requireNid(id: string, what: string): number {
    if (typeof id !== 'string') throw new InputError('a node id must be a string', this.where(what));
    const nid = this.stmts.nidOf.get(id) as number | undefined;
    if (nid === undefined) throw new NotFoundError(`no node ${JSON.stringify(id)}`, this.where(what));
    return nid;
  }

  private nodesByNid(nids: number[]): Map<number, GraphNode> {
    return this.cache.nodes(nids);
  }

  private subgraph(nids: number[], walked: WalkEdge<number>[], truncated: boolean): Subgraph {
    const byNid = this.nodesByNid(nids);
    const nodes = nids.map((n) => byNid.get(n)!);
    const idOf = (nid: number): string => byNid.get(nid)!.id;
    const edges: GraphEdge[] = walked.map((e) => {
      const g: GraphEdge = { kind: e.kind, from: idOf(e.src), to: idOf(e.dst), ts: e.ts, pos: e.pos };
      if (e.data) g.attrs = e.data as Record<string, unknown>;
      return g;
    });
    return { nodes, edges, gaps: this.gapsFor(nodes, edges), truncated };
  }

  private gapsFor(nodes: GraphNode[], edges: GraphEdge[]): Gap[] {
    if (edges.length === 0) return [];
    let lo = Infinity;
    let hi = -Infinity;
    for (const e of edges) { if (e.ts < lo) lo = e.ts; if (e.ts > hi) hi = e.ts; }
    const hosts = [...new Set(nodes.map((n) => n.host))];
    return (this.stmts.gapsFor.all(JSON.stringify(hosts), hi, lo) as Array<{ id: string; host: string; src: string; t_from: number; t_to: number; count: number; reason: string }>)
      .map((g) => ({ id: g.id, host: g.host, src: g.src, from: g.t_from, to: g.t_to, count: g.count, reason: g.reason }));
  }

  private namesOf(ident: string): NameRecord[] {
    return (this.stmts.namesOf.all(ident) as Array<{ file: string; host: string; path: string; since: number; until: number | null; pos: string }>)
      .map((r) => {
        const n: NameRecord = { file: r.file, host: r.host, path: r.path, since: r.since, pos: r.pos };
        if (r.until !== null) n.until = r.until;
        return n;
      });
  }

  // --- overview ------------------------------------------------------------------------------

  histogram(buckets: number, since?: number, until?: number): Promise<HistogramBucket[]> {
    return this.guard('histogram', () => {
      if (!Number.isInteger(buckets) || buckets < 1 || buckets > 100_000) throw new InputError(`buckets must be an integer in 1..100000, got ${String(buckets)}`, this.where('histogram'));
      const range = this.stmts.edgeTsRange.get() as { lo: number | null; hi: number | null };
      const lo = since ?? range.lo;
      const hi = until ?? range.hi;
      if (lo === null || hi === null || hi < lo) return [];
      const width = Math.max(1, Math.ceil((hi - lo + 1) / buckets));
      const n = Math.min(buckets, Math.ceil((hi - lo + 1) / width));
      const out: HistogramBucket[] = [];
      for (let i = 0; i < n; i++) out.push({ from: lo + i * width, to: Math.min(hi, lo + (i + 1) * width - 1), count: 0 });
      for (const r of this.stmts.histogram.all(lo, width, lo, hi) as Array<{ b: number; n: number }>) {
        const bucket = out[Math.min(n - 1, r.b)];
        if (bucket) bucket.count += r.n;
      }
      return out;
    });
  }

  feed(cursor: number, limit: number): Promise<{ nodes: GraphNode[]; cursor: number }> {
    return this.guard('feed', () => {
      if (!Number.isInteger(cursor) || cursor < 0) throw new InputError(`cursor must be a non-negative integer, got ${String(cursor)}`, this.where('feed'));
      if (!Number.isInteger(limit) || limit < 1) throw new InputError(`limit must be a positive integer, got ${String(limit)}`, this.where('feed'));
      const rows = this.stmts.feed.all(cursor, limit) as Array<NodeRow & { fseq: number }>;
      return { nodes: rows.map(nodeFromRow), cursor: rows.length > 0 ? rows[rows.length - 1]!.fseq : cursor };
    });
  }

  hosts(): Promise<string[]> {
    return this.guard('hosts', () => this.stmts.hosts.all() as string[]);
  }

  stats(): Promise<StoreStats> {
    return this.guard('stats', () => {
      // Counters kept by ingest (schema.ts): counting a million rows here took a quarter of a second.
      const nodes: StoreStats['nodes'] = {};
      const edges: StoreStats['edges'] = {};
      let gaps = 0;
      for (const r of this.stmts.counts.all() as Array<{ what: string; n: number }>) {
        const [what, code] = r.what.split(':');
        if (what === 'node') nodes[NODE_KINDS[Number(code)]!] = r.n;
        else if (what === 'edge') edges[EDGE_KINDS[Number(code)]!] = r.n;
        else if (what === 'gaps') gaps = r.n;
      }
      const checkpoint: Checkpoint = {};
      for (const r of this.stmts.checkpoint.all() as Array<{ stream: string; seq: number }>) checkpoint[r.stream] = r.seq;
      return { nodes, edges, gaps, hosts: this.stmts.hostCount.get() as number, checkpoint };
    });
  }

  /** A crashed rebuild's orphaned pending-ingest marker has done its job once the journal is drained. */
  async caughtUp(): Promise<void> {
    if (this.db.memory || this.db.readonly) return;
    if (pendingState(this.db.name).state === 'orphaned') releasePending(this.db.name, null);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}
