/**
 * @module graph/neo4j/store
 * The Neo4j GraphStore: several hosts' collectors write into one database through Bolt.
 *
 * Ingest is one explicit transaction per batch: UNWIND chunks that MERGE nodes on their stable
 * id and edges on (type, from, to, pos), the name records, the gaps and the checkpoint, all
 * committed together; replaying a batch finds everything in place and changes nothing. Any
 * failure (server gone, write refused) rolls the whole batch back and surfaces as a
 * StoreError; the caller keeps its journal checkpoint and retries the same batch later.
 *
 * The store speaks only the driver API and Cypher that both neo4j-driver 4.0.x (Bolt v1, the
 * 3.1.1 test server) and the current driver (Neo4j 5) support; see ./driver.ts and ./cypher.ts.
 */
import picomatch from 'picomatch';
import { logger } from '../../collector/log.js';
import { InputError, ProvError, StoreError } from '../errors.js';
import type { Checkpoint, EdgeKind, Gap, GraphEdge, GraphNode, IngestBatch, NameRecord, NodeKind } from '../model.js';
import type {
  GraphStore, HistogramBucket, LineageOptions, NodeDetails, Page, SearchQuery, StoreStats, Subgraph,
} from '../store.js';
import { defaultDriverModule, type Driver, type DriverRecord, type DriverSession, type Neo4jModule, type Params, type QueryRunner } from './driver.js';
import * as Q from './cypher.js';
import { walk } from './lineage.js';
import { EDGE_KINDS, NODE_KINDS, edgeRow, identityOf, nodeRow, toEdge, toNode } from './mapping.js';
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

function groupBy<T, K extends string>(xs: T[], key: (x: T) => K): Map<K, T[]> {
  const m = new Map<K, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x); else m.set(k, [x]);
  }
  return m;
}

function num(v: unknown): number { return typeof v === 'number' ? v : Number(v ?? 0); }

/** Check a batch's shape before anything is sent, so bad input says where it is. */
function validate(batch: IngestBatch): void {
  batch.nodes.forEach((n, i) => {
    if (typeof n.id !== 'string' || !n.id) throw new InputError('node without id', `batch.nodes[${i}]`);
    if (!NODE_KINDS.includes(n.kind)) throw new InputError(`unknown node kind ${JSON.stringify(n.kind)}`, `batch.nodes[${i}] (${n.id})`);
    if (!Number.isFinite(n.ts)) throw new InputError('ts is not a number', `batch.nodes[${i}] (${n.id})`);
  });
  batch.edges.forEach((e, i) => {
    if (!EDGE_KINDS.includes(e.kind)) throw new InputError(`unknown edge kind ${JSON.stringify(e.kind)}`, `batch.edges[${i}]`);
    if (typeof e.from !== 'string' || typeof e.to !== 'string' || typeof e.pos !== 'string') {
      throw new InputError('edge needs string from, to and pos', `batch.edges[${i}]`);
    }
    if (!Number.isFinite(e.ts)) throw new InputError('ts is not a number', `batch.edges[${i}] (${e.pos})`);
  });
}

class Neo4jStore implements GraphStore {
  constructor(
    readonly url: string,
    private readonly neo4j: Neo4jModule,
    private readonly driver: Driver,
    readonly server: ServerInfo,
    private readonly chunk: number,
  ) {}

  /** Run `fn` in a session; every driver failure becomes a StoreError naming the server. */
  private async guard<T>(what: string, fn: (s: DriverSession) => Promise<T>): Promise<T> {
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
    if (isUnavailable(err)) return new StoreError(`Neo4j at ${this.url} is unreachable (${what}): ${msg}`);
    const code = (err as { code?: string })?.code;
    return new StoreError(`Neo4j at ${this.url} refused ${what}${code ? ` [${code}]` : ''}: ${msg}`);
  }

  private async rows(q: string, p: Params = {}, what = 'a query'): Promise<DriverRecord[]> {
    return this.guard(what, async (s) => (await s.run(q, p)).records);
  }

  async ingest(batch: IngestBatch): Promise<void> {
    validate(batch);
    await this.guard('an ingest', async (s) => {
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

  private async applyBatch(tx: QueryRunner, batch: IngestBatch): Promise<void> {
    const n = batch.nodes.length;
    let base = 0;
    if (n > 0) {
      const r = await tx.run(Q.BUMP_SEQ, { n });
      base = num(r.records[0]?.get('base'));
    }
    const rows = batch.nodes.map((node, i) => ({ node, row: nodeRow(node, i + 1) }));
    for (const [kind, list] of groupBy(rows, (x) => x.node.kind)) {
      for (const part of chunks(list, this.chunk)) {
        await tx.run(Q.UPSERT_NODE[kind as NodeKind], { rows: part.map((x) => x.row), base });
      }
    }
    let dropped = 0;
    for (const [kind, list] of groupBy(batch.edges, (e) => e.kind)) {
      for (const part of chunks(list, this.chunk)) {
        const r = await tx.run(Q.MERGE_EDGE[kind as EdgeKind], { rows: part.map(edgeRow) });
        dropped += part.length - num(r.records[0]?.get('c'));
      }
    }
    if (dropped > 0) log.warn(`ingest: ${dropped} edge(s) name a node that is in neither this batch nor the store; dropped`);
    for (const part of chunks(batch.names, this.chunk)) {
      await tx.run(Q.MERGE_NAMES, { rows: part.map((x) => ({ ...x, until: x.until ?? null })) });
    }
    for (const part of chunks(batch.nameEnds, this.chunk)) await tx.run(Q.END_NAMES, { rows: part });
    for (const part of chunks(batch.gaps, this.chunk)) await tx.run(Q.MERGE_GAPS, { rows: part });
    const cp = Object.entries(batch.checkpoint).map(([stream, seq]) => ({ stream, seq }));
    if (cp.length > 0) await tx.run(Q.SET_CHECKPOINT, { rows: cp });
  }

  async checkpoint(): Promise<Checkpoint> {
    const recs = await this.rows(Q.GET_CHECKPOINT, {}, 'reading the checkpoint');
    const cp: Checkpoint = {};
    for (const r of recs) cp[String(r.get('stream'))] = num(r.get('seq'));
    return cp;
  }

  private async getNode(id: string): Promise<GraphNode | null> {
    const [r] = await this.rows(Q.GET_NODE, { id });
    return r ? toNode(r.get('n') as Record<string, unknown>) : null;
  }

  async node(id: string): Promise<NodeDetails | null> {
    const node = await this.getNode(id);
    if (!node) return null;
    const around = async (q: string, outward: boolean) => (await this.rows(q, { id })).map((r) => {
      const other = toNode(r.get('m') as Record<string, unknown>);
      const edge = toEdge(r.get('t') as string, outward ? id : other.id, outward ? other.id : id, r.get('e') as Record<string, unknown>);
      return { edge, node: other };
    });
    let names: NameRecord[] = [];
    let versions: GraphNode[] = [];
    if (node.kind === 'file') {
      const ident = identityOf(id);
      names = (await this.rows(Q.NAMES_OF, { file: ident })).map((r) => toName(r.get('x') as Record<string, unknown>));
      versions = (await this.rows(Q.VERSIONS_OF, { ident })).map((r) => toNode(r.get('v') as Record<string, unknown>));
    }
    return { node, names, versions, out: await around(Q.NODE_OUT, true), in: await around(Q.NODE_IN, false) };
  }

  async resolvePath(path: string, at?: number, host?: string): Promise<GraphNode | null> {
    const p = { path, at: at ?? null, host: host ?? null };
    let [r] = await this.rows(Q.NAMES_AT, p);
    if (!r) [r] = await this.rows(Q.NODES_WITH_PATH, p);
    if (!r) return null;
    const ident = String(r.get('file'));
    let [v] = await this.rows(Q.VERSION_AT, { ident, at: at ?? null });
    if (!v) [v] = await this.rows(Q.FIRST_VERSION, { ident });
    return v ? toNode(v.get('v') as Record<string, unknown>) : null;
  }

  async search(q: SearchQuery): Promise<Page<GraphNode>> {
    const kind = q.kind ?? 'file';
    const offset = q.offset ?? 0;
    const limit = q.limit ?? 100;
    const host = q.host ?? null;
    const pattern = q.glob ?? null;
    const isMatch = pattern ? picomatch(pattern, { dot: true }) : null;
    const literal = pattern ? picomatch.scan(pattern).base : '';
    const prefix = q.prefix ?? '';
    // The longer literal prefix, for the STARTS WITH seek (none can match when they disagree).
    const seek = prefix.startsWith(literal) ? prefix : literal.startsWith(prefix) ? literal : null;
    if (seek === null) return { items: [], total: 0 };
    const ok = (path: string) => path.startsWith(prefix) && (!isMatch || isMatch(path));
    let found: GraphNode[];
    if (kind === 'file') {
      const idents = new Set<string>();
      for (const qq of [Q.NAME_CANDIDATES, Q.FILE_PATH_CANDIDATES]) {
        for (const r of await this.rows(qq, { prefix: seek, host }, 'a search')) {
          if (ok(String(r.get('path')))) idents.add(String(r.get('file')));
        }
      }
      found = (await this.rows(Q.LATEST_VERSIONS, { idents: [...idents] })).map((r) => toNode(r.get('v') as Record<string, unknown>));
    } else {
      found = (await this.rows(Q.KIND_CANDIDATES, { kind, host }, 'a search'))
        .map((r) => toNode(r.get('n') as Record<string, unknown>))
        .filter((n) => ok(kind === 'process' ? String(n.attrs.exe ?? '') : n.label));
    }
    found.sort((a, b) => a.ts - b.ts || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return { items: found.slice(offset, offset + limit), total: found.length };
  }

  private async withGaps(g: Subgraph): Promise<Subgraph> {
    if (g.edges.length === 0) return g;
    const hosts = [...new Set(g.nodes.map((n) => n.host))];
    let from = Infinity;
    let to = -Infinity;
    for (const e of g.edges) { from = Math.min(from, e.ts); to = Math.max(to, e.ts); }
    const gaps = (await this.rows(Q.GAPS_OVERLAPPING, { hosts, from, to })).map((r) => toGap(r.get('g') as Record<string, unknown>));
    return { ...g, gaps };
  }

  private async lineage(id: string, opts: LineageOptions, up: boolean): Promise<Subgraph> {
    const start = await this.getNode(id);
    if (!start) return { nodes: [], edges: [], gaps: [], truncated: false };
    const strict = opts.rule === 'strict';
    const step = `${up ? 'up' : 'down'}-${strict ? 'strict' : 'history'}` as Q.Step;
    const g = await this.guard('a lineage query', (s) => walk(s, [start], step, { ...opts, bounded: !strict }));
    return this.withGaps(g);
  }

  ancestors(id: string, opts: LineageOptions = {}): Promise<Subgraph> { return this.lineage(id, opts, true); }
  descendants(id: string, opts: LineageOptions = {}): Promise<Subgraph> { return this.lineage(id, opts, false); }

  async path(from: string, to: string, opts: LineageOptions = {}): Promise<Subgraph | null> {
    const a = await this.getNode(from);
    const b = await this.getNode(to);
    if (!a || !b) return null;
    if (from === to) return { nodes: [a], edges: [], gaps: [], truncated: false };
    for (const step of ['up-any', 'down-any'] as const) {
      const parents = new Map<string, GraphEdge>();
      const g = await this.guard('a path query', (s) => walk(s, [a], step, { ...opts, limit: Infinity }, parents, to));
      if (!parents.has(to)) continue;
      const byId = new Map(g.nodes.map((n) => [n.id, n]));
      const edges: GraphEdge[] = [];
      const nodes: GraphNode[] = [b];
      for (let at = to; at !== from;) {
        const e = parents.get(at)!;
        edges.unshift(e);
        at = step === 'up-any' ? e.from : e.to;
        nodes.unshift(byId.get(at)!);
      }
      return this.withGaps({ nodes, edges, gaps: [], truncated: false });
    }
    return null;
  }

  async processTree(rootId?: string, opts: LineageOptions = {}): Promise<Subgraph> {
    let roots: GraphNode[];
    if (rootId) {
      const r = await this.getNode(rootId);
      if (!r || r.kind !== 'process') return { nodes: [], edges: [], gaps: [], truncated: false };
      roots = [r];
    } else {
      const ids = (await this.rows(Q.TREE_ROOTS, { host: null })).map((r) => String(r.get('id')));
      roots = [];
      for (const part of chunks(ids, this.chunk)) {
        const recs = await this.rows(Q.NODES_BY_ID, { ids: part });
        roots.push(...recs.map((r) => toNode(r.get('n') as Record<string, unknown>)));
      }
    }
    const g = await this.guard('a process tree', (s) => walk(s, roots, 'down-tree', opts));
    return this.withGaps(g);
  }

  async histogram(buckets: number, since?: number, until?: number): Promise<HistogramBucket[]> {
    if (!Number.isInteger(buckets) || buckets < 1) throw new InputError(`buckets must be a positive integer, got ${buckets}`, 'histogram');
    const [span] = await this.rows(Q.EDGE_SPAN, { since: since ?? null, until: until ?? null });
    const lo = since ?? (span?.get('lo') as number | null);
    const hi = until ?? (span?.get('hi') as number | null);
    if (lo === null || lo === undefined || hi === null || hi === undefined) return [];
    const width = Math.max((hi - lo) / buckets, Number.MIN_VALUE);
    const out: HistogramBucket[] = Array.from({ length: buckets }, (_, i) => ({
      from: lo + i * width, to: i === buckets - 1 ? hi : lo + (i + 1) * width, count: 0,
    }));
    const recs = await this.rows(Q.EDGE_TIMES_BUCKETED, { lo, hi, n: this.neo4j.int(buckets), width: hi > lo ? width : 1 });
    for (const r of recs) {
      const b = Math.min(buckets - 1, Math.max(0, num(r.get('b'))));
      out[b]!.count += num(r.get('c'));
    }
    return out;
  }

  async feed(cursor: number, limit: number): Promise<{ nodes: GraphNode[]; cursor: number }> {
    const recs = await this.rows(Q.FEED, { cursor, limit: this.neo4j.int(Math.max(0, Math.floor(limit))) });
    const nodes: GraphNode[] = [];
    let next = cursor;
    for (const r of recs) {
      const p = r.get('n') as Record<string, unknown>;
      nodes.push(toNode(p));
      next = Math.max(next, num(p.seq));
    }
    return { nodes, cursor: next };
  }

  async hosts(): Promise<string[]> {
    return (await this.rows(Q.HOSTS)).map((r) => String(r.get('host')));
  }

  async stats(): Promise<StoreStats> {
    const nodes: StoreStats['nodes'] = {};
    for (const r of await this.rows(Q.COUNT_NODES)) nodes[r.get('k') as NodeKind] = num(r.get('c'));
    const edges: StoreStats['edges'] = {};
    for (const r of await this.rows(Q.COUNT_EDGES)) edges[toEdge(String(r.get('t')), '', '', {}).kind] = num(r.get('c'));
    const [g] = await this.rows(Q.COUNT_GAPS);
    return { nodes, edges, gaps: num(g?.get('c')), hosts: (await this.hosts()).length, checkpoint: await this.checkpoint() };
  }

  async close(): Promise<void> {
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

/** `bolt://user@host:port` without credentials, for messages and `store.url`. */
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
 * Connect to a Neo4j server, check it answers, and create the schema on first use.
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
    await driver.close().then(undefined, () => undefined);
    const msg = (err as Error)?.message ?? String(err);
    if (err instanceof ProvError) throw err;
    throw new StoreError(`Neo4j at ${shown} ${isUnavailable(err) ? 'is unreachable' : 'refused the connection or schema set-up'}: ${msg}`);
  } finally {
    await session.close().then(undefined, () => undefined);
  }
}
