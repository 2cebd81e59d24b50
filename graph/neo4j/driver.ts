/**
 * @module graph/neo4j/driver
 * The slice of the neo4j-driver API the Neo4j store uses, typed structurally so that two driver
 * generations fit it: the current `neo4j-driver` (production, Neo4j 5) and `neo4j-driver-4`
 * (4.0.x, the last one that speaks Bolt v1, used by the tests against Neo4j 3.1.1).
 * Only calls both have: `driver()`, `auth.basic()`, `int()`, `session()`, `session.run()`,
 * `beginTransaction()`, `tx.run()`, `commit()`, `rollback()`, `close()`. No managed-transaction
 * helpers (`writeTransaction` is gone in 6.x, `executeWrite` absent from 4.0).
 */

/** A Cypher parameter map. */
export type Params = Record<string, unknown>;

export interface DriverRecord {
  get(key: string): unknown;
  keys: ReadonlyArray<PropertyKey>;
}

export interface DriverResult {
  records: DriverRecord[];
}

export interface QueryRunner {
  run(query: string, params?: Params): PromiseLike<DriverResult>;
}

export interface DriverTransaction extends QueryRunner {
  commit(): PromiseLike<unknown>;
  rollback(): PromiseLike<unknown>;
}

export interface DriverSession extends QueryRunner {
  beginTransaction(): DriverTransaction;
  close(): PromiseLike<unknown>;
}

export interface Driver {
  session(config?: { defaultAccessMode?: 'READ' | 'WRITE'; database?: string }): DriverSession;
  close(): PromiseLike<unknown>;
}

/** The module object (`import neo4j from 'neo4j-driver'`). */
export interface Neo4jModule {
  driver(url: string, auth?: any, config?: any): unknown;
  auth: { basic(user: string, password: string): unknown };
  int(v: number | string): unknown;
}

/** The production driver (Neo4j 4.4/5 servers), loaded only when no module is passed in. */
export async function defaultDriverModule(): Promise<Neo4jModule> {
  const mod = (await import('neo4j-driver')) as unknown as { default?: Neo4jModule } & Neo4jModule;
  return mod.default ?? mod;
}
