/**
 * `prov serve` as an action: it opens a SQLite store file read-only, serves until SIGINT,
 * refuses a non-loopback bind without a token and a store that does not exist.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import { InputError, NotFoundError } from '../../graph/errors.js';
import { loadScenario } from '../../test/web/scenario.js';
import serve from './serve.js';

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('serve: a store file, read-only, until SIGINT; the bind and missing-store rules', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prov-serve-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'graph.db');
  const w = await openSqliteStore(db);
  const sc = await loadScenario(w);
  await w.close();

  await assert.rejects(serve({ store: join(dir, 'nope.db'), host: '127.0.0.1', port: 0 }), NotFoundError);
  await assert.rejects(serve({ store: db, host: '0.0.0.0', port: 0 }), (e: unknown) => e instanceof InputError && /token/.test(e.message));

  const port = await freePort();
  const running = serve({ store: db, host: '127.0.0.1', port });
  let body: { nodes: Array<{ id: string }> } | undefined;
  for (let i = 0; i < 100 && !body; i++) {
    try { body = await (await fetch(`http://127.0.0.1:${port}/api/ancestors?id=${encodeURIComponent(sc.appV0)}&depth=1`)).json() as typeof body; }
    catch { await new Promise((r) => setTimeout(r, 50)); }
  }
  assert.ok(body?.nodes.some((n) => n.id === sc.ld), 'serves the lineage from the file');
  process.emit('SIGINT');
  assert.equal(await running, 0);
  await assert.rejects(fetch(`http://127.0.0.1:${port}/api/stats`), 'the server is gone after SIGINT');
});
