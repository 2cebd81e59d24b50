/**
 * @module graph/neo4j/contract.test
 * The shared GraphStore contract suite (graph/contract.ts) against the Neo4j store on a real
 * Neo4j 3.1.1 (test/neo4j/server.ts), driven through neo4j-driver 4.0.x. One server for the
 * file; every test gets a wiped database.
 */
import { after, before } from 'node:test';
import { graphStoreContract } from '../contract.js';
import { freshStore, startServer } from '../../test/neo4j/fixture.js';
import type { Neo4jTestServer } from '../../test/neo4j/server.js';

let server: Neo4jTestServer | undefined;
before(async () => { server = await startServer(); });
after(async () => { await server?.destroy(); });

graphStoreContract('neo4j', () => {
  if (!server) throw new Error('the Neo4j test server did not start');
  return freshStore(server);
});
