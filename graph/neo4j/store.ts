/**
 * @module graph/neo4j/store
 * The Neo4j GraphStore: several hosts' collectors write into one database through Bolt.
 *
 * Ingest is one explicit transaction per batch: UNWIND chunks that MERGE nodes on their stable
 * id, placeholders for edge ends not yet described, edges on (type, from, to, pos), the name
 * records, the gaps, the hosts and the checkpoint (per-stream maximum), all committed
 * together; replaying a batch finds everything in place and changes nothing. Any failure
 * (server gone, write refused) rolls the whole batch back and surfaces as a StoreError; the
 * caller keeps its journal checkpoint and retries the same batch later.
 *
 * Lineage walks run graph/lineage.ts — the same rules, bounds and limits as the SQLite store —
 * over one Cypher query per level (see ./cypher.ts).
 *
 * The store speaks only the driver API and Cypher that both neo4j-driver 4.0.x (Bolt v1, the
 * 3.1.1 test server) and the current driver (Neo4j 5) support; see ./driver.ts.
 */
import { logger } from '../../collector/log.js';
import { InputError, NotFoundError, ProvError, StoreError } from '../errors.js';
import { checkSearchQuery, globLiteralPrefix, globMatcher } from '../glob.js';
import { shortestPath, walk, walkOptions, type Direction, type WalkEdge, type WalkOptions } from '../lineage.js';
import type { Checkpoint, Gap, GraphEdge, GraphNode, IngestBatch, NameRecord, NodeKind } from '../model.js';
import { hostFromId, kindFromId, splitFileVersion } from '../model.js';
import type {
  GraphStore, HistogramBucket, LineageOptions, NodeDetails, NodeOptions, Page, SearchQuery, StoreStats, Subgraph,
} from '../store.js';
import { defaultDriverModule, type Driver, type DriverRecord, type DriverSession, type Neo4jModule, type Params, type QueryRunner } from './driver.js';
import * as Q from './cypher.js';
import {
  EDGE_KINDS, NODE_KINDS, edgeKindOf, edgeRow, nodeRow, placeholderRow,
  toEdge, toNode, type NodeRowParams,
} from './mapping.js';
import { ensureSchema, serverInfo, type ServerInfo } from './schema.js';

const log = logger('neo4j');

export interface Neo4jStoreOptions {
  user?: string;
  password?: string;
  /** The neo4j-driver module to use (tests pass neo4j-driver 4.0.x); default: `neo4j-driver`. */
  driver?: Neo4jModule;
  /** Rows per UNWIND statement inside a batch's transaction. Default 5000. */
  chunk?: number;
  /** Extra driver configuration (timeouts, pool size). */
  config?: Record<string, unknown>;
}

const DRIVER_CONFIG = {
  disableLosslessIntegers: true,
  connectionTimeout: 5_000,
  connectionAcquisitionTimeout: 10_000,
  maxConnectionPoolSize: 8,
};

/** Does this driver error mean "the server is not there" (vs. a refused statement)? */
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string };
  return /ServiceUnavailable|SessionExpired/i.test(String(e?.code)) ||
    /ECONNREFUSED|ECONNRESET|EPIPE|connection.*(closed|lost|refused)|Failed to connect|socket/i.test(String(e?.message));
}

function chunks<T>(xs: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

function num(v: unknown): number { return typeof v === 'number' ? v : Number(v ?? 0); }

const utf8 = (s: string) => Buffer.from(s, 'utf8');
/** Code-point order (SQLite's BINARY order over UTF-8), so both stores page search results alike. */
function cmpPath(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return Buffer.compare(utf8(a), utf8(b));
}

const isStr = (v: unknown): v is string => typeof v === 'string' && v !== '';
const isFiniteNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Check a batch's shape before anything is sent, so bad input says where it is and nothing is written. */
function validate(b: IngestBatch, where: string): void {
  if (!b || typeof b !== 'object') throw new InputError('a batch must be an object', where);
  (b.nodes ?? []).forEach((n, i) => {
    const w = `${where}: batch node #${i}`;
    if (!NODE_KINDS.includes(n?.kind)) throw new InputError(`unknown node kind ${JSON.stringify(n?.kind)}`, w);
    if (!isStr(n.id)) throw new InputError('node id must be a non-empty string', w);
    if (!isFiniteNum(n.ts)) throw new InputError(`ts must be a finite number, got ${String(n.ts)}`, `${w} (${n.id})`);
  });
  (b.edges ?? []).forEach((e, i) => {
    const w = `${where}: batch edge #${i}`;
    if (!EDGE_KINDS.includes(e?.kind)) throw new InputError(`unknown edge kind ${JSON.stringify(e?.kind)}`, w);
    if (!isStr(e.from) || !isStr(e.to)) throw new InputError('edge ends must be non-empty node ids', w);
    if (!isFiniteNum(e.ts)) throw new InputError(`ts must be a finite number, got ${String(e.ts)}`, `${w} (${e.pos})`);
    if (!isStr(e.pos)) throw new InputError('pos must be a non-empty journal position', w);
  });
  (b.names ?? []).forEach((n, i) => {
    if (typeof n?.file !== 'string' || typeof n.path !== 'string' || typeof n.since !== 'number') {
      throw new InputError('a name needs file (string), path (string) and since (number)', `${where}: batch name #${i}`);
    }
  });
  (b.nameEnds ?? []).forEach((n, i) => {
    if (typeof n?.file !== 'string' || typeof n.path !== 'string' || typeof n.until !== 'number') {
      throw new InputError('a name end needs file, path and until', `${where}: batch nameEnd #${i}`);
    }
  });
  (b.gaps ?? []).forEach((g, i) => {
    if (typeof g?.id !== 'string' || typeof g.from !== 'number' || typeof g.to !== 'number') {
      throw new InputError('a gap needs id, from and to', `${where}: batch gap #${i}`);
    }
  });
  for (const [stream, seq] of Object.entries(b.checkpoint ?? {})) {
    if (!isFiniteNum(seq)) throw new InputError(`checkpoint of stream "${stream}" is not a number`, `${where}: batch checkpoint`);
  }
}

class Neo4jStore implements GraphStore {
  private closed = false;

  constructor(
    readonly url: string,
    private readonly neo4j: Neo4jModule,
    private readonly driver: Driver,
    readonly server: ServerInfo,
    private readonly chunk: number,
  ) {}

  private where(what: string): string {
    return `${this.url} ${what}`;
  }

  /** Run `fn` in a session; every driver failure becomes a StoreError naming the server. */
  private async guard<T>(what: string, fn: (s: DriverSession) => Promise<T>): Promise<T> {
    if (this.closed) throw new StoreError('the store is closed', this.where(what));
    const session = this.driver.session();
    try {
      return await fn(session);
    } catch (err) {
      throw this.wrap(err, what);
    } finally {
      try { await session.close(); } catch { /* the server may be gone */ }
    }
  }

  private wrap(err: unknown, what: string): Error {
    if (err instanceof ProvError) return err;
    const msg = (err as Error)?.message ?? String(err);
    if (isUnavailable(err)) return new StoreError(`Neo4j at ${this.url} is unreachable: ${msg}`, what);
    const code = (err as { code?: string })?.code;
    return new StoreError(`Neo4j at ${this.url} refused the request${code ? ` [${code}]` : ''}: ${msg}`, what);
  }

  private rows(q: string, p: Params = {}, what = 'query'): Promise<DriverRecord[]> {
    return this.guard(what, async (s) => (await s.run(q, p)).records);
  }

  // --- ingest --------------------------------------------------------------------------------

  async ingest(batch: IngestBatch): Promise<void> {
    validate(batch, this.where('ingest'));
    await this.guard('ingest', async (s) => {
      const tx = s.beginTransaction();
      try {
        await this.applyBatch(tx, batch);
        await tx.commit();
      } catch (err) {
        try { await tx.rollback(); } catch { /* connection lost: the server discards the open transaction */ }
        throw err;
      }
    });
  }

  private async applyBatch(tx: QueryRunner, b: IngestBatch): Promise<void> {
    const nodes = b.nodes ?? [];
    const edges = b.edges ?? [];
    const described = new Set(nodes.map((n) => n.id));
    // Edge ends that no node of this batch describes: placeholders unless they exist already.
    const ends = new Map<string, number>();
    for (const e of edges) {
      for (const id of [e.from, e.to]) if (!described.has(id) && !ends.has(id)) ends.set(id, e.ts);
    }
    const count = nodes.length + ends.size;
    let base = 0;
    if (count > 0) base = num((await tx.run(Q.BUMP_SEQ, { n: count })).records[0]?.get('base'));

    const rows = new Map<NodeKind, NodeRowParams[]>();
    nodes.forEach((n, i) => {
      const list = rows.get(n.kind) ?? [];
      list.push(nodeRow(n, i + 1));
      rows.set(n.kind, list);
    });
    for (const [kind, list] of rows) {
      for (const part of chunks(list, this.chunk)) await tx.run(Q.UPSERT_NODE[kind], { rows: part, base });
    }
    const holders = new Map<NodeKind, NodeRowParams[]>();
    let i = nodes.length;
    for (const [id, ts] of ends) {
      const kind = kindFromId(id);
      const list = holders.get(kind) ?? [];
      list.push(placeholderRow(id, ts, ++i));
      holders.set(kind, list);
    }
    for (const [kind, list] of holders) {
      for (const part of chunks(list, this.chunk)) await tx.run(Q.PLACEHOLDER[kind], { rows: part, base });
    }
    const byKind = new Map<string, Record<string, unknown>[]>();
    for (const e of edges) {
      const list = byKind.get(e.kind) ?? [];
      list.push(edgeRow(e));
      byKind.set(e.kind, list);
    }
    for (const [kind, list] of byKind) {
      for (const part of chunks(list, this.chunk)) await tx.run(Q.MERGE_EDGE[kind as GraphEdge['kind']], { rows: part });
    }
    for (const part of chunks(b.names ?? [], this.chunk)) {
      await tx.run(Q.MERGE_NAMES, {
        rows: part.map((x) => ({ file: x.file, path: x.path, since: x.since, host: x.host ?? hostFromId(x.file), pos: x.pos ?? '', until: x.until ?? null })),
      });
    }
    for (const part of chunks(b.nameEnds ?? [], this.chunk)) await tx.run(Q.END_NAMES, { rows: part });
    for (const part of chunks(b.gaps ?? [], this.chunk)) {
      await tx.run(Q.MERGE_GAPS, {
        rows: part.map((g) => ({ id: g.id, host: g.host ?? '', src: g.src ?? '', from: g.from, to: g.to, count: g.count ?? 0, reason: g.reason ?? '' })),
      });
    }
    const hosts = new Set<string>();
    for (const n of nodes) if (isStr(n.host)) hosts.add(n.host);
    for (const id of ends.keys()) { const h = hostFromId(id); if (h) hosts.add(h); }
    for (const g of b.gaps ?? []) if (isStr(g.host)) hosts.add(g.host);
    if (hosts.size > 0) await tx.run(Q.MERGE_HOSTS, { hosts: [...hosts] });
    const cp = Object.entries(b.checkpoint ?? {}).map(([stream, seq]) => ({ stream, seq }));
    if (cp.length > 0) await tx.run(Q.SET_CHECKPOINT, { rows: cp });
  }

  async checkpoint(): Promise<Checkpoint> {
    const cp: Checkpoint = {};
    for (const r of await this.rows(Q.GET_CHECKPOINT, {}, 'checkpoint')) cp[String(r.get('stream'))] = num(r.get('seq'));
    return cp;
  }

  // --- nodes ---------------------------------------------------------------------------------

  private async getNode(id: string, what: string): Promise<GraphNode | null> {
    if (typeof id !== 'string') throw new InputError('a node id must be a string', this.where(what));
    const [r] = await this.rows(Q.GET_NODE, { id }, what);
    return r ? toNode(r.get('n') as Record<string, unknown>) : null;
  }

  private async requireNode(id: string, what: string): Promise<GraphNode> {
    const n = await this.getNode(id, what);
    if (!n) throw new NotFoundError(`no node ${JSON.stringify(id)}`, this.where(what));
    return n;
  }

  /** Nodes by id, in the order given. */
  private async nodesById(ids: string[], what: string): Promise<GraphNode[]> {
    const byId = new Map<string, GraphNode>();
    for (const part of chunks(ids, this.chunk)) {
      for (const r of await this.rows(Q.NODES_BY_ID, { ids: part }, what)) {
        const n = toNode(r.get('n') as Record<string, unknown>);
        byId.set(n.id, n);
      }
    }
    return ids.map((id) => byId.get(id)).filter((n): n is GraphNode => n !== undefined);
  }

  async node(id: string, opts: NodeOptions = {}): Promise<NodeDetails | null> {
    const limit = opts.edgeLimit;
    if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) {
      throw new InputError(`edgeLimit must be a non-negative integer, got ${String(limit)}`, this.where('node'));
    }
    const node = await this.getNode(id, 'node');
    if (!node) return null;
    let truncated = false;
    // Newest first with one extra row to learn whether the limit cut anything; shown oldest first.
    const around = async (outward: boolean) => {
      const q = limit === undefined ? (outward ? Q.NODE_OUT : Q.NODE_IN) : (outward ? Q.NODE_OUT_LIMITED : Q.NODE_IN_LIMITED);
      const recs = await this.rows(q, { id, limit: this.neo4j.int((limit ?? 0) + 1) }, 'node');
      if (limit !== undefined && recs.length > limit) { truncated = true; recs.length = limit; }
      return recs.reverse().map((r) => {
        const other = toNode(r.get('m') as Record<string, unknown>);
        const edge = toEdge(r.get('t') as string, outward ? id : other.id, outward ? other.id : id, r.get('e') as Record<string, unknown>);
        return { edge, node: other };
      });
    };
    let names: NameRecord[] = [];
    let versions: GraphNode[] = [];
    const fv = node.kind === 'file' ? splitFileVersion(id) : null;
    if (fv) {
      names = (await this.rows(Q.NAMES_OF, { file: fv.ident }, 'node')).map((r) => toName(r.get('x') as Record<string, unknown>));
      versions = (await this.rows(Q.VERSIONS_OF, { ident: fv.ident }, 'node')).map((r) => toNode(r.get('v') as Record<string, unknown>));
    }
    const out = await around(true);
    const inn = await around(false);
    return { node, names, versions, out, in: inn, truncated };
  }

  async resolvePath(path: string, at?: number, host?: string): Promise<GraphNode | null> {
    if (typeof path !== 'string') throw new InputError('path must be a string', this.where('resolvePath'));
    const p = { path, at: at ?? null, host: host ?? null };
    const one = async (q: string, params: Params) => {
      const [r] = await this.rows(q, params, 'resolvePath');
      return r ? toNode(r.get('v') as Record<string, unknown>) : null;
    };
    const [name] = await this.rows(Q.NAME_OF_PATH, p, 'resolvePath');
    if (name) {
      const ident = String(name.get('file'));
      const until = name.get('until') as number | null;
      // The version current for that name: at `at`, or while the name held (before it ended).
      const t = at ?? (until !== null && until !== undefined ? until - 1 : undefined);
      const v = t === undefined
        ? await one(Q.LATEST_VERSION, { ident })
        : (await one(Q.VERSION_AT, { ident, at: t })) ?? (await one(Q.FIRST_VERSION, { ident }));
      if (v) return v;
    }
    // No name history for this path at all: a file version whose own path attribute is this path.
    if ((await this.rows(Q.PATH_EVER_NAMED, { path }, 'resolvePath')).length > 0) return null;
    return one(Q.FILE_WITH_PATH, p);
  }

  async search(q: SearchQuery): Promise<Page<GraphNode>> {
    const where = this.where('search');
    const { kind, limit, offset } = checkSearchQuery(q, where);

    const prefix = q.prefix ?? '';
    const literal = q.glob !== undefined ? globLiteralPrefix(q.glob) : '';
    // The longer literal prefix narrows the index seek; when the two disagree nothing matches.
    const seek = prefix.startsWith(literal) ? prefix : literal.startsWith(prefix) ? literal : null;
    if (seek === null) return { items: [], total: 0 };
    const glob = q.glob !== undefined ? globMatcher(q.glob) : null;
    const filtered = q.prefix !== undefined || q.glob !== undefined;
    const matches = (path: unknown): path is string =>
      typeof path === 'string' && path.startsWith(prefix) && (glob === null || glob(path));
    const host = q.host ?? null;

    if (kind === 'file') {
      // A file matches when any name it has or had matches; one result per inode, its latest version.
      const best = new Map<string, string>();
      for (const stmt of [Q.NAME_CANDIDATES, Q.FILE_CANDIDATES]) {
        for (const r of await this.rows(stmt, { seek, host }, 'search')) {
          const path = r.get('path');
          if (!matches(path)) continue;
          const ident = String(r.get('ident'));
          const old = best.get(ident);
          if (old === undefined || cmpPath(path, old) < 0) best.set(ident, path);
        }
      }
      const real = new Set<string>();
      for (const part of chunks([...best.keys()], this.chunk)) {
        for (const r of await this.rows(Q.IDENTS_WITH_VERSIONS, { idents: part }, 'search')) real.add(String(r.get('ident')));
      }
      const ordered = [...real].sort((a, b) => cmpPath(best.get(a)!, best.get(b)!) || cmpPath(a, b));
      const page = ordered.slice(offset, offset + limit);
      const latest = new Map<string, GraphNode>();
      for (const r of await this.rows(Q.LATEST_VERSIONS, { idents: page }, 'search')) {
        const n = toNode(r.get('v') as Record<string, unknown>);
        latest.set(splitFileVersion(n.id)!.ident, n);
      }
      return { items: page.map((i) => latest.get(i)!).filter(Boolean), total: ordered.length };
    }
    const hits = (await this.rows(Q.KIND_CANDIDATES, { kind, seek: filtered ? seek : null, host }, 'search'))
      .map((r) => ({ id: String(r.get('id')), path: (r.get('path') ?? null) as string | null, seq: num(r.get('seq')) }))
      .filter((h) => !filtered || matches(h.path))
      .sort((a, b) => cmpPath(a.path, b.path) || a.seq - b.seq);
    return { items: await this.nodesById(hits.slice(offset, offset + limit).map((h) => h.id), 'search'), total: hits.length };
  }

  // --- lineage -------------------------------------------------------------------------------

  /** One walk level for graph/lineage.ts: the edges of the frontier in the window. */
  private fetcher(s: QueryRunner, o: WalkOptions, kind: 'lineage' | 'tree') {
    return async (frontier: string[], dir: Direction, max = Number.MAX_SAFE_INTEGER): Promise<WalkEdge<string>[]> => {
      const stmt = kind === 'tree'
        ? (dir === 'down' ? Q.DOWN_FORK_EXEC : Q.UP_FORK_EXEC)
        : o.rule === 'strict'
          ? (dir === 'up' ? Q.UP_STRICT : Q.DOWN_STRICT)
          : (dir === 'up' ? Q.UP_ALL : Q.DOWN_ALL);
      const out: WalkEdge<string>[] = [];
      for (const part of chunks(frontier, this.chunk)) {
        if (out.length >= max) break;
        const res = await s.run(stmt, { ids: part, since: o.since, until: o.until, max: this.neo4j.int(Math.min(max - out.length, 2 ** 31 - 1)) });
        for (const r of res.records) {
          const kindOf = edgeKindOf(r.get('t') as string);
          const attrs = r.get('attrs');
          out.push({
            src: r.get('src') as string, dst: r.get('dst') as string, kind: kindOf, ts: num(r.get('ts')), pos: String(r.get('pos')),
            strict: kindOf === 'wasDerivedFrom' && r.get('rule') === 'strict',
            data: typeof attrs === 'string' ? JSON.parse(attrs) : undefined,
          });
        }
      }
      return out;
    };
  }

  /** Nodes (in walk order) and edges of a walk, with the gaps that concern them. */
  private async subgraph(ids: string[], walked: WalkEdge<string>[], truncated: boolean, what: string): Promise<Subgraph> {
    const nodes = await this.nodesById(ids, what);
    const edges: GraphEdge[] = walked.map((e) => {
      const g: GraphEdge = { kind: e.kind, from: e.src, to: e.dst, ts: e.ts, pos: e.pos };
      if (e.data) g.attrs = e.data as Record<string, unknown>;
      return g;
    });
    return { nodes, edges, gaps: await this.gapsFor(nodes, edges, what), truncated };
  }

  private async gapsFor(nodes: GraphNode[], edges: GraphEdge[], what: string): Promise<Gap[]> {
    if (edges.length === 0) return [];
    let from = Infinity;
    let to = -Infinity;
    for (const e of edges) { from = Math.min(from, e.ts); to = Math.max(to, e.ts); }
    const hosts = [...new Set(nodes.map((n) => n.host))];
    return (await this.rows(Q.GAPS_OVERLAPPING, { hosts, from, to }, what)).map((r) => toGap(r.get('g') as Record<string, unknown>));
  }

  private async lineage(id: string, dir: Direction, opts: LineageOptions | undefined, what: string): Promise<Subgraph> {
    const o = walkOptions(opts, this.where(what));
    await this.requireNode(id, what);
    const r = await this.guard(what, (s) => walk(id, dir, o, this.fetcher(s, o, 'lineage')));
    return this.subgraph(r.nodes, r.edges, r.truncated, what);
  }

  ancestors(id: string, opts?: LineageOptions): Promise<Subgraph> { return this.lineage(id, 'up', opts, 'ancestors'); }
  descendants(id: string, opts?: LineageOptions): Promise<Subgraph> { return this.lineage(id, 'down', opts, 'descendants'); }

  async path(from: string, to: string, opts?: LineageOptions): Promise<Subgraph | null> {
    const o = walkOptions(opts, this.where('path'), { depth: 32 });
    await this.requireNode(from, 'path');
    await this.requireNode(to, 'path');
    const found = await this.guard('path', async (s) => {
      const fetch = this.fetcher(s, o, 'lineage');
      return (await shortestPath(from, to, 'up', o, fetch)) ?? (await shortestPath(from, to, 'down', o, fetch));
    });
    if (!found) return null;
    const ids = [from];
    for (const e of found) ids.push(ids[ids.length - 1] === e.src ? e.dst : e.src);
    return this.subgraph(ids, found, false, 'path');
  }

  async processTree(rootId?: string, opts?: LineageOptions): Promise<Subgraph> {
    const o: WalkOptions = { ...walkOptions(opts, this.where('processTree'), { depth: 64 }), rule: 'history' };
    if (rootId !== undefined) {
      await this.requireNode(rootId, 'processTree');
      const r = await this.guard('processTree', (s) => walk(rootId, 'down', o, this.fetcher(s, o, 'tree')));
      return this.subgraph(r.nodes, r.edges, r.truncated, 'processTree');
    }
    const ids = (await this.rows(Q.PROCESSES_IN_WINDOW, { since: o.since, until: o.until, limit: this.neo4j.int(o.limit + 1) }, 'processTree'))
      .map((r) => String(r.get('id')));
    const truncated = ids.length > o.limit;
    if (truncated) ids.length = o.limit;
    const among = new Set(ids);
    const edges = await this.guard('processTree', async (s) => (await this.fetcher(s, o, 'tree')(ids, 'up', Number.MAX_SAFE_INTEGER))
      .filter((e) => among.has(e.dst) && e.ts >= o.since && e.ts <= o.until));
    return this.subgraph(ids, edges, truncated, 'processTree');
  }

  // --- overview ------------------------------------------------------------------------------

  async histogram(buckets: number, since?: number, until?: number): Promise<HistogramBucket[]> {
    if (!Number.isInteger(buckets) || buckets < 1 || buckets > 100_000) {
      throw new InputError(`buckets must be an integer in 1..100000, got ${String(buckets)}`, this.where('histogram'));
    }
    const [span] = await this.rows(Q.EDGE_SPAN, {}, 'histogram');
    const lo = since ?? (span?.get('lo') as number | null);
    const hi = until ?? (span?.get('hi') as number | null);
    if (lo === null || lo === undefined || hi === null || hi === undefined || hi < lo) return [];
    // Integer buckets like the SQLite store's: [from, to] inclusive, contiguous.
    const width = Math.max(1, Math.ceil((hi - lo + 1) / buckets));
    const n = Math.min(buckets, Math.ceil((hi - lo + 1) / width));
    const out: HistogramBucket[] = [];
    for (let i = 0; i < n; i++) out.push({ from: lo + i * width, to: Math.min(hi, lo + (i + 1) * width - 1), count: 0 });
    for (const r of await this.rows(Q.HISTOGRAM, { lo, hi, width }, 'histogram')) {
      const bucket = out[Math.min(n - 1, num(r.get('b')))];
      if (bucket) bucket.count += num(r.get('c'));
    }
    return out;
  }

  async feed(cursor: number, limit: number): Promise<{ nodes: GraphNode[]; cursor: number }> {
    if (!Number.isInteger(cursor) || cursor < 0) throw new InputError(`cursor must be a non-negative integer, got ${String(cursor)}`, this.where('feed'));
    if (!Number.isInteger(limit) || limit < 1) throw new InputError(`limit must be a positive integer, got ${String(limit)}`, this.where('feed'));
    const recs = await this.rows(Q.FEED, { cursor, limit: this.neo4j.int(limit) }, 'feed');
    const nodes: GraphNode[] = [];
    let next = cursor;
    for (const r of recs) {
      const p = r.get('n') as Record<string, unknown>;
      nodes.push(toNode(p));
      next = num(p.seq);
    }
    return { nodes, cursor: next };
  }

  async hosts(): Promise<string[]> {
    return (await this.rows(Q.HOSTS, {}, 'hosts')).map((r) => String(r.get('host')));
  }

  async stats(): Promise<StoreStats> {
    const nodes: StoreStats['nodes'] = {};
    for (const r of await this.rows(Q.COUNT_NODES, {}, 'stats')) nodes[r.get('k') as NodeKind] = num(r.get('c'));
    const edges: StoreStats['edges'] = {};
    for (const r of await this.rows(Q.COUNT_EDGES, {}, 'stats')) edges[edgeKindOf(String(r.get('t')))] = num(r.get('c'));
    const [g] = await this.rows(Q.COUNT_GAPS, {}, 'stats');
    return { nodes, edges, gaps: num(g?.get('c')), hosts: (await this.hosts()).length, checkpoint: await this.checkpoint() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.driver.close();
  }
}

function toName(p: Record<string, unknown>): NameRecord {
  const n: NameRecord = { file: String(p.file), host: String(p.host), path: String(p.path), since: num(p.since), pos: String(p.pos) };
  if (p.until !== null && p.until !== undefined) n.until = num(p.until);
  return n;
}

function toGap(p: Record<string, unknown>): Gap {
  return {
    id: String(p.id), host: String(p.host), src: String(p.src), from: num(p.from), to: num(p.to),
    count: num(p.count), reason: String(p.reason),
  };
}

/** The URL without credentials, for messages and `store.url`. */
function publicUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString().replace(/\/$/, '');
  } catch {
    return url;
  }
}

/**
 * Connect to a Neo4j server, check that it answers, and create the schema on first use.
 * An unreachable server is a StoreError.
 */
export async function openNeo4jStore(url: string, opts: Neo4jStoreOptions = {}): Promise<GraphStore> {
  const neo4j = opts.driver ?? await defaultDriverModule();
  const shown = publicUrl(url);
  const auth = opts.user !== undefined || opts.password !== undefined
    ? neo4j.auth.basic(opts.user ?? 'neo4j', opts.password ?? '')
    : undefined;
  let driver: Driver;
  try {
    driver = neo4j.driver(url, auth, { ...DRIVER_CONFIG, ...opts.config }) as Driver;
  } catch (err) {
    throw new InputError(`not a usable Neo4j URL: ${(err as Error).message}`, shown);
  }
  const session = driver.session();
  try {
    const info = await serverInfo(session);
    await ensureSchema(session, info);
    log.debug(`connected to Neo4j ${info.version} ${info.edition} at ${shown}`);
    return new Neo4jStore(shown, neo4j, driver, info, opts.chunk ?? 5000);
  } catch (err) {
    await session.close().then(undefined, () => undefined);
    await driver.close().then(undefined, () => undefined);
    if (err instanceof ProvError) throw err;
    const msg = (err as Error)?.message ?? String(err);
    throw new StoreError(`Neo4j at ${shown} ${isUnavailable(err) ? 'is unreachable' : 'refused the connection or the schema set-up'}: ${msg}`);
  } finally {
    await session.close().then(undefined, () => undefined);
  }
}
