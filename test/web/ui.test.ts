/**
 * @module test/web/ui.test
 * Browser tests of the lineage explorer in real headless Chromium over the SQLite store loaded
 * with the web scenario: search a derived file, see its ancestors (processes, inputs, edges),
 * expand a group, filter by time, open detail panels, follow a deep link, move with the keys,
 * and check that a file named with HTML renders as text. Screenshots go to test/artifacts/.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import type { GraphStore, HistogramBucket } from '../../graph/store.js';
import { startServer, type RunningServer } from '../../web/server/server.js';
import { UI_DIR } from '../../web/server/app.js';
import { loadScenario, HTML_NAME, PROJ, type Scenario } from './scenario.js';
import { launchBrowser, type Browser } from './browser.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';

const ARTIFACTS = 'test/artifacts';
let store: GraphStore;
let srv: RunningServer;
let sc: Scenario;
let br: Browser;
let page: Page;
const dialogs: string[] = [];

const node = (id: string): string => `g.node[data-node-id="${id}"]`;
const edge = (source: string, target: string, kind: string): string => `path.edge[data-source="${source}"][data-target="${target}"][data-kind="${kind}"]`;
const shot = (name: string): Promise<Buffer> => page.screenshot({ path: `${ARTIFACTS}/web-${name}.png` });
const param = (name: string): string | null => new URL(page.url()).searchParams.get(name);

/** True when the element's box lies inside the visible part of the drawing. */
async function onScreen(selector: string): Promise<boolean> {
  const box = await page.locator(selector).boundingBox();
  const area = await page.locator('svg.graph').boundingBox();
  if (!box || !area) return false;
  return box.x >= area.x - 1 && box.y >= area.y - 1 && box.x + box.width <= area.x + area.width + 1 && box.y + box.height <= area.y + area.height + 1;
}

before(async () => {
  if (!existsSync(join(UI_DIR, 'index.html'))) throw new Error(`the UI bundle is missing at ${UI_DIR}: run web/build.sh`);
  mkdirSync(ARTIFACTS, { recursive: true });
  store = await openSqliteStore(':memory:');
  sc = await loadScenario(store);
  srv = await startServer({ store, port: 0 });
  br = await launchBrowser();
  page = br.page;
  page.on('dialog', (d) => { dialogs.push(d.message()); void d.dismiss(); });
});
after(async () => {
  await br?.close();
  await srv?.close();
  await store?.close();
});

describe('lineage explorer in Chromium', () => {
  it('search-first: finds a derived file by path and opens its ancestors', async () => {
    await page.goto(srv.url + '/');
    await page.getByText('Find a file to see where it came from.').waitFor();
    await page.getByTestId('search-input').fill(`${PROJ}/ap`);
    const hit = page.locator(`#search-results [data-node-id="${sc.appV1}"]`);
    await hit.waitFor();
    await shot('1-search');
    await hit.click();
    await page.locator(node(sc.appV1)).waitFor();
    assert.equal(param('view'), 'ancestors');
    assert.equal(param('id'), sc.appV1);
  });

  it('shows the producing process, its inputs and the edges between them', async () => {
    for (const id of [sc.appV1, sc.relink, sc.mainO, sc.htmlO, sc.libbig, sc.mainC, sc.utilH, sc.make]) {
      assert.equal(await page.locator(node(id)).count(), 1, `node ${id} is drawn`);
    }
    assert.ok(await onScreen(node(sc.appV1)), 'the searched file is on screen');
    assert.ok(await onScreen(node(sc.relink)), 'the process that wrote it is on screen');
    assert.equal(await page.locator(edge(sc.relink, sc.appV1, 'wasGeneratedBy')).count(), 1, 'ld → app');
    assert.equal(await page.locator(edge(sc.mainO, sc.relink, 'used')).count(), 1, 'main.o → ld');
    assert.equal(await page.locator(edge(sc.libbig, sc.relink, 'used')).count(), 1, 'libbig.a → ld');
    assert.equal(await page.locator(edge(sc.make, sc.relink, 'wasInformedBy')).count(), 1, 'make → ld');
    assert.equal(await page.locator(node(sc.ld)).count(), 0, 'the first link wrote version 0, not this one');
    assert.equal(await page.locator(node(sc.bigObjects[0]!)).count(), 0, 'the 500 objects are folded');
    await shot('2-ancestors');
  });

  it('a file named with HTML renders as text', async () => {
    const box = page.locator(node(sc.htmlO));
    assert.match(await box.locator('text.label').textContent() ?? '', /^<img src=x onerror=/);
    assert.equal(await page.locator('img').count(), 0, 'no <img> element was created');
    assert.deepEqual(dialogs, [], 'no script ran');
  });

  it('expands the group of 500 object files', async () => {
    const group = page.locator('g.node[data-kind="group"]').filter({ hasText: '500 × …/big/*.o' });
    assert.equal(await group.count(), 1);
    await group.click();
    await page.getByTestId('group-panel').waitFor();
    assert.equal(await page.getByTestId('group-members').locator('li').first().textContent(), `${PROJ}/obj/big/f000.o`);
    await shot('3-group-panel');
    await page.getByTestId('expand-group').click();
    await page.locator(node(sc.bigObjects[0]!)).waitFor();
    assert.equal(await page.locator(`${node(sc.bigObjects[499]!)}`).count(), 1);
    assert.equal(await page.locator(edge(sc.bigObjects[7]!, sc.ar, 'used')).count(), 1, 'each object is an input of ar');
    await shot('4-group-expanded');
  });

  it('opens a detail panel: file versions with writers and readers', async () => {
    await page.locator(node(sc.appV1)).click();
    const panel = page.getByTestId('detail-panel');
    await panel.getByTestId('versions').waitFor();
    assert.equal(await panel.getByTestId('file-path').textContent(), `${PROJ}/app`);
    const rows = panel.getByTestId('versions').locator('tbody tr');
    assert.equal(await rows.count(), 2);
    assert.match(await rows.nth(1).textContent() ?? '', /ld -o app.*\.\/app --check/);
    assert.equal(param('sel'), sc.appV1);
    await shot('5-file-panel');
  });

  it('keyboard: ← moves to the cause, Enter on a process shows its details', async () => {
    await page.locator('svg.graph').focus();
    await page.keyboard.press('ArrowLeft');
    await page.waitForFunction((id) => new URL(location.href).searchParams.get('sel') === id, sc.relink);
    const panel = page.getByTestId('detail-panel');
    await panel.getByTestId('argv').waitFor();
    assert.deepEqual(await panel.getByTestId('argv').locator('li').allTextContents(),
      ['ld', '-o', 'app', 'obj/main.o', 'obj/util.o', `obj/${HTML_NAME.replace(/\.c$/, '.o')}`, 'lib/libbig.a']);
    assert.equal(await panel.getByTestId('exit-code').textContent(), '0');
    assert.match(await panel.textContent() ?? '', /cwd\/home\/ana\/proj/);
    assert.match(await panel.textContent() ?? '', /userana \(uid 1000\), gid 1000/);
    await shot('6-process-panel');
  });

  it('shows lost events and filters by time with the histogram', async () => {
    await page.getByTestId('search-input').fill('errors.txt');
    const hit = page.locator(`#search-results [data-node-id="${sc.errors}"]`);
    await hit.waitFor();
    await hit.click();
    await page.locator(node(sc.errors)).waitFor();
    await page.getByTestId('gap-banner').waitFor();
    assert.match(await page.getByTestId('gap-banner').textContent() ?? '', /37 events lost/);
    assert.match(await page.locator(node(sc.grep)).getAttribute('class') ?? '', /\bgap\b/, 'grep ran across the gap');
    assert.ok(await page.locator('path.edge.gap').count() >= 1, 'an edge inside the gap is marked');
    assert.equal(await page.locator(node(sc.bash)).count(), 1, 'before filtering, the shell is there');
    await shot('7-gap');

    // Drag across the histogram from 1 s into the pipeline to the end: only sort's write remains.
    const buckets = await (await fetch(`${srv.url}/api/histogram?buckets=120`)).json() as HistogramBucket[];
    const lo = buckets[0]!.from, hi = buckets[buckets.length - 1]!.to;
    const area = (await page.getByTestId('histogram').boundingBox())!;
    const fx = (t: number): number => area.x + 2 + ((t - lo) / (hi - lo)) * (area.width - 4);
    await page.mouse.move(fx(sc.pipelineStart + 1_000_000_000), area.y + area.height / 2);
    await page.mouse.down();
    await page.mouse.move(area.x + area.width - 1, area.y + area.height / 2, { steps: 5 });
    await page.mouse.up();
    await page.waitForFunction(() => new URL(location.href).searchParams.has('since'));
    const since = Number(param('since'));
    assert.ok(Math.abs(since - (sc.pipelineStart + 1_000_000_000)) < 300_000_000, `since=${since}`);
    await page.locator(node(sc.grep)).waitFor({ state: 'detached' });
    for (const id of [sc.bash, sc.grep]) assert.equal(await page.locator(node(id)).count(), 0, `${id} acted before the window`);
    for (const id of [sc.errors, sc.sort]) assert.equal(await page.locator(node(id)).count(), 1, id);
    assert.match(await page.locator('.histogram-legend').textContent() ?? '', /Showing relations from/);
    await shot('8-time-filter');
  });

  it('expands a node\'s lineage with E and collapses it with C', async () => {
    await page.goto(`${srv.url}/?view=ancestors&id=${encodeURIComponent(sc.appV1)}&depth=2`);
    await page.locator(node(sc.mainO)).waitFor();
    assert.equal(await page.locator(node(sc.cc)).count(), 0, 'depth 2 stops at the objects');
    await page.locator(node(sc.mainO)).click();
    await page.locator('svg.graph').focus();
    await page.keyboard.press('e');
    await page.locator(node(sc.cc)).waitFor();
    assert.equal(await page.locator(edge(sc.cc, sc.mainO, 'wasGeneratedBy')).count(), 1, 'cc → main.o after expanding');
    assert.equal(await page.locator(node(sc.mainC)).count(), 1, 'and main.c behind it');
    await shot('10-expanded-node');
    await page.locator(node(sc.relink)).click();
    await page.locator('svg.graph').focus();
    await page.keyboard.press('c');
    await page.locator(node(sc.mainO)).waitFor({ state: 'detached' });
    assert.match(await page.locator(node(sc.relink)).getAttribute('class') ?? '', /\bcollapsed\b/);
    assert.equal(await page.locator(node(sc.appV1)).count(), 1, 'the focus stays');
    await page.keyboard.press('c');
    await page.locator(node(sc.mainO)).waitFor();
  });

  it('shows the path between the focus and a selected node', async () => {
    await page.goto(`${srv.url}/?view=ancestors&id=${encodeURIComponent(sc.appV1)}&sel=${encodeURIComponent(sc.mainC)}`);
    await page.getByTestId('path-button').click();
    await page.waitForFunction(() => new URL(location.href).searchParams.get('view') === 'path');
    await page.locator(node(sc.mainC)).waitFor();
    for (const id of [sc.appV1, sc.relink, sc.mainO, sc.cc]) assert.equal(await page.locator(node(id)).count(), 1, id);
    assert.equal(await page.locator('g.node').count(), 5, 'only the path: app ← ld ← main.o ← cc ← main.c');
    await shot('10b-path');
  });

  it('shows the process tree of the shell', async () => {
    await page.goto(`${srv.url}/?view=tree&id=${encodeURIComponent(sc.bash)}&depth=2`);
    await page.locator(node(sc.make)).waitFor();
    for (const id of [sc.bash, sc.grep, sc.run]) assert.equal(await page.locator(node(id)).count(), 1, id);
    assert.equal(await page.locator(edge(sc.bash, sc.make, 'wasInformedBy')).count(), 1, 'bash → make');
    await shot('11-process-tree');
  });

  it('the live feed announces nodes recorded while the page is open', async () => {
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    await store.ingest({ checkpoint: { ebpf: 999_999 }, nodes: [{ id: 'file:lab1:2049:77777:0', kind: 'file', host: 'lab1', label: '<b>new</b>.log', ts: 1, attrs: { path: '/tmp/<b>new</b>.log', version: 0 } }], edges: [], names: [], nameEnds: [], gaps: [] });
    await page.getByTestId('live').filter({ hasText: '1 new' }).waitFor();
    await page.getByTestId('live').click();
    await page.getByText('/tmp/<b>new</b>.log').waitFor();
    assert.equal(await page.locator('b').count(), 0, 'the name is text, not markup');
    await shot('12-live');
  });

  it('follows a deep link: the URL names the node, the view and the selection', async () => {
    const url = `${srv.url}/?view=descendants&id=${encodeURIComponent(sc.htmlC)}&sel=${encodeURIComponent(sc.htmlC)}`;
    await page.goto(url);
    await page.locator(node(sc.htmlC)).waitFor();
    for (const id of [sc.htmlO, sc.appV0, sc.appV1]) assert.equal(await page.locator(node(id)).count(), 1, id);
    assert.equal(await page.locator('.toolbar button.on').textContent(), 'What came out of it');
    const panel = page.getByTestId('detail-panel');
    await panel.getByTestId('file-path').waitFor();
    assert.equal(await panel.getByTestId('file-path').textContent(), `${PROJ}/src/${HTML_NAME}`);
    assert.equal(await page.locator('img').count(), 0);
    await shot('9-deep-link');
    await page.goBack().catch(() => undefined);
    assert.deepEqual(dialogs, [], 'no script from a file name ran');
    assert.deepEqual(br.errors.filter((e) => !/favicon/.test(e)), [], 'no console errors (a CSP violation would be one)');
  });

  it('with a token, the page takes it from #token= and sends it; without it the API refuses', async () => {
    const token = 'browser-test-token-0123456789';
    const guarded = await startServer({ store, port: 0, token });
    try {
      await page.goto(`${guarded.url}/?view=ancestors&id=${encodeURIComponent(sc.appV0)}`);
      await page.locator('.error-banner').waitFor();
      assert.match(await page.locator('.error-banner').textContent() ?? '', /missing token/);
      await page.goto('about:blank'); // a fresh load, as when the link is opened (not a same-page hash change)
      await page.goto(`${guarded.url}/?view=ancestors&id=${encodeURIComponent(sc.appV0)}#token=${token}`);
      await page.locator(node(sc.ld)).waitFor();
      assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
      await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    } finally {
      await guarded.close();
    }
  });
});
