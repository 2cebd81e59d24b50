/**
 * @module kernel/eventring.test
 * The record ring between the request loop and the journal: records come out whole, in order,
 * none lost or doubled, across many wrap-arounds of a small ring, for bytes and for strings
 * encoded in place (multi-byte UTF-8 included); a full ring refuses instead of overwriting.
 * Space is freed only when committed; a file-backed ring shows a successor what was not, with the
 * journal seqs stamped, and recovery journals exactly what the journal lacks. An idle consumer
 * sleeps and the producer's next record wakes it. Records written in place piece by piece
 * (bytes and decimal numbers) come out as written, staged ones only once published.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, readdirSync, writeFileSync } from 'node:fs';
import { join, basename } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { EventRing } from './eventring.js';
import { SCHEMA_VERSION } from '../collector/events.js';
import { PROVFS_BIT, PROVFS_HEADER_BYTES, PROVFS_OP, decodeProvfsRecord, encodeProvfsFile } from '../collector/provfs-record.js';
import { openRingFile, ringFilePath, recoverRings, removeRingFiles } from './ringfiles.js';
import * as libc from './libc.js';

test('records survive wrap-around in order, none lost or doubled', () => {
  const ring = EventRing.create(4096);
  const dec = new TextDecoder();
  const sent: string[] = [], got: string[] = [];
  for (let i = 0; i < 50_000; i++) {
    const s = JSON.stringify({ i, name: 'é'.repeat(i % 60), tail: 'x'.repeat(i % 13) });
    const ok = i % 2 ? ring.pushString(s) : ring.push(new TextEncoder().encode(s));
    if (!ok) { for (const r of ring.drain()) got.push(dec.decode(r)); i--; continue; }
    sent.push(s);
    if (i % 7 === 0) for (const r of ring.drain()) got.push(dec.decode(r));
  }
  for (const r of ring.drain()) got.push(dec.decode(r));
  assert.equal(got.length, sent.length);
  assert.deepEqual(got, sent);
});

test('an idle consumer sleeps only on an empty ring, and the next record published wakes it once', () => {
  const ring = EventRing.create(4096);
  assert.equal(ring.wakeNeeded(), false, 'a polling consumer needs no wake');
  assert.ok(ring.pushString('{"a":1}'));
  assert.equal(ring.sleepIfEmpty(), false, 'a record not yet taken: keep polling');
  assert.equal(ring.wakeNeeded(), false, 'the failed sleep left the consumer awake');
  assert.equal(ring.take().recs.length, 1);
  assert.equal(ring.sleepIfEmpty(), true);
  assert.ok(ring.pushString('{"b":2}'));
  assert.equal(ring.wakeNeeded(), true, 'the first record after the sleep wakes the consumer');
  assert.ok(ring.pushString('{"c":3}'));
  assert.equal(ring.wakeNeeded(), false, 'once');
  assert.deepEqual(ring.take().recs.map((r) => new TextDecoder().decode(r)), ['{"b":2}', '{"c":3}']);
  assert.equal(ring.sleepIfEmpty(), true);
  ring.awake();
  assert.ok(ring.pushString('{"d":4}'));
  assert.equal(ring.wakeNeeded(), false, 'awake again: no wake');
});

test('a full ring refuses a record instead of overwriting unread ones', () => {
  const ring = EventRing.create(256);
  let n = 0;
  while (ring.pushString('y'.repeat(20))) n++;
  assert.ok(n > 0 && n < 20);
  assert.equal(ring.drain().length, n);
  assert.equal(ring.pushString('after'), true);
});

test('a file-backed ring keeps what was taken but not committed for a successor, with stamps', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eventring-'));
  try {
    const path = join(dir, 'r.ring');
    const ring = openRingFile(path, 4096);
    assert.equal(statSync(path).mode & 0o777, 0o600);
    for (let i = 0; i < 5; i++) assert.ok(ring.pushString(`{"i":${i}}`));
    const t = ring.take();
    assert.equal(t.recs.length, 5);
    t.offs.forEach((off, i) => ring.stamp(off, 100 + i)); // journal seqs 100..104
    ring.commit(t.offs[2]!); // the first two are durable
    ring.pushString('{"i":5}'); // never taken
    // Another mapping of the file (as a successor process would make) sees the same memory.
    const fd = libc.open(path, libc.O.RDWR);
    const other = EventRing.map(fd, statSync(path).size, false);
    libc.close(fd);
    const { recs, damaged } = other.unjournaled();
    assert.equal(damaged, undefined);
    assert.deepEqual(recs.map((r) => [new TextDecoder().decode(r.data), r.seq]), [['{"i":2}', 102], ['{"i":3}', 103], ['{"i":4}', 104], ['{"i":5}', 0]]);
    other.unmap();
    ring.unmap();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('space is reused only once committed, also across wrap-around', () => {
  const ring = EventRing.create(512);
  let n = 0;
  while (ring.pushString('z'.repeat(30))) n++;
  assert.equal(ring.take().recs.length, n);
  assert.equal(ring.pushString('z'.repeat(30)), false, 'taken is not committed: no room yet');
  const dec = new TextDecoder();
  for (let round = 0; round < 200; round++) {
    const t = ring.take();
    ring.commit(t.end);
    assert.ok(ring.pushString(`r${round}`));
    assert.equal(ring.unjournaled().recs.length, 1);
    assert.equal(dec.decode(ring.unjournaled().recs[0]!.data), `r${round}`);
  }
});

test('the newest unjournaled records, joined in one buffer, are the tail of unjournaled(), also across wrap-around', () => {
  const ring = EventRing.create(1024);
  const dec = new TextDecoder();
  for (let round = 0; round < 60; round++) {
    // Some committed, some left: the unjournaled part starts anywhere, and wraps.
    const t = ring.take();
    ring.commit(t.end);
    for (let i = 0; i < 1 + (round % 7); i++) assert.ok(ring.pushString(`{"r":${round},"i":${i},"pad":"${'p'.repeat(round % 13)}"}`));
    const all = ring.unjournaled().recs.map((r) => dec.decode(r.data));
    for (const n of [1, 3, 100]) {
      const { bytes, ends } = ring.lastUnjournaled(n);
      const got = ends.map((e, i) => bytes.toString('utf8', i === 0 ? 0 : ends[i - 1]!, e));
      assert.deepEqual(got, all.slice(-n), `round ${round}, last ${n}`);
    }
  }
});

test('recovery journals what dead daemons left, skipping records the journal already holds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eventring-'));
  try {
    const nodeLog = join(dir, 'm.nodes');
    // A dead pid: a child that has exited (and was reaped).
    const dead = spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' });
    const deadPid = Number(dead.stdout.trim());
    const ring = openRingFile(ringFilePath(nodeLog, deadPid), 4096);
    for (let i = 0; i < 4; i++) ring.pushString(`{"i":${i}}`);
    const t = ring.take();
    t.offs.forEach((off, i) => ring.stamp(off, 11 + i)); // stamped 11..14; the journal got 11 and 12 before the crash
    ring.pushString('{"i":4}');
    ring.unmap();
    // An empty ring of another dead process (a standby; no pid is that high) and one of a live process (ours): not recovered.
    openRingFile(ringFilePath(nodeLog, 99_999_999), 4096).unmap();
    openRingFile(ringFilePath(nodeLog), 4096).unmap();
    // A ring left by a dead process that had our pid is set aside, not emptied, when we make ours.
    const mine = openRingFile(ringFilePath(nodeLog), 4096);
    mine.pushString('{"i":"orphan"}');
    mine.unmap();
    openRingFile(ringFilePath(nodeLog), 4096).unmap();
    const appended: string[] = [];
    const journal = {
      lastSeq: 12,
      appendEncoded(_c: number, p: readonly Uint8Array[]): number {
        for (const x of p) appended.push(new TextDecoder().decode(x));
        return (this.lastSeq += p.length);
      },
    };
    const got = recoverRings(nodeLog, journal);
    assert.deepEqual(appended.sort(), ['{"i":"orphan"}', '{"i":2}', '{"i":3}', '{"i":4}'].sort());
    assert.equal(got.skipped, 2);
    assert.equal(got.lost, undefined);
    assert.equal(got.files.length, 4); // the dead daemon's, the dead standby's, the orphan and the empty ours set aside
    // This daemon dies too before removing the files, its appends written (seqs 13..16): the next
    // recovery appends nothing twice.
    const again = recoverRings(nodeLog, journal);
    assert.equal(appended.length, 4, `appended again: ${appended.slice(4).join(' ')}`);
    assert.equal(again.skipped, 6); // the two journaled before the first crash, and these four
    removeRingFiles(got.files);
    assert.deepEqual(readdirSync(dir), [basename(ringFilePath(nodeLog))]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('recovery says what may be missing: records that went around a full ring, a damaged ring', () => {
  const dir = mkdtempSync(join(tmpdir(), 'eventring-'));
  try {
    const nodeLog = join(dir, 'm.nodes');
    const dead = Number(spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim());
    const ring = openRingFile(ringFilePath(nodeLog, dead), 4096);
    ring.pushString('{"i":0}');
    ring.countOverflow();
    ring.unmap();
    const journal = { lastSeq: 0, appendEncoded: (_c: number, p: readonly Uint8Array[]) => p.length };
    const got = recoverRings(nodeLog, journal);
    assert.equal(got.appended, 1);
    assert.match(got.lost ?? '', /1 records went around the ring/);
    // A file that is no ring at all (bad magic) is reported, not read.
    const junk = ringFilePath(nodeLog, 99_999_999);
    writeFileSync(junk, Buffer.alloc(4096, 7));
    removeRingFiles(got.files);
    const bad = recoverRings(nodeLog, journal);
    assert.match(bad.lost ?? '', /bad magic/);
    assert.deepEqual(bad.files, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('binary records written in place decode to what was written, across wrap-arounds; a staged one only once published', () => {
  const ring = EventRing.create(2048);
  const host = Buffer.from('host-é');
  // Numbers of every size the header holds: tids and flags to 2^32 − 1, ts and fh as doubles.
  const numbers = [0, 1, 9, 12345, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 53 - 1, 1e15 + 7];
  const sent: unknown[] = [], got: unknown[] = [];
  const take = (): void => { for (const r of ring.drain()) got.push(decodeProvfsRecord(r)); };
  for (let i = 0; i < 5000; i++) {
    const n = numbers[i % numbers.length]!;
    const name = Buffer.from(`f-${i}-${'é"\\'.repeat(i % 9)}`);
    const path = Buffer.concat([Buffer.from('/mnt/d/'), name]);
    const file = encodeProvfsFile(2049, n, 2, 0o100000, name, Buffer.from('/mnt/d/'), host)!;
    if (!ring.begin(PROVFS_HEADER_BYTES + file.length)) { take(); i--; continue; }
    const tid = n % 2 ** 32;
    ring.putProvfsHeader(PROVFS_OP.close, PROVFS_BIT.fh | (i % 2 ? PROVFS_BIT.release : 0), tid, n, 0, 0, n);
    ring.putBytes(file);
    ring.endRecord(false);
    const ev = { op: 'close', file: { dev: 2049, ino: n, parent: 2, name: name.toString(), path: path.toString(), type: 0o100000 }, fh: n, ...(i % 2 ? { release: true } : {}), v: SCHEMA_VERSION, src: 'provfs', seq: 0, host: host.toString(), pid: 0, ts: n, tid };
    assert.deepEqual(decodeProvfsRecord(ring.lastWritten()), ev);
    sent.push(ev);
    if (i % 5 === 0) take();
  }
  take();
  assert.deepEqual(got, sent);
  // Staged: invisible to the consumer until published, then whole.
  const file = encodeProvfsFile(1, 7, 2, 0o100000, Buffer.from('gone'), Buffer.from('/m/'), host)!;
  assert.ok(ring.begin(PROVFS_HEADER_BYTES + file.length));
  ring.putProvfsHeader(PROVFS_OP.unlink, PROVFS_BIT.deleted, 42, 5, 0, 0, 0);
  ring.putBytes(file);
  ring.endRecord(true);
  assert.deepEqual(ring.drain(), [], 'a staged record is not taken');
  const staged = decodeProvfsRecord(ring.stagedRecord()!) as { op: string; deleted: boolean; tid: number };
  assert.deepEqual([staged.op, staged.deleted, staged.tid], ['unlink', true, 42], 'a successor sees it as staged');
  ring.publishStaged();
  assert.deepEqual(ring.drain().map((r) => (decodeProvfsRecord(r) as { op: string }).op), ['unlink']);
});

test('a record cut short where an abandoned staged record was is not taken for a staged one', () => {
  const ring = EventRing.create(4096);
  const enc = new TextEncoder();
  assert.ok(ring.stageString('{"op":"unlink","file":{"name":"failed"}}'));
  assert.ok(ring.stagedRecord(), 'staged');
  // The operation failed: the staged record is left to be overwritten. The next record is being
  // written there when the producer dies (its own header not written yet).
  assert.ok(ring.begin(64));
  ring.putBytes(enc.encode('{"op":"open","file":{"name":"next"'));
  assert.equal(ring.stagedRecord(), null);
});

test('records taken as views are the ring bytes themselves, the same as copies, and stay put until committed', () => {
  const ring = EventRing.create(4096);
  const dec = new TextDecoder();
  const sent: string[] = [];
  for (let i = 0; i < 5_000; i++) {
    const s = JSON.stringify({ i, pad: 'y'.repeat(i % 97) });
    if (!ring.pushString(s)) {
      const t = ring.take(true);
      // A view is not a copy: it shares the ring's memory.
      assert.ok(t.recs.every((r) => r.buffer instanceof SharedArrayBuffer), 'views into the shared ring');
      const before = t.recs.map((r) => Buffer.from(r).toString());
      // Nothing can be pushed into their space until it is committed.
      assert.equal(ring.pushString('x'.repeat(4000)), false);
      assert.deepEqual(t.recs.map((r) => Buffer.from(r).toString()), before, 'unchanged while not committed');
      assert.deepEqual(before, sent.splice(0, t.recs.length));
      ring.commit(t.end);
      i--;
      continue;
    }
    sent.push(s);
  }
  const copies = ring.take(false);
  assert.ok(copies.recs.every((r) => !(r.buffer instanceof SharedArrayBuffer)), 'copies by default');
  assert.deepEqual(copies.recs.map((r) => dec.decode(r)), sent);
});

test('a journal released before it made records durable: their stamps are cleared, so a recovery appends them', () => {
  const ring = EventRing.create(1 << 12);
  for (let i = 0; i < 5; i++) assert.ok(ring.pushString(`{"n":${i}}`));
  const first = ring.take();
  first.offs.forEach((off, i) => ring.stamp(off, 10 + i)); // appended as seqs 10–14 ...
  ring.commit(first.offs[2]!); // ... of which 10 and 11 became durable
  assert.ok(ring.pushString('{"n":5}')); // not taken yet: no stamp
  assert.deepEqual(ring.unjournaled().recs.map((r) => r.seq), [12, 13, 14, 0]);
  assert.equal(ring.unstampUncommitted(), 4);
  assert.deepEqual(ring.unjournaled().recs.map((r) => r.seq), [0, 0, 0, 0]);
  assert.deepEqual(ring.unjournaled().recs.map((r) => new TextDecoder().decode(r.data)), ['{"n":2}', '{"n":3}', '{"n":4}', '{"n":5}']);
});
