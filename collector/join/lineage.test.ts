/**
 * @module collector/join/lineage.test
 * Exact lineage from event sequences: fork→exec→open→write→close, shell pipelines with the fd
 * choreography dash (fcntl F_DUPFD) and bash (dup2) really use, `cmd < in > out`, atomic save
 * by rename, hard links.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  E, O_CREAT, O_EXCL, O_RDONLY, O_WRONLY, Scenario, WRITE_NEW, ancestors, edges, file, nodes, ver,
} from './testkit.js';

const USER = 'user:h:1000';

describe('join: fork → exec → open → write → close', () => {
  it('links the output to the writer image, its exe, its user and its parents', () => {
    const s = new Scenario();
    const exe = file(50, '/usr/bin/gen');
    const input = file(10, '/w/in.txt');
    const out = file(11, '/w/out.txt');
    s.ebpf(100, { op: 'dup', oldfd: 9, newfd: 9 }); // first sight of the shell: a lazy image
    const shell = s.img(100);
    const child = s.fork(100, 101);
    const gen = s.exec(101, ['gen', 'in.txt'], { exe });
    s.open(101, 3, input, O_RDONLY);
    s.open(101, 4, out, WRITE_NEW, true);
    s.close(101, 4);
    const closedAt = s.t;
    s.close(101, 3);
    s.exit(101);
    const { batch, engine } = s.run();

    assert.deepEqual(nodes(batch), [
      `file ${ver(input, 0)}`, `file ${ver(out, 0)}`, `file ${ver(exe, 0)}`,
      `process ${child}`, `process ${gen}`, `process ${shell}`, `user ${USER}`,
    ].sort());
    assert.deepEqual(edges(batch), [
      E('wasInformedBy', child, shell),
      E('wasInformedBy', gen, child),
      E('used', gen, ver(exe, 0), 'exe'),
      E('wasAssociatedWith', gen, USER),
      E('used', gen, ver(input, 0)),
      E('wasGeneratedBy', ver(out, 0), gen),
    ].sort());
    const gb = batch.edges.find((e) => e.kind === 'wasGeneratedBy')!;
    assert.equal(gb.ts, closedAt, 'wasGeneratedBy carries the close');
    assert.equal(gb.pos, `ebpf:${s.records.findIndex((r) => r.event.ts === closedAt) + 1}`);
    const o = batch.nodes.find((n) => n.id === ver(out, 0))!;
    assert.equal(o.attrs.closedAt, closedAt);
    assert.equal(o.attrs.path, '/w/out.txt');
    const g = batch.nodes.find((n) => n.id === gen)!;
    assert.deepEqual(g.attrs.argv, ['gen', 'in.txt']);
    assert.equal(g.attrs.exeFile, ver(exe, 0));
    assert.equal(typeof g.attrs.end, 'number');
    assert.equal(g.attrs.exitCode, 0);
    assert.equal(batch.nodes.find((n) => n.id === shell)!.attrs.lazy, true);
    assert.deepEqual(batch.names.map((n) => n.path).sort(), ['/usr/bin/gen', '/w/in.txt', '/w/out.txt']);
    assert.deepEqual(batch.checkpoint, { ebpf: s.records.length });
    assert.equal(engine.stats().applied, s.records.length);
    assert.deepEqual(engine.stats().rejected, {});
  });
});

/**
 * `sh -c 'cat a | sort > b'` as the shell really does it. `style` picks dash (close(n) +
 * fcntl(F_DUPFD, n), the parent closing each end right after forking), bash (dup2, the
 * children closing the spare end after dup2) or bash-late: bash as recorded on this machine,
 * where the parent closed its pipe ends only after both children had exited.
 */
function pipeline(style: 'dash' | 'bash' | 'bash-late') {
  const s = new Scenario();
  const a = file(20, '/w/a');
  const b = file(21, '/w/b');
  s.exec(100, ['sh', '-c', 'cat a | sort > b']);
  const sh = s.img(100);
  s.pipe(100, 3, 4, 9000);
  const c1 = s.fork(100, 101);
  if (style === 'dash') s.close(100, 4);
  const c2 = s.fork(100, 102);
  if (style === 'dash') s.close(100, 3);
  else if (style === 'bash') { s.close(100, 3); s.close(100, 4); }
  // left side: stdout → pipe, exec cat
  if (style === 'dash') {
    s.close(101, 3);
    s.close(101, 1);
    s.dup(101, 4, 1); // fcntl(4, F_DUPFD, 1)
    s.close(101, 4);
  } else {
    s.dup(101, 4, 1); // dup2(4, 1)
    s.close(101, 4);
    s.close(101, 3);
  }
  const cat = s.exec(101, ['cat', 'a']);
  // right side: stdin ← pipe, stdout → b, exec sort
  if (style === 'dash') {
    s.close(102, 4);
    s.close(102, 0);
    s.dup(102, 3, 0);
    s.close(102, 3);
    s.open(102, 3, b, WRITE_NEW, true);
    s.close(102, 1);
    s.dup(102, 3, 1);
    s.close(102, 3);
  } else {
    s.dup(102, 3, 0);
    s.close(102, 3);
    s.close(102, 4);
    s.open(102, 3, b, WRITE_NEW, true);
    s.dup(102, 3, 1);
    s.close(102, 3);
  }
  const sort = s.exec(102, ['sort']);
  s.open(101, 3, a, O_RDONLY);
  s.close(101, 3);
  s.close(101, 1); // cat's close_stdout
  s.exit(101);
  s.exit(102); // sort exits holding fd 0 (pipe) and fd 1 (b)
  if (style === 'bash-late') { s.close(100, 3); s.close(100, 4); }
  s.exit(100);
  return { s, a, b, sh, c1, c2, cat, sort };
}

describe('join: shell pipeline through a pipe', () => {
  for (const style of ['dash', 'bash', 'bash-late'] as const) {
    it(`${style}: b ← sort ← pipe ← cat ← a, the shell only an informer`, () => {
      const { s, a, b, sh, c1, c2, cat, sort } = pipeline(style);
      const { batch } = s.run();
      const pipe = 'pipe:h:9000';
      assert.deepEqual(edges(batch), [
        E('wasAssociatedWith', sh, USER),
        E('wasInformedBy', c1, sh),
        E('wasInformedBy', c2, sh),
        E('wasInformedBy', cat, c1),
        E('wasInformedBy', sort, c2),
        E('wasAssociatedWith', cat, USER),
        E('wasAssociatedWith', sort, USER),
        E('used', cat, ver(a, 0)),
        E('wasGeneratedBy', pipe, cat),
        E('used', sort, pipe),
        E('wasGeneratedBy', ver(b, 0), sort),
      ].sort());
      // The data path: no used/generated edge touches the shell or its forked copies.
      for (const e of batch.edges) {
        if (e.kind === 'used' || e.kind === 'wasGeneratedBy') {
          for (const who of [sh, c1, c2]) assert.ok(e.from !== who && e.to !== who, `${e.kind} touches the shell: ${e.from} -> ${e.to}`);
        }
      }
      assert.ok(ancestors(batch, ver(b, 0)).has(ver(a, 0)));
      assert.deepEqual(nodes(batch, ['pipe', 'file']), [`file ${ver(a, 0)}`, `file ${ver(b, 0)}`, `pipe ${pipe}`].sort());
    });
  }
});

describe('join: cmd < in > out via dup2', () => {
  it('the exec’d command used in and generated out; the forked shell did neither', () => {
    const s = new Scenario();
    const input = file(30, '/w/in');
    const out = file(31, '/w/out');
    s.exec(200, ['sh']);
    const sh = s.img(200);
    const c = s.fork(200, 201);
    s.open(201, 3, input, O_RDONLY);
    s.dup(201, 3, 0);
    s.close(201, 3);
    s.open(201, 3, out, WRITE_NEW, true);
    s.dup(201, 3, 1);
    s.close(201, 3);
    const cmd = s.exec(201, ['cmd']);
    const execTs = s.t;
    s.exit(201);
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy', 'wasInformedBy']), [
      E('wasInformedBy', c, sh),
      E('wasInformedBy', cmd, c),
      E('used', cmd, ver(input, 0)),
      E('wasGeneratedBy', ver(out, 0), cmd),
    ].sort());
    assert.equal(batch.edges.find((e) => e.kind === 'used')!.ts, execTs, 'used at the time cmd got the fd');
  });
});

describe('join: atomic save (temp file renamed over the target)', () => {
  it('the new content is a new inode under the old name; the old one is invalidated', () => {
    const s = new Scenario();
    const target = file(40, '/w/doc');
    const tmp = file(41, '/w/.doc.swp');
    s.exec(300, ['vi', 'doc']);
    const vi = s.img(300);
    s.open(300, 3, target, O_RDONLY);
    s.close(300, 3);
    s.open(300, 4, tmp, O_WRONLY | O_CREAT | O_EXCL, true);
    s.close(300, 4);
    const renameTs = s.ebpf(300, {
      op: 'rename', file: { ...tmp, path: '/w/doc', name: 'doc' }, from: { path: '/w/.doc.swp', name: '.doc.swp' },
      flags: 0, overwritten: target, overwrittenDeleted: true,
    });
    s.exit(300);
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy', 'wasInvalidatedBy']), [
      E('used', vi, ver(target, 0)),
      E('wasGeneratedBy', ver(tmp, 0), vi),
      E('wasInvalidatedBy', ver(target, 0), vi),
    ].sort());
    const old = batch.nodes.find((n) => n.id === ver(target, 0))!;
    assert.equal(old.attrs.deleted, true);
    assert.equal(old.label, 'doc', 'the label stays the name it had, though the name went');
    assert.equal(old.attrs.path, '/w/doc');
    assert.equal(old.ts, s.records[1].event.ts, 'first seen when vi opened it');
    const fresh = batch.nodes.find((n) => n.id === ver(tmp, 0))!;
    assert.equal(fresh.attrs.path, '/w/.doc.swp', 'path: the name when the version began');
    assert.equal(fresh.ts, s.records[3].event.ts);
    const names = batch.names.map((n) => `${n.file} ${n.path} ${n.since}`).sort();
    assert.deepEqual(names, [
      `file:h:${target.dev}:40 /w/doc ${s.records[1].event.ts}`,
      `file:h:${tmp.dev}:41 /w/.doc.swp ${s.records[3].event.ts}`,
      `file:h:${tmp.dev}:41 /w/doc ${renameTs}`,
    ].sort());
    assert.deepEqual(batch.nameEnds.map((n) => `${n.file} ${n.path} ${n.until}`).sort(), [
      `file:h:${target.dev}:40 /w/doc ${renameTs}`,
      `file:h:${tmp.dev}:41 /w/.doc.swp ${renameTs}`,
    ].sort());
  });
});

describe('join: hard link', () => {
  it('two names, one identity: a reader through the new name uses the same version', () => {
    const s = new Scenario();
    const f = file(60, '/w/f');
    const g = { ...f, path: '/w/g', name: 'g' };
    s.exec(400, ['make']);
    const mk = s.img(400);
    s.open(400, 3, f, WRITE_NEW, true);
    s.close(400, 3);
    s.ebpf(400, { op: 'link', file: g });
    s.ebpf(400, { op: 'unlink', file: f, deleted: false });
    s.exec(401, ['cat', 'g']);
    const cat = s.img(401);
    s.open(401, 3, g, O_RDONLY);
    s.close(401, 3);
    s.open(402, 3, g, O_WRONLY); // a later writer through the link makes version 1
    const w = s.img(402);
    s.close(402, 3);
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy', 'wasInvalidatedBy']), [
      E('wasGeneratedBy', ver(f, 0), mk),
      E('used', cat, ver(f, 0)),
      E('used', w, ver(f, 0), 'base'), // O_WRONLY without O_TRUNC keeps the content
      E('wasGeneratedBy', ver(f, 1), w),
    ].sort());
    assert.deepEqual(batch.names.map((n) => n.path), ['/w/f', '/w/g']);
    assert.deepEqual(batch.names.map((n) => n.file), ['file:h:65025:60', 'file:h:65025:60']);
    assert.deepEqual(batch.nameEnds.map((n) => n.path), ['/w/f']);
    assert.equal(batch.nodes.find((n) => n.id === ver(f, 1))!.attrs.path, '/w/g');
  });
});

describe('join: directory rename', () => {
  it('every name below a moved directory changes; a later unlink by the new path finds the inode', () => {
    const s = new Scenario();
    const DIR = 0o040000;
    s.exec(500, ['sh']);
    const sh = s.img(500);
    s.ebpf(500, { op: 'mkdir', file: { dev: 65025, ino: 100, path: '/w/d', type: DIR }, mode: 0o755 });
    s.open(500, 3, file(101, '/w/d/x'), WRITE_NEW, true);
    s.close(500, 3);
    s.ebpf(500, { op: 'mkdir', file: { dev: 65025, ino: 102, path: '/w/d/sub', type: DIR }, mode: 0o755 });
    s.open(500, 3, file(103, '/w/d/sub/y'), WRITE_NEW, true);
    s.close(500, 3);
    const moved = s.ebpf(500, { op: 'rename', file: { dev: 65025, ino: 100, path: '/w/e', type: DIR }, from: { path: '/w/d' }, flags: 0 });
    s.ebpf(500, { op: 'unlink', file: { dev: 65025, ino: 0, path: '/w/e/sub/y', name: 'y' }, deleted: true });
    const { batch } = s.run();
    const live = batch.names
      .filter((n) => !batch.nameEnds.some((e) => e.file === n.file && e.path === n.path))
      .map((n) => `${n.file.split(':').pop()} ${n.path}`)
      .sort();
    assert.deepEqual(live, ['100 /w/e', '101 /w/e/x', '102 /w/e/sub']);
    assert.deepEqual(batch.names.filter((n) => n.since === moved).map((n) => n.path).sort(), ['/w/e', '/w/e/sub', '/w/e/sub/y', '/w/e/x']);
    assert.deepEqual(edges(batch, ['wasInvalidatedBy']), [E('wasInvalidatedBy', ver(file(103, ''), 0), sh)]);
  });
});
