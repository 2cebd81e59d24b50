/**
 * @module web/server/app.test
 * API tests of the lineage explorer over the real SQLite store loaded with the web scenario:
 * every parameter's validation (400 with the reason and where), the token and bind rules,
 * the security headers, and what each endpoint answers.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import type { GraphStore } from '../../graph/store.js';
import { InputError } from '../../graph/errors.js';
import { startServer, type RunningServer } from './server.js';
import { loadScenario, HTML_NAME, PROJ, type Scenario } from '../../test/web/scenario.js';

let store: GraphStore;
let srv: RunningServer;
let sc: Scenario;

before(async () => {
  store = await openSqliteStore(':memory:');
  sc = await loadScenario(store);
  srv = await startServer({ store, port: 0, pollMs: 50 });
});
after(async () => {
  await srv?.close();
  await store?.close();
});

async function api(path: string, init?: RequestInit): Promise<{ status: number; body: any; res: Response }> {
  const res = await fetch(srv.url + path, init);
  const text = await res.text();
  let body: unknown = text;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, body, res };
}
const q = encodeURIComponent;

describe('validation: bad input is a 400 naming the parameter', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['/api/search', 'prefix', /prefix or a glob/],
    ['/api/search?prefix=/a&glob=*', 'glob', /not both/],
    ['/api/search?prefix=/a&limit=0', 'limit', /between 1 and 500/],
    ['/api/search?prefix=/a&limit=ten', 'limit', /integer/],
    ['/api/search?prefix=/a&offset=-1', 'offset', /between 0/],
    ['/api/search?prefix=/a&kind=dragon', 'kind', /one of process, file/],
    ['/api/search?prefix=/a&prefix=/b', 'prefix', /once/],
    ['/api/search?prefix=/a&colour=red', 'colour', /unknown parameter/],
    ['/api/resolve?path=relative/x', 'path', /absolute/],
    ['/api/resolve', 'path', /required/],
    ['/api/node', 'id', /required/],
    ['/api/node?id=../../etc/passwd', 'id', /not a node id/],
    ['/api/ancestors?id=file:lab1:2049:2000:0&depth=0', 'depth', /between 1 and 100/],
    ['/api/ancestors?id=file:lab1:2049:2000:0&depth=101', 'depth', /between 1 and 100/],
    ['/api/ancestors?id=file:lab1:2049:2000:0&depth=1.5', 'depth', /integer/],
    ['/api/ancestors?id=file:lab1:2049:2000:0&rule=loose', 'rule', /history or strict/],
    ['/api/ancestors?id=file:lab1:2049:2000:0&since=20&until=10', 'since', /not be after until/],
    ['/api/ancestors?id=file:lab1:2049:2000:0&since=yesterday', 'since', /integer/],
    ['/api/ancestors?id=file:lab1:2049:2000:0&limit=999999', 'limit', /between 1 and 20000/],
    ['/api/descendants?depth=2', 'id', /required/],
    ['/api/path?from=file:lab1:2049:1001:0', 'to', /required/],
    ['/api/tree?root=file:lab1:2049:1001:0', 'root', /process id/],
    ['/api/tree?rule=strict', 'rule', /unknown parameter/],
    ['/api/histogram?buckets=0', 'buckets', /between 1 and 1000/],
    ['/api/histogram?since=9&until=1', 'since', /not be after/],
    ['/api/export?id=file:lab1:2049:2000:0&format=svg', 'view', /required/],
    ['/api/export?view=ancestors&id=file:lab1:2049:2000:0&format=png', 'format', /must be one of/],
    ['/api/export?view=ancestors&id=file:lab1:2049:2000:0&format=svg&group=maybe', 'group', /on or off/],
    ['/api/stream?cursor=soon', 'cursor', /integer/],
  ];
  for (const [path, where, reason] of cases) {
    it(`${path} → 400 (${where})`, async () => {
      const { status, body } = await api(path);
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(body.error, 'EINPUT');
      assert.equal(body.where, where);
      assert.match(body.message, reason);
      assert.doesNotMatch(JSON.stringify(body), /\bat \w+ \(/, 'no stack trace in the answer');
    });
  }
  it('a malformed percent-encoding is a 400, not a crash', async () => {
    const { status } = await api('/api/node?id=%E0%A4%A');
    assert.equal(status, 400);
  });
  it('an unknown node is a 404 naming it', async () => {
    const { status, body } = await api(`/api/node?id=${q('file:lab1:1:1:0')}`);
    assert.equal(status, 404);
    assert.equal(body.where, 'id');
    const anc = await api(`/api/ancestors?id=${q('proc:lab1:1:1')}`);
    assert.equal(anc.status, 404);
  });
  it('an unknown endpoint is a 404 and writes are refused', async () => {
    assert.equal((await api('/api/nothing-here')).status, 404);
    assert.equal((await api('/api/search?prefix=/', { method: 'POST' })).status, 405);
  });
});

describe('security', () => {
  it('sends a CSP without inline script on the page and on the API', async () => {
    for (const path of ['/', '/api/stats', '/api/node']) {
      const { res } = await api(path);
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self'/, path);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, path);
      assert.match(csp, /frame-ancestors 'none'/, path);
      assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    }
  });
  it('binds 127.0.0.1 by default', () => {
    assert.match(srv.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  });
  it('refuses to bind a non-loopback address without a token', async () => {
    await assert.rejects(startServer({ store, host: '0.0.0.0', port: 0 }), (e: unknown) => e instanceof InputError && /token/.test(e.message));
    await assert.rejects(startServer({ store, host: '0.0.0.0', port: 0, token: 'short' }), InputError);
  });
  it('with a token, every API request needs it (401 otherwise)', async () => {
    const token = 'a-long-enough-secret-token-1234';
    const open = await startServer({ store, host: '0.0.0.0', port: 0, token });
    try {
      const base = `http://127.0.0.1:${open.port}`;
      const none = await fetch(`${base}/api/stats`);
      assert.equal(none.status, 401);
      assert.equal((await none.json()).error, 'EAUTH');
      assert.equal((await fetch(`${base}/api/stats`, { headers: { Authorization: 'Bearer wrong-token-wrong-token' } })).status, 401);
      assert.equal((await fetch(`${base}/api/search?prefix=/`, { headers: { Authorization: token } })).status, 401, 'the Bearer scheme is required');
      assert.equal((await fetch(`${base}/api/stream`)).status, 401, 'the live stream is guarded too');
      const ok = await fetch(`${base}/api/stats`, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(ok.status, 200);
    } finally {
      await open.close();
    }
  });
  it('without a token, a request naming a non-loopback Host is refused (DNS rebinding)', async () => {
    // fetch may not set Host: use node:http, as a rebound browser would send it.
    const status = await new Promise<number>((resolve, reject) => {
      const r = request(`${srv.url}/api/stats`, { headers: { Host: `attacker.example:${srv.port}` } }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      r.on('error', reject);
      r.end();
    });
    assert.equal(status, 401);
  });
});

describe('answers', () => {
  it('search by prefix and by glob, paged', async () => {
    const a = await api(`/api/search?prefix=${q(`${PROJ}/obj/big/`)}&limit=100`);
    assert.equal(a.status, 200);
    assert.equal(a.body.total, 500);
    assert.equal(a.body.items.length, 100);
    const b = await api(`/api/search?prefix=${q(`${PROJ}/obj/big/`)}&limit=100&offset=450`);
    assert.equal(b.body.items.length, 50);
    const ids = new Set([...a.body.items, ...b.body.items].map((n: any) => n.id));
    assert.equal(ids.size, 150, 'pages do not overlap');
    const g = await api(`/api/search?glob=${q('**/src/*.c')}`);
    assert.deepEqual(g.body.items.map((n: any) => n.attrs.path).sort(), [`${PROJ}/src/${HTML_NAME}`, `${PROJ}/src/main.c`, `${PROJ}/src/util.c`]);
  });
  it('resolves a path, also an old name of a renamed file', async () => {
    const r = await api(`/api/resolve?path=${q(`${PROJ}/app`)}`);
    assert.equal(r.body.id, sc.appV1);
    const old = await api(`/api/resolve?path=${q(`${PROJ}/draft.txt`)}`);
    assert.equal(old.status, 200);
    assert.equal(old.body.id, sc.notes);
  });
  it('node details: a process with argv and exit code; a file with versions, writers and readers', async () => {
    const p = await api(`/api/node?id=${q(sc.run)}`);
    assert.deepEqual(p.body.node.attrs.argv, ['./app', '--check']);
    assert.equal(p.body.node.attrs.exitCode, 3);
    const f = await api(`/api/node?id=${q(sc.appV1)}`);
    assert.equal(f.body.versions.length, 2);
    assert.equal(f.body.uses.length, 2);
    const v1 = f.body.uses.find((u: any) => u.node.id === sc.appV1);
    assert.deepEqual(v1.writers.map((w: any) => w.node.id), [sc.relink]);
    assert.deepEqual(v1.readers.map((r: any) => r.node.id), [sc.run]);
    const n = await api(`/api/node?id=${q(sc.notes)}`);
    assert.deepEqual(n.body.names.map((r: any) => r.path), [`${PROJ}/draft.txt`, `${PROJ}/notes.txt`]);
  });
  it('ancestors of the binary reach the linker, the compiler and the sources; strict follows derivations only', async () => {
    const a = await api(`/api/ancestors?id=${q(sc.appV0)}&depth=4`);
    const ids = new Set(a.body.nodes.map((n: any) => n.id));
    for (const id of [sc.ld, sc.mainO, sc.cc, sc.mainC, sc.utilH, sc.libbig]) assert.ok(ids.has(id), id);
    assert.ok(!ids.has(sc.relink), 'the relink wrote version 1, not version 0');
    assert.ok(a.body.edges.some((e: any) => e.kind === 'wasGeneratedBy' && e.from === sc.appV0 && e.to === sc.ld));
    const s = await api(`/api/ancestors?id=${q(sc.appV0)}&rule=strict&depth=3`);
    assert.ok(s.body.edges.length > 0 && s.body.edges.every((e: any) => e.kind === 'wasDerivedFrom'));
    assert.ok(s.body.nodes.some((n: any) => n.id === sc.mainC));
  });
  it('a time window drops the relations outside it', async () => {
    const all = await api(`/api/descendants?id=${q(sc.utilH)}`);
    const late = await api(`/api/descendants?id=${q(sc.utilH)}&since=${sc.pipelineStart}`);
    assert.ok(all.body.nodes.length > 3);
    assert.equal(late.body.nodes.length, 1, 'nothing read util.h after the pipeline began');
  });
  it('lineage crossing lost events carries the gap', async () => {
    const a = await api(`/api/ancestors?id=${q(sc.errors)}`);
    assert.equal(a.body.gaps.length, 1);
    assert.equal(a.body.gaps[0].count, 37);
  });
  it('path between two nodes, and its absence', async () => {
    const p = await api(`/api/path?from=${q(sc.appV0)}&to=${q(sc.mainC)}`);
    assert.equal(p.status, 200);
    assert.ok(p.body.nodes.some((n: any) => n.id === sc.mainC));
    const none = await api(`/api/path?from=${q(sc.errors)}&to=${q(sc.mainC)}`);
    assert.equal(none.status, 404);
  });
  it('process tree below the shell', async () => {
    const t = await api(`/api/tree?root=${q(sc.bash)}&depth=3`);
    const ids = new Set(t.body.nodes.map((n: any) => n.id));
    for (const id of [sc.make, sc.ld, sc.grep, sc.run]) assert.ok(ids.has(id), id);
    assert.ok(t.body.nodes.every((n: any) => n.kind === 'process'));
  });
  it('histogram buckets cover every edge', async () => {
    const h = await api('/api/histogram?buckets=40');
    assert.ok(h.body.length > 0 && h.body.length <= 40);
    const stats = await api('/api/stats');
    const edges = Object.values(stats.body.edges as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.equal(h.body.reduce((s: number, b: any) => s + b.count, 0), edges);
  });
  it('SVG export escapes the HTML file name', async () => {
    const r = await api(`/api/export?view=ancestors&id=${q(sc.htmlO)}&format=svg`);
    assert.equal(r.status, 200);
    assert.match(r.res.headers.get('content-type') ?? '', /image\/svg\+xml/);
    assert.match(r.body, /&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.doesNotMatch(r.body, /<img/);
    assert.match(r.res.headers.get('content-disposition') ?? '', /attachment/);
  });
  it('PROV-JSON and DOT exports of the same view', async () => {
    const j = await api(`/api/export?view=ancestors&id=${q(sc.appV0)}&format=prov-json&depth=2`);
    assert.equal(j.status, 200);
    assert.ok(j.body.prefix && j.body.entity && j.body.activity, 'a PROV-JSON document');
    assert.ok(JSON.stringify(j.body).includes('ld -o app'), 'the linker is in it');
    const d = await api(`/api/export?view=ancestors&id=${q(sc.appV0)}&format=dot&depth=2`);
    assert.equal(d.status, 200);
    assert.match(d.body, /^digraph/m);
    assert.match(d.res.headers.get('content-type') ?? '', /graphviz/);
  });
  it('the live stream sends nodes ingested after the client connected', async () => {
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/api/stream`, { signal: ac.signal });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!text.includes('event: ready')) text += (await reader.read()).value ?? '';
    const id = 'file:lab1:2049:99999:0';
    await store.ingest({ checkpoint: { ebpf: 99_999 }, nodes: [{ id, kind: 'file', host: 'lab1', label: 'late.txt', ts: 1, attrs: { path: '/tmp/late.txt', version: 0 } }], edges: [], names: [], nameEnds: [], gaps: [] });
    while (!text.includes(id)) text += (await reader.read()).value ?? '';
    assert.match(text, /event: nodes\ndata: .*late\.txt/);
    assert.doesNotMatch(text, /main\.c/, 'a client that starts at the end does not get the backlog');
    ac.abort();
  });
});
