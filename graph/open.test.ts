/**
 * @module graph/open.test
 * Store selection by URL, and Neo4j credentials from the environment, never the URL.
 * (A real Neo4j behind bolt:// is opened through openStore in graph/neo4j/twohost.test.ts.)
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError, StoreError } from './errors.js';
import { neo4jCredentials, openStore } from './open.js';
import { freePort } from '../test/neo4j/server.js';
import { driver4 } from '../test/neo4j/fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'prov-open-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('openStore', () => {
  it('opens SQLite for sqlite:PATH and for a bare path', async () => {
    for (const url of [`sqlite:${join(dir, 'a.db')}`, join(dir, 'b.db')]) {
      const s = await openStore(url);
      try {
        assert.match(s.url, /^sqlite:/);
        assert.deepEqual(await s.checkpoint(), {});
      } finally {
        await s.close();
      }
    }
  });

  it('refuses credentials in the URL, unknown schemes and empty paths', async () => {
    await assert.rejects(openStore('bolt://neo4j:secret@127.0.0.1:7687'), (e: unknown) => e instanceof InputError && /NEO4J_PASSWORD/.test(e.message) && !/secret/.test(e.message));
    await assert.rejects(openStore('mysql://x'), (e: unknown) => e instanceof InputError && /sqlite:PATH/.test(e.message));
    await assert.rejects(openStore('sqlite:'), InputError);
    await assert.rejects(openStore(''), InputError);
  });

  it('an unreachable Neo4j is a StoreError', async () => {
    const port = await freePort();
    await assert.rejects(openStore(`bolt://127.0.0.1:${port}`, { neo4jDriver: driver4, env: {} }), (e: unknown) => e instanceof StoreError && /unreachable/.test(e.message));
  });
});

describe('neo4jCredentials', () => {
  it('reads NEO4J_USER and NEO4J_PASSWORD, or the password from NEO4J_PASSWORD_FILE', () => {
    assert.deepEqual(neo4jCredentials({}), {});
    assert.deepEqual(neo4jCredentials({ NEO4J_PASSWORD: 'pw' }), { user: 'neo4j', password: 'pw' });
    assert.deepEqual(neo4jCredentials({ NEO4J_USER: 'prov', NEO4J_PASSWORD: 'pw' }), { user: 'prov', password: 'pw' });
    const file = join(dir, 'pw');
    writeFileSync(file, 's3cr3t with spaces\n', { mode: 0o600 });
    assert.deepEqual(neo4jCredentials({ NEO4J_USER: 'prov', NEO4J_PASSWORD_FILE: file }), { user: 'prov', password: 's3cr3t with spaces' });
  });

  it('says what is wrong with the password file or a double setting', () => {
    assert.throws(() => neo4jCredentials({ NEO4J_PASSWORD_FILE: join(dir, 'missing') }), (e: unknown) => e instanceof InputError && /ENOENT/.test(e.message));
    assert.throws(() => neo4jCredentials({ NEO4J_PASSWORD: 'a', NEO4J_PASSWORD_FILE: join(dir, 'pw') }), InputError);
  });
});
