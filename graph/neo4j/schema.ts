/**
 * @module graph/neo4j/schema
 * Constraints and indexes, created on first use, in the syntax of the server's version:
 * Neo4j 3.x–4.3 know `CREATE CONSTRAINT ON … ASSERT …` / `CREATE INDEX ON :L(p)`; 4.4 and 5.x
 * know `… IF NOT EXISTS FOR … REQUIRE …` (5.x dropped the old form).
 *
 * Why the id constraint matters beyond integrity: every lookup by id in the store carries a
 * `USING INDEX` hint on it. Right after a bulk load the 3.1 planner sometimes planned
 * `UNWIND … MATCH (a {id: r.id})` as a scan per row (../shared/notes/neo4j.md); the hint takes
 * that choice away from it.
 */
import type { QueryRunner } from './driver.js';

export interface ServerInfo {
  version: string;
  major: number;
  edition: string;
}

/** The server's version, from `dbms.components()` (present from 3.0 to 5.x). */
export async function serverInfo(run: QueryRunner): Promise<ServerInfo> {
  const r = await run.run('CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition');
  const kernel = r.records.find((x) => String(x.get('name')).startsWith('Neo4j')) ?? r.records[0];
  const version = String((kernel?.get('versions') as string[] | undefined)?.[0] ?? '0');
  return { version, major: Number.parseInt(version, 10) || 0, edition: String(kernel?.get('edition') ?? '') };
}

/** [label, property] pairs. */
const UNIQUE: Array<[string, string]> = [
  ['ProvNode', 'id'], ['ProvMeta', 'key'], ['ProvCheckpoint', 'stream'], ['ProvGap', 'id'], ['ProvHost', 'name'],
];
const INDEXED: Array<[string, string]> = [
  ['ProvNode', 'ident'], ['ProvNode', 'spath'], ['ProvNode', 'seq'], ['ProvName', 'file'], ['ProvName', 'path'],
];

/** The schema statements for a server version (labels and properties are fixed identifiers). */
export function schemaStatements(info: ServerInfo): string[] {
  const modern = info.major > 4 || (info.major === 4 && Number.parseInt(info.version.split('.')[1] ?? '0', 10) >= 4);
  const name = (kind: string, l: string, p: string) => `prov_${kind}_${l.toLowerCase()}_${p}`;
  if (modern) {
    return [
      ...UNIQUE.map(([l, p]) => `CREATE CONSTRAINT ${name('uniq', l, p)} IF NOT EXISTS FOR (n:${l}) REQUIRE n.${p} IS UNIQUE`),
      ...INDEXED.map(([l, p]) => `CREATE INDEX ${name('idx', l, p)} IF NOT EXISTS FOR (n:${l}) ON (n.${p})`),
    ];
  }
  return [
    ...UNIQUE.map(([l, p]) => `CREATE CONSTRAINT ON (n:${l}) ASSERT n.${p} IS UNIQUE`),
    ...INDEXED.map(([l, p]) => `CREATE INDEX ON :${l}(${p})`),
  ];
}

/** True for "this index/constraint already exists" answers (4.0–4.3 old syntax on a second run). */
function alreadyExists(err: unknown): boolean {
  const code = String((err as { code?: string })?.code ?? '');
  return /AlreadyExists|EquivalentSchemaRule/i.test(code);
}

/**
 * Create what is missing, each statement in its own auto-commit transaction (schema and data
 * writes cannot share one), then wait until the indexes are online.
 */
export async function ensureSchema(run: QueryRunner, info: ServerInfo): Promise<void> {
  for (const stmt of schemaStatements(info)) {
    try {
      await run.run(stmt);
    } catch (err) {
      if (!alreadyExists(err)) throw err;
    }
  }
  await awaitIndexes(run, info);
}

/** Wait until every index is online: `db.awaitIndexes` from 4.0 on; 3.x has only `db.indexes()` to poll. */
async function awaitIndexes(run: QueryRunner, info: ServerInfo): Promise<void> {
  if (info.major >= 4) {
    await run.run('CALL db.awaitIndexes(300)');
    return;
  }
  const deadline = Date.now() + 300_000;
  for (;;) {
    const r = await run.run('CALL db.indexes() YIELD state RETURN state');
    const pending = r.records.filter((x) => String(x.get('state')).toUpperCase() !== 'ONLINE').length;
    if (pending === 0) return;
    if (Date.now() > deadline) throw new Error(`${pending} index(es) still not online after 300 s`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}
