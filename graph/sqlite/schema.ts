/**
 * @module graph/sqlite/schema
 * The SQLite schema of the lineage graph and its version check.
 *
 * Nodes get an integer surrogate key (`nid`) so that the edge table and its indexes hold small
 * integers, not 40-byte ids. Edges are a WITHOUT ROWID table clustered on (src, kind, dst, pos):
 * that key is the edge identity of graph/model.ts (idempotent ingest) and, being clustered on
 * `src`, walking up reads each node's causes from one B-tree page run. `edges_dst` serves the
 * walk down and gives a node's latest effects without sorting them all. Names keep the path history of each inode; prefix search is a range over
 * `names_path` / `nodes_path`.
 */
import type Database from 'better-sqlite3';
import { StoreError } from '../errors.js';

export const SCHEMA_VERSION = 2;

/** Counters kept by ingest so that stats() need not count a million rows ('node:<kind code>', 'edge:<kind code>', 'gaps'). */
const COUNTS_DDL = `CREATE TABLE IF NOT EXISTS counts (what TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID;`;

/** Fill the counters from the tables (creation of version 2 from a version 1 database). */
const COUNTS_FILL = `
DELETE FROM counts;
INSERT INTO counts (what, n) SELECT 'node:' || kind, count(*) FROM nodes GROUP BY kind;
INSERT INTO counts (what, n) SELECT 'edge:' || kind, count(*) FROM edges GROUP BY kind;
INSERT INTO counts (what, n) SELECT 'gaps', count(*) FROM gaps;`;

const DDL = `
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
  nid   INTEGER PRIMARY KEY,
  id    TEXT NOT NULL UNIQUE,
  kind  INTEGER NOT NULL,
  host  TEXT NOT NULL,
  label TEXT NOT NULL,
  ts    INTEGER NOT NULL,
  attrs TEXT NOT NULL,
  ident TEXT,              -- file identity (id without the version) for file versions
  ver   INTEGER,           -- version number of a file version
  path  TEXT,              -- the searchable name: file path, process exe, socket addr
  fseq  INTEGER NOT NULL   -- feed order: bumped on insert and on every merge that changes the node
);
CREATE INDEX IF NOT EXISTS nodes_ident ON nodes(ident, ver) WHERE ident IS NOT NULL;
CREATE INDEX IF NOT EXISTS nodes_path ON nodes(kind, path) WHERE path IS NOT NULL;
CREATE INDEX IF NOT EXISTS nodes_fseq ON nodes(fseq);
CREATE INDEX IF NOT EXISTS nodes_kind_ts ON nodes(kind, ts);
CREATE TABLE IF NOT EXISTS edges (
  src    INTEGER NOT NULL,
  kind   INTEGER NOT NULL,
  dst    INTEGER NOT NULL,
  pos    TEXT NOT NULL,
  ts     INTEGER NOT NULL,
  strict INTEGER NOT NULL DEFAULT 0,
  attrs  TEXT,
  PRIMARY KEY (src, kind, dst, pos)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS edges_dst ON edges(dst, ts);
CREATE INDEX IF NOT EXISTS edges_ts ON edges(ts);
CREATE TABLE IF NOT EXISTS names (
  file  TEXT NOT NULL,
  since INTEGER NOT NULL,
  path  TEXT NOT NULL,
  host  TEXT NOT NULL,
  until INTEGER,
  pos   TEXT NOT NULL,
  PRIMARY KEY (file, since, path)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS names_path ON names(path);
CREATE TABLE IF NOT EXISTS gaps (
  id     TEXT PRIMARY KEY,
  host   TEXT NOT NULL,
  src    TEXT NOT NULL,
  t_from INTEGER NOT NULL,
  t_to   INTEGER NOT NULL,
  count  INTEGER NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS gaps_host ON gaps(host, t_from);
CREATE TABLE IF NOT EXISTS checkpoint (stream TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS hosts (host TEXT PRIMARY KEY);
${COUNTS_DDL}
`;

/** Check that a database (opened read-only) is a prov graph of the supported schema version. */
export function checkSchema(db: Database.Database, where: string): void {
  const has = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).get();
  if (!has) throw new StoreError('not a prov graph database (no schema_version table)', where);
  const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
  if (row?.version !== SCHEMA_VERSION) {
    throw new StoreError(`graph schema version ${String(row?.version)} is not the supported version ${SCHEMA_VERSION}`, where);
  }
}

/** Create the schema in an empty database, or check the version of an existing one. */
export function ensureSchema(db: Database.Database, where: string): void {
  const hasVersion = db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`).get();
  if (hasVersion) {
    const row = db.prepare('SELECT version FROM schema_version').get() as { version: number } | undefined;
    if (row?.version === 1) {
      // Version 2 only adds the counters: derive them once from the data.
      db.transaction(() => {
        db.exec(COUNTS_DDL + COUNTS_FILL);
        db.prepare('UPDATE schema_version SET version = ?').run(SCHEMA_VERSION);
      })();
      return;
    }
    if (row && row.version !== SCHEMA_VERSION) {
      throw new StoreError(`graph schema version ${row.version} is not the supported version ${SCHEMA_VERSION}`, where);
    }
    if (row) return;
  } else {
    const other = db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1`).get() as { name: string } | undefined;
    if (other) throw new StoreError(`not a prov graph database (has table "${other.name}" but no schema_version)`, where);
  }
  db.transaction(() => {
    db.exec(DDL);
    db.prepare('INSERT INTO schema_version (version) VALUES (?)').run(SCHEMA_VERSION);
  })();
}
