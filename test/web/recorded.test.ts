/**
 * @module test/web/recorded.test
 * The lineage explorer over a recorded scenario: the eBPF fixture journal of a real gcc build
 * (test/fixtures/scenarios/gcc, recorded by scripts/record-fixtures.sh) goes through the real
 * collector pipeline (journal reader, join engine) into SQLite; in headless Chromium the user
 * searches the object file and sees the compiler processes and the source files it came from.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import type { GraphNode, GraphEdge } from '../../graph/model.js';
import type { GraphStore } from '../../graph/store.js';
import { runPipeline } from '../../collector/pipeline.js';
import { startServer, type RunningServer } from '../../web/server/server.js';
import { launchBrowser, type Browser } from './browser.js';

const FIXTURE = join(import.meta.dirname, '..', '..', '..', 'test', 'fixtures', 'scenarios', 'gcc', 'journal');
let store: GraphStore;
let srv: RunningServer;
let br: Browser;
let tmp: string;

before(async () => {
  if (!existsSync(FIXTURE)) throw new Error(`recorded fixture missing: ${FIXTURE}`);
  tmp = mkdtempSync(join(tmpdir(), 'prov-web-recorded-'));
  store = await openSqliteStore(':memory:');
  const r = await runPipeline({ journalDir: FIXTURE, store, statePath: join(tmp, 'join-state.json') });
  assert.ok(r.records > 100, `the fixture replays (${r.records} records)`);
  srv = await startServer({ store, port: 0 });
  br = await launchBrowser();
});
after(async () => {
  await br?.close();
  await srv?.close();
  await store?.close();
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe('recorded gcc build in the explorer', () => {
  it('search main.o, see the compiler chain and the sources it read', async () => {
    const page = br.page;
    const found = await store.search({ glob: '**/main.o', limit: 5 });
    assert.equal(found.items.length, 1);
    const mainO = found.items[0]!;
    const anc = await (await fetch(`${srv.url}/api/ancestors?id=${encodeURIComponent(mainO.id)}`)).json() as { nodes: GraphNode[]; edges: GraphEdge[] };
    const byLabel = (re: RegExp, kind: string): GraphNode => {
      const n = anc.nodes.find((x) => x.kind === kind && re.test(x.kind === 'file' ? String(x.attrs.path ?? x.label) : x.label));
      assert.ok(n, `${kind} ${re} in the ancestors`);
      return n;
    };
    const as = byLabel(/^as /, 'process');
    const cc1 = byLabel(/\/cc1 /, 'process');
    const mainC = byLabel(/\/main\.c$/, 'file');
    const utilH = byLabel(/\/util\.h$/, 'file');
    assert.ok(!anc.nodes.some((n) => /\/util\.c$/.test(String(n.attrs.path))), 'util.c is not an ancestor of main.o');

    await page.goto(`${srv.url}/`);
    await page.getByTestId('search-input').fill('main.o');
    const hit = page.locator(`#search-results [data-node-id="${mainO.id}"]`);
    await hit.waitFor();
    await hit.click();
    const node = (id: string): string => `g.node[data-node-id="${id}"]`;
    await page.locator(node(mainO.id)).waitFor();
    for (const n of [as, cc1, mainC, utilH]) assert.equal(await page.locator(node(n.id)).count(), 1, `${n.label} is drawn`);
    assert.equal(await page.locator(`path.edge[data-source="${as.id}"][data-target="${mainO.id}"][data-kind="wasGeneratedBy"]`).count(), 1, 'as wrote main.o');
    assert.equal(await page.locator(`path.edge[data-source="${mainC.id}"][data-target="${cc1.id}"][data-kind="used"]`).count(), 1, 'cc1 read main.c');
    await page.locator(node(cc1.id)).click();
    await page.getByTestId('argv').waitFor();
    assert.match((await page.getByTestId('argv').textContent()) ?? '', /main\.c/);
    mkdirSync('test/artifacts', { recursive: true });
    await page.screenshot({ path: 'test/artifacts/web-recorded-gcc.png' });
  });
});
