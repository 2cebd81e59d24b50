/**
 * @module kernel/nodelog.test
 * The node log's compaction (kernel/nodelog) and a follower across it (kernel/nodefollow), on
 * real files: a log that made and forgot many nodes is rewritten with only its live ones, in
 * slices, while records keep coming; what the log says afterwards — read whole, or followed by a
 * standby that was reading it before the switch — is exactly the live set, its backing ids and
 * INIT. A writer that takes an existing log over learns its live set by reading it, then compacts.
 * A standby waiting for its go word follows the log as another process appends to it. A log
 * whose file system fills up after it opened goes on writing into the room it took ahead.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, statSync, statfsSync, existsSync, readFileSync, truncateSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';
import { NodeLog, NODELOG_RESERVE_BYTES, compactPath } from './nodelog.js';
import { tmpfsScratch } from '../test/tmpfs.js';
import { NodeLogFollower, waitForGo, takeFollowWatch } from './nodefollow.js';

const dir = mkdtempSync(join(tmpdir(), 'provfs-nodelog-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const files = join(dir, 'files');
const rootFd = (() => { rmSync(files, { recursive: true, force: true }); libc.mkdirat(libc.AT.FDCWD, Buffer.from(files), 0o700); return libc.open(files, libc.O.PATH | libc.O.DIRECTORY); })();
after(() => libc.close(rootFd));

/** A file handle for file `i` (made on first use). */
const handles = new Map<number, libc.FileHandle>();
function handle(i: number): libc.FileHandle {
  let h = handles.get(i);
  if (!h) {
    writeFileSync(join(files, `f${i}`), '');
    const fd = libc.open(join(files, `f${i}`), libc.O.PATH);
    h = libc.handleOf(fd);
    libc.close(fd);
    handles.set(i, h);
  }
  return h;
}

test('compaction keeps exactly the live nodes, backing ids and INIT; a follower reading before the switch ends up with the same', () => {
  const path = join(dir, 'a.nodes');
  const log = new NodeLog(path, true, { compactMin: 8192 });
  log.init({ minor: 45, passthrough: true });
  const live = new Set<number>();
  const follower = new NodeLogFollower(path, rootFd);
  let id = 2;
  // Many nodes made and forgotten (a create/delete workload), a few kept.
  for (let round = 0; round < 40; round++) {
    for (let k = 0; k < 60; k++) { log.node(id, handle(id)); live.add(id); id++; }
    for (const n of [...live].slice(0, 52)) { log.gone(n); live.delete(n); }
    if (round === 5) follower.catchUp();
  }
  const withBacking = id - 1, closedBacking = id - 2;
  log.backing(withBacking, 7, true);
  log.backing(closedBacking, 8, true);
  log.backing(closedBacking, 8, false);
  const before = statSync(path).size;
  assert.ok(log.due, `a ${before}-byte log of ${live.size} live nodes is due for compaction`);
  // Slices, with records still coming in between (made, forgotten).
  let steps = 0;
  while (log.due && steps < 10_000) {
    log.step(0); // a budget of 0: one slice (64 records) per step
    steps++;
    log.node(id, handle(id)); live.add(id); id++;
    const old = [...live].find((n) => n !== withBacking)!;
    log.gone(old); live.delete(old);
    if (steps === 2) follower.catchUp(); // the follower reads the old file meanwhile
  }
  assert.equal(log.compactions, 1, 'one compaction');
  assert.ok(steps > 3, `written in slices (${steps} steps)`);
  log.node(id, handle(id)); live.add(id); id++;
  log.close();
  const after_ = statSync(path).size;
  assert.ok(after_ < before / 2, `the log shrank (${before} → ${after_} bytes)`);
  assert.equal(existsSync(compactPath(path)), false);
  const got = NodeLog.read(path);
  assert.deepEqual([...got.nodes.keys()].sort((a, b) => a - b), [...live].sort((a, b) => a - b));
  assert.deepEqual([...got.backings], [[withBacking, 7]], 'the registered backing id, not the closed one');
  assert.deepEqual(got.init, { minor: 45, passthrough: true });
  // The follower: the old file to its end, then the new one.
  const r = follower.finish();
  const ids = [...live].sort((a, b) => a - b);
  assert.equal(r.table.size, 1, 'nothing opened up front (only the root)');
  const lazyIds = [...((r.table as unknown as { lazy: Map<number, unknown> }).lazy?.keys() ?? [])];
  assert.deepEqual(lazyIds.filter((x) => !live.has(x)), [], 'no node that went');
  assert.equal(r.table.lazyCount, ids.length);
  for (const n of ids) assert.ok(r.table.find(n), `node ${n} in the follower's table, opened on first use`);
  assert.equal(r.table.size, ids.length + 1, 'only the live nodes (and the root)');
  assert.deepEqual(r.init, { minor: 45, passthrough: true });
  assert.equal(r.table.lazyCount, 0, 'every live node opened on first use');
  assert.equal(r.table.find(withBacking)?.backing?.id, 7);
});

test('a writer that takes a log over learns its live set in slices, then compacts it', () => {
  const path = join(dir, 'b.nodes');
  const first = new NodeLog(path, true, { compactMin: 1 << 30 }); // never compacts
  first.init({ minor: 45 });
  const live = new Set<number>();
  for (let id = 2; id < 2000; id++) {
    first.node(id, handle(id % 300 + 1000));
    if (id % 50 !== 0) first.gone(id); else live.add(id);
  }
  first.close();
  const second = new NodeLog(path, false, { compactMin: 16 << 10 });
  assert.ok(second.due, 'a large log taken over is looked at');
  for (let i = 0; i < 10_000 && second.due; i++) second.step(0.01);
  second.close();
  assert.equal(second.compactions, 1);
  assert.deepEqual([...NodeLog.read(path).nodes.keys()].sort((a, b) => a - b), [...live].sort((a, b) => a - b));
});

test('a standby waiting for its go word follows the log while another process appends to it', async () => {
  const path = join(dir, 'w.nodes'), extra = join(dir, 'w.extra'), fifo = join(dir, 'w.go');
  const log = new NodeLog(path, true);
  log.init({ minor: 45, passthrough: true });
  for (let id = 2; id <= 10; id++) log.node(id, handle(id));
  const s1 = statSync(path).size;
  for (let id = 11; id <= 60; id++) log.node(id, handle(id));
  log.close();
  // Nodes 11–60 are appended by another process while the standby waits.
  writeFileSync(extra, readFileSync(path).subarray(s1));
  truncateSync(path, s1);
  const follower = new NodeLogFollower(path, rootFd);
  follower.catchUp();
  assert.equal(follower.table.lazyCount, 9);
  libc.mknodat(libc.AT.FDCWD, libc.cstr(fifo), 0o010600, 0); // S_IFIFO
  const go = libc.open(fifo, libc.O.RDWR | libc.O.NONBLOCK); // RDWR: opening does not wait for a writer
  const child = spawn('/bin/sh', ['-c', 'sleep 0.05; cat "$1" >> "$2"; sleep 0.2; printf "\\001\\052\\000\\000\\000" > "$3"', 'sh', extra, path, fifo], { stdio: 'inherit' });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const marks: string[] = [];
    // Blocks this thread until the go word; the child is a process of its own meanwhile.
    const dead = waitForGo(follower, go, { mark: (m) => marks.push(m) });
    assert.equal(dead, 42, 'the go word names the dead daemon');
    assert.deepEqual(marks, ['go']);
    assert.equal(follower.table.lazyCount, 59, 'the appended nodes were applied while waiting, before the go word');
  } finally {
    await exited;
    const watch = takeFollowWatch();
    if (watch >= 0) libc.close(watch);
    libc.close(go);
  }
  assert.equal(takeFollowWatch(), -1, 'asked once');
});

const full = tmpfsScratch('provfs-nodelog-full-');

test('a log whose file system fills up after it opened writes on into the room it took ahead', () => {
  full.mount('4m');
  const path = join(full.small, 'full.nodes');
  const log = new NodeLog(path, true);
  assert.ok(log.reservedAhead >= NODELOG_RESERVE_BYTES, `room taken ahead: ${log.reservedAhead} bytes`);
  assert.equal(statSync(path).size, 0, 'the room taken ahead is not in the log\'s size (readers stop at its end)');
  // Nothing left on the file system.
  const s = statfsSync(full.small);
  writeFileSync(join(full.small, 'filler'), Buffer.alloc(s.bavail * s.bsize));
  assert.equal(statfsSync(full.small).bavail, 0, 'the tmpfs is full');
  // 5,000 nodes: about 180 KiB of records, written while the file system has no room. Before,
  // the first write failed and they waited in memory, lost with a daemon killed meanwhile.
  for (let i = 0; i < 5000; i++) log.node(100 + i, handle(i % 64));
  log.flush();
  assert.equal(log.stalled, null, `the log was never stalled: ${log.stalled?.message}`);
  const read = NodeLog.read(path);
  assert.equal(read.nodes.size, 5000, 'every node is in the file');
  log.close();
  rmSync(join(full.small, 'filler'));
});
