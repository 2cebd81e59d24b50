/**
 * @module kernel/resent.test
 * The crash window between a record and its reply: the daemon creates `boom` (O_EXCL), records
 * it, and is killed (fault injection: PROV_PROVFS_CRASH_AFTER_RECORD) before it answers. The
 * kernel resends the CREATE to the daemon that takes over; the file exists already, so it is
 * opened for the caller (no EEXIST for an application that made it), and the journal holds the
 * create exactly once — the dead daemon's record, journaled from its ring, and no second one. Both
 * ways a crash is taken over: the keeper's warm standby, and a cold start. An unlink is recorded
 * ahead (staged in the ring, published once done): killed after the unlink and before the
 * publication, its successor answers the resent UNLINK and writes the staged record, once.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, readFileSync, openSync, closeSync, writeSync, writeFileSync, existsSync, statSync, unlinkSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountCommand, umountCommand } from '../cli/actions/mount.js';
import { mountState, unmount } from './mount.js';
import { daemonInfoPath, keeperStatePath, type DaemonInfo, type KeeperState } from './runtime.js';
import { journalStreamName } from './daemon.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { unrecordedResend, nameKey } from './resent.js';
import { OP, SIZE } from './protocol.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-resent-'));
const mounts: string[] = [];
after(async () => {
  for (const mp of mounts) if (mountState(mp) !== 'none') { try { unmount(mp, true); } catch { /* gone */ } }
  await new Promise((r) => setTimeout(r, 1500)); // keepers notice the unmount and exit
  rmSync(base, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function crashInTheWindow(how: 'standby' | 'cold', what: 'create' | 'mkdir' | 'unlink' = 'create', when: 'after' | 'before' = 'after'): Promise<void> {
  const backing = join(base, `b-${how}-${what}-${when}`), mp = join(base, `m-${how}-${what}-${when}`), journal = join(base, `j-${how}-${what}-${when}`);
  mkdirSync(backing); mkdirSync(mp);
  mounts.push(mp);
  const name = `boom-${how}-${what}-${when}`;
  // The file an unlink removes is there before the mount: its creation makes no record (which would trip the crash).
  if (what === 'unlink') writeFileSync(join(backing, name), 'to be removed');
  const hook = when === 'after' ? 'PROV_PROVFS_CRASH_AFTER_RECORD' : 'PROV_PROVFS_CRASH_BEFORE_RECORD';
  process.env[hook] = name;
  if (how === 'cold') process.env.PROV_KEEPER_STANDBY = '0';
  try {
    assert.equal(await mountCommand(backing, mp, { mode: 'prov', journal }), 0);
  } finally {
    delete process.env[hook];
    delete process.env.PROV_KEEPER_STANDBY;
  }
  const first = JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo;
  const keeper = (): KeeperState | null => { try { return JSON.parse(readFileSync(keeperStatePath(mp), 'utf8')) as KeeperState; } catch { return null; } };
  if (how === 'standby') {
    for (let i = 0; i < 300 && !keeper()?.standbyReady; i++) await sleep(50);
    assert.ok(keeper()?.standbyReady, `the keeper's standby is warm (${JSON.stringify(keeper())})`);
  }
  // The application's create (or mkdir): the daemon dies between its record and its reply.
  if (what === 'create') {
    const fd = openSync(join(mp, name), 'wx');
    writeSync(fd, 'made once');
    closeSync(fd);
  } else if (what === 'mkdir') {
    mkdirSync(join(mp, name));
  } else {
    unlinkSync(join(mp, name)); // the daemon dies after the unlink, its record staged and not published
  }
  // The new daemon publishes itself once its journal work is done, beside serving.
  let second = first;
  for (let i = 0; i < 200 && second.pid === first.pid; i++) {
    await sleep(25);
    try { second = JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo; } catch { /* being rewritten */ }
  }
  assert.notEqual(second.pid, first.pid, 'the daemon was killed in the window and another serves');
  if (what === 'create') assert.equal(readFileSync(join(backing, name), 'utf8'), 'made once');
  else if (what === 'mkdir') assert.ok(statSync(join(backing, name)).isDirectory());
  else assert.equal(existsSync(join(backing, name)), false, 'the unlink was carried out once');
  for (let i = 0; i < 100 && keeper()?.takeovers !== 1; i++) await sleep(25);
  assert.equal(keeper()?.takeovers, 1, 'one takeover');
  assert.equal(await umountCommand(mp, {}), 0);
  // The daemon's and the keeper's files go with them (the keeper ends a moment after the unmount).
  const stem = basename(daemonInfoPath(mp)).replace(/\.json$/, '.');
  const left = (): string[] => readdirSync(dirname(daemonInfoPath(mp))).filter((f) => f.startsWith(stem));
  for (let i = 0; i < 150 && left().length > 0; i++) await sleep(20);
  assert.deepEqual(left(), [], 'no runtime file of the mount is left');
  const reader = openJournalReader(journal);
  const recs = reader.readBatch(100_000, [journalStreamName(mp)]);
  reader.close();
  const creates = recs.filter((r) => r.event.op === what && (r.event as { file?: { name?: string } }).file?.name === name);
  assert.equal(creates.length, 1, `one ${what} record for ${name}: ${JSON.stringify(creates.map((r) => r.event))}`);
  assert.deepEqual(recs.filter((r) => r.event.op === 'lost').map((r) => r.event), [], 'no record is lost');
}

test('a crash between a create\'s record and its reply: the standby answers the resent CREATE, one record', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  await crashInTheWindow('standby');
});

test('the same for a MKDIR: the resent one is answered from the directory there, no second record and no gap marked', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  await crashInTheWindow('standby', 'mkdir');
});

test('a crash between a MKDIR and its record: the resent one is found done and recorded from the directory there, once, no gap', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  await crashInTheWindow('standby', 'mkdir', 'before');
});

test('a crash between an unlink and its record\'s publication: the resent UNLINK is answered, the staged record written once, no gap', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  await crashInTheWindow('standby', 'unlink');
});

test('the same window taken over by a cold start', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  await crashInTheWindow('cold');
});

test('a resent request answered "already done": the dead daemon\'s staged record of it is written, else a gap is marked; one it recorded is not', () => {
  const unlinkBody = Buffer.from('gone-file\0');
  const recorded = new Set<string>();
  let staged: string | null = null;
  const dead = { hasExact: () => false, hasName: (op: string, tid: number, parent: number | string | undefined, name: string) => recorded.has(nameKey(op, tid, parent, name)), staged: () => staged };
  const stagedUnlink = (name: string): string => JSON.stringify({ op: 'unlink', file: { dev: 1, ino: 9, parent: 77, name }, deleted: true, v: 1, src: 'provfs', seq: 0, host: 'h', pid: 0, ts: 1, tid: 4242 });
  staged = stagedUnlink('gone-file');
  assert.equal(unrecordedResend(OP.UNLINK, unlinkBody, 4242, 77, () => dead), staged, 'the staged record of this very unlink');
  staged = stagedUnlink('another-file');
  const lost = unrecordedResend(OP.UNLINK, unlinkBody, 4242, 77, () => dead);
  assert.ok(lost, 'a lost record');
  const ev = JSON.parse(lost) as { op: string; count: number; tid: number; reason: string; src: string };
  assert.equal(ev.op, 'lost');
  assert.equal(ev.count, 1);
  assert.equal(ev.tid, 4242);
  assert.equal(ev.src, 'provfs');
  assert.match(ev.reason, /unlink of "gone-file"/);
  recorded.add(nameKey('unlink', 4242, 77, 'gone-file'));
  assert.equal(unrecordedResend(OP.UNLINK, unlinkBody, 4242, 77, () => dead), null, 'the dead daemon recorded it');
  assert.equal(unrecordedResend(OP.GETATTR, Buffer.alloc(16), 4242, 77, () => { throw new Error('the dead ring is read only for a request that creates or removes a name'); }), null, 'not such a request');
  const mkdirBody = Buffer.concat([Buffer.alloc(SIZE.mkdir_in), Buffer.from('d\0')]);
  assert.match(JSON.parse(unrecordedResend(OP.MKDIR, mkdirBody, 1, 2, () => dead)!).reason, /mkdir of "d"/);
});

test('a record of a file with no name yet (a node known only from the node log) is looked for in the dead ring and not found, promptly', async () => {
  const { EventRing } = await import('./eventring.js');
  const { Worker } = await import('node:worker_threads');
  const path = join(base, 'dead.ring');
  writeFileSync(path, Buffer.alloc(EventRing.fileBytes(1 << 12)));
  const fd = openSync(path, 'r+');
  const ring = EventRing.map(fd, EventRing.fileBytes(1 << 12), true);
  closeSync(fd);
  const rec = (name: string, ino: number): string => `{"op":"close","file":{"dev":1,"ino":${ino},"parent":1,"name":${JSON.stringify(name)},"path":"/m/${name}","type":32768},"fh":3,"release":true,"v":1,"src":"provfs","seq":0,"host":"h","pid":0,"ts":1,"tid":7}`;
  for (let i = 0; i < 5; i++) assert.ok(ring.pushString(rec(`f${i}`, 10 + i)));
  ring.unmap();
  // In a worker, so that a search that never ends fails the test instead of hanging it.
  const w = new Worker(`
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.mod).then(({ deadRecordKeys }) => {
      const dead = deadRecordKeys(workerData.path);
      parentPort.postMessage([dead.hasExact(workerData.nameless), dead.hasName('close', 7, 1, ''), dead.hasExact(workerData.known)]);
    });
  `, { eval: true, workerData: { mod: new URL('./resent.js', import.meta.url).href, path, nameless: rec('', 99), known: rec('f3', 13) } });
  const answer = await Promise.race([
    new Promise((r) => w.once('message', r)),
    sleep(5000).then(() => 'no answer within 5 s'),
  ]);
  await w.terminate();
  assert.deepEqual(answer, [false, false, true], 'the nameless record matches nothing; a named one is found');
});
