/**
 * @module collector/rebuild/plan.test
 * The grain rule on hand-made records in a real SQLite store: make → cc → cc1/as/ld gives the
 * commands `cc -c …` and `cc -o app …`; a script with a `sort | uniq > f` step is one command;
 * a single recorded compile is its own command; dependency order.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import { emptyBatch, fileIdentity, type GraphEdge, type GraphNode, type IngestBatch } from '../../graph/model.js';
import { planRebuild } from './plan.js';

const H = 'h';

/** A tiny builder of recorded graphs. */
class Rec {
  b: IngestBatch = emptyBatch({ t: 1 });
  private pos = 0;
  private ino = 100;
  private inodes = new Map<string, number>();

  proc(pid: number, start: number, image: 'exec' | 'fork', argv: string[], parent?: string, via: 'fork' | 'exec' = 'fork', extra: Record<string, unknown> = {}): string {
    const id = `proc:${H}:${pid}:${start}`;
    this.node({ id, kind: 'process', host: H, label: argv.join(' '), ts: start, attrs: { pid, start, image, argv, exe: `/usr/bin/${argv[0]}`, cwd: '/p', uid: 0, gid: 0, ...extra } });
    if (parent) this.edge('wasInformedBy', id, parent, start, { via });
    return id;
  }

  /** The file at path is replaced at ts (unlink + create: a new inode takes the name). */
  replace(path: string, ts: number): void {
    const old = this.inodes.get(path)!;
    const ino = this.ino++;
    this.inodes.set(path, ino);
    this.b.nameEnds.push({ file: fileIdentity(H, 1, old), path, until: ts });
    this.b.names.push({ file: fileIdentity(H, 1, ino), host: H, path, since: ts, pos: `t:${++this.pos}` });
  }

  /** Version `v` of the file at path (an inode per path). */
  file(path: string, v: number, ts: number, attrs: Record<string, unknown> = {}): string {
    let ino = this.inodes.get(path);
    if (ino === undefined) {
      ino = this.ino++;
      this.inodes.set(path, ino);
      this.b.names.push({ file: fileIdentity(H, 1, ino), host: H, path, since: ts, pos: `t:${++this.pos}` });
    }
    const id = `file:${H}:1:${ino}:${v}`;
    this.node({ id, kind: 'file', host: H, label: path, ts, attrs: { dev: 1, ino, version: v, path, type: 'file', ...attrs } });
    return id;
  }

  pipe(ino: number, ts: number): string {
    const id = `pipe:${H}:${ino}`;
    this.node({ id, kind: 'pipe', host: H, label: id, ts, attrs: { ino } });
    return id;
  }

  used(p: string, f: string, ts: number, attrs?: Record<string, unknown>): void { this.edge('used', p, f, ts, attrs); }
  gen(f: string, p: string, ts: number): void { this.edge('wasGeneratedBy', f, p, ts); }
  deleted(f: string, p: string, ts: number): void { this.edge('wasInvalidatedBy', f, p, ts); }

  node(n: GraphNode): void { this.b.nodes.push(n); }
  edge(kind: GraphEdge['kind'], from: string, to: string, ts: number, attrs?: Record<string, unknown>): void {
    this.b.edges.push({ kind, from, to, ts, pos: `t:${++this.pos}`, attrs });
  }

  /** `cc -c src -o obj` under parent: cc → cc1 (tmp .s, deleted by cc) → as (obj). */
  compile(parent: string | undefined, pid: number, t: number, src: string, obj: string, headers: string[]): string {
    const fork = parent ? this.proc(pid, t, 'fork', ['make'], parent) : undefined;
    const cc = this.proc(pid, t + 1, 'exec', ['cc', '-c', src, '-o', obj], fork, 'exec');
    const f1 = this.proc(pid + 1, t + 2, 'fork', ['cc'], cc);
    const cc1 = this.proc(pid + 1, t + 3, 'exec', ['cc1', src], f1, 'exec');
    const s = this.file(`/tmp/cc${pid}.s`, 1, t + 4);
    this.used(cc1, this.file(`/p/${src}`, 0, 1), t + 4);
    for (const h of headers) this.used(cc1, this.file(`/p/${h}`, 0, 1), t + 4);
    this.used(cc1, this.file('/usr/lib/cc1', 0, 1), t + 3, { role: 'exe' });
    this.gen(s, cc1, t + 5);
    const f2 = this.proc(pid + 2, t + 6, 'fork', ['cc'], cc);
    const as = this.proc(pid + 2, t + 7, 'exec', ['as', '-o', obj], f2, 'exec');
    this.used(as, s, t + 8);
    const o = this.file(`/p/${obj}`, 0, t + 8, { closedAt: t + 9 });
    this.gen(o, as, t + 9);
    this.deleted(s, cc, t + 10);
    return cc;
  }

  link(parent: string | undefined, pid: number, t: number, objs: string[], out: string): string {
    const fork = parent ? this.proc(pid, t, 'fork', ['make'], parent) : undefined;
    const cc = this.proc(pid, t + 1, 'exec', ['cc', '-o', out, ...objs], fork, 'exec');
    const f1 = this.proc(pid + 1, t + 2, 'fork', ['cc'], cc);
    const ld = this.proc(pid + 1, t + 3, 'exec', ['ld', '-o', out], f1, 'exec');
    for (const o of objs) this.used(ld, this.file(`/p/${o}`, 0, 0), t + 4);
    this.gen(this.file(`/p/${out}`, 0, t + 4, { closedAt: t + 5 }), ld, t + 5);
    return cc;
  }
}

async function storeOf(r: Rec) {
  const s = await openSqliteStore(':memory:');
  await s.ingest(r.b);
  return s;
}

const argvs = (p: Awaited<ReturnType<typeof planRebuild>>) => p.commands.map((c) => c.argv.join(' '));

describe('rebuild plan: the grain rule', () => {
  it('make → cc → cc1/as/ld: the commands are cc -c … and cc -o app …, link last', async () => {
    const r = new Rec();
    const make = r.proc(10, 100, 'exec', ['make']);
    r.compile(make, 20, 200, 'a.c', 'a.o', ['u.h']);
    r.compile(make, 30, 300, 'b.c', 'b.o', []);
    r.link(make, 40, 400, ['a.o', 'b.o'], 'app');
    const s = await storeOf(r);
    try {
      const p = await planRebuild(s, '/p/app');
      assert.deepEqual(argvs(p), ['cc -c a.c -o a.o', 'cc -c b.c -o b.o', 'cc -o app a.o b.o']);
      const [a, , link] = p.commands;
      assert.deepEqual(a!.outputs.map((o) => o.path), ['/p/a.o'], 'the deleted .s is a temporary, not an output');
      assert.deepEqual(a!.inputs.map((i) => i.path).sort(), ['/p/a.c', '/p/u.h', '/usr/lib/cc1']);
      assert.equal(a!.inputs.find((i) => i.path === '/usr/lib/cc1')!.exe, true);
      assert.equal(link!.deps.length, 2);
      // Only part is needed: the object alone plans only its compile, not make.
      assert.deepEqual(argvs(await planRebuild(s, '/p/b.o')), ['cc -c b.c -o b.o']);
      // Planning again from the earlier plan reuses its commands and gives the same plan.
      assert.deepEqual(await planRebuild(s, '/p/app', p), p);
    } finally {
      await s.close();
    }
  });

  it('an object re-made on a new inode (as unlinks and creates) stands in for the one a cut-off link read', async () => {
    const r = new Rec();
    const make = r.proc(10, 100, 'exec', ['make']);
    r.compile(make, 20, 200, 'a.c', 'a.o', ['u.h']);
    r.link(make, 40, 400, ['a.o'], 'app');
    const s1 = await storeOf(r);
    let before: Awaited<ReturnType<typeof planRebuild>>;
    try { before = await planRebuild(s1, '/p/app'); } finally { await s1.close(); }
    // A rebuild re-ran the compile (u.h got a comment); a.o came out the same, so the link was
    // cut off and its record still names the a.o it read, on the old inode.
    r.replace('/p/a.o', 600);
    const rerun = r.compile(undefined, 60, 600, 'a.c', 'a.o', ['u.h']);
    const s = await storeOf(r);
    try {
      for (const p of [await planRebuild(s, '/p/app'), await planRebuild(s, '/p/app', before)]) {
        assert.deepEqual(argvs(p), ['cc -c a.c -o a.o', 'cc -o app a.o']);
        assert.equal(p.commands[0]!.run, rerun, 'the re-run compile, not the one it replaced');
        assert.deepEqual(p.commands[1]!.deps, [rerun]);
      }
    } finally {
      await s.close();
    }
  });

  it('a compile recorded alone (no driver) is its own command', async () => {
    const r = new Rec();
    r.compile(undefined, 20, 200, 'a.c', 'a.o', []);
    const s = await storeOf(r);
    try {
      assert.deepEqual(argvs(await planRebuild(s, '/p/a.o')), ['cc -c a.c -o a.o']);
    } finally {
      await s.close();
    }
  });

  it('a script whose `sort | uniq > f` step cannot run alone is re-run whole', async () => {
    const r = new Rec();
    const sh = r.proc(10, 100, 'exec', ['sh', 'gen.sh']);
    const words = r.file('/p/words.txt', 0, 1);
    const pipe = r.pipe(77, 110);
    const sort = r.proc(11, 112, 'exec', ['sort', 'words.txt'], r.proc(11, 111, 'fork', ['sh'], sh), 'exec');
    r.used(sort, words, 113);
    r.gen(pipe, sort, 114);
    const uf = r.proc(12, 115, 'fork', ['sh'], sh);
    const out = r.file('/p/uniq.txt', 0, 116, { closedAt: 125 }); // opened by the shell before exec: a redirect
    const uniq = r.proc(12, 117, 'exec', ['uniq'], uf, 'exec');
    r.used(uniq, pipe, 117);
    r.gen(out, uniq, 125);
    const py = r.proc(13, 131, 'exec', ['python3', 'count.py', 'uniq.txt', 'counts.txt'], r.proc(13, 130, 'fork', ['sh'], sh), 'exec');
    r.used(py, out, 132);
    r.gen(r.file('/p/counts.txt', 0, 133, { closedAt: 134 }), py, 134);
    const s = await storeOf(r);
    try {
      const p = await planRebuild(s, '/p/counts.txt');
      assert.deepEqual(argvs(p), ['sh gen.sh']);
      assert.deepEqual(p.commands[0]!.outputs.map((o) => o.path).sort(), ['/p/counts.txt', '/p/uniq.txt']);
      assert.deepEqual(p.commands[0]!.inputs.map((o) => o.path), ['/p/words.txt']);
    } finally {
      await s.close();
    }
  });

  it('a file no recorded command wrote has an empty plan; an unknown one is NotFound', async () => {
    const r = new Rec();
    r.file('/p/src.c', 0, 1);
    const s = await storeOf(r);
    try {
      const p = await planRebuild(s, '/p/src.c');
      assert.deepEqual(p.commands, []);
      assert.equal(p.sources, 1);
      await assert.rejects(planRebuild(s, '/p/nope'), /no recorded version/);
    } finally {
      await s.close();
    }
  });
});
