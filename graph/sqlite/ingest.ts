/**
 * @module graph/sqlite/ingest
 * Applying an IngestBatch to SQLite in one transaction, with its checkpoint.
 *
 * Idempotence: nodes merge on their id, edges are unique on (kind, from, to, pos), names on
 * (file, since, path), gaps on id; the checkpoint keeps the per-stream maximum, so a replayed
 * or older batch is applied again harmlessly and never moves the checkpoint back. A batch is
 * never skipped because of its checkpoint.
 *
 * Speed: a new node is one `INSERT … ON CONFLICT DO NOTHING RETURNING nid`; only a node that
 * already exists pays for a read and a merge. Node ids map to their integer keys through a
 * bounded in-memory cache, dropped whenever a transaction fails.
 */
import type Database from 'better-sqlite3';
import type { GraphNode, IngestBatch } from '../model.js';
import { InputError } from '../errors.js';
import { EDGE_CODE, NODE_CODE, edgeAttrsText, searchPath } from './codec.js';
import { hostFromId, kindFromId, splitFileVersion } from '../model.js';

const NID_CACHE_MAX = 500_000;

interface ExistingRow { nid: number; kind: number; host: string; label: string; ts: number; attrs: string }

export class SqliteIngester {
  private readonly nidCache = new Map<string, number>();
  private readonly knownHosts = new Set<string>();
  private readonly insertNode: Database.Statement;
  private readonly selectNode: Database.Statement;
  private readonly updateNode: Database.Statement;
  private readonly selectNid: Database.Statement;
  private readonly insertEdge: Database.Statement;
  private readonly insertName: Database.Statement;
  private readonly endName: Database.Statement;
  private readonly insertGap: Database.Statement;
  private readonly upsertCheckpoint: Database.Statement;
  private readonly insertHost: Database.Statement;
  private readonly maxFseq: Database.Statement;
  private readonly applyTx: (batch: IngestBatch) => void;
  private readonly addCount: Database.Statement;
  private fseq = 0;
  /** Rows this batch added, by counter key (see schema.ts counts). */
  private added = new Map<string, number>();

  constructor(db: Database.Database, private readonly where: string) {
    this.insertNode = db.prepare(`INSERT INTO nodes (id, kind, host, label, ts, attrs, ident, ver, path, fseq)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING nid`);
    this.selectNode = db.prepare('SELECT nid, kind, host, label, ts, attrs FROM nodes WHERE id = ?');
    this.updateNode = db.prepare(`UPDATE nodes SET kind = ?, host = ?, label = ?, ts = ?, attrs = ?, ident = ?, ver = ?,
      path = ?, fseq = ? WHERE nid = ?`);
    this.selectNid = db.prepare('SELECT nid FROM nodes WHERE id = ?').pluck();
    this.insertEdge = db.prepare(`INSERT INTO edges (src, kind, dst, pos, ts, strict, attrs) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT DO NOTHING`);
    this.insertName = db.prepare(`INSERT INTO names (file, since, path, host, until, pos) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT DO UPDATE SET until = coalesce(names.until, excluded.until)`);
    this.endName = db.prepare(`UPDATE names SET until = ? WHERE file = ? AND path = ? AND until IS NULL AND since <= ?`);
    this.insertGap = db.prepare(`INSERT INTO gaps (id, host, src, t_from, t_to, count, reason) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT DO NOTHING`);
    this.upsertCheckpoint = db.prepare(`INSERT INTO checkpoint (stream, seq) VALUES (?, ?)
      ON CONFLICT (stream) DO UPDATE SET seq = max(seq, excluded.seq)`);
    this.insertHost = db.prepare('INSERT INTO hosts (host) VALUES (?) ON CONFLICT DO NOTHING');
    this.maxFseq = db.prepare('SELECT coalesce(max(fseq), 0) FROM nodes').pluck();
    this.addCount = db.prepare('INSERT INTO counts (what, n) VALUES (?, ?) ON CONFLICT (what) DO UPDATE SET n = n + excluded.n');
    this.applyTx = db.transaction((batch: IngestBatch) => this.applyInTx(batch));
  }

  /** Apply one batch atomically. Throws InputError (naming the record) and changes nothing on bad input. */
  apply(batch: IngestBatch): void {
    try {
      this.applyTx(batch);
    } catch (err) {
      // Keys handed out inside the failed transaction no longer exist.
      this.nidCache.clear();
      this.knownHosts.clear();
      throw err;
    }
  }

  private count(key: string, by: number): void {
    this.added.set(key, (this.added.get(key) ?? 0) + by);
  }

  private applyInTx(b: IngestBatch): void {
    this.fseq = this.maxFseq.get() as number;
    this.added = new Map();
    const nodes = b.nodes ?? [];
    for (let i = 0; i < nodes.length; i++) this.putNode(nodes[i]!, i);
    const edges = b.edges ?? [];
    for (let i = 0; i < edges.length; i++) {
      const e = edges[i]!;
      const kind = EDGE_CODE.get(e?.kind);
      const where = `${this.where}: batch edge #${i}`;
      if (kind === undefined) throw new InputError(`unknown edge kind ${JSON.stringify(e?.kind)}`, where);
      if (typeof e.from !== 'string' || typeof e.to !== 'string' || e.from === '' || e.to === '') throw new InputError('edge ends must be non-empty node ids', where);
      if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) throw new InputError(`ts must be a finite number, got ${String(e.ts)}`, `${where} (${e.pos})`);
      if (typeof e.pos !== 'string' || e.pos === '') throw new InputError('pos must be a non-empty journal position', where);
      const src = this.nidOf(e.from, e.ts);
      const dst = this.nidOf(e.to, e.ts);
      const strict = e.kind === 'wasDerivedFrom' && e.attrs?.rule === 'strict' ? 1 : 0;
      if (this.insertEdge.run(src, kind, dst, e.pos, e.ts, strict, edgeAttrsText(e.attrs)).changes > 0) this.count(`edge:${kind}`, 1);
    }
    const names = b.names ?? [];
    for (let i = 0; i < names.length; i++) {
      const n = names[i]!;
      if (typeof n?.file !== 'string' || typeof n.path !== 'string' || typeof n.since !== 'number') {
        throw new InputError('a name needs file (string), path (string) and since (number)', `${this.where}: batch name #${i}`);
      }
      this.insertName.run(n.file, n.since, n.path, n.host ?? hostFromId(n.file), n.until ?? null, n.pos ?? '');
    }
    const ends = b.nameEnds ?? [];
    for (let i = 0; i < ends.length; i++) {
      const n = ends[i]!;
      if (typeof n?.file !== 'string' || typeof n.path !== 'string' || typeof n.until !== 'number') {
        throw new InputError('a name end needs file, path and until', `${this.where}: batch nameEnd #${i}`);
      }
      this.endName.run(n.until, n.file, n.path, n.until);
    }
    const gaps = b.gaps ?? [];
    for (let i = 0; i < gaps.length; i++) {
      const g = gaps[i]!;
      if (typeof g?.id !== 'string' || typeof g.from !== 'number' || typeof g.to !== 'number') {
        throw new InputError('a gap needs id, from and to', `${this.where}: batch gap #${i}`);
      }
      if (this.insertGap.run(g.id, g.host ?? '', g.src ?? '', g.from, g.to, g.count ?? 0, g.reason ?? '').changes > 0) this.count('gaps', 1);
      this.noteHost(g.host ?? '');
    }
    for (const [key, n] of this.added) if (n !== 0) this.addCount.run(key, n);
    for (const [stream, seq] of Object.entries(b.checkpoint ?? {})) {
      if (typeof seq !== 'number' || !Number.isFinite(seq)) throw new InputError(`checkpoint of stream "${stream}" is not a number`, `${this.where}: batch checkpoint`);
      this.upsertCheckpoint.run(stream, seq);
    }
  }

  private putNode(n: GraphNode, i: number): void {
    const where = `${this.where}: batch node #${i}`;
    const kind = NODE_CODE.get(n?.kind);
    if (kind === undefined) throw new InputError(`unknown node kind ${JSON.stringify(n?.kind)}`, where);
    if (typeof n.id !== 'string' || n.id === '') throw new InputError('node id must be a non-empty string', where);
    if (typeof n.ts !== 'number' || !Number.isFinite(n.ts)) throw new InputError(`ts must be a finite number, got ${String(n.ts)}`, `${where} (${n.id})`);
    const host = typeof n.host === 'string' ? n.host : '';
    const label = typeof n.label === 'string' ? n.label : n.id;
    const attrs = n.attrs ?? {};
    const fv = n.kind === 'file' ? splitFileVersion(n.id) : null;
    const attrsText = JSON.stringify(attrs);
    const row = this.insertNode.get(n.id, kind, host, label, n.ts, attrsText, fv?.ident ?? null, fv?.ver ?? null,
      searchPath(n), this.fseq + 1) as { nid: number } | undefined;
    if (row) {
      this.fseq++;
      this.count(`node:${kind}`, 1);
      this.cacheNid(n.id, row.nid);
      this.noteHost(host);
      return;
    }
    const old = this.selectNode.get(n.id) as ExistingRow;
    this.cacheNid(n.id, old.nid);
    const merged = { ...(JSON.parse(old.attrs) as Record<string, unknown>), ...attrs };
    const mergedText = JSON.stringify(merged);
    if (old.kind === kind && old.host === host && old.label === label && old.ts === n.ts && old.attrs === mergedText) return;
    this.fseq++;
    if (old.kind !== kind) { this.count(`node:${old.kind}`, -1); this.count(`node:${kind}`, 1); }
    this.updateNode.run(kind, host, label, n.ts, mergedText, fv?.ident ?? null, fv?.ver ?? null,
      searchPath({ ...n, attrs: merged }), this.fseq, old.nid);
    this.noteHost(host);
  }

  /** The key of a node id; an edge naming an unknown node creates a placeholder that a later node fills in. */
  private nidOf(id: string, ts: number): number {
    const cached = this.nidCache.get(id);
    if (cached !== undefined) return cached;
    let nid = this.selectNid.get(id) as number | undefined;
    if (nid === undefined) {
      const kind = kindFromId(id);
      const host = hostFromId(id);
      const fv = kind === 'file' ? splitFileVersion(id) : null;
      const row = this.insertNode.get(id, NODE_CODE.get(kind), host, id, ts, '{}', fv?.ident ?? null, fv?.ver ?? null, null, ++this.fseq) as { nid: number };
      nid = row.nid;
      this.count(`node:${NODE_CODE.get(kind)!}`, 1);
      this.noteHost(host);
    }
    this.cacheNid(id, nid);
    return nid;
  }

  private cacheNid(id: string, nid: number): void {
    if (this.nidCache.size >= NID_CACHE_MAX) this.nidCache.clear();
    this.nidCache.set(id, nid);
  }

  private noteHost(host: string): void {
    if (host === '' || this.knownHosts.has(host)) return;
    this.insertHost.run(host);
    this.knownHosts.add(host);
  }
}
