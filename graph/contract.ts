/**
 * @module graph/contract
 * The one test suite every GraphStore must pass (SQLite, Neo4j…). A store's test file calls
 * `graphStoreContract('sqlite', () => openSqliteStore(tmp))`. Each test opens a fresh, empty
 * store through `open`, builds its graph with {@link GraphBuilder} (no join engine involved),
 * and closes the store (then calls `cleanup`) when it ends, also on failure.
 *
 * What the suite pins down beyond graph/store.ts's comments:
 * - ingest never skips a batch because of its checkpoint: it applies it idempotently and keeps
 *   the per-stream maximum checkpoint; a failing batch changes nothing (checkpoint included);
 * - an edge naming a node not yet stored creates a placeholder node (kind from the id prefix)
 *   that a later node with that id fills in;
 * - lineage results include the start node first; `depth` counts edges from it; unknown ids
 *   throw NotFoundError, bad options InputError;
 * - the `history` rule ignores `wasDerivedFrom` edges marked strict; the `strict` rule follows
 *   only those;
 * - search returns one item per file (its latest version) when any name it has or had matches;
 * - a process tree follows `wasInformedBy` edges whose attrs.via is 'fork' or 'exec' (default
 *   depth 64 from a root; without a root: every process with its start in the window);
 * - path's default depth is 32; it tries `from` → `to` along the edges, then the reverse;
 * - histogram covers [since, until], by default the edges' first and last ts, with at most
 *   `buckets` contiguous buckets (integer ns bounds, both inclusive);
 * - feed returns a node again after a merge changed it; hosts() is sorted;
 * - node(id, { edgeLimit }) keeps the most recent edges of each direction, in time order.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint, EdgeKind, Gap, GraphEdge, GraphNode, IngestBatch, NameRecord } from './model.js';
import type { GraphStore, Subgraph } from './store.js';
import { InputError, NotFoundError } from './errors.js';

/** Builds small test graphs as IngestBatches; journal positions are numbered automatically. */
export class GraphBuilder {
  private batchNow: IngestBatch;
  private seq = 0;

  constructor(readonly host = 'h1', readonly stream = 'test') {
    this.batchNow = GraphBuilder.empty();
  }

  private static empty(): IngestBatch {
    return { checkpoint: {}, nodes: [], edges: [], names: [], nameEnds: [], gaps: [] };
  }

  /** A process image; returns its id. */
  proc(pid: number, start: number, attrs: Record<string, unknown> = {}, label?: string): string {
    const id = `proc:${this.host}:${pid}:${start}`;
    const argv = (attrs.argv as string[] | undefined) ?? [`p${pid}`];
    this.node({ id, kind: 'process', host: this.host, label: label ?? argv.join(' '), ts: start, attrs: { pid, start, argv, ...attrs } });
    return id;
  }

  /** A file version with its path attribute; returns its id. Adds a name record when `named`. */
  file(ino: number, version: number, path: string, ts: number, named = version === 0, attrs: Record<string, unknown> = {}): string {
    const id = `file:${this.host}:1:${ino}:${version}`;
    this.node({ id, kind: 'file', host: this.host, label: path.slice(path.lastIndexOf('/') + 1), ts, attrs: { dev: 1, ino, version, path, ...attrs } });
    if (named) this.name(ino, path, ts);
    return id;
  }

  user(uid: number): string {
    const id = `user:${this.host}:${uid}`;
    this.node({ id, kind: 'user', host: this.host, label: `uid ${uid}`, ts: 0, attrs: { uid } });
    return id;
  }

  pipe(ino: number, ts: number): string {
    const id = `pipe:${this.host}:${ino}`;
    this.node({ id, kind: 'pipe', host: this.host, label: `pipe:${ino}`, ts, attrs: { ino } });
    return id;
  }

  node(n: GraphNode): this {
    this.batchNow.nodes.push(n);
    return this;
  }

  edge(kind: EdgeKind, from: string, to: string, ts: number, attrs?: Record<string, unknown>): GraphEdge {
    const e: GraphEdge = { kind, from, to, ts, pos: `${this.stream}:${++this.seq}` };
    if (attrs) e.attrs = attrs;
    this.batchNow.edges.push(e);
    return e;
  }

  used(proc: string, entity: string, ts: number): GraphEdge { return this.edge('used', proc, entity, ts); }
  generated(entity: string, proc: string, ts: number): GraphEdge { return this.edge('wasGeneratedBy', entity, proc, ts); }
  informed(child: string, parent: string, ts: number, via = 'fork'): GraphEdge { return this.edge('wasInformedBy', child, parent, ts, { via }); }
  derived(out: string, input: string, ts: number, rule = 'strict'): GraphEdge { return this.edge('wasDerivedFrom', out, input, ts, { rule }); }
  invalidated(file: string, proc: string, ts: number): GraphEdge { return this.edge('wasInvalidatedBy', file, proc, ts); }
  associated(proc: string, user: string, ts: number): GraphEdge { return this.edge('wasAssociatedWith', proc, user, ts); }

  /** File identity id of an inode on this builder's host. */
  ident(ino: number): string {
    return `file:${this.host}:1:${ino}`;
  }

  name(ino: number, path: string, since: number, until?: number): NameRecord {
    const r: NameRecord = { file: this.ident(ino), host: this.host, path, since, pos: `${this.stream}:${this.seq}` };
    if (until !== undefined) r.until = until;
    this.batchNow.names.push(r);
    return r;
  }

  endName(ino: number, path: string, until: number): void {
    this.batchNow.nameEnds.push({ file: this.ident(ino), path, until });
  }

  gap(id: string, from: number, to: number, count = 1): Gap {
    const g: Gap = { id, host: this.host, src: 'ebpf', from, to, count, reason: 'ring buffer full' };
    this.batchNow.gaps.push(g);
    return g;
  }

  /** Take what was built so far as one batch (with this checkpoint, default this stream at the last position). */
  batch(checkpoint?: Checkpoint): IngestBatch {
    const b = this.batchNow;
    b.checkpoint = checkpoint ?? { [this.stream]: this.seq };
    this.batchNow = GraphBuilder.empty();
    return b;
  }
}

const ids = (g: { nodes: GraphNode[] }): string[] => g.nodes.map((n) => n.id).sort();
const sorted = (xs: string[]): string[] => [...xs].sort();
const edgeKeys = (g: Subgraph): string[] => g.edges.map((e) => `${e.kind} ${e.from} ${e.to}`).sort();

/**
 * Register the contract suite for one store. `open` must return a fresh, empty store each call;
 * `cleanup` (optional) runs after that store is closed, e.g. to delete its files.
 */
export function graphStoreContract(name: string, open: () => Promise<GraphStore>, cleanup?: (store: GraphStore) => Promise<void> | void): void {
  async function fresh(t: { after: (fn: () => Promise<void>) => void }): Promise<GraphStore> {
    const s = await open();
    t.after(async () => {
      try { await s.close(); } finally { await cleanup?.(s); }
    });
    return s;
  }

  /** A small build: cc reads main.c and util.h, writes main.o; ld reads main.o, writes app. */
  function build(b = new GraphBuilder()) {
    const user = b.user(1000);
    const shell = b.proc(100, 1, { exe: '/bin/sh' });
    const cc = b.proc(101, 10, { exe: '/usr/bin/cc', argv: ['cc', '-c', 'main.c'] });
    const ld = b.proc(102, 30, { exe: '/usr/bin/ld', argv: ['ld', '-o', 'app', 'main.o'] });
    const mainC = b.file(1, 0, '/src/main.c', 0);
    const utilH = b.file(2, 0, '/src/util.h', 0);
    const mainO = b.file(3, 0, '/src/main.o', 20);
    const app = b.file(4, 0, '/src/app', 40);
    b.associated(shell, user, 1);
    b.informed(cc, shell, 10);
    b.informed(ld, shell, 30);
    b.used(cc, mainC, 11);
    b.used(cc, utilH, 12);
    b.generated(mainO, cc, 20);
    b.used(ld, mainO, 31);
    b.generated(app, ld, 40);
    return { b, user, shell, cc, ld, mainC, utilH, mainO, app };
  }

  describe(`GraphStore contract: ${name}`, () => {
    describe('ingest', () => {
      it('is idempotent: the same batch twice gives the same counts and checkpoint', async (t) => {
        const s = await fresh(t);
        const { b } = build();
        const batch = b.batch({ test: 8, other: 3 });
        await s.ingest(batch);
        const first = await s.stats();
        await s.ingest(structuredClone(batch));
        const second = await s.stats();
        assert.deepEqual(second, first);
        assert.deepEqual(first.nodes, { process: 3, file: 4, user: 1 });
        assert.deepEqual(first.edges, { used: 3, wasGeneratedBy: 2, wasInformedBy: 2, wasAssociatedWith: 1 });
        assert.deepEqual(await s.checkpoint(), { test: 8, other: 3 });
        assert.deepEqual(first.checkpoint, { test: 8, other: 3 });
      });

      it('starts empty with an empty checkpoint', async (t) => {
        const s = await fresh(t);
        assert.deepEqual(await s.checkpoint(), {});
        const st = await s.stats();
        assert.deepEqual(st.nodes, {});
        assert.deepEqual(st.edges, {});
        assert.equal(st.gaps, 0);
        assert.equal(st.hosts, 0);
        assert.deepEqual(await s.hosts(), []);
        assert.deepEqual(await s.histogram(4), []);
        assert.deepEqual(await s.feed(0, 10), { nodes: [], cursor: 0 });
      });

      it('applies a batch all-or-nothing with its checkpoint', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(1, 1);
        await s.ingest(b.batch({ test: 5 }));
        const f = b.file(9, 0, '/bad', 2);
        b.used(p, f, 3);
        const bad = b.batch({ test: 9 });
        bad.edges.push({ kind: 'noSuchKind' as EdgeKind, from: p, to: f, ts: 4, pos: 'test:99' });
        await assert.rejects(s.ingest(bad), InputError);
        assert.deepEqual(await s.checkpoint(), { test: 5 });
        assert.equal(await s.node(f), null);
        assert.deepEqual((await s.stats()).edges, {});
      });

      it('applies a batch whose checkpoint is not newer safely: no duplicates, checkpoint kept', async (t) => {
        const s = await fresh(t);
        const { b, cc, mainC } = build();
        const older = b.batch({ test: 4 });
        await s.ingest(structuredClone(older));
        const late = b.file(50, 0, '/src/late.c', 50);
        b.used(cc, late, 13);
        await s.ingest(b.batch({ test: 10 }));
        const before = await s.stats();
        const replay = structuredClone(older);
        const extra = new GraphBuilder('h1', 'other').file(51, 0, '/src/extra.c', 51);
        replay.nodes.push({ id: extra, kind: 'file', host: 'h1', label: 'extra.c', ts: 51, attrs: { version: 0 } });
        await s.ingest(replay);
        const after = await s.stats();
        assert.deepEqual(after.edges, before.edges);
        assert.equal(after.nodes.file, (before.nodes.file ?? 0) + 1, 'new content of a not-newer batch is applied');
        assert.deepEqual(await s.checkpoint(), { test: 10 });
        assert.ok((await s.node(mainC))!.in.length === 1);
      });

      it('merges nodes: later attributes overwrite, absent ones are kept', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(7, 100, { exe: '/bin/true', nested: { a: 1 }, keep: 'yes' }, 'true');
        await s.ingest(b.batch());
        b.node({ id: p, kind: 'process', host: 'h1', label: 'true (exited)', ts: 100, attrs: { pid: 7, end: 200, exitCode: 0, nested: { b: 2 } } });
        await s.ingest(b.batch());
        const n = (await s.node(p))!.node;
        assert.equal(n.label, 'true (exited)');
        assert.equal(n.attrs.exe, '/bin/true');
        assert.equal(n.attrs.keep, 'yes');
        assert.equal(n.attrs.end, 200);
        assert.equal(n.attrs.exitCode, 0);
        assert.deepEqual(n.attrs.nested, { b: 2 }, 'an attribute is replaced as a whole, not deep-merged');
        assert.deepEqual(n.attrs.argv, ['p7']);
        assert.equal((await s.stats()).nodes.process, 1);
      });

      it('creates a placeholder for an edge to an unknown node, filled in by the node later', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(1, 1);
        b.used(p, 'file:h1:1:77:0', 5);
        await s.ingest(b.batch());
        const ph = await s.node('file:h1:1:77:0');
        assert.ok(ph, 'placeholder exists');
        assert.equal(ph.node.kind, 'file');
        assert.equal(ph.in.length, 1);
        b.file(77, 0, '/late/arrival', 3);
        await s.ingest(b.batch());
        const full = (await s.node('file:h1:1:77:0'))!;
        assert.equal(full.node.label, 'arrival');
        assert.equal(full.node.attrs.path, '/late/arrival');
        assert.equal(full.in.length, 1);
        assert.equal((await s.stats()).nodes.file, 1);
      });

      it('rejects bad records with an InputError that says where', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        b.node({ id: 'x:1', kind: 'bogus' as GraphNode['kind'], host: 'h1', label: 'x', ts: 1, attrs: {} });
        await assert.rejects(s.ingest(b.batch()), (e: unknown) => e instanceof InputError && /node #0/.test(e.message));
        b.proc(1, 1);
        const bad = b.batch();
        bad.edges.push({ kind: 'used', from: 'proc:h1:1:1', to: 'file:h1:1:1:0', ts: Number.NaN, pos: 'test:1' });
        await assert.rejects(s.ingest(bad), (e: unknown) => e instanceof InputError && /edge #0/.test(e.message));
      });
    });

    describe('lineage', () => {
      it('ancestors and descendants follow the depth', async (t) => {
        const s = await fresh(t);
        const g = build();
        await s.ingest(g.b.batch());
        const a0 = await s.ancestors(g.app, { depth: 0 });
        assert.deepEqual(ids(a0), [g.app]);
        const a1 = await s.ancestors(g.app, { depth: 1 });
        assert.deepEqual(ids(a1), sorted([g.app, g.ld]));
        assert.equal(a1.nodes[0]!.id, g.app, 'the start node comes first');
        assert.deepEqual(edgeKeys(a1), [`wasGeneratedBy ${g.app} ${g.ld}`]);
        const a3 = await s.ancestors(g.app, { depth: 3 });
        assert.deepEqual(ids(a3), sorted([g.app, g.ld, g.mainO, g.shell, g.cc, g.user]));
        const all = await s.ancestors(g.app);
        assert.deepEqual(ids(all), sorted([g.app, g.ld, g.mainO, g.shell, g.cc, g.mainC, g.utilH, g.user]));
        assert.equal(all.truncated, false);
        assert.equal(all.edges.length, 8, 'each edge once, though shell is reached twice');
        const d = await s.descendants(g.utilH);
        assert.deepEqual(ids(d), sorted([g.utilH, g.cc, g.mainO, g.ld, g.app]));
        const d1 = await s.descendants(g.utilH, { depth: 2 });
        assert.deepEqual(ids(d1), sorted([g.utilH, g.cc, g.mainO]));
        for (const e of all.edges) {
          assert.equal(typeof e.pos, 'string');
          assert.equal(typeof e.ts, 'number');
        }
      });

      it('shows the current state after later batches: merged nodes, new edges', async (t) => {
        const s = await fresh(t);
        const g = build();
        await s.ingest(g.b.batch());
        const before = await s.ancestors(g.app);
        assert.equal(before.nodes.find((n) => n.id === g.ld)!.attrs.exitCode, undefined);
        g.b.node({ id: g.ld, kind: 'process', host: 'h1', label: 'ld (done)', ts: 30, attrs: { exitCode: 0, end: 41 } });
        const libm = g.b.file(60, 0, '/lib/libm.a', 0);
        g.b.used(g.ld, libm, 32);
        await s.ingest(g.b.batch());
        const after = await s.ancestors(g.app);
        assert.ok(after.nodes.some((n) => n.id === libm), 'an edge added later is walked');
        assert.equal(after.nodes.length, before.nodes.length + 1);
        const ld = after.nodes.find((n) => n.id === g.ld)!;
        assert.equal(ld.label, 'ld (done)');
        assert.equal(ld.attrs.exitCode, 0);
        assert.equal(ld.attrs.exe, '/usr/bin/ld');
        const d = await s.descendants(g.mainC);
        assert.equal(d.nodes.find((n) => n.id === g.ld)!.attrs.end, 41);
      });

      it('honours since and until on edges', async (t) => {
        const s = await fresh(t);
        const g = build();
        await s.ingest(g.b.batch());
        const early = await s.ancestors(g.app, { until: 35 });
        assert.deepEqual(ids(early), [g.app], 'the generation at 40 is outside');
        const late = await s.ancestors(g.app, { since: 20 });
        assert.deepEqual(ids(late), sorted([g.app, g.ld, g.mainO, g.shell, g.cc]), 'cc read its inputs at 11 and 12, before since');
        const d = await s.descendants(g.mainC, { since: 0, until: 25 });
        assert.deepEqual(ids(d), sorted([g.mainC, g.cc, g.mainO]));
      });

      it('stops at limit and says so', async (t) => {
        const s = await fresh(t);
        const g = build();
        await s.ingest(g.b.batch());
        const r = await s.ancestors(g.app, { limit: 3 });
        assert.equal(r.nodes.length, 3);
        assert.equal(r.truncated, true);
        const present = new Set(r.nodes.map((n) => n.id));
        for (const e of r.edges) assert.ok(present.has(e.from) && present.has(e.to), 'edges only between returned nodes');
        const full = await s.ancestors(g.app, { limit: 8 });
        assert.equal(full.truncated, false);
        await assert.rejects(s.ancestors(g.app, { limit: 0 }), InputError);
        await assert.rejects(s.ancestors(g.app, { depth: -1 }), InputError);
        await assert.rejects(s.ancestors('file:h1:1:999:0'), NotFoundError);
        await assert.rejects(s.descendants('nope'), NotFoundError);
      });

      it('history rule: an input used after the output was generated is not its ancestor', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(10, 1, { exe: '/usr/bin/tool' });
        const in1 = b.file(1, 0, '/in1', 0);
        const in2 = b.file(2, 0, '/in2', 0);
        const out1 = b.file(3, 0, '/out1', 20);
        const out2 = b.file(4, 0, '/out2', 40);
        b.used(p, in1, 10);
        b.generated(out1, p, 20);
        b.used(p, in2, 30);
        b.generated(out2, p, 40);
        // A child forked at 5, before the parent read /secret at 50: the child's output does not depend on it.
        const child = b.proc(11, 5);
        const secret = b.file(5, 0, '/secret', 0);
        const out3 = b.file(6, 0, '/out3', 60);
        b.informed(child, p, 5);
        b.used(p, secret, 50);
        b.generated(out3, child, 60);
        await s.ingest(b.batch());
        assert.deepEqual(ids(await s.ancestors(out1)), sorted([out1, p, in1]));
        assert.deepEqual(ids(await s.ancestors(out2)), sorted([out2, p, in1, in2]));
        assert.deepEqual(ids(await s.ancestors(out3)), sorted([out3, child, p]), 'the parent is reached at the fork (5), before any read');
        assert.deepEqual(ids(await s.descendants(in2)), sorted([in2, p, out2]));
        assert.deepEqual(ids(await s.descendants(secret)), sorted([secret, p]), 'read after every output and after the fork');
        assert.deepEqual(ids(await s.descendants(in1)), sorted([in1, p, out1, out2]), 'the child was forked (5) before the read (10)');
      });

      it('history rule: a process reached with a later bound is expanded again', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(10, 1);
        const a = b.file(1, 0, '/a', 0);
        const late = b.file(2, 0, '/late-input', 0);
        const early = b.file(3, 0, '/early-out', 10);
        const final = b.file(4, 0, '/final-out', 40);
        const q = b.proc(11, 45);
        const result = b.file(5, 0, '/result', 50);
        b.used(p, a, 5);
        b.generated(early, p, 10);
        b.used(p, late, 20);
        b.generated(final, p, 40);
        b.used(q, early, 46); // q reaches p first through the early output (bound 10)…
        b.used(q, final, 47); // …and through the final one (bound 40) at the same depth
        b.generated(result, q, 50);
        await s.ingest(b.batch());
        const r = await s.ancestors(result);
        assert.ok(r.nodes.some((n) => n.id === late), 'late-input reaches result through final-out');
      });

      it('strict rule follows only strict wasDerivedFrom edges; history ignores them', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(1, 1);
        const src = b.file(1, 0, '/strict/src', 0);
        const other = b.file(2, 0, '/strict/other', 0);
        const out = b.file(3, 0, '/strict/out', 20);
        const out2 = b.file(4, 0, '/strict/out2', 30);
        b.used(p, src, 5);
        b.used(p, other, 6);
        b.generated(out, p, 20);
        b.derived(out, src, 20);
        b.derived(out2, out, 30);
        await s.ingest(b.batch());
        const strict = await s.ancestors(out2, { rule: 'strict' });
        assert.deepEqual(ids(strict), sorted([out2, out, src]));
        assert.ok(strict.edges.every((e) => e.kind === 'wasDerivedFrom'));
        const hist = await s.ancestors(out, { rule: 'history' });
        assert.deepEqual(ids(hist), sorted([out, p, src, other]));
        assert.ok(hist.edges.every((e) => e.kind !== 'wasDerivedFrom'));
        assert.deepEqual(ids(await s.descendants(src, { rule: 'strict' })), sorted([src, out, out2]));
        await assert.rejects(s.ancestors(out, { rule: 'bogus' as 'strict' }), InputError);
      });

      it('finds a path between two nodes in either direction, or null', async (t) => {
        const s = await fresh(t);
        const g = build();
        const lone = g.b.file(99, 0, '/lonely', 5);
        await s.ingest(g.b.batch());
        const p = await s.path(g.app, g.mainC);
        assert.ok(p);
        assert.deepEqual(p.nodes.map((n) => n.id), [g.app, g.ld, g.mainO, g.cc, g.mainC]);
        assert.equal(p.edges.length, 4);
        assert.deepEqual(p.edges.map((e) => e.kind), ['wasGeneratedBy', 'used', 'wasGeneratedBy', 'used']);
        const rev = await s.path(g.mainC, g.app);
        assert.ok(rev, 'the reverse direction is found too');
        assert.equal(rev.edges.length, 4);
        assert.equal(rev.nodes[0]!.id, g.mainC);
        assert.equal(await s.path(g.app, lone), null);
        assert.equal(await s.path(g.mainO, g.utilH, { depth: 1 }), null, 'depth bounds the path');
        await assert.rejects(s.path(g.app, 'file:h1:1:12345:0'), NotFoundError);
      });

      it('returns the gaps of the same host that overlap the result', async (t) => {
        const s = await fresh(t);
        const g = build();
        const inside = g.b.gap('g-inside', 15, 18, 3);
        g.b.gap('g-after', 100, 200);
        const other = new GraphBuilder('h2', 'other');
        other.proc(1, 1);
        const foreign = other.gap('g-other-host', 15, 18);
        await s.ingest(g.b.batch());
        await s.ingest(other.batch());
        const r = await s.ancestors(g.app);
        assert.deepEqual(r.gaps.map((x) => x.id), ['g-inside']);
        assert.deepEqual(r.gaps[0], inside);
        assert.ok(!r.gaps.some((x) => x.id === foreign.id));
        const before = await s.ancestors(g.mainO, { until: 12 });
        assert.deepEqual(before.gaps, [], 'edges up to 12 do not reach the gap at 15–18');
        assert.equal((await s.stats()).gaps, 3);
      });

      it('walks a large fan-out and fan-in', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(1, 1, { exe: '/usr/bin/find' });
        const out = b.file(100_000, 0, '/fan/out', 10_000);
        const header = b.file(100_001, 0, '/fan/common.h', 0);
        for (let i = 0; i < 3000; i++) b.used(p, b.file(i + 1, 0, `/fan/in/${i}`, 0), 10 + i);
        b.generated(out, p, 10_000);
        for (let i = 0; i < 1500; i++) b.used(b.proc(1000 + i, 20_000 + i), header, 20_001 + i);
        await s.ingest(b.batch());
        const up = await s.ancestors(out, { limit: 10_000 });
        assert.equal(up.nodes.length, 3002);
        assert.equal(up.edges.length, 3001);
        assert.equal(up.truncated, false);
        const cut = await s.ancestors(out, { limit: 100 });
        assert.equal(cut.nodes.length, 100);
        assert.equal(cut.truncated, true);
        const down = await s.descendants(header, { limit: 10_000 });
        assert.equal(down.nodes.length, 1501);
        const few = await s.descendants(header, { limit: 10 });
        assert.equal(few.nodes.length, 10);
        assert.equal(few.truncated, true);
        const page = await s.search({ prefix: '/fan/in/', limit: 50, offset: 2950 });
        assert.equal(page.total, 3000);
        assert.equal(page.items.length, 50);
      });
    });

    describe('search and names', () => {
      it('searches by prefix and glob with paging and a total', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        for (let i = 0; i < 25; i++) b.file(i + 1, 0, `/proj/src/f${String(i).padStart(2, '0')}.c`, i);
        b.file(100, 0, '/proj/src/sub/deep.c', 1);
        b.file(101, 0, '/proj/include/a.h', 1);
        b.file(102, 0, '/proj/.hidden.c', 1);
        b.file(103, 0, '/other/x.c', 1);
        b.proc(5, 1, { exe: '/usr/bin/gcc' });
        b.proc(6, 2, { exe: '/usr/bin/ld' });
        await s.ingest(b.batch());
        const p1 = await s.search({ prefix: '/proj/src/', limit: 10 });
        assert.equal(p1.total, 26);
        assert.equal(p1.items.length, 10);
        const p3 = await s.search({ prefix: '/proj/src/', limit: 10, offset: 20 });
        assert.equal(p3.items.length, 6);
        const seen = new Set<string>();
        for (let off = 0; off < 26; off += 7) for (const n of (await s.search({ prefix: '/proj/src/', limit: 7, offset: off })).items) seen.add(n.id);
        assert.equal(seen.size, 26, 'pages do not overlap or skip');
        const g = await s.search({ glob: '/proj/src/*.c' });
        assert.equal(g.total, 25, '* does not cross /');
        const gg = await s.search({ glob: '/proj/**/*.c' });
        assert.equal(gg.total, 27, '** crosses directories and matches dot files');
        assert.deepEqual((await s.search({ glob: '**/x.c' })).items.map((n) => n.attrs.path), ['/other/x.c']);
        assert.equal((await s.search({ glob: '/proj/src/f1?.c' })).total, 10);
        assert.equal((await s.search({ glob: '/proj/src/f0[0-2].c' })).total, 3);
        assert.equal((await s.search({ prefix: '/proj/src/f2', glob: '**/*.c' })).total, 5);
        assert.equal((await s.search({ prefix: '/nothing' })).total, 0);
        const procs = await s.search({ kind: 'process', prefix: '/usr/bin/g' });
        assert.deepEqual(procs.items.map((n) => n.attrs.exe), ['/usr/bin/gcc']);
        assert.equal((await s.search({ kind: 'process', glob: '/usr/bin/*' })).total, 2);
        await assert.rejects(s.search({ prefix: '/', limit: 0 }), InputError);
        await assert.rejects(s.search({ prefix: '/', kind: 'bogus' as 'file' }), InputError);
        await assert.rejects(s.search({ glob: '/x/'.repeat(400) + '*' }), InputError, 'an overlong glob is refused');
      });

      it('keeps name history: a renamed file is found under old and new names', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const w = b.proc(1, 1);
        const v0 = b.file(7, 0, '/docs/draft.txt', 10);
        b.generated(v0, w, 10);
        await s.ingest(b.batch());
        // Renamed at 20 (version 0 still current), then rewritten under the new name: version 1 at 30.
        b.endName(7, '/docs/draft.txt', 20);
        b.name(7, '/docs/final.txt', 20);
        const v1 = b.file(7, 1, '/docs/final.txt', 30, false);
        b.generated(v1, w, 30);
        await s.ingest(b.batch());
        const byOld = await s.search({ prefix: '/docs/draft' });
        const byNew = await s.search({ prefix: '/docs/final' });
        assert.deepEqual(byOld.items.map((n) => n.id), [v1], 'one result per file: its latest version');
        assert.deepEqual(byNew.items.map((n) => n.id), [v1]);
        assert.equal((await s.search({ prefix: '/docs/' })).total, 1);
        assert.equal((await s.resolvePath('/docs/final.txt'))?.id, v1);
        assert.equal((await s.resolvePath('/docs/draft.txt'))?.id, v0, 'the version current while it had that name');
        assert.equal((await s.resolvePath('/docs/final.txt', 25))?.id, v0, 'at 25 the new name held version 0');
        assert.equal((await s.resolvePath('/docs/draft.txt', 15))?.id, v0);
        assert.equal(await s.resolvePath('/docs/draft.txt', 25), null, 'nothing had the old name at 25');
        assert.equal(await s.resolvePath('/docs/none'), null);
        const d = (await s.node(v0))!;
        assert.deepEqual(d.names.map((n) => [n.path, n.since, n.until]), [['/docs/draft.txt', 10, 20], ['/docs/final.txt', 20, undefined]]);
        assert.deepEqual(d.versions.map((n) => n.id), [v0, v1]);
        // Replaying the end and the rename changes nothing.
        b.endName(7, '/docs/draft.txt', 20);
        b.name(7, '/docs/final.txt', 20);
        await s.ingest(b.batch());
        assert.equal((await s.node(v1))!.names.length, 2);
      });

      it('resolves a path per host and picks the latest holder of a reused name', async (t) => {
        const s = await fresh(t);
        const a = new GraphBuilder('alpha');
        const z = new GraphBuilder('zeta', 'zs');
        const fa = a.file(5, 0, '/etc/hosts', 1);
        const fz = z.file(5, 0, '/etc/hosts', 2);
        const newer = a.file(6, 0, '/tmp/x', 50);
        a.name(5, '/tmp/x', 10, 40);
        await s.ingest(a.batch());
        await s.ingest(z.batch());
        assert.equal((await s.resolvePath('/etc/hosts', undefined, 'alpha'))?.id, fa);
        assert.equal((await s.resolvePath('/etc/hosts', undefined, 'zeta'))?.id, fz);
        assert.equal((await s.resolvePath('/tmp/x'))?.id, newer, 'the inode that got the name last');
        assert.equal((await s.resolvePath('/tmp/x', 20))?.id, fa, 'at 20 the name belonged to inode 5');
      });

      it('keeps odd and hostile file names intact', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p = b.proc(1, 1, { argv: ['sh', '-c', 'echo "$(id)" > \'x\''] });
        const odd = ['/w/quote"d\'name', '/w/new\nline', '/w/<script>alert(1)</script>', '/w/ünï©ødé ✓', '/w/emoji 😀.txt',
          '/w/back\\slash', '/w/tab\there', '/w/%s%n', '/w/nul-free\u0001ctl', '/w/\u{10FFFF}max'];
        const fileIds = odd.map((path, i) => b.file(i + 1, 0, path, i));
        for (const f of fileIds) b.used(p, f, 5);
        await s.ingest(b.batch());
        for (let i = 0; i < odd.length; i++) {
          const n = await s.resolvePath(odd[i]!);
          assert.equal(n?.id, fileIds[i], `resolves ${JSON.stringify(odd[i])}`);
          assert.equal(n.attrs.path, odd[i]);
          const found = await s.search({ prefix: odd[i]! });
          assert.deepEqual(found.items.map((x) => x.id), [fileIds[i]], `prefix search for ${JSON.stringify(odd[i])}`);
        }
        assert.equal((await s.search({ prefix: '/w/' })).total, odd.length);
        assert.equal((await s.search({ prefix: '/w/\u{10FFFF}' })).total, 1);
        assert.equal((await s.search({ glob: '/w/**' })).total, odd.length);
        assert.equal((await s.search({ glob: '/w/*' })).total, odd.length - 1, '"</script>" holds a slash: one level deeper');
        assert.equal((await s.search({ glob: '/w/<script>*/script>' })).total, 1);
        assert.deepEqual((await s.node(p))!.node.attrs.argv, ['sh', '-c', 'echo "$(id)" > \'x\'']);
        assert.equal((await s.ancestors(p)).nodes.length, odd.length + 1);
      });
    });

    describe('nodes and overview', () => {
      it('gives node details: names, versions, in and out edges with the other end', async (t) => {
        const s = await fresh(t);
        const g = build();
        await s.ingest(g.b.batch());
        const d = (await s.node(g.mainO))!;
        assert.equal(d.node.id, g.mainO);
        assert.equal(d.node.kind, 'file');
        assert.equal(d.node.host, 'h1');
        assert.equal(d.node.label, 'main.o');
        assert.equal(d.node.ts, 20);
        assert.deepEqual(d.names.map((n) => n.path), ['/src/main.o']);
        assert.deepEqual(d.versions.map((n) => n.id), [g.mainO]);
        assert.deepEqual(d.out.map((o) => [o.edge.kind, o.node.id]), [['wasGeneratedBy', g.cc]]);
        assert.deepEqual(d.in.map((o) => [o.edge.kind, o.node.id]), [['used', g.ld]]);
        assert.equal(d.in[0]!.edge.from, g.ld);
        assert.equal(d.in[0]!.edge.to, g.mainO);
        const cc = (await s.node(g.cc))!;
        assert.deepEqual(cc.out.map((o) => o.node.id).sort(), sorted([g.mainC, g.utilH, g.shell]));
        assert.deepEqual(cc.out.find((o) => o.edge.kind === 'wasInformedBy')!.edge.attrs, { via: 'fork' });
        assert.deepEqual(cc.names, []);
        assert.deepEqual(cc.versions, []);
        assert.equal(await s.node('file:h1:1:404:0'), null);
      });

      it('cuts node details at edgeLimit, keeping the most recent edges in time order', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const libc = b.file(1, 0, '/lib/libc.so.6', 0);
        const readers = Array.from({ length: 5 }, (_, i) => b.proc(100 + i, 10 * (i + 1)));
        readers.forEach((p, i) => b.used(p, libc, 10 * (i + 1) + 1));
        await s.ingest(b.batch());
        const all = (await s.node(libc))!;
        assert.equal(all.in.length, 5);
        assert.ok(!all.truncated);
        assert.deepEqual(all.in.map((x) => x.edge.ts), [11, 21, 31, 41, 51], 'in time order');
        const cut = (await s.node(libc, { edgeLimit: 2 }))!;
        assert.equal(cut.truncated, true);
        assert.deepEqual(cut.in.map((x) => x.node.id), [readers[3], readers[4]]);
        const exact = (await s.node(libc, { edgeLimit: 5 }))!;
        assert.equal(exact.in.length, 5);
        assert.ok(!exact.truncated);
        const p = (await s.node(readers[0]!, { edgeLimit: 0 }))!;
        assert.deepEqual(p.out, []);
        assert.equal(p.truncated, true);
      });

      it('builds the process tree from fork and exec edges', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const init = b.proc(1, 1);
        const sh = b.proc(10, 10);
        const sh2 = b.proc(10, 12); // sh exec'd into make
        const cc = b.proc(11, 20);
        const reader = b.proc(12, 21);
        const other = b.proc(50, 5);
        b.informed(sh, init, 10, 'fork');
        b.informed(sh2, sh, 12, 'exec');
        b.informed(cc, sh2, 20, 'fork');
        b.informed(reader, cc, 25, 'pipe'); // a data flow, not a parent
        await s.ingest(b.batch());
        const tree = await s.processTree(init);
        assert.deepEqual(ids(tree), sorted([init, sh, sh2, cc]));
        assert.equal(tree.edges.length, 3);
        assert.ok(tree.edges.every((e) => e.kind === 'wasInformedBy' && e.attrs?.via !== 'pipe'));
        assert.deepEqual(ids(await s.processTree(sh2)), sorted([sh2, cc]));
        assert.deepEqual(ids(await s.processTree(init, { depth: 1 })), sorted([init, sh]));
        const all = await s.processTree();
        assert.deepEqual(ids(all), sorted([init, sh, sh2, cc, reader, other]));
        assert.equal(all.edges.length, 3);
        assert.ok(all.nodes.every((n) => n.kind === 'process'));
        await assert.rejects(s.processTree('proc:h1:999:1'), NotFoundError);
      });

      it('keeps two hosts apart in one store', async (t) => {
        const s = await fresh(t);
        const one = build(new GraphBuilder('alpha', 'a'));
        const two = build(new GraphBuilder('beta', 'b'));
        await s.ingest(one.b.batch());
        await s.ingest(two.b.batch());
        assert.deepEqual(await s.hosts(), ['alpha', 'beta']);
        assert.notEqual(one.app, two.app);
        const a = await s.ancestors(one.app);
        assert.equal(a.nodes.length, 8);
        assert.ok(a.nodes.every((n) => n.host === 'alpha'));
        assert.equal((await s.search({ prefix: '/src/', host: 'beta' })).total, 4);
        assert.equal((await s.search({ prefix: '/src/' })).total, 8);
        const st = await s.stats();
        assert.equal(st.hosts, 2);
        assert.equal(st.nodes.file, 8);
        assert.deepEqual(st.checkpoint, { a: 8, b: 8 });
      });

      it('counts edges per time bucket', async (t) => {
        const s = await fresh(t);
        const g = build();
        await s.ingest(g.b.batch());
        const all = await s.histogram(4);
        assert.ok(all.length >= 1 && all.length <= 4);
        assert.equal(all.reduce((n, x) => n + x.count, 0), 8);
        assert.equal(all[0]!.from, 1);
        assert.equal(all[all.length - 1]!.to, 40);
        for (let i = 1; i < all.length; i++) assert.equal(all[i]!.from, all[i - 1]!.to + 1, 'buckets are contiguous');
        const one = await s.histogram(1);
        assert.deepEqual(one, [{ from: 1, to: 40, count: 8 }]);
        const win = await s.histogram(3, 10, 20);
        assert.equal(win[0]!.from, 10);
        assert.equal(win[win.length - 1]!.to, 20);
        assert.equal(win.reduce((n, x) => n + x.count, 0), 4, 'fork at 10, reads at 11 and 12, write at 20');
        await assert.rejects(s.histogram(0), InputError);
      });

      it('feeds nodes in ingest order from a cursor, and again after a merge changed them', async (t) => {
        const s = await fresh(t);
        const b = new GraphBuilder();
        const p1 = b.proc(1, 1);
        const p2 = b.proc(2, 2);
        const p3 = b.proc(3, 3);
        await s.ingest(b.batch());
        const f1 = await s.feed(0, 2);
        assert.deepEqual(f1.nodes.map((n) => n.id), [p1, p2]);
        const f2 = await s.feed(f1.cursor, 10);
        assert.deepEqual(f2.nodes.map((n) => n.id), [p3]);
        const f3 = await s.feed(f2.cursor, 10);
        assert.deepEqual(f3, { nodes: [], cursor: f2.cursor });
        const p4 = b.proc(4, 4);
        b.node({ id: p1, kind: 'process', host: 'h1', label: 'p1', ts: 1, attrs: { end: 9 } });
        await s.ingest(b.batch());
        const f4 = await s.feed(f3.cursor, 10);
        assert.deepEqual(f4.nodes.map((n) => n.id).sort(), sorted([p1, p4]));
        assert.equal(f4.nodes.find((n) => n.id === p1)!.attrs.end, 9);
        await s.ingest(structuredClone(b.batch()));
        assert.deepEqual((await s.feed(f4.cursor, 10)).nodes, [], 'an empty batch feeds nothing');
      });

      it('reports stats', async (t) => {
        const s = await fresh(t);
        const g = build();
        g.b.gap('x', 1, 2);
        const p = g.b.pipe(9, 3);
        g.b.used(g.cc, p, 13);
        g.b.invalidated(g.mainO, g.ld, 45);
        g.b.derived(g.app, g.mainO, 40);
        await s.ingest(g.b.batch({ test: 12 }));
        const st = await s.stats();
        assert.deepEqual(st.nodes, { process: 3, file: 4, user: 1, pipe: 1 });
        assert.deepEqual(st.edges, { used: 4, wasGeneratedBy: 2, wasInformedBy: 2, wasAssociatedWith: 1, wasInvalidatedBy: 1, wasDerivedFrom: 1 });
        assert.equal(st.gaps, 1);
        assert.equal(st.hosts, 1);
        assert.deepEqual(st.checkpoint, { test: 12 });
        assert.equal(typeof s.url, 'string');
      });
    });
  });
}
