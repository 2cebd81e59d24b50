/**
 * @module kernel/leftovers.test
 * What `prov umount` does with a dead daemon's leftovers (kernel/leftovers): the records its
 * ring still held reach its journal once, then its runtime files go and only its log stays; with
 * no state file naming the journal, the ring files are kept and the reason said. A private
 * runtime directory (PROV_RUNTIME_DIR, set before the modules that read it load).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';

const base = mkdtempSync(join(tmpdir(), 'provfs-leftovers-'));
process.env.PROV_RUNTIME_DIR = join(base, 'run');
const { clearLeftovers } = await import('./leftovers.js');
const { daemonInfoPath, daemonSocketPath, nodeLogPath, RUNTIME_DIR } = await import('./runtime.js');
const { openRingFile, ringFilePath } = await import('./ringfiles.js');
const { openJournalReader } = await import('../collector/journal/reader.js');
const { journalStreamName } = await import('./daemon.js');
after(() => { rmSync(base, { recursive: true, force: true }); });

/** A pid that is gone: a child that has exited and was reaped. */
function deadPid(): number {
  return Number(spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout.trim());
}

/** A dead daemon's runtime files for `mp`, its ring holding `records` (JSON texts). */
function leaveBehind(mp: string, pid: number, records: string[], journalDir?: string): void {
  rmSync(RUNTIME_DIR, { recursive: true, force: true }); // each test's mount alone there
  mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o700 });
  const stream = journalStreamName(mp);
  writeFileSync(daemonInfoPath(mp), JSON.stringify({ pid, backing: '/b', mountpoint: mp, mode: 'prov', dev: 1, passthrough: true, journalDir, stream: journalDir ? stream : undefined, startedAt: '' }));
  writeFileSync(daemonSocketPath(mp), '');
  writeFileSync(nodeLogPath(mp), '');
  writeFileSync(daemonInfoPath(mp).replace(/\.json$/, '.log'), 'why it ended\n');
  const ring = openRingFile(ringFilePath(nodeLogPath(mp), pid), 1 << 16);
  for (const r of records) assert.ok(ring.pushString(r));
  ring.unmap();
}

test('a dead daemon\'s ring goes to its journal, each record once, then its runtime files go and its log stays', async () => {
  const mp = join(base, 'm1'), journal = join(base, 'j1'), pid = deadPid();
  const recs = [0, 1, 2].map((i) => JSON.stringify({ v: 1, src: 'provfs', seq: 0, ts: i + 1, host: 'h', pid: 0, tid: 7, op: 'create', file: { dev: 1, ino: 100 + i, parent: 1, name: `f${i}`, path: `${mp}/f${i}`, type: 0o100000 }, mode: 0o644 }));
  leaveBehind(mp, pid, recs, journal);
  const left = await clearLeftovers(mp, { pid, backing: '/b', mountpoint: mp, mode: 'prov', dev: 1, passthrough: true, journalDir: journal, stream: journalStreamName(mp), startedAt: '' });
  assert.equal(left.journaled, 3);
  assert.equal(left.reason, undefined, 'nothing may be missing');
  assert.deepEqual(readdirSync(RUNTIME_DIR), [daemonInfoPath(mp).replace(/\.json$/, '.log').slice(RUNTIME_DIR.length + 1)], 'only the log stays');
  const reader = openJournalReader(journal);
  const got = reader.readBatch(100, [journalStreamName(mp)]);
  reader.close();
  assert.deepEqual(got.map((r) => (r.event as { file: { name: string } }).file.name), ['f0', 'f1', 'f2']);
  assert.deepEqual(got.map((r) => r.seq), [1, 2, 3]);
  // Done twice (a second `prov umount` of nothing left): nothing more is journaled.
  assert.equal((await clearLeftovers(mp, null)).journaled, 0);
});

test('with no state file naming the journal, the ring files stay and the reason says so', async () => {
  const mp = join(base, 'm2'), pid = deadPid();
  leaveBehind(mp, pid, ['{"op":"create"}']);
  const left = await clearLeftovers(mp, null);
  assert.equal(left.journaled, 0);
  assert.deepEqual(left.kept, [ringFilePath(nodeLogPath(mp), pid)]);
  assert.match(left.reason ?? '', /no state file naming its journal/);
  assert.ok(readdirSync(RUNTIME_DIR).includes(`${journalStreamName(mp)}.nodes.${pid}.ring`), 'the ring file is kept');
});
