/**
 * @module collector/join/witness.test
 * provfs and eBPF witnessing the same operations on a provfs mount: one version per write, one
 * name change per rename, eBPF still the witness of processes and fds; a provfs-only open still
 * makes versions; eBPF alone is applied on other devices.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DISK, E, FUSE, O_RDONLY, O_WRONLY, Scenario, WRITE_NEW, edges, file, nodes, ver } from './testkit.js';

describe('join: provfs + eBPF double witness', () => {
  it('reconciles both witnesses of create/open/close/rename/unlink into one set of facts', () => {
    const s = new Scenario();
    const x = file(11, '/mnt/x', FUSE);
    const y = { ...x, path: '/mnt/y', name: 'y' };
    s.exec(900, ['writer']);
    const w = s.img(900);
    s.exec(901, ['reader']);
    const r = s.img(901);
    s.exec(902, ['appender']);
    const w2 = s.img(902);
    // writer: provfs reports first (FUSE CREATE), eBPF at syscall exit
    const created = s.provfs(900, { op: 'create', file: x, mode: 0o644, flags: WRITE_NEW, fh: 1 });
    s.open(900, 3, x, WRITE_NEW, true);
    s.ebpf(900, { op: 'create', file: x, mode: 0o644 });
    const closed = s.close(900, 3);
    s.provfs(900, { op: 'close', file: x, fh: 1 });
    const renamed = s.provfs(900, { op: 'rename', file: y, from: { path: '/mnt/x', name: 'x' }, flags: 0 });
    s.ebpf(900, { op: 'rename', file: y, from: { path: '/mnt/x', name: 'x' }, flags: 0 });
    // reader: eBPF reports first this time, FLUSH before eBPF's close
    s.open(901, 4, y, O_RDONLY);
    s.provfs(901, { op: 'open', file: y, flags: O_RDONLY, fh: 2 });
    s.provfs(901, { op: 'close', file: y, fh: 2 });
    s.close(901, 4);
    // a writer only provfs saw (eBPF lost it): still a version, closed by its FLUSH
    s.provfs(902, { op: 'open', file: y, flags: O_WRONLY, fh: 3 });
    s.provfs(902, { op: 'close', file: y, fh: 3 });
    s.ebpf(902, { op: 'unlink', file: y, deleted: true });
    const unlinked = s.provfs(902, { op: 'unlink', file: y, deleted: true });
    const { batch, engine } = s.run();

    assert.deepEqual(nodes(batch, ['file']), [`file ${ver(x, 0)}`, `file ${ver(x, 1)}`]);
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy', 'wasInvalidatedBy']), [
      E('wasGeneratedBy', ver(x, 0), w),
      E('used', r, ver(x, 0)),
      E('used', w2, ver(x, 0), 'base'),
      E('wasGeneratedBy', ver(x, 1), w2),
      E('wasInvalidatedBy', ver(x, 1), w2),
    ].sort());
    const id = `file:h:${FUSE}:11`;
    assert.deepEqual(batch.names.map((n) => `${n.file} ${n.path} ${n.since}`), [`${id} /mnt/x ${created}`, `${id} /mnt/y ${renamed}`]);
    assert.deepEqual(batch.nameEnds.map((n) => `${n.file} ${n.path} ${n.until}`), [`${id} /mnt/x ${renamed}`, `${id} /mnt/y ${unlinked}`]);
    assert.equal(batch.nodes.find((n) => n.id === ver(x, 0))!.attrs.closedAt, closed, 'the version ends at eBPF’s close');
    const st = engine.stats();
    // attach of eBPF's open, eBPF create, FLUSH, eBPF rename, attach of provfs's open, FLUSH, eBPF unlink
    assert.equal(st.duplicateWitness, 7);
    assert.equal(st.singleWitnessOpens, 1, 'the appender’s open, seen by provfs only');
    assert.deepEqual(st.rejected, {});
    assert.deepEqual(batch.checkpoint, { ebpf: 10, 'provfs-1': 8 });
    const h = engine.snapshot().hosts.h;
    assert.deepEqual([h.descs, h.fhs, h.waitEbpf], [{}, {}, {}], 'every open closed, no file handle or pending open left');
    assert.deepEqual(h.waitProvfs, {});
  });

  it('FUSE drops O_TRUNC from OPEN: eBPF’s flags or provfs’s SETATTR size 0 say the old content is gone', () => {
    const s = new Scenario();
    const f = file(14, '/mnt/f', FUSE);
    const g = file(15, '/mnt/g', FUSE);
    s.exec(920, ['sh']);
    const sh = s.img(920);
    // `> f` seen by both: OPEN without O_TRUNC (provfs), then the syscall's flags (eBPF)
    s.provfs(920, { op: 'open', file: f, flags: 1, fh: 1 });
    s.open(920, 3, f, WRITE_NEW);
    s.provfs(920, { op: 'setattr', file: f, size: 0 });
    s.close(920, 3);
    s.provfs(920, { op: 'close', file: f, fh: 1 });
    // `> g` seen by provfs only: OPEN then SETATTR size 0
    s.provfs(920, { op: 'open', file: g, flags: 1, fh: 2 });
    s.provfs(920, { op: 'setattr', file: g, size: 0 });
    s.provfs(920, { op: 'close', file: g, fh: 2 });
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy']), [
      E('wasGeneratedBy', ver(f, 1), sh),
      E('wasGeneratedBy', ver(g, 1), sh),
    ].sort());
  });

  it('on a device provfs does not report, eBPF’s namespace ops are applied', () => {
    const s = new Scenario();
    const x = file(12, '/mnt/x', FUSE);
    const d = file(13, '/w/d', DISK);
    s.exec(910, ['mv']);
    const mv = s.img(910);
    s.provfs(910, { op: 'mkdir', file: { dev: FUSE, ino: 1, path: '/mnt' }, mode: 0o755 });
    s.ebpf(910, { op: 'rename', file: { ...d, path: '/w/e', name: 'e' }, from: { path: '/w/d' }, flags: 0 });
    s.ebpf(910, { op: 'unlink', file: { ...d, path: '/w/e', name: 'e' }, deleted: true });
    s.ebpf(910, { op: 'unlink', file: x, deleted: true }); // on the provfs mount: dropped
    const { batch, engine } = s.run();
    assert.deepEqual(batch.names.map((n) => n.path), ['/mnt', '/w/e']);
    assert.deepEqual(batch.nameEnds.map((n) => n.path), ['/w/e']);
    assert.deepEqual(edges(batch, ['wasInvalidatedBy']), [E('wasInvalidatedBy', ver(d, 0), mv)]);
    assert.equal(engine.stats().duplicateWitness, 1);
  });
});
