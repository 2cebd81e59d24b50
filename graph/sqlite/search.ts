/**
 * @module graph/sqlite/search
 * Finding files by name in SQLite: search by path prefix (an index range over names and node
 * paths) or glob (picomatch, run inside SQLite over the range of the glob's literal prefix), and
 * resolving a path to the file version that held it, now or at a given time.
 */
import type Database from 'better-sqlite3';
import type { GraphNode } from '../model.js';
import type { Page, SearchQuery } from '../store.js';
import { InputError } from '../errors.js';
import { checkSearchQuery, globLiteralPrefix, globMatcher, prefixRange } from '../glob.js';
import { NODE_CODE, nodeFromRow, type NodeRow } from './codec.js';

const NODE_COLS = 'nid, id, kind, host, label, ts, attrs';
const FILE = NODE_CODE.get('file')!;

export class PathQueries {
  private readonly stmts;

  constructor(private readonly db: Database.Database) {
    db.function('prov_glob', { deterministic: true }, (glob: string, s: string | null) => (s !== null && globMatcher(glob)(s) ? 1 : 0));
    this.stmts = {
      pathNamed: db.prepare('SELECT 1 FROM names WHERE path = ? LIMIT 1').pluck(),
      latestVersion: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ident = ? ORDER BY ver DESC LIMIT 1`),
      versionAt: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ident = ? AND ts <= ? ORDER BY ver DESC LIMIT 1`),
      firstVersion: db.prepare(`SELECT ${NODE_COLS} FROM nodes WHERE ident = ? ORDER BY ver LIMIT 1`),
    };
  }

  /** The file version that holds `path` (see GraphStore.resolvePath). */
  resolve(path: string, at: number | undefined, host: string | undefined, where: string): GraphNode | null {
    if (typeof path !== 'string') throw new InputError('path must be a string', where);
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
  }

  /** Files (or other nodes) whose name matches (see GraphStore.search). */
  search(q: SearchQuery, where: string): Page<GraphNode> {
    const { kind, limit, offset } = checkSearchQuery(q, where);
    const kindCode = NODE_CODE.get(kind)!;

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
  }
}
