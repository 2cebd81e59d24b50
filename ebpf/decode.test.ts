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
