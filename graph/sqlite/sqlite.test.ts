/**
 * @module graph/sqlite/sqlite.test
 * The GraphStore contract against SQLite (a temp file per test), plus what only SQLite has:
 * file permissions, persistence across reopen, read-only opening, the schema version check.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { graphStoreContract, GraphBuilder } from '../contract.js';
import { openSqliteStore } from './store.js';
import { StoreError } from '../errors.js';

const dir = mkdtempSync(join(tmpdir(), 'prov-sqlite-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;

graphStoreContract('sqlite', () => openSqliteStore(join(dir, `contract-${++n}.db`)), (s) => {
  const file = s.url.replace(/^sqlite:/, '');
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
});

describe('SQLite store specifics', () => {
  it('creates the database 0600 in a new 0700 directory', async () => {
    const path = join(dir, 'new-sub', 'graph.db');
    const s = await openSqliteStore(path);
    try {
      await s.ingest(new GraphBuilder().batch({ x: 1 }));
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(statSync(join(dir, 'new-sub')).mode & 0o777, 0o700);
      assert.equal(statSync(`${path}-wal`).mode & 0o777, 0o600);
    } finally {
      await s.close();
    }
  });

  it('keeps its data and checkpoint across close and reopen, and opens read-only', async () => {
    const path = join(dir, 'persist.db');
    const b = new GraphBuilder();
    const p = b.proc(1, 1);
    const f = b.file(2, 0, '/persist/me', 2);
    b.generated(f, p, 3);
    const s = await openSqliteStore(path);
    await s.ingest(b.batch({ test: 42 }));
    await s.close();
    await assert.rejects(s.stats(), StoreError, 'a closed store says so');
    const again = await openSqliteStore(path);
    assert.deepEqual(await again.checkpoint(), { test: 42 });
    assert.equal((await again.ancestors(f)).nodes.length, 2);
    const ro = await openSqliteStore(path, { readonly: true });
    assert.equal((await ro.resolvePath('/persist/me'))?.id, f);
    await assert.rejects(ro.ingest(new GraphBuilder().batch()), StoreError);
    await ro.close();
    await again.close();
  });

  it('refuses a database of another schema version or another program', async () => {
    const path = join(dir, 'future.db');
    const s = await openSqliteStore(path);
    await s.close();
    const db = new Database(path);
    db.prepare('UPDATE schema_version SET version = 99').run();
    db.close();
    await assert.rejects(openSqliteStore(path), (e: unknown) => e instanceof StoreError && /version 99/.test(e.message));
    await assert.rejects(openSqliteStore(path, { readonly: true }), (e: unknown) => e instanceof StoreError && /version 99/.test(e.message));
    const foreign = join(dir, 'foreign.db');
    const f = new Database(foreign);
    f.exec('CREATE TABLE t (x)');
    f.close();
    await assert.rejects(openSqliteStore(foreign), (e: unknown) => e instanceof StoreError && /not a prov graph/.test(e.message));
    const junk = join(dir, 'junk.db');
    writeFileSync(junk, 'this is not sqlite at all, just text padding '.repeat(100));
    await assert.rejects(openSqliteStore(junk), StoreError);
  });

  it('sees writes made through another connection (node cache invalidation)', async () => {
    const path = join(dir, 'two-writers.db');
    const b = new GraphBuilder();
    const p = b.proc(1, 1, { exe: '/bin/a' });
    const f = b.file(2, 0, '/two/out', 5);
    b.generated(f, p, 5);
    const writer = await openSqliteStore(path);
    const reader = await openSqliteStore(path, { readonly: true });
    try {
      await writer.ingest(b.batch());
      const first = await reader.ancestors(f);
      assert.equal(first.nodes.find((n) => n.id === p)!.attrs.exe, '/bin/a');
      assert.ok(Object.isFrozen(first.nodes[0]), 'cached nodes are frozen, so a caller cannot poison the cache');
      b.node({ id: p, kind: 'process', host: 'h1', label: 'b', ts: 1, attrs: { exe: '/bin/b' } });
      await writer.ingest(b.batch());
      const second = await reader.ancestors(f);
      assert.equal(second.nodes.find((n) => n.id === p)!.attrs.exe, '/bin/b');
      assert.equal(second.nodes.find((n) => n.id === p)!.label, 'b');
      const uncached = await openSqliteStore(path, { readonly: true, nodeCache: 0 });
      assert.deepEqual(await uncached.ancestors(f), second);
      await uncached.close();
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('works in memory', async () => {
    const s = await openSqliteStore(':memory:');
    const b = new GraphBuilder();
    b.proc(1, 1);
    await s.ingest(b.batch());
    assert.equal((await s.stats()).nodes.process, 1);
    await s.close();
  });
});
