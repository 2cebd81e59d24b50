/**
 * @module ebpf/decode.test
 * The binary decoder on hand-built records: sizes are enforced per kind with the place named,
 * the kernel dev_t is converted, walked paths and NUL lists are read back.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeRecord, encodeLost, KIND, RECORD_SIZE } from './decode.js';
import { InputError } from '../graph/errors.js';

function record(kind: number): Buffer {
  const b = Buffer.alloc(RECORD_SIZE[kind]!);
  b.writeUInt16LE(kind, 0);
  b.writeUInt16LE(b.length, 2);
  b.writeBigUInt64LE(123456789n, 8);
  b.writeUInt32LE(42, 16);
  b.writeUInt32LE(43, 20);
  b.writeUInt32LE(1, 24);
  b.write('tester', 32);
  return b;
}

test('an open record: kernel dev_t converted, walked path read right to left', () => {
  const b = record(KIND.open);
  b.writeInt32LE(7, 48);
  b.writeUInt32LE(0o1101, 52);
  b.writeUInt32LE(1, 60);
  b.writeBigUInt64LE(99n, 64);
  b.writeUInt32LE((254 << 20) | 3, 72); // kernel 254:3
  b.writeUInt32LE(0o100644, 76);
  b.writeBigUInt64LE(5n, 80);
  const path = '/tmp/a b/ü.txt';
  const bytes = Buffer.from(path);
  b.writeUInt16LE(512 - bytes.length, 88);
  b.writeUInt16LE(bytes.length, 90);
  bytes.copy(b, 88 + 8 + 512 - bytes.length);
  const full = decodeRecord(b, 'seg 1 offset 0');
  // as the kernel sends it: path moved to the front, record cut after it
  b.fill(0, 96);
  b.writeUInt16LE(0, 88);
  bytes.copy(b, 96);
  const size = (96 + bytes.length + 1 + 7) & ~7;
  b.writeUInt16LE(size, 2);
  const e = decodeRecord(b.subarray(0, size), 'seg 1 offset 0');
  assert.deepEqual(e, full);
  assert.throws(() => decodeRecord(b.subarray(0, size - 8), 'x'), /kind 5 is \d+ bytes \(header says \d+\), expected a multiple of 8/);
  assert.equal(e.op, 'open');
  if (e.op !== 'open') return;
  assert.deepEqual(e.file, { dev: 0xfe03, ino: 99, type: 0o100000, parent: 5, name: 'ü.txt', path });
  assert.equal(e.fd, 7);
  assert.equal(e.created, true);
  assert.equal(e.pid, 42);
  assert.equal(e.tid, 43);
  assert.equal(e.comm, 'tester');
  assert.equal(e.src, 'ebpf');
});

test('wrong sizes and unknown kinds are refused with the place named', () => {
  const short = record(KIND.fork).subarray(0, 60);
  assert.throws(() => decodeRecord(short, 'ebpf/00001.seg offset 96'), (e: unknown) =>
    e instanceof InputError && /^ebpf\/00001\.seg offset 96: eBPF record kind 1 is 60 bytes/.test((e as Error).message));
  const odd = record(KIND.fork);
  odd.writeUInt16LE(77, 0);
  assert.throws(() => decodeRecord(odd, 'x'), /unknown eBPF record kind 77/);
  assert.throws(() => decodeRecord(new Uint8Array(10), 'x'), /shorter than its 48-byte header/);
});

test('lost records round-trip; exit statuses decode like a shell', () => {
  const l = decodeRecord(encodeLost(17, 100, 250), 'x');
  assert.equal(l.op, 'lost');
  if (l.op === 'lost') assert.deepEqual([l.count, l.from, l.to], [17, 100, 250]);
  const x = record(KIND.exit);
  x.writeInt32LE(3 << 8, 48);
  x.writeUInt32LE(1, 52);
  const e = decodeRecord(x, 'x');
  assert.ok(e.op === 'exit' && e.code === 3 && e.group);
  x.writeInt32LE(9, 48); // killed by SIGKILL
  const k = decodeRecord(x, 'x');
  assert.ok(k.op === 'exit' && k.code === 137);
});

test('a setattr record: only the attributes the call set; path by fd or dir + raw', () => {
  const b = record(KIND.setattr);
  b.writeUInt32LE(2, 48); // chown
  b.writeUInt32LE(2 | 32, 52); // uid changed, values from the inode
  b.writeInt32LE(5, 56);
  b.writeUInt32LE(0o100755, 64);
  b.writeUInt32LE(1000, 68);
  b.writeUInt32LE(1001, 72);
  b.writeUInt32LE(7, 76);
  b.writeBigInt64LE(4096n, 80);
  b.writeBigInt64LE(1_700_000_000n, 88);
  b.writeBigUInt64LE(77n, 96);
  b.writeUInt32LE((254 << 20) | 0, 104);
  b.writeUInt32LE(0o100755, 108);
  const path = '/data/x.bin';
  b.writeUInt16LE(512 - path.length, 376);
  b.writeUInt16LE(path.length, 378);
  b.write(path, 376 + 8 + 512 - path.length);
  const e = decodeRecord(b, 'test');
  assert.equal(e.op, 'setattr');
  if (e.op !== 'setattr') return;
  assert.deepEqual(e.file, { dev: 0xfe00, ino: 77, type: 0o100000, name: 'x.bin', path });
  assert.equal(e.uid, 1000);
  for (const a of ['mode', 'gid', 'size', 'mtime'] as const) assert.equal(e[a], undefined, a);

  b.writeUInt32LE(4, 48); // truncate
  b.writeUInt32LE(8 | 16 | 32, 52);
  b.write('sub/../y', 120); // relative to the walked directory
  const t = decodeRecord(b, 'test');
  if (t.op !== 'setattr') return assert.fail('setattr');
  assert.equal(t.file.path, '/data/x.bin/y');
  assert.equal(t.size, 4096);
  assert.equal(t.mtime, 1_700_000_000 * 1e9 + 7);

  b.writeUInt32LE(9, 48);
  assert.throws(() => decodeRecord(b, 'seg 3 @ 40'), (err: unknown) => err instanceof InputError && /setattr op 9/.test(String((err as Error).message)));
});

/** An ABI 2 record: the fixed part (header already in it), string lengths at `lensAt`, strings + NUL each, padded to 8. */
function variable(fixed: Buffer, lensAt: number, strings: (string | Buffer)[]): Buffer {
  const bufs = strings.map((s) => (typeof s === 'string' ? Buffer.from(s) : s));
  const f = Buffer.from(fixed);
  bufs.forEach((s, i) => f.writeUInt16LE(s.length, lensAt + 2 * i));
  const body = Buffer.concat([f, ...bufs.flatMap((s) => [s, Buffer.alloc(1)])]);
  const out = Buffer.alloc((body.length + 7) & ~7);
  body.copy(out);
  out.writeUInt16LE(out.length, 2);
  return out;
}

/** A walked path in an ABI 1 struct prov_walk at `o`. */
function walkAt(b: Buffer, o: number, path: string): void {
  b.writeUInt16LE(512 - Buffer.byteLength(path), o);
  b.writeUInt16LE(Buffer.byteLength(path), o + 2);
  b.write(path, o + 8 + 512 - Buffer.byteLength(path));
}

test('variable-length records (ABI 2) decode to the same events as the fixed ones (ABI 1) recorded before', () => {
  // setattr: chmod of a path relative to the cwd
  const sa = record(KIND.setattr);
  sa.writeUInt32LE(1, 48);
  sa.writeUInt32LE(1 | 32, 52);
  sa.writeInt32LE(-100, 56);
  sa.writeUInt32LE(0o100600, 64);
  sa.writeBigUInt64LE(77n, 96);
  sa.writeUInt32LE(254 << 20, 104);
  sa.writeUInt32LE(0o100600, 108);
  sa.write('burst-file', 120);
  walkAt(sa, 376, '/tmp/work');
  const saV = Buffer.from(sa.subarray(0, 128));
  saV.writeUInt16LE(KIND.setattrV, 0);
  saV.fill(0, 120, 128);
  const v = variable(saV, 120, ['burst-file', '/tmp/work']);
  assert.equal(v.length, 152);
  assert.deepEqual(decodeRecord(v, 'v'), decodeRecord(sa, 'v1'));
  const e = decodeRecord(v, 'v');
  assert.ok(e.op === 'setattr' && e.file.path === '/tmp/work/burst-file' && e.mode === 0o600);

  // rename a → /abs/b, both walked
  const fs = record(KIND.fs);
  fs.writeUInt32LE(1, 48);
  fs.writeBigUInt64LE(5n, 72);
  fs.writeUInt32LE(254 << 20, 80);
  fs.writeUInt32LE(0o100644, 84);
  fs.writeUInt32LE(1, 88);
  fs.write('a', 120);
  fs.write('../b', 376);
  walkAt(fs, 632, '/w/x');
  walkAt(fs, 1408, '/w/y');
  const fsV = Buffer.from(fs.subarray(0, 128));
  fsV.writeUInt16LE(KIND.fsV, 0);
  fsV.fill(0, 120, 128);
  const fv = variable(fsV, 120, ['a', '../b', '/w/x', '/w/y']);
  assert.deepEqual(decodeRecord(fv, 'v'), decodeRecord(fs, 'v1'));
  const r = decodeRecord(fv, 'v');
  assert.ok(r.op === 'rename' && r.file.path === '/w/b' && r.from?.path === '/w/x/a');

  // exec with argv, env and cwd
  const ex = record(KIND.exec);
  ex.writeUInt32LE(1000, 48);
  const args = Buffer.from('cc\0-c\0m.c\0');
  const env = Buffer.from('A=1\0B=2\0');
  ex.writeUInt32LE(args.length, 52);
  ex.writeUInt32LE(env.length, 56);
  ex.writeUInt32LE(1, 60); // argv truncated
  ex.writeBigUInt64LE(9n, 64);
  ex.writeUInt32LE(254 << 20, 72);
  ex.writeUInt32LE(0o100755, 76);
  ex.write('/usr/bin/cc', 80);
  args.copy(ex, 336);
  env.copy(ex, 2384);
  walkAt(ex, 3408, '/src');
  const exV = Buffer.alloc(80);
  ex.copy(exV, 0, 0, 52);
  exV.writeUInt16LE(KIND.execV, 0);
  exV.writeUInt32LE(1, 52);
  ex.copy(exV, 56, 64, 80);
  const xv = variable(exV, 72, ['/usr/bin/cc', args, env, '/src']);
  assert.deepEqual(decodeRecord(xv, 'v'), decodeRecord(ex, 'v1'));
  const x = decodeRecord(xv, 'v');
  assert.ok(x.op === 'exec' && x.argv.join(' ') === 'cc -c m.c' && x.cwd === '/src' && x.argvTruncated && x.exe?.path === '/usr/bin/cc');

  // a string running past the record, or one without its NUL, is refused with the place named
  const bad = Buffer.from(v);
  bad.writeUInt16LE(40, 122);
  assert.throws(() => decodeRecord(bad, 'seg 2 offset 8'), (err: unknown) => err instanceof InputError && /^seg 2 offset 8: .*string 1/.test((err as Error).message));
  assert.throws(() => decodeRecord(v.subarray(0, 128), 'x'), /kind 13 is 128 bytes.*multiple of 8 from 136/);
});
