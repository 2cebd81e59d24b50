/**
 * @module kernel/ops.test
 * The handler table driven in-process, with no kernel mount (as Bento runs the same file system
 * in kernel or user space): file operations straight on ProvFs over a temporary backing
 * directory, checked against the backing directory itself; the transfer state round trip of a
 * live upgrade; and the opcode dispatcher fed encoded requests.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as v8 from 'node:v8';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';
import { ProvFs, RENAME_EXCHANGE, RENAME_NOREPLACE, type Ctx } from './ops.js';
import { Recorder } from './recorder.js';
import { Dispatcher } from './dispatch.js';
import { OP, SIZE, FUSE_ROOT_ID, FATTR } from './protocol.js';
import type { ProvEvent } from '../collector/events.js';

const dir = fs.mkdtempSync(join(tmpdir(), 'provfs-ops-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
const ctx: Ctx = { uid: 0, gid: 0, pid: process.pid };
const B = (s: string): Buffer => Buffer.from(s);
const O = fs.constants;

function errnoOf(fn: () => unknown): string {
  try { fn(); } catch (e) { if (e instanceof libc.Errno) return libc.errnoName(e.errno); throw e; }
  return 'ok';
}

test('file operations over a backing directory, without a mount', () => {
  const backing = join(dir, 'a');
  fs.mkdirSync(backing);
  const rootFd = libc.open(backing, libc.O.PATH | libc.O.DIRECTORY);
  const events: ProvEvent[] = [];
  const pfs = new ProvFs(rootFd);
  pfs.recorder = new Recorder({ dev: 77, mountpoint: '/mnt', nodes: pfs.nodes, sink: (e) => events.push(e) });

  const d = pfs.mkdir(ctx, FUSE_ROOT_ID, B('d'), 0o750);
  assert.equal(d.stat.ino, BigInt(fs.statSync(join(backing, 'd')).ino));
  assert.equal(fs.statSync(join(backing, 'd')).mode & 0o7777, 0o750);

  const { entry, opened } = pfs.create(ctx, d.node.id, B('f'), 0o644, O.O_RDWR | O.O_CREAT, 0o022);
  assert.equal(opened.backingId, 0, 'no passthrough in-process: the daemon serves I/O');
  assert.equal(pfs.write(opened.handle.fh, 0n, B('hello world')), 11);
  const out = Buffer.alloc(64);
  assert.equal(out.subarray(0, pfs.read(opened.handle.fh, 6n, 64, out)).toString(), 'world');
  assert.equal(fs.readFileSync(join(backing, 'd', 'f'), 'utf8'), 'hello world');

  const again = pfs.lookup(ctx, d.node.id, B('f'));
  assert.equal(again.node, entry.node, 'one node per backing inode');
  assert.equal(entry.node.nlookup, 2);
  assert.equal(errnoOf(() => pfs.lookup(ctx, d.node.id, B('missing'))), 'ENOENT');

  const l = pfs.link(ctx, entry.node.id, FUSE_ROOT_ID, B('hard'));
  assert.equal(l.node, entry.node, 'a hard link is the same node');
  assert.equal(l.stat.nlink, 2);

  pfs.unlink(ctx, d.node.id, B('f'));
  pfs.unlink(ctx, FUSE_ROOT_ID, B('hard'));
  assert.equal(fs.existsSync(join(backing, 'hard')), false);
  assert.equal(out.subarray(0, pfs.read(opened.handle.fh, 0n, 5, out)).toString(), 'hello', 'unlinked but open: still readable');
  assert.equal(pfs.getattr(ctx, entry.node.id).nlink, 0);
  pfs.flush(ctx, opened.handle.fh);
  pfs.release(null, opened.handle.fh);

  fs.writeFileSync(join(backing, 'x'), 'X');
  fs.writeFileSync(join(backing, 'y'), 'Y');
  assert.equal(errnoOf(() => pfs.rename(ctx, FUSE_ROOT_ID, B('x'), FUSE_ROOT_ID, B('y'), RENAME_NOREPLACE)), 'EEXIST');
  pfs.rename(ctx, FUSE_ROOT_ID, B('x'), FUSE_ROOT_ID, B('y'), RENAME_EXCHANGE);
  assert.deepEqual([fs.readFileSync(join(backing, 'x'), 'utf8'), fs.readFileSync(join(backing, 'y'), 'utf8')], ['Y', 'X']);

  const y = pfs.lookup(ctx, FUSE_ROOT_ID, B('y'));
  const st = pfs.setattr(ctx, y.node.id, { valid: FATTR.MODE | FATTR.SIZE, fh: 0, size: 0n, atime: 0n, atimeNs: 0, mtime: 0n, mtimeNs: 0, mode: 0o600, uid: 0, gid: 0 });
  assert.equal(st.mode & 0o7777, 0o600);
  assert.equal(st.size, 0n);

  pfs.setxattr(ctx, y.node.id, B('user.k'), B('v'), 0);
  assert.equal(pfs.getxattr(ctx, y.node.id, B('user.k'), 16).value?.toString(), 'v');
  assert.equal(pfs.getxattr(ctx, y.node.id, B('user.k'), 0).size, 1);

  const s = pfs.symlink(ctx, FUSE_ROOT_ID, B('s'), B('target'));
  assert.equal(pfs.readlink(ctx, s.node.id).toString(), 'target');

  const h = pfs.opendir(ctx, FUSE_ROOT_ID);
  const names: string[] = [];
  pfs.readdir(h.fh, 0n, (e) => { names.push(e.name.toString()); return true; });
  pfs.releasedir(ctx, h.fh);
  assert.deepEqual(names.sort(), ['.', '..', 'd', 's', 'x', 'y']);

  const before = pfs.nodes.size;
  pfs.forget(s.node.id, 1);
  assert.equal(pfs.nodes.size, before - 1, 'forgotten node dropped');

  assert.deepEqual(events.map((e) => e.op), ['mkdir', 'create', 'link', 'unlink', 'unlink', 'close', 'rename', 'setattr', 'symlink']);
  const unl = events.filter((e) => e.op === 'unlink') as Extract<ProvEvent, { op: 'unlink' }>[];
  assert.deepEqual(unl.map((u) => [u.file.path, u.deleted]), [['/mnt/d/f', false], ['/mnt/hard', true]]);
  assert.equal(events[0]!.tid, process.pid);
});

test('updatePrepare → updateTransfer keeps nodes and open handles working', () => {
  const backing = join(dir, 'b');
  fs.mkdirSync(backing);
  const rootFd = libc.open(backing, libc.O.PATH | libc.O.DIRECTORY);
  const a = new ProvFs(rootFd);
  const { entry, opened } = a.create(ctx, FUSE_ROOT_ID, B('kept'), 0o644, O.O_RDWR, 0);
  a.write(opened.handle.fh, 0n, B('before'));
  const state = v8.deserialize(v8.serialize(a.updatePrepare())) as ReturnType<ProvFs['updatePrepare']>;
  const b = ProvFs.updateTransfer(state, null);
  assert.equal(b.nodes.get(entry.node.id).ino, entry.node.ino);
  b.write(opened.handle.fh, 6n, B('+after'));
  const out = Buffer.alloc(32);
  assert.equal(out.subarray(0, b.read(opened.handle.fh, 0n, 32, out)).toString(), 'before+after');
  assert.equal(b.lookup(ctx, FUSE_ROOT_ID, B('kept')).node.id, entry.node.id, 'identity lookups still find the node');
  assert.throws(() => ProvFs.updateTransfer({ ...state, version: 2 } as unknown as typeof state, null), /version/);
  b.release(null, opened.handle.fh);
});

test('dispatcher: INIT negotiation, LOOKUP and errors, encoded as the kernel does', () => {
  const backing = join(dir, 'c');
  fs.mkdirSync(backing);
  fs.writeFileSync(join(backing, 'file'), '12345');
  const pfs = new ProvFs(libc.open(backing, libc.O.PATH | libc.O.DIRECTORY));
  const replies: Buffer[] = [];
  const d = new Dispatcher(pfs, { timeouts: { entry: 1.5, attr: 1, negative: 0 }, passthrough: true, devFd: -1, maxWrite: 1 << 20 },
    (b, n) => replies.push(Buffer.from(b.subarray(0, n))));
  let unique = 0n;
  const req = (opcode: number, nodeid: number, body: Buffer): Buffer => {
    const h = Buffer.alloc(SIZE.in_header);
    h.writeUInt32LE(SIZE.in_header + body.length, 0);
    h.writeUInt32LE(opcode, 4);
    h.writeBigUInt64LE(++unique, 8);
    h.writeBigUInt64LE(BigInt(nodeid), 16);
    h.writeUInt32LE(4242, 32);
    const b = Buffer.concat([h, body]);
    d.handle(b, b.length);
    return replies[replies.length - 1]!;
  };
  const init = Buffer.alloc(SIZE.init_in);
  init.writeUInt32LE(7, 0); init.writeUInt32LE(45, 4); init.writeUInt32LE(131072, 8);
  init.writeUInt32LE(0xffffffff, 12); init.writeUInt32LE(0xffffffff, 16);
  let r = req(OP.INIT, 0, init);
  assert.equal(r.length, SIZE.out_header + SIZE.init_out);
  assert.equal(r.readInt32LE(4), 0);
  assert.equal(r.readUInt32LE(16 + 4), 45, 'minor 45');
  assert.ok(r.readUInt32LE(16 + 32) & (1 << 5), 'flags2 carries FUSE_PASSTHROUGH');
  assert.equal(r.readUInt32LE(16 + 36), 1, 'max_stack_depth 1');
  assert.equal(r.readUInt16LE(16 + 16), 64);

  r = req(OP.LOOKUP, FUSE_ROOT_ID, Buffer.from('file\0'));
  assert.equal(r.length, SIZE.out_header + SIZE.entry_out);
  assert.equal(r.readBigUInt64LE(8), unique, 'reply carries the request unique');
  assert.ok(r.readBigUInt64LE(16) > 1n, 'node id');
  assert.equal(r.readBigUInt64LE(16 + 16), 1n, 'entry_valid seconds');
  assert.equal(r.readUInt32LE(16 + 32), 500_000_000, 'entry_valid nsec');
  assert.equal(r.readBigUInt64LE(16 + 40), BigInt(fs.statSync(join(backing, 'file')).ino), 'attr.ino is the backing inode');
  assert.equal(r.readBigUInt64LE(16 + 48), 5n, 'size');

  r = req(OP.LOOKUP, FUSE_ROOT_ID, Buffer.from('nope\0'));
  assert.equal(r.length, SIZE.out_header);
  assert.equal(r.readInt32LE(4), -libc.E.ENOENT);

  const n = replies.length;
  const fh = Buffer.alloc(SIZE.in_header + 8);
  fh.writeUInt32LE(fh.length, 0); fh.writeUInt32LE(OP.FORGET, 4); fh.writeBigUInt64LE(99n, 8); fh.writeBigUInt64LE(2n, 16); fh.writeBigUInt64LE(1n, 40);
  d.handle(fh, fh.length);
  const intr = Buffer.from(fh); intr.writeUInt32LE(OP.INTERRUPT, 4);
  d.handle(intr, intr.length);
  assert.equal(replies.length, n, 'FORGET and INTERRUPT get no reply');

  r = req(9999, FUSE_ROOT_ID, Buffer.alloc(0));
  assert.equal(r.readInt32LE(4), -libc.E.ENOSYS, 'unknown opcode: ENOSYS');

  // GETATTR copies statx words into the reply (no Stat object): byte for byte what writeAttr
  // encodes from the Stat of the same file — a file, a directory, a symlink, a FIFO — with a
  // resent request's unique id (its high bit) kept.
  fs.mkdirSync(join(backing, 'sub'), { mode: 0o751 });
  fs.symlinkSync('file', join(backing, 'ln'));
  libc.mknodat(libc.open(backing, libc.O.PATH | libc.O.DIRECTORY), B('fifo'), libc.S.IFIFO | 0o640, 0);
  fs.utimesSync(join(backing, 'file'), new Date(-1500), new Date(4102444800123));
  for (const name of ['file', 'sub', 'ln', 'fifo', '']) {
    const nodeid = name ? req(OP.LOOKUP, FUSE_ROOT_ID, Buffer.from(`${name}\0`)).readUInt32LE(16) : FUSE_ROOT_ID;
    unique = (1n << 63n) + unique;
    const got = Buffer.from(req(OP.GETATTR, nodeid, Buffer.alloc(SIZE.getattr_in)));
    assert.equal(got.length, SIZE.out_header + SIZE.attr_out, name);
    assert.equal(got.readBigUInt64LE(8), unique, `${name}: unique with the resend bit`);
    d.attr(pfs.getattr(null, nodeid));
    const want = Buffer.from(replies[replies.length - 1]!);
    assert.deepEqual(got.subarray(16), want.subarray(16), `GETATTR of ${name || 'the root'}`);
    unique &= (1n << 63n) - 1n;
    if (!name) continue;
    // A repeated LOOKUP (a node the table holds) is encoded from the statx words too.
    const before = pfs.nodes.get(nodeid).nlookup;
    const again = Buffer.from(req(OP.LOOKUP, FUSE_ROOT_ID, Buffer.from(`${name}\0`)));
    assert.equal(pfs.nodes.get(nodeid).nlookup, before + 1, `${name}: the lookup is counted`);
    d.entry(pfs.lookup(null, FUSE_ROOT_ID, B(name)));
    assert.deepEqual(again.subarray(16), replies[replies.length - 1]!.subarray(16), `repeated LOOKUP of ${name}`);
  }
  // With a negative timeout, a missing name is a cached negative entry (node id 0), not an error.
  const dn = new Dispatcher(pfs, { timeouts: { entry: 1, attr: 1, negative: 2 }, passthrough: false, devFd: -1, maxWrite: 1 << 20 },
    (b, n) => replies.push(Buffer.from(b.subarray(0, n))));
  const neg = Buffer.concat([Buffer.alloc(SIZE.in_header), Buffer.from('nope\0')]);
  neg.writeUInt32LE(neg.length, 0); neg.writeUInt32LE(OP.LOOKUP, 4); neg.writeBigUInt64LE(77n, 8); neg.writeBigUInt64LE(BigInt(FUSE_ROOT_ID), 16);
  dn.handle(neg, neg.length);
  r = replies[replies.length - 1]!;
  assert.equal(r.readInt32LE(4), 0);
  assert.equal(r.readBigUInt64LE(16), 0n, 'negative entry: node id 0');
  assert.equal(r.readBigUInt64LE(16 + 16), 2n, 'negative entry valid 2 s');
});

test('records serialized from cached parts equal the JSON of the record objects', () => {
  const backing = join(dir, 'json');
  fs.mkdirSync(join(backing, 'sub'), { recursive: true });
  fs.writeFileSync(join(backing, 'sub', 'naïve "q"\\x'), 'x');
  const rootFd = libc.open(backing, libc.O.PATH | libc.O.DIRECTORY);
  const pfs = new ProvFs(rootFd);
  const objects: ProvEvent[] = [];
  const strings: ProvEvent[] = [];
  const viaObjects = new Recorder({ dev: 9, mountpoint: '/m', nodes: pfs.nodes, sink: (e) => objects.push(JSON.parse(JSON.stringify(e)) as ProvEvent) });
  const viaStrings = new Recorder({ dev: 9, mountpoint: '/m', nodes: pfs.nodes, sink: () => assert.fail('object sink used'), sinkJson: (j) => strings.push(JSON.parse(j) as ProvEvent) });
  const sub = pfs.lookup(ctx, FUSE_ROOT_ID, B('sub'));
  const f = pfs.lookup(ctx, sub.node.id, B('naïve "q"\\x'));
  for (const r of [viaObjects, viaStrings]) {
    r.open(ctx, f.node, O.O_RDONLY, 5);
    r.close(ctx, f.node, 5, true);
    r.close({ ...ctx, pid: 4242 }, f.node, 6);
    r.create(ctx, f, 0o4644, O.O_WRONLY | O.O_CREAT, 8);
    r.create(ctx, f, 0o600, undefined, undefined);
    r.setattr(ctx, f.node, { valid: FATTR.MODE | FATTR.UID | FATTR.GID | FATTR.SIZE | FATTR.MTIME, fh: 0, size: 1n, atime: 0n, atimeNs: 0, mtime: 0n, mtimeNs: 0, mode: 0, uid: 0, gid: 0 }, f.stat);
    r.setattr(ctx, f.node, { valid: FATTR.ATIME, fh: 0, size: 0n, atime: 0n, atimeNs: 0, mtime: 0n, mtimeNs: 0, mode: 0, uid: 0, gid: 0 }, f.stat);
    r.unlink(ctx, sub.node.id, B('naïve "q"\\x'), { ...f.stat, nlink: 1 }, f.node);
    r.unlink(ctx, sub.node.id, B('naïve "q"\\x'), { ...f.stat, nlink: 2 }, f.node);
  }
  // A rename changes the cached path.
  pfs.rename(ctx, sub.node.id, B('naïve "q"\\x'), FUSE_ROOT_ID, B('top'), 0);
  for (const r of [viaObjects, viaStrings]) r.open(ctx, f.node, O.O_WRONLY, 7);
  const noTs = (e: ProvEvent): object => ({ ...e, ts: 0 });
  assert.deepEqual(strings.map(noTs), objects.map(noTs));
  assert.equal(strings.length, 10);
  assert.equal((strings[9] as { file: { path: string } }).file.path, '/m/top');
  assert.deepEqual(strings.filter((e) => e.op === 'unlink').map((e) => (e as { deleted: boolean }).deleted), [true, false]);
  libc.close(rootFd);
});

test('FSYNC goes to the helper thread with an fd of its own, also for a file whose handle holds none', () => {
  const backing = join(dir, 'fsync');
  fs.mkdirSync(backing);
  fs.writeFileSync(join(backing, 'f'), 'data');
  const ino = fs.statSync(join(backing, 'f')).ino;
  const pfs = new ProvFs(libc.open(backing, libc.O.PATH | libc.O.DIRECTORY));
  const node = pfs.lookup(ctx, FUSE_ROOT_ID, B('f')).node;
  const { handle } = pfs.open(ctx, node.id, O.O_WRONLY);
  const offloaded: Array<{ fd: number; dataOnly: boolean }> = [];
  const replies: Buffer[] = [];
  const d = new Dispatcher(pfs, { timeouts: { entry: 1, attr: 1, negative: 0 }, passthrough: false, devFd: -1, maxWrite: 1 << 20,
    offloadFsync: (_u, fd, dataOnly) => { offloaded.push({ fd, dataOnly }); } }, (b, n) => replies.push(Buffer.from(b.subarray(0, n))));
  const fsync = (fh: number, datasync: boolean): void => {
    const b = Buffer.alloc(SIZE.in_header + SIZE.fsync_in);
    b.writeUInt32LE(b.length, 0); b.writeUInt32LE(OP.FSYNC, 4); b.writeBigUInt64LE(7n, 8); b.writeBigUInt64LE(BigInt(node.id), 16);
    b.writeBigUInt64LE(BigInt(fh), SIZE.in_header); b.writeUInt32LE(datasync ? 1 : 0, SIZE.in_header + 8);
    d.handle(b, b.length);
  };
  const check = (what: string, tableFd: number): void => {
    const got = offloaded.pop();
    assert.ok(got && got.fd >= 0, `${what}: handed to the helper`);
    assert.notEqual(got.fd, tableFd, `${what}: not the table's own fd (the loop may close that meanwhile)`);
    assert.equal(fs.fstatSync(got.fd).ino, ino, `${what}: the same file`);
    const flags = Number.parseInt(/flags:\s+(\d+)/.exec(fs.readFileSync(`/proc/self/fdinfo/${got.fd}`, 'utf8'))![1]!, 8);
    assert.ok(flags & 0o2000000, `${what}: close-on-exec`);
    libc.close(got.fd);
  };
  fsync(handle.fh, true);
  check('a handle with its own fd', pfs.nodes.findHandle(handle.fh)!.fd);
  // A passthrough handle in a successor: no fd of its own, and the backing fd not open.
  pfs.nodes.findHandle(handle.fh)!.fd = -1;
  fsync(handle.fh, false);
  check('a handle with no fd', -1);
  assert.equal(replies.length, 0, 'the helper answers, not the loop');
});
