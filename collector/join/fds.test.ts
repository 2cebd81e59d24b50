/**
 * @module collector/join/fds.test
 * fd bookkeeping: SCM_RIGHTS over a UNIX socket, close-on-exec (open flag, F_DUPFD_CLOEXEC),
 * close_range, pid reuse, thread ids (FUSE's pid 0 + tid) mapped to their process.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { E, FUSE, O_CLOEXEC, O_RDONLY, Scenario, WRITE_NEW, ancestors, edges, file, nodes, ver } from './testkit.js';

describe('join: fd passing over a UNIX socket (SCM_RIGHTS)', () => {
  it('the receiver used the file; the sender only handed it on; the flow is one socket entity', () => {
    const s = new Scenario();
    const secret = file(70, '/w/secret');
    s.exec(500, ['sender']);
    const sender = s.img(500);
    s.exec(501, ['receiver']);
    const receiver = s.img(501);
    s.ebpf(500, { op: 'socket', fd: 5, ino: 8002, peer: 8001, family: 1 });
    s.ebpf(501, { op: 'socket', fd: 6, ino: 8001, peer: 8002, family: 1 });
    s.open(500, 3, secret, O_RDONLY);
    s.ebpf(500, { op: 'sendmsg', fd: 5, sock: 8002, peer: 8001, fds: [3] });
    s.close(500, 3);
    const recvTs = s.ebpf(501, { op: 'recvmsg', fd: 6, sock: 8001, peer: 8002, fds: [4], files: [secret] });
    s.close(501, 4); // after reading it
    s.exit(501);
    s.exit(500);
    const { batch, engine } = s.run();
    const flow = 'sock:h:8001';
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy']), [
      E('wasGeneratedBy', flow, sender),
      E('used', receiver, flow),
      E('used', receiver, ver(secret, 0)),
    ].sort());
    assert.equal(batch.edges.find((e) => e.kind === 'used' && e.to === ver(secret, 0))!.ts, recvTs);
    assert.deepEqual(nodes(batch, ['socket']), [`socket ${flow}`]);
    assert.deepEqual(engine.snapshot().hosts.h.inflight, {}, 'nothing left in flight');
    assert.deepEqual(engine.snapshot().hosts.h.descs, {}, 'every description closed');
  });

  it('a file written through a passed fd: the version ends when the receiver closes it', () => {
    const s = new Scenario();
    const log = file(71, '/w/log');
    s.exec(510, ['opener']);
    const opener = s.img(510);
    s.exec(511, ['worker']);
    const worker = s.img(511);
    s.ebpf(510, { op: 'socket', fd: 5, ino: 8102, peer: 8101 });
    s.ebpf(511, { op: 'socket', fd: 6, ino: 8101, peer: 8102 });
    s.open(510, 3, log, WRITE_NEW, true);
    s.ebpf(510, { op: 'sendmsg', fd: 5, sock: 8102, peer: 8101, fds: [3] });
    s.close(510, 3);
    s.ebpf(511, { op: 'recvmsg', fd: 6, sock: 8101, peer: 8102, fds: [7], files: [log] });
    const closeTs = s.close(511, 7);
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['wasGeneratedBy']).filter((l) => l.includes('file:')), [
      E('wasGeneratedBy', ver(log, 0), worker),
    ]);
    assert.equal(batch.nodes.find((n) => n.id === ver(log, 0))!.attrs.closedAt, closeTs);
    assert.ok(!edges(batch).some((l) => l.includes(opener) && l.includes('file:')), 'the opener handed it on');
  });
});

describe('join: socket flows', () => {
  it('client → server over accept/connect: the server’s output derives from the client’s input', () => {
    const s = new Scenario();
    const input = file(72, '/w/request');
    const out = file(73, '/w/stored');
    s.exec(530, ['server']);
    const server = s.img(530);
    s.exec(531, ['client']);
    const client = s.img(531);
    s.ebpf(530, { op: 'socket', fd: 3, ino: 9500, family: 1 });
    s.ebpf(531, { op: 'socket', fd: 3, ino: 9502, family: 1 });
    s.ebpf(531, { op: 'connect', fd: 3, ino: 9502, peer: 9501, addr: '/run/srv.sock' });
    s.ebpf(530, { op: 'accept', fd: 3, newfd: 4, ino: 9501, peer: 9502 });
    s.open(531, 5, input, O_RDONLY);
    s.close(531, 5);
    s.ebpf(531, { op: 'sendmsg', fd: 3, sock: 9502, bytes: 10 });
    s.ebpf(530, { op: 'recvmsg', fd: 4, sock: 9501, bytes: 10 });
    s.open(530, 5, out, WRITE_NEW, true);
    s.close(530, 5);
    const { batch } = s.run();
    const flow = 'sock:h:9501';
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy']), [
      E('used', client, ver(input, 0)),
      E('wasGeneratedBy', flow, client),
      E('used', server, flow),
      E('wasGeneratedBy', ver(out, 0), server),
    ].sort());
    assert.ok(ancestors(batch, ver(out, 0)).has(ver(input, 0)));
  });
});

describe('join: popen', () => {
  it('the parent that keeps the read end and reads it is the user; the child that closed it is not', () => {
    const s = new Scenario();
    s.exec(520, ['app']);
    const app = s.img(520);
    s.pipe(520, 3, 4, 9100);
    const child = s.fork(520, 521);
    s.close(520, 4); // parent keeps the read end
    s.close(521, 3); // child: the end it does not need
    s.dup(521, 4, 1);
    s.close(521, 4);
    const cmd = s.exec(521, ['sh', '-c', 'ls']);
    s.exit(521);
    s.close(520, 3); // pclose, after reading
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy', 'wasInformedBy']), [
      E('wasInformedBy', child, app),
      E('wasInformedBy', cmd, child),
      E('wasGeneratedBy', 'pipe:h:9100', cmd),
      E('used', app, 'pipe:h:9100'),
    ].sort());
  });
});

describe('join: close-on-exec', () => {
  it('O_CLOEXEC and F_DUPFD_CLOEXEC fds close at exec (with the old image), others pass to the new image', () => {
    const s = new Scenario();
    const cfg = file(80, '/w/cfg');
    const data = file(81, '/w/data');
    const other = file(82, '/w/other');
    s.exec(600, ['launcher']);
    const launcher = s.img(600);
    s.open(600, 3, cfg, O_RDONLY | O_CLOEXEC);
    s.open(600, 4, data, O_RDONLY);
    s.open(600, 5, other, O_RDONLY);
    s.dup(600, 5, 6, true); // fcntl(5, F_DUPFD_CLOEXEC)
    s.close(600, 5);
    const prog = s.exec(600, ['prog']);
    s.exit(600);
    const { batch, engine } = s.run();
    assert.deepEqual(edges(batch, ['used']), [
      E('used', launcher, ver(cfg, 0)),
      E('used', launcher, ver(other, 0)),
      E('used', prog, ver(data, 0)),
    ].sort());
    assert.equal(engine.stats().unknownFds, 0);
  });

  it('close_range closes every fd in the range and no other; an O_PATH handle moves no data', () => {
    const s = new Scenario();
    const a = file(83, '/w/a');
    const b = file(84, '/w/b');
    s.exec(610, ['daemon']);
    const d = s.img(610);
    s.open(610, 3, a, WRITE_NEW, true);
    s.open(610, 9, b, WRITE_NEW, true);
    s.open(610, 4, file(85, '/w/c'), 0o10000000); // O_PATH: a handle, no data
    s.close(610, 3, 8);
    const { batch } = s.run();
    assert.deepEqual(edges(batch, ['wasGeneratedBy']), [E('wasGeneratedBy', ver(a, 0), d)]);
  });
});

describe('join: pid reuse', () => {
  it('a pid used again gets a new image and a fresh fd table', () => {
    const s = new Scenario();
    const f = file(90, '/w/f');
    s.exec(700, ['init']);
    const first = s.fork(700, 701);
    s.open(701, 3, f, O_RDONLY);
    s.exit(701);
    const second = s.fork(700, 701);
    s.close(701, 3); // fd 3 belonged to the first 701
    s.exit(701);
    const { batch, engine } = s.run();
    assert.notEqual(first, second);
    assert.deepEqual(edges(batch, ['used']), [E('used', first, ver(f, 0))]);
    assert.equal(engine.stats().unknownFds, 1);
    assert.equal(engine.stats().pidReused, 0);
  });

  it('a lost exit: the old image is ended when the pid is forked again', () => {
    const s = new Scenario();
    s.exec(720, ['init']);
    const first = s.fork(720, 721);
    const second = s.fork(720, 721);
    const { batch, engine } = s.run();
    assert.equal(engine.stats().pidReused, 1);
    const old = batch.nodes.find((n) => n.id === first)!;
    assert.equal(old.attrs.lostExit, true);
    assert.equal(typeof old.attrs.end, 'number');
    assert.ok(batch.nodes.some((n) => n.id === second));
  });
});

describe('join: thread ids', () => {
  it('eBPF events of a thread and FUSE events with pid 0 + tid map to the thread group’s image', () => {
    const s = new Scenario();
    const f = file(95, '/mnt/out', FUSE);
    const input = file(96, '/w/in');
    s.exec(800, ['server']);
    const server = s.img(800);
    s.thread(800, 805);
    s.ebpf(800, { op: 'open', file: input, flags: O_RDONLY, fd: 3 }, 805);
    s.provfs(805, { op: 'open', file: f, flags: WRITE_NEW, fh: 1, created: true });
    s.provfs(805, { op: 'close', file: f, fh: 1 });
    s.ebpf(800, { op: 'close', fd: 3 }, 805);
    s.ebpf(800, { op: 'exit', code: 0, group: false }, 805);
    s.provfs(805, { op: 'unlink', file: f, deleted: true }); // tid gone from the table: taken as its own pid
    const { batch, engine } = s.run();
    assert.deepEqual(edges(batch, ['used', 'wasGeneratedBy', 'wasInvalidatedBy']), [
      E('used', server, ver(input, 0)),
      E('wasGeneratedBy', ver(f, 0), server),
      E('wasInvalidatedBy', ver(f, 0), `proc:h:805:${s.t}`),
    ].sort());
    assert.equal(engine.stats().unknownTids, 1);
    assert.deepEqual(nodes(batch, ['process']), [`process ${server}`, `process proc:h:805:${s.t}`]);
  });
});
