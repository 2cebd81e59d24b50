/**
 * @module test/neo4j/fixture
 * Neo4j stores for tests: one 3.1.1 server per test file, a wiped database per store, all
 * driven through neo4j-driver 4.0.x (the last driver that speaks the server's Bolt v1).
 */
import neo4j from 'neo4j-driver-4';
import type { GraphStore } from '../../graph/store.js';
import { openNeo4jStore, type Neo4jStoreOptions } from '../../graph/neo4j/store.js';
import { Neo4jTestServer, type StartOptions } from './server.js';

/** The driver module the tests hand to the store. */
export const driver4 = neo4j as unknown as NonNullable<Neo4jStoreOptions['driver']>;

/** Delete every node and relationship (the schema stays). Batched so big benches do not blow the heap. */
export async function wipe(url: string): Promise<void> {
  const d = neo4j.driver(url, undefined, { disableLosslessIntegers: true });
  try {
    for (;;) {
      const s = d.session();
      try {
        const r = await s.run('MATCH (n) WITH n LIMIT 20000 DETACH DELETE n RETURN count(*) AS c');
        if (Number(r.records[0]?.get('c') ?? 0) === 0) break;
      } finally {
        await s.close();
      }
    }
  } finally {
    await d.close();
  }
}

/** Open a store on `server` over an empty database. */
export async function freshStore(server: Neo4jTestServer, opts: Neo4jStoreOptions = {}): Promise<GraphStore> {
  await wipe(server.url);
  return openNeo4jStore(server.url, { driver: driver4, ...opts });
}

/** Start a server for a test file; `destroy()` it in `after`. */
export function startServer(opts?: StartOptions): Promise<Neo4jTestServer> {
  return Neo4jTestServer.start(opts);
}
