/**
 * @module graph/sqlite/sqlite.test
 * The GraphStore contract against SQLite (a temp file per test), plus what only SQLite has:
 * file permissions, persistence across reopen, read-only opening, the schema version check.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
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
      // A new input written by another connection shows up in the reader's next walk.
      const extra = b.file(3, 0, '/two/extra', 3);
      b.used(p, extra, 4);
      await writer.ingest(b.batch());
      const third = await reader.ancestors(f);
      assert.ok(third.nodes.some((n) => n.id === extra), 'cached adjacency was dropped on the write');
      assert.equal(third.edges.length, 2);
      const uncached = await openSqliteStore(path, { readonly: true, nodeCache: 0, edgeCache: 0 });
      assert.deepEqual(await uncached.ancestors(f), third);
      await uncached.close();
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('survives kill -9 mid-ingest: every batch is wholly there or wholly absent, as the checkpoint says', async (t) => {
    const path = join(dir, 'killed.db');
    const storeModule = fileURLToPath(new URL('./store.js', import.meta.url));
    const contractModule = fileURLToPath(new URL('../contract.js', import.meta.url));
    // The child ingests batches of 2000 edges forever, printing each committed checkpoint.
    const script = `
      const { openSqliteStore } = await import(${JSON.stringify(storeModule)});
      const { GraphBuilder } = await import(${JSON.stringify(contractModule)});
      const s = await openSqliteStore(${JSON.stringify(path)});
      for (let k = 1; ; k++) {
        const b = new GraphBuilder('h1', 'k' + k);
        const p = b.proc(k, k);
        for (let i = 0; i < 2000; i++) b.used(p, b.file(k * 10000 + i, 0, '/k/' + k + '/' + i, k), k);
        const batch = b.batch({ s: k });
        await s.ingest(batch);
        process.stdout.write(k + '\\n');
      }`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
    let committed = 0;
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => { stderr += b.toString(); });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (b: Buffer) => {
        committed = Math.max(committed, ...b.toString().trim().split('\n').map(Number));
        // Kill it in the middle of a later batch, not right after a commit.
        if (committed >= 3) setTimeout(() => { child.kill('SIGKILL'); }, 7);
      });
      child.on('exit', () => resolve());
      child.on('error', reject);
    });
    assert.ok(committed >= 3, `the child committed batches before it was killed (stderr: ${stderr})`);
    const s = await openSqliteStore(path);
    try {
      const cp = (await s.checkpoint()).s ?? 0;
      assert.ok(cp >= committed, `checkpoint ${cp} covers the ${committed} batches reported committed`);
      const st = await s.stats();
      assert.equal(st.edges.used, cp * 2000, 'exactly the batches the checkpoint names, each whole');
      assert.equal(st.nodes.process, cp);
      assert.equal(st.nodes.file, cp * 2000);
      const db = new Database(path, { readonly: true });
      assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
      db.close();
    } finally {
      await s.close();
    }
  });

  it('keeps its counters equal to a recount, and derives them when opening a version 1 database', async () => {
    const path = join(dir, 'counts.db');
    const s = await openSqliteStore(path);
    const b = new GraphBuilder();
    const p = b.proc(1, 1);
    b.used(p, 'x:h1:odd', 2); // placeholder of unknown prefix: counted as a file until its node says otherwise
    b.gap('g1', 1, 2);
    const first = b.batch();
    await s.ingest(first);
    await s.ingest(structuredClone(first));
    b.node({ id: 'x:h1:odd', kind: 'pipe', host: 'h1', label: 'odd', ts: 2, attrs: {} });
    b.gap('g1', 1, 2);
    await s.ingest(b.batch());
    const recount = (): Record<string, unknown> => {
      const db = new Database(path, { readonly: true });
      try {
        const nodes = Object.fromEntries((db.prepare('SELECT kind, count(*) n FROM nodes GROUP BY kind').all() as Array<{ kind: number; n: number }>).map((r) => [['process', 'file', 'pipe', 'socket', 'user'][r.kind], r.n]));
        const edges = Object.fromEntries((db.prepare('SELECT kind, count(*) n FROM edges GROUP BY kind').all() as Array<{ kind: number; n: number }>).map((r) => [['used', 'wasGeneratedBy', 'wasInformedBy', 'wasDerivedFrom', 'wasInvalidatedBy', 'wasAssociatedWith'][r.kind], r.n]));
        return { nodes, edges, gaps: db.prepare('SELECT count(*) FROM gaps').pluck().get() };
      } finally {
        db.close();
      }
    };
    const st = await s.stats();
    assert.deepEqual({ nodes: st.nodes, edges: st.edges, gaps: st.gaps }, recount());
    assert.deepEqual(st.nodes, { process: 1, pipe: 1 });
    await s.close();
    const db = new Database(path);
    db.exec('DROP TABLE counts; UPDATE schema_version SET version = 1');
    db.close();
    const again = await openSqliteStore(path);
    const st2 = await again.stats();
    assert.deepEqual({ nodes: st2.nodes, edges: st2.edges, gaps: st2.gaps }, recount());
    await again.close();
    const check = new Database(path, { readonly: true });
    assert.equal(check.prepare('SELECT version FROM schema_version').pluck().get(), 2);
    check.close();
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
