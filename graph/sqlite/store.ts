/**
 * @module graph/sqlite/store
 * The embedded default GraphStore: one SQLite file (better-sqlite3), WAL, synchronous=NORMAL,
 * prepared statements, one transaction per ingest batch. Lineage walks run the store-independent
 * rules of graph/lineage.ts with one indexed query per level (measured faster here than a
 * recursive CTE that must carry the history rule's time bound per row).
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
import { globLiteralPrefix, globMatcher, prefixRange } from '../glob.js';
import { checkSchema, ensureSchema } from './schema.js';
import { SqliteIngester } from './ingest.js';
import { EDGE_CODE, EDGE_KINDS, NODE_CODE, NODE_KINDS, edgeFromRow, nodeFromRow, type EdgeRow, type NodeRow } from './codec.js';

export interface SqliteStoreOptions {
  /** Open an existing database for queries only (e.g. the web UI beside a running collector). */
  readonly?: boolean;
  /** SQLite page cache in MiB (default 64). */
  cacheMiB?: number;
  /** How long a writer waits for another writer's lock, in ms (default 5000). */
  busyTimeoutMs?: number;
  /**
   * Parsed nodes kept between queries (entries, default 100000; 0 turns it off). Entries are
   * evicted when their node changes, also when another process writes the database. Nodes in
   * query results may therefore be shared between results: they are frozen.
   */
  nodeCache?: number;
}

const NODE_COLS = 'nid, id, kind, host, label, ts, attrs';
const EDGE_COLS = 'src, kind, dst, pos, ts, strict, attrs';
const EDGE_JSON = 'json_group_array(json_array(src, kind, dst, pos, ts, strict, json(attrs)))';
const INFORMED = EDGE_CODE.get('wasInformedBy')!;
const FILE = NODE_CODE.get('file')!;
const PROCESS = NODE_CODE.get('process')!;
type RawNode = [number, string, number, string, string, number, string];
type RawEdge = [number, number, number, string, number, number, Record<string, unknown> | null];

/**
 * Open (creating if needed) the SQLite graph store at `path` (':memory:' for a throw-away one).
 * The file is created 0600 and a missing directory 0700.
 */
export async function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): Promise<SqliteGraphStore> {
  const where = `sqlite:${path}`;
  const memory = path === ':memory:';
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
    if (!memory) db.pragma(`mmap_size = ${1 << 30}`); // reads without a copy through the page cache
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
  private closed = false;
  private readonly cache = new Map<number, GraphNode>();
  private readonly cacheMax: number;
  /** Nodes with fseq above this may have changed since they were cached. */
  private cacheFseq = 0;
  private dataVersion = -1;

  constructor(private readonly db: Database.Database, readonly url: string, opts: SqliteStoreOptions = {}) {
    this.cacheMax = Math.max(0, Math.floor(opts.nodeCache ?? 100_000));
    this.ingester = db.readonly ? null : new SqliteIngester(db, url);
    db.function('prov_glob', { deterministic: true }, (glob: string, s: string | null) => (s !== null && globMatcher(glob)(s) ? 1 : 0));
    this.stmts = {
      nidOf: db.prepare('SELECT nid FROM nodes WHERE id = ?').pluck(),
      nodeById: db.prepare(`SELECT ${NODE_COLS}, ident FROM nodes WHERE id = ?`),
      nodesByNids: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE nid IN (SELECT value FROM json_each(?))`).raw(),
      // Walk levels come back as one JSON array: one string to parse beats thousands of row objects.
      edgesUp: db.prepare(`SELECT ${EDGE_JSON} FROM edges WHERE src IN (SELECT value FROM json_each(?))`).pluck(),
      edgesDown: db.prepare(`SELECT ${EDGE_JSON} FROM edges WHERE dst IN (SELECT value FROM json_each(?))`).pluck(),
      forkExecDown: db.prepare(`SELECT ${EDGE_JSON} FROM edges WHERE dst IN (SELECT value FROM json_each(?)) AND kind = ${INFORMED}
        AND json_extract(attrs, '$.via') IN ('fork', 'exec')`).pluck(),
      forkExecUpAmong: db.prepare(`SELECT ${EDGE_JSON} FROM edges WHERE src IN (SELECT value FROM json_each(?)) AND kind = ${INFORMED}
        AND dst IN (SELECT value FROM json_each(?)) AND json_extract(attrs, '$.via') IN ('fork', 'exec')`).pluck(),
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
      nodeKinds: db.prepare('SELECT kind, count(*) n FROM nodes GROUP BY kind'),
      edgeKinds: db.prepare('SELECT kind, count(*) n FROM edges GROUP BY kind'),
      gapCount: db.prepare('SELECT count(*) FROM gaps').pluck(),
      hostCount: db.prepare('SELECT count(*) FROM hosts').pluck(),
      pathNamed: db.prepare('SELECT 1 FROM names WHERE path = ? LIMIT 1').pluck(),
      latestVersion: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ident = ? ORDER BY ver DESC LIMIT 1`),
      versionAt: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ident = ? AND ts <= ? ORDER BY ver DESC LIMIT 1`),
      firstVersion: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ident = ? ORDER BY ver LIMIT 1`),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      maxFseq: db.prepare('SELECT coalesce(max(fseq), 0) FROM nodes').pluck(),
      changedSince: db.prepare('SELECT nid FROM nodes WHERE fseq > ? ORDER BY fseq LIMIT 10001').pluck(),
      processesInWindow: db.prepare(`SELECT nid FROM nodes WHERE kind = ${PROCESS} AND ts >= ? AND ts <= ? ORDER BY ts, nid LIMIT ?`).pluck(),
    };
    this.evictChanged();
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
        this.evictChanged();
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
    return this.guard('resolvePath', () => {
      if (typeof path !== 'string') throw new InputError('path must be a string', this.where('resolvePath'));
      const conds = ['path = ?'];
      const args: unknown[] = [path];
      if (host !== undefined) { conds.push('host = ?'); args.push(host); }
      if (at !== undefined) { conds.push('since <= ? AND (until IS NULL OR until > ?)'); args.push(at, at); }
      const name = this.db.prepare(`SELECT file, since, until FROM names WHERE ${conds.join(' AND ')}
        ORDER BY since DESC LIMIT 1`).get(...args) as { file: string; since: number; until: number | null } | undefined;
      if (name) {
        // The version current for that name: at `at`, or while the name held (before it ended).
        const t = at ?? (name.until !== null ? name.until - 1 : undefined);
        const row = (t === undefined ? this.stmts.latestVersion.get(name.file) : this.stmts.versionAt.get(name.file, t) ?? this.stmts.firstVersion.get(name.file)) as NodeRow | undefined;
        if (row) return nodeFromRow(row);
      }
      // No name history for this path at all: a file version whose own path attribute is this path.
      if (this.stmts.pathNamed.get(path)) return null;
      const vconds = [`kind = ${FILE}`, 'path = ?'];
      const vargs: unknown[] = [path];
      if (host !== undefined) { vconds.push('host = ?'); vargs.push(host); }
      if (at !== undefined) { vconds.push('ts <= ?'); vargs.push(at); }
      const row = this.db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ${vconds.join(' AND ')} ORDER BY ts DESC, ver DESC LIMIT 1`).get(...vargs) as NodeRow | undefined;
      return row ? nodeFromRow(row) : null;
    });
  }

  search(q: SearchQuery): Promise<Page<GraphNode>> {
    return this.guard('search', () => {
      const where = this.where('search');
      const kind = q.kind ?? 'file';
      const kindCode = NODE_CODE.get(kind);
      if (kindCode === undefined) throw new InputError(`unknown node kind ${JSON.stringify(kind)}`, where);
      const limit = q.limit ?? 100;
      const offset = q.offset ?? 0;
      if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new InputError(`limit must be an integer in 1..100000, got ${String(q.limit)}`, where);
      if (!Number.isInteger(offset) || offset < 0) throw new InputError(`offset must be a non-negative integer, got ${String(q.offset)}`, where);
      if (q.prefix !== undefined && typeof q.prefix !== 'string') throw new InputError('prefix must be a string', where);
      if (q.glob !== undefined && (typeof q.glob !== 'string' || q.glob === '')) throw new InputError('glob must be a non-empty string', where);

      // Conditions on a `path` column; both the prefix and the glob's literal prefix narrow the range.
      const conds: string[] = [];
      const args: unknown[] = [];
      for (const p of [q.prefix, q.glob !== undefined ? globLiteralPrefix(q.glob) : undefined]) {
        if (!p) continue;
        const r = prefixRange(p);
        conds.push('path >= ?'); args.push(r.lo);
        if (r.hi !== null) { conds.push('path < ?'); args.push(r.hi); }
      }
      if (q.glob !== undefined) { conds.push('prov_glob(?, path)'); args.push(q.glob); }
      if (q.host !== undefined) { conds.push('host = ?'); args.push(q.host); }
      const filtered = conds.length > 0;
      const cond = filtered ? conds.join(' AND ') : '1';

      if (kind === 'file') {
        // A file matches when any name it has or had matches; one result per inode, its latest version.
        const m = `SELECT file AS ident, path FROM names WHERE ${cond}
          UNION ALL SELECT ident, path FROM nodes WHERE kind = ${FILE} AND ident IS NOT NULL AND ${filtered ? cond : '1'}`;
        const margs = [...args, ...args];
        const grouped = `FROM (${m}) AS m GROUP BY m.ident HAVING EXISTS (SELECT 1 FROM nodes v WHERE v.ident = m.ident)`;
        const total = this.db.prepare(`SELECT count(*) FROM (SELECT m.ident ${grouped})`).pluck().get(...margs) as number;
        const idents = this.db.prepare(`SELECT m.ident AS ident, min(m.path) AS p ${grouped} ORDER BY p, ident LIMIT ? OFFSET ?`)
          .all(...margs, limit, offset) as Array<{ ident: string }>;
        const items = idents.map((r) => nodeFromRow(this.stmts.latestVersion.get(r.ident) as NodeRow));
        return { items, total };
      }
      const base = `FROM nodes WHERE kind = ${kindCode} AND ${cond}`;
      const total = this.db.prepare(`SELECT count(*) ${base}`).pluck().get(...args) as number;
      const rows = this.db.prepare(`SELECT ${NODE_COLS} ${base} ORDER BY path, nid LIMIT ? OFFSET ?`).all(...args, limit, offset) as NodeRow[];
      return { items: rows.map(nodeFromRow), total };
    });
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
      const r = await walk(start, dir, o, this.fetchEdges);
      return this.subgraph(r.nodes, r.edges, r.truncated);
    });
  }

  path(from: string, to: string, opts?: LineageOptions): Promise<Subgraph | null> {
    return this.guardAsync('path', async () => {
      const o = walkOptions(opts, this.where('path'), { depth: 32 });
      const a = this.requireNid(from, 'path');
      const b = this.requireNid(to, 'path');
      const found = (await shortestPath(a, b, 'up', o, this.fetchEdges)) ?? (await shortestPath(a, b, 'down', o, this.fetchEdges));
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
        const fetch = (frontier: number[]): WalkEdge<number>[] => edgesOf(this.stmts.forkExecDown.get(JSON.stringify(frontier)));
        const r = await walk(root, 'down', o, fetch);
        return this.subgraph(r.nodes, r.edges, r.truncated);
      }
      const nids = this.stmts.processesInWindow.all(o.since, o.until, o.limit + 1) as number[];
      const truncated = nids.length > o.limit;
      if (truncated) nids.length = o.limit;
      const edges = edgesOf(this.stmts.forkExecUpAmong.get(JSON.stringify(nids), JSON.stringify(nids)))
        .filter((e) => e.ts >= o.since && e.ts <= o.until);
      return this.subgraph(nids, edges, truncated);
    });
  }

  private readonly fetchEdges = (frontier: number[], dir: Direction): WalkEdge<number>[] =>
    edgesOf((dir === 'up' ? this.stmts.edgesUp : this.stmts.edgesDown).get(JSON.stringify(frontier)));

  private requireNid(id: string, what: string): number {
    if (typeof id !== 'string') throw new InputError('a node id must be a string', this.where(what));
    const nid = this.stmts.nidOf.get(id) as number | undefined;
    if (nid === undefined) throw new NotFoundError(`no node ${JSON.stringify(id)}`, this.where(what));
    return nid;
  }

  private nodesByNid(nids: number[]): Map<number, GraphNode> {
    const out = new Map<number, GraphNode>();
    if (nids.length === 0) return out;
    if (this.cacheMax > 0 && this.stmts.dataVersion.get() !== this.dataVersion) this.evictChanged();
    const missing: number[] = [];
    for (const nid of nids) {
      const hit = this.cache.get(nid);
      if (hit) out.set(nid, hit);
      else missing.push(nid);
    }
    if (missing.length === 0) return out;
    if (this.cache.size + missing.length > this.cacheMax) this.cache.clear();
    for (const r of this.stmts.nodesByNids.all(JSON.stringify(missing)) as RawNode[]) {
      const attrs = JSON.parse(r[6]) as Record<string, unknown>;
      const node: GraphNode = { id: r[1], kind: NODE_KINDS[r[2]]!, host: r[3], label: r[4], ts: r[5], attrs };
      if (this.cacheMax > 0) {
        Object.freeze(attrs);
        this.cache.set(r[0], Object.freeze(node));
      }
      out.set(r[0], node);
    }
    return out;
  }

  /** Drop cached nodes that changed (by this connection or another) since they were cached. */
  private evictChanged(): void {
    if (this.cacheMax === 0) return;
    this.dataVersion = this.stmts.dataVersion.get() as number;
    // One read snapshot for both reads, so no change slips between them.
    this.db.transaction(() => {
      if (this.cache.size > 0) {
        const changed = this.stmts.changedSince.all(this.cacheFseq) as number[];
        if (changed.length > 10_000) this.cache.clear();
        else for (const nid of changed) this.cache.delete(nid);
      }
      this.cacheFseq = this.stmts.maxFseq.get() as number;
    })();
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
      const nodes: StoreStats['nodes'] = {};
      for (const r of this.stmts.nodeKinds.all() as Array<{ kind: number; n: number }>) nodes[NODE_KINDS[r.kind]!] = r.n;
      const edges: StoreStats['edges'] = {};
      for (const r of this.stmts.edgeKinds.all() as Array<{ kind: number; n: number }>) edges[EDGE_KINDS[r.kind]!] = r.n;
      const checkpoint: Checkpoint = {};
      for (const r of this.stmts.checkpoint.all() as Array<{ stream: string; seq: number }>) checkpoint[r.stream] = r.seq;
      return { nodes, edges, gaps: this.stmts.gapCount.get() as number, hosts: this.stmts.hostCount.get() as number, checkpoint };
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

function edgesOf(json: unknown): WalkEdge<number>[] {
  const rows = JSON.parse(json as string) as RawEdge[];
  const out = new Array<WalkEdge<number>>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    out[i] = { src: r[0], kind: EDGE_KINDS[r[1]]!, dst: r[2], pos: r[3], ts: r[4], strict: r[5] === 1, data: r[6] };
  }
  return out;
}
