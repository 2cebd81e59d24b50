/**
 * @module kernel/snapshot.test
 * The version-3 snapshot codec: a table written in many slices reads back record for record
 * (backing files, open and directory handles, odd names, 64-bit inode numbers), and a truncated
 * or foreign file is refused with where it broke; a live table read as the slices go gives each
 * node as it is when reached.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { SnapshotWriter, readSnapshot, type SnapshotHead } from './snapshot.js';
import { NodeTable, type NodeTableState } from './nodes.js';

const dir = mkdtempSync(join(tmpdir(), 'provfs-snapshot-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const head: SnapshotHead = { mode: 'prov', passthrough: true, negotiated: { minor: 45, flags: 2 ** 40 + 3, passthrough: true, maxWrite: 1 << 20 }, devFd: 7 };

function table(n: number): NodeTableState {
  const nodes: NodeTableState['nodes'] = [];
  for (let i = 0; i < n; i++) {
    nodes.push({
      id: i + 1, fd: 100 + i, dev: 2 ** 33 + i, ino: 2n ** 63n + BigInt(i), type: i % 3 ? 0o100000 : 0o40000, nlookup: i === 0 ? 2 ** 30 : i % 5,
      parent: Math.max(1, i >> 1), name: Buffer.from(i % 7 === 0 ? [0xff, 0xfe, 0x0a, i & 0xff] : Buffer.from(`file-${i}-é`)),
      backing: i % 4 === 0 ? { fd: 50_000 + i, id: i + 1, refs: i % 3 } : null, opens: i % 2,
    });
  }
  const handles: NodeTableState['handles'] = [
    // A field this codec was not written for travels too (records gain fields).
    { fh: 1, node: 2, flags: 0o2, fd: -1, passthrough: true, ...({ noflush: true, opener: 4242 } as object) },
    { fh: 2, node: 1, flags: 0, fd: 9, passthrough: false, dirPos: '9223372036854775807' },
    { fh: 2 ** 40, node: 3, flags: 0o100002, fd: 11, passthrough: false },
  ];
  return { nextId: n + 1, nextFh: 2 ** 40 + 1, nodes, handles };
}

test('a table written in slices reads back record for record', () => {
  const t = table(20_000);
  const path = join(dir, 'snap.bin');
  const w = new SnapshotWriter(path, head, t);
  let steps = 0;
  while (!w.step(0)) steps++;
  assert.ok(steps > 2, `a zero budget writes more than one slice (${steps} steps)`);
  const back = readSnapshot(path);
  assert.deepEqual(back.negotiated, head.negotiated);
  assert.equal(back.devFd, 7);
  assert.equal(back.mode, 'prov');
  assert.equal(back.passthrough, true);
  assert.equal(back.table.nextId, t.nextId);
  assert.equal(back.table.nextFh, t.nextFh);
  assert.equal(back.table.nodes.length, t.nodes.length);
  for (let i = 0; i < t.nodes.length; i++) {
    const a = t.nodes[i]!, b = back.table.nodes[i]!;
    assert.deepEqual({ ...b, name: Buffer.from(b.name).toString('hex') }, { ...a, name: Buffer.from(a.name).toString('hex') }, `node ${i}`);
  }
  assert.deepEqual(back.table.handles, t.handles);
  assert.equal((readFileSync(path).length > 0), true);
});

test('node fields the codec does not know travel as JSON, bigints too', () => {
  const t = table(50);
  for (const n of t.nodes) Object.assign(n, { cached: `c${n.id}`, gen: BigInt(n.id) * 2n ** 60n });
  const path = join(dir, 'extra.bin');
  const w = new SnapshotWriter(path, head, t);
  while (!w.step(1));
  const back = readSnapshot(path);
  assert.deepEqual(back.table.nodes.map((n) => [(n as unknown as { cached: string }).cached, (n as unknown as { gen: bigint }).gen]),
    t.nodes.map((n) => [`c${n.id}`, BigInt(n.id) * 2n ** 60n]));
});

test('a truncated or foreign snapshot is refused, saying where', () => {
  const path = join(dir, 'whole.bin');
  const w = new SnapshotWriter(path, head, table(10));
  while (!w.step(5));
  const whole = readFileSync(path);
  writeFileSync(join(dir, 'cut.bin'), whole.subarray(0, whole.length - 3));
  assert.throws(() => readSnapshot(join(dir, 'cut.bin')), /truncated in handles at offset \d+/);
  writeFileSync(join(dir, 'cut2.bin'), whole.subarray(0, 8 + whole.readUInt32LE(4) + 100)); // into the node records
  assert.throws(() => readSnapshot(join(dir, 'cut2.bin')), /truncated in node \d+.* at offset \d+/);
  writeFileSync(join(dir, 'v8.bin'), Buffer.from([0xff, 0x0f, 0x6f, 0x22, 0, 0, 0, 0]));
  assert.throws(() => readSnapshot(join(dir, 'v8.bin')), /not a version-3 provfs snapshot/);
  writeFileSync(join(dir, 'tail.bin'), Buffer.concat([whole, Buffer.alloc(2)]));
  assert.throws(() => readSnapshot(join(dir, 'tail.bin')), /2 bytes after the last record/);
  assert.throws(() => new SnapshotWriter(path, head, table(1)), /EEXIST/, 'never overwrites a file');
});

test('a live table written in slices: each node as it is when reached; nodes dropped before their slice are not there', () => {
  // Real fds (a dropped node's fd is closed): /dev/null, one per node.
  const n = 300;
  const st = table(n);
  for (const r of st.nodes) { r.fd = openSync('/dev/null', 'r'); r.backing = null; r.opens = 0; r.nlookup = 1; }
  st.handles = [];
  const t = NodeTable.fromState(st, (fd) => fd, true);
  const path = join(dir, 'live.bin');
  const w = new SnapshotWriter(path, head, { ...t.counters, records: t.liveRecords(), handles: () => t.handleRecords() });
  let steps = 0;
  const dropped: number[] = [];
  while (!w.step(0)) {
    steps++;
    // Between slices the table changes: a node not yet written goes, another is renamed.
    const last = n - steps;
    t.forget(last, 1);
    dropped.push(last);
    if (steps === 1) {
      // One slice is 32 records with a budget of 0: node 2 is written, node 150 not yet.
      t.rename(t.get(2), 1, Buffer.from('renamed-after'));
      t.rename(t.get(150), 1, Buffer.from('renamed-before'));
    }
  }
  assert.ok(steps > 3, `written in slices (${steps})`);
  const got = readSnapshot(path);
  const ids = got.table.nodes.map((r) => r.id);
  for (const id of dropped) assert.equal(ids.includes(id), false, `node ${id}, dropped before its slice, is not there`);
  assert.equal(ids.length, n - dropped.length);
  const name = (id: number): string => Buffer.from(got.table.nodes.find((x) => x.id === id)!.name).toString();
  assert.equal(name(2), 'file-1-é', 'node 2 as it was when its slice was written');
  assert.equal(name(150), 'renamed-before', 'node 150 as it was when its slice was written');
  for (const r of st.nodes) if (!dropped.includes(r.id) && r.id !== 1) { try { closeSync(r.fd); } catch { /* closed */ } }
});
