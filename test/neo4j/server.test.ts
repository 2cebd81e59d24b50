/**
 * @module test/neo4j/server.test
 * The test server itself: it starts, answers Cypher over Bolt v1 through neo4j-driver 4.0.x
 * (including non-ASCII strings, which the replacement UTF-8 encoder carries), survives a
 * stop/restart with its data, and leaves nothing behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import neo4j from 'neo4j-driver-4';
import { Neo4jTestServer } from './server.js';

test('Neo4j 3.1.1 test server: start, query, restart, destroy', async (t) => {
  const srv = await Neo4jTestServer.start();
  t.after(() => srv.destroy());
  const pid = srv.pid!;
  const driver = neo4j.driver(srv.url, undefined, { disableLosslessIntegers: true });
  t.after(() => driver.close());
  const run = async (q: string, p: Record<string, unknown> = {}) => {
    const s = driver.session();
    try { return (await s.run(q, p)).records; } finally { await s.close(); }
  };
  const [comp] = await run('CALL dbms.components() YIELD versions RETURN versions[0] AS v');
  assert.equal(comp!.get('v'), '3.1.1');
  await run('CREATE (:T {s: $s})', { s: 'héllo wörld ✓' });
  await srv.stop();
  assert.throws(() => process.kill(pid, 0), 'the old pid is gone');
  await srv.restart();
  const rows = await run('MATCH (t:T) RETURN t.s AS s');
  assert.deepEqual(rows.map((r) => r.get('s')), ['héllo wörld ✓']);
  await driver.close();
  await srv.destroy();
  assert.equal(existsSync(srv.dir), false);
});
