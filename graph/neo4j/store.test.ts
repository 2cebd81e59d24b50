/**
 * @module graph/neo4j/store.test
 * The Neo4j store's own behaviour on a real Neo4j 3.1.1 (test/neo4j/server.ts), beyond the
 * shared contract suite: idempotent replay, the history rule's time bound, the strict rule,
 * paths, names and versions, search, the process tree, the feed, and errors.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { InputError, NotFoundError, StoreError } from '../errors.js';
import { emptyBatch, fileIdentity, fileVersionId, processId, type GraphEdge, type GraphNode, type IngestBatch } from '../model.js';
import type { GraphStore } from '../store.js';
import { openNeo4jStore } from './store.js';
import { driver4, freshStore, startServer } from '../../test/neo4j/fixture.js';
import { freePort, type Neo4jTestServer } from '../../test/neo4j/server.js';

const H = 'alpha';
const P1 = processId(H, 100, 1);
const P2 = processId(H, 200, 10);
const file = (ino: number, v: number) => fileVersionId(H, 8, ino, v);
const A = file(1, 0), B = file(2, 0), C = file(3, 1), D = file(4, 0), E = file(5, 0), F = file(6, 0), G = file(7, 1);
const C0 = file(3, 0);

function fnode(id: string, path: string, ts: number, version: number): GraphNode {
  const ino = Number(id.split(':')[3]);
  return { id, kind: 'file', host: H, label: path.split('/').pop()!, ts, attrs: { dev: 8, ino, version, path } };
}
function edge(kind: GraphEdge['kind'], from: string, to: string, ts: number, seq: number, attrs?: Record<string, unknown>): GraphEdge {
  return { kind, from, to, ts, pos: `ebpf:${seq}`, ...(attrs ? { attrs } : {}) };
}

/**
 * bash (P1) used E at 5, forked cc (P2) at 10, used F at 15 (after the fork).
 * cc generated G at 15, used A at 20 and B at 25, generated C v1 at 30, used D at 40.
 * C v1 wasDerivedFrom A by the strict rule.
 */
function scenario(): IngestBatch {
  const b = emptyBatch({ ebpf: 12 });
  b.nodes = [
    { id: P1, kind: 'process', host: H, label: 'bash', ts: 1, attrs: { pid: 100, start: 1, exe: '/bin/bash', argv: ['bash'] } },
    { id: P2, kind: 'process', host: H, label: 'cc -o c a.c', ts: 10, attrs: { pid: 200, ppid: 100, start: 10, exe: '/usr/bin/cc', argv: ['cc', '-o', 'c', 'a.c'] } },
    fnode(A, '/src/a.c', 0, 0), fnode(B, '/src/b.h', 0, 0), fnode(C0, '/src/c', 0, 0), fnode(C, '/src/c', 30, 1),
    fnode(D, '/src/d.txt', 0, 0), fnode(E, '/home/.bashrc', 0, 0), fnode(F, '/etc/motd', 0, 0), fnode(G, '/tmp/g.o', 15, 1),
  ];
  b.edges = [
    edge('used', P1, E, 5, 1),
    edge('wasInformedBy', P2, P1, 10, 2, { via: 'fork' }),
    edge('used', P1, F, 15, 3),
    edge('wasGeneratedBy', G, P2, 15, 4),
    edge('used', P2, A, 20, 5),
    edge('used', P2, B, 25, 6),
    edge('wasGeneratedBy', C, P2, 30, 7),
    edge('wasDerivedFrom', C, A, 30, 8, { rule: 'strict' }),
    edge('used', P2, D, 40, 9),
  ];
  b.names = [
    { file: fileIdentity(H, 8, 3), host: H, path: '/src/c.tmp', since: 0, pos: 'ebpf:10' },
    { file: fileIdentity(H, 8, 3), host: H, path: '/src/c', since: 35, pos: 'ebpf:11' },
  ];
  b.nameEnds = [{ file: fileIdentity(H, 8, 3), path: '/src/c.tmp', until: 35 }];
  b.gaps = [{ id: 'gap1', host: H, src: 'ebpf', from: 22, to: 23, count: 4, reason: 'ring buffer full' }];
  return b;
}

const ids = (xs: Array<{ id: string }>) => xs.map((x) => x.id).sort();

describe('Neo4j store on Neo4j 3.1.1', () => {
  let server: Neo4jTestServer;
  let store: GraphStore;
  before(async () => {
    server = await startServer();
    store = await freshStore(server);
    await store.ingest(scenario());
  });
  after(async () => {
    await store?.close();
    await server?.destroy();
  });

  it('replaying a batch changes nothing; the checkpoint is stored with it', async () => {
    const s1 = await store.stats();
    await store.ingest(scenario());
    const s2 = await store.stats();
    assert.deepEqual(s2, s1);
    assert.deepEqual(s1.checkpoint, { ebpf: 12 });
    assert.equal(s1.nodes.file, 8);
    assert.equal(s1.nodes.process, 2);
    assert.equal(s1.edges.used, 5);
    assert.equal(s1.gaps, 1);
  });

  it('merges attributes: later ones overwrite, absent ones stay', async () => {
    const b = emptyBatch({ ebpf: 13 });
    b.nodes = [{ id: P2, kind: 'process', host: H, label: 'cc -o c a.c', ts: 10, attrs: { end: 50, exitCode: 0 } }];
    await store.ingest(b);
    const n = (await store.node(P2))!.node;
    assert.deepEqual(n.attrs, { pid: 200, ppid: 100, start: 10, exe: '/usr/bin/cc', argv: ['cc', '-o', 'c', 'a.c'], end: 50, exitCode: 0 });
    assert.deepEqual(await store.checkpoint(), { ebpf: 13 });
  });

  it('ancestors follow the history rule’s time bound', async () => {
    const g = await store.ancestors(C);
    assert.deepEqual(ids(g.nodes), [A, B, C, E, P1, P2].sort(), 'D (read after) and F (read after the fork) are excluded');
    assert.equal(g.truncated, false);
    assert.deepEqual(g.gaps.map((x) => x.id), ['gap1'], 'the gap overlaps the walked edges');
    const shallow = await store.ancestors(C, { depth: 1 });
    assert.deepEqual(ids(shallow.nodes), [C, P2].sort());
    const limited = await store.ancestors(C, { limit: 3 });
    assert.equal(limited.nodes.length, 3);
    assert.equal(limited.truncated, true);
    const windowed = await store.ancestors(C, { since: 21 });
    assert.deepEqual(ids(windowed.nodes), [B, C, P2].sort());
  });

  it('descendants mirror the bound; the strict rule follows wasDerivedFrom only', async () => {
    const g = await store.descendants(A);
    assert.deepEqual(ids(g.nodes), [A, C, P2].sort(), 'G was written before cc read A');
    const strictUp = await store.ancestors(C, { rule: 'strict' });
    assert.deepEqual(ids(strictUp.nodes), [A, C].sort());
    assert.deepEqual(strictUp.edges.map((e) => e.kind), ['wasDerivedFrom']);
    const strictDown = await store.descendants(A, { rule: 'strict' });
    assert.deepEqual(ids(strictDown.nodes), [A, C].sort());
  });

  it('finds a path in either direction, or none', async () => {
    const p = await store.path(C, E);
    assert.ok(p);
    assert.deepEqual(p.nodes.map((n) => n.id), [C, P2, P1, E]);
    assert.deepEqual(p.edges.map((e) => e.kind), ['wasGeneratedBy', 'wasInformedBy', 'used']);
    const back = await store.path(E, C);
    assert.ok(back);
    assert.deepEqual(back.nodes.map((n) => n.id), [E, P1, P2, C]);
    assert.equal(await store.path(D, E), null);
    await assert.rejects(store.path(C, 'file:nowhere:0:0:0'), NotFoundError);
  });

  it('node details carry names, versions and both edge directions', async () => {
    const d = await store.node(C);
    assert.ok(d);
    assert.deepEqual(d.versions.map((v) => v.id), [C0, C]);
    assert.deepEqual(d.names.map((n) => [n.path, n.since, n.until]), [['/src/c.tmp', 0, 35], ['/src/c', 35, undefined]]);
    assert.deepEqual(d.out.map((o) => `${o.edge.kind} ${o.node.id}`).sort(), [`wasDerivedFrom ${A}`, `wasGeneratedBy ${P2}`]);
    assert.deepEqual(d.in, []);
    assert.equal(await store.node('proc:nowhere:1:1'), null);
  });

  it('resolves paths through the name history, at a time', async () => {
    assert.equal((await store.resolvePath('/src/c'))?.id, C);
    assert.equal((await store.resolvePath('/src/c.tmp', 5))?.id, C0);
    assert.equal(await store.resolvePath('/src/c.tmp', 40), null);
    assert.equal((await store.resolvePath('/src/a.c'))?.id, A, 'a path attribute without a name record');
    assert.equal(await store.resolvePath('/src/a.c', undefined, 'beta'), null);
  });

  it('searches by prefix and glob, files and processes', async () => {
    const pre = await store.search({ prefix: '/src/' });
    assert.deepEqual(ids(pre.items), [A, B, C, D].sort());
    assert.equal(pre.total, 4);
    const glob = await store.search({ glob: '/src/*.{c,h}' });
    assert.deepEqual(ids(glob.items), [A, B].sort());
    const page = await store.search({ prefix: '/src/', limit: 2, offset: 1 });
    assert.equal(page.items.length, 2);
    assert.equal(page.total, 4);
    const procs = await store.search({ kind: 'process', glob: '**/cc' });
    assert.deepEqual(ids(procs.items), [P2]);
  });

  it('process tree, hosts, histogram and feed', async () => {
    const t = await store.processTree();
    assert.deepEqual(ids(t.nodes), [P1, P2].sort());
    assert.deepEqual(t.edges.map((e) => e.kind), ['wasInformedBy']);
    const sub = await store.processTree(P2);
    assert.deepEqual(ids(sub.nodes), [P2]);
    assert.deepEqual(await store.hosts(), [H]);
    const h = await store.histogram(4);
    assert.equal(h.length, 4);
    assert.equal(h.reduce((s, b) => s + b.count, 0), 9);
    assert.equal(h[0]!.from, 5);
    assert.equal(h[3]!.to, 40);
    const f1 = await store.feed(0, 4);
    assert.equal(f1.nodes.length, 4);
    const f2 = await store.feed(f1.cursor, 100);
    assert.equal(f2.nodes.length, 6);
    assert.deepEqual(ids([...f1.nodes, ...f2.nodes]), ids(scenario().nodes), 'every node once, in ingest order');
    assert.deepEqual((await store.feed(f2.cursor, 100)).nodes, []);
  });

  it('rejects a malformed batch with where it is, writing nothing', async () => {
    const b = scenario();
    b.checkpoint = { ebpf: 99 };
    (b.edges[3] as { kind: string }).kind = 'touched';
    await assert.rejects(store.ingest(b), (e: unknown) => e instanceof InputError && /batch edge #3/.test(e.message));
    assert.deepEqual(await store.checkpoint(), { ebpf: 13 });
  });

  it('an unreachable server is a StoreError', async () => {
    const port = await freePort();
    await assert.rejects(openNeo4jStore(`bolt://127.0.0.1:${port}`, { driver: driver4 }), (e: unknown) => e instanceof StoreError && /unreachable/.test(e.message));
  });
});
