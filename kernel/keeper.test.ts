/**
 * @module kernel/keeper.test
 * Crash survival: `prov mount` starts an fd keeper; kill -9 of the daemon under a workload is
 * a pause for applications, not an error — the keeper restarts the daemon, which rebuilds its
 * node table from the node log and has the kernel resend what was never answered. The first
 * crash is taken over by the keeper's warm standby (no Node start-up), the second, right after,
 * by whatever the keeper has by then (a standby not yet warm: a cold start); then a live upgrade
 * and a crash of the successor (the keeper follows the upgrade). Files kept open
 * across the crashes keep their data. No provenance record is lost or doubled: the dead daemon's
 * ring file holds what it had not yet made durable, and its successor journals exactly that —
 * every create the application completed is in the journal once, and no `lost` record appears.
 * Ring files go once their records are durable, and with the mount. A mount made again at the
 * same path right after an unmount is not taken for the old one by the old mount's keeper.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, readdirSync, readlinkSync, existsSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountCommand, umountCommand, upgradeCommand } from '../cli/actions/mount.js';
import { fuseConnectionUp, mountAt, mountState, unmount } from './mount.js';
import * as libc from './libc.js';
import { daemonInfoPath, keeperStatePath, nodeLogPath, standbyPids, type DaemonInfo, type KeeperState } from './runtime.js';
import { ringFilePath } from './ringfiles.js';
import { basename, dirname } from 'node:path';
import { journalStreamName } from './daemon.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { startWorkload } from './workload.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-keeper-'));
const pids: number[] = [];
let mp = '';
/** Every mount point a test used (`mp` names only the last one). */
const mountpoints: string[] = [];
after(async () => {
  // Each test's mount, whether or not it got to unmount it (a failed assertion leaves it, and
  // its keeper would go on restarting its daemon).
  for (const m of mountpoints) if (mountState(m) !== 'none') { try { unmount(m, true); } catch { /* gone */ } }
  await new Promise((r) => setTimeout(r, 1500)); // the keeper notices the unmount and exits
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  rmSync(base, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const info = (): DaemonInfo => JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo;
const keeperState = (): KeeperState | null => { try { return JSON.parse(readFileSync(keeperStatePath(mp), 'utf8')) as KeeperState; } catch { return null; } };


/** kill -9 the serving daemon; resolves with the info of the one serving after it. */
async function crash(first: DaemonInfo): Promise<DaemonInfo> {
  process.kill(first.pid, 'SIGKILL');
  let second = first;
  for (let i = 0; i < 200 && second.pid === first.pid; i++) {
    await sleep(50);
    try { second = info(); } catch { /* being rewritten */ }
  }
  assert.notEqual(second.pid, first.pid, 'a new daemon serves the mount');
  pids.push(second.pid);
  return second;
}

test('kill -9 of the daemon under load: the keeper restarts it, applications see a pause, no error', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const backing = join(base, 'b'), journal = join(base, 'journal');
  mp = join(base, 'm');
  mountpoints.push(mp);
  mkdirSync(backing); mkdirSync(mp);
  writeFileSync(join(backing, 'ro'), 'read-only data '.repeat(1000));
  // A small node log compacts several times under the workload, across the crashes and the upgrade.
  process.env.PROV_PROVFS_NODELOG_COMPACT_MIN = String(32 << 10);
  try {
    assert.equal(await mountCommand(backing, mp, { mode: 'prov', journal }), 0);
  } finally {
    delete process.env.PROV_PROVFS_NODELOG_COMPACT_MIN;
  }
  const first = info();
  pids.push(first.pid);
  const w = startWorkload(mp, pids);
  await w.started;
  // The keeper starts a standby for the mount; wait until it is warm (the keeper's state file says).
  let sb: number[] = [];
  for (let i = 0; i < 100 && sb.length === 0; i++) { await sleep(50); sb = standbyPids(mp); }
  assert.equal(sb.length, 1, 'the keeper keeps one warm standby');
  pids.push(...sb);
  for (let i = 0; i < 400 && !keeperState()?.standbyReady; i++) await sleep(50);
  assert.equal(keeperState()?.standby, sb[0]);
  assert.ok(keeperState()?.standbyReady, 'the standby is warm within 20 s');
  // The workload makes and forgets nodes meanwhile: the node log is compacted (a new file takes its name).
  const ino0 = statSync(nodeLogPath(mp)).ino;
  for (let i = 0; i < 200 && statSync(nodeLogPath(mp)).ino === ino0; i++) await sleep(50);
  assert.notEqual(statSync(nodeLogPath(mp)).ino, ino0, 'the node log was compacted under the workload');
  const second = await crash(first);
  assert.equal(second.pid, sb[0], 'the warm standby took over');
  // What the dead daemon left in its ring reaches the disk beside serving; then its ring file goes.
  const deadRing = ringFilePath(nodeLogPath(mp), first.pid);
  for (let waited = 0; waited < 5000 && existsSync(deadRing); waited += 50) await sleep(50);
  assert.equal(existsSync(deadRing), false, `the dead daemon's ring file ${deadRing} is removed once its records are durable`);
  pids.push(...standbyPids(mp));
  const third = await crash(second);
  await sleep(500);
  // A live upgrade (prov → prov) of the recovered daemon, then a crash of its successor: the
  // keeper follows the upgrade, the old daemon's ring goes with it, the successor's is recovered.
  assert.equal(await upgradeCommand(mp, { mode: 'prov', journal, json: true }), 0, 'prov upgrade of the recovered daemon');
  let fourth = info();
  for (let i = 0; i < 100 && fourth.pid === third.pid; i++) { await sleep(20); fourth = info(); }
  assert.notEqual(fourth.pid, third.pid, 'the successor serves');
  pids.push(fourth.pid);
  for (let waited = 0; waited < 3000 && existsSync(ringFilePath(nodeLogPath(mp), third.pid)); waited += 50) await sleep(50);
  assert.equal(existsSync(ringFilePath(nodeLogPath(mp), third.pid)), false, 'the upgraded daemon removed its ring');
  await sleep(300);
  pids.push(...standbyPids(mp));
  const fifth = await crash(fourth);
  assert.notEqual(fifth.pid, fourth.pid);
  await sleep(500);
  writeFileSync(join(mp, 'STOP'), '');
  const res = await w.result;
  assert.equal(res.nerrors, 0, `the workload saw errors across the crash: ${JSON.stringify(res.errors)}`);
  assert.equal(createHash('sha256').update(readFileSync(join(backing, 'keep'))).digest('hex'), res.hash, 'the file open across the crash has every block');
  assert.ok((res.worstMs as number) > 0);

  assert.equal(await umountCommand(mp, {}), 0);
  const reader = openJournalReader(journal);
  const recs = reader.readBatch(1_000_000, [journalStreamName(mp)]);
  reader.close();
  assert.ok(third.pid !== second.pid);
  const lost = recs.filter((r) => r.event.op === 'lost');
  assert.equal(lost.length, 0, `no record is lost across the crashes: ${JSON.stringify(lost.map((r) => r.event))}`);
  const creates = new Map<string, number>();
  for (const r of recs) {
    const e = r.event as { op: string; file?: { name?: string } };
    if (e.op === 'create' && e.file?.name?.startsWith('w-')) creates.set(e.file.name, (creates.get(e.file.name) ?? 0) + 1);
  }
  const created = res.created as string[];
  const missing = created.filter((n) => !creates.has(n));
  const doubled = [...creates].filter(([, c]) => c > 1).map(([n]) => n);
  assert.ok(created.length > 100, `the workload created files (${created.length})`);
  assert.deepEqual(missing, [], `every create the application completed is in the journal (${missing.length} of ${created.length} missing)`);
  assert.deepEqual(doubled, [], 'and none twice');
  // The mount is gone: so are the ring files of its daemons and standbys (the keeper sweeps them).
  const rings = (): string[] => readdirSync(dirname(nodeLogPath(mp))).filter((n) => n.startsWith(`${basename(nodeLogPath(mp))}.`) && n.endsWith('.ring'));
  for (let waited = 0; waited < 5000 && rings().length > 0; waited += 100) await sleep(100);
  assert.deepEqual(rings(), [], 'no ring file is left behind');
});

test('a mount made again at the same path is not the old keeper\'s: it neither restarts a daemon for it nor removes its files', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const backing = join(base, 'again-b');
  const at = join(base, 'again-m');
  mkdirSync(backing); mkdirSync(at);
  mp = at;
  mountpoints.push(mp);
  assert.equal(await mountCommand(backing, at, { mode: 'plain' }), 0);
  const first = info();
  pids.push(first.pid);
  let oldKeeper = keeperState();
  for (let i = 0; i < 100 && !oldKeeper; i++) { await sleep(50); oldKeeper = keeperState(); }
  assert.ok(oldKeeper, 'the first mount has a keeper');
  // The first connection, held here as the keeper holds it.
  const fuseFd = readdirSync(`/proc/${first.pid}/fd`).find((f) => { try { return readlinkSync(`/proc/${first.pid}/fd/${f}`) === '/dev/fuse'; } catch { return false; } });
  assert.ok(fuseFd, 'the daemon has /dev/fuse open');
  const pidfd = libc.pidfdOpen(first.pid);
  const held = libc.pidfdGetfd(pidfd, Number(fuseFd));
  libc.close(pidfd);
  try {
    assert.equal(fuseConnectionUp(held), true);
    assert.equal(await umountCommand(at, {}), 0);
    assert.equal(await mountCommand(backing, at, { mode: 'plain' }), 0);
    assert.equal(mountAt(at)?.fstype, 'fuse.provfs', 'a provfs mount at the path again');
    assert.equal(fuseConnectionUp(held), false, 'but not the first connection: the unmount aborted it');
  } finally {
    libc.close(held);
  }
  const second = info();
  pids.push(second.pid);
  // The old keeper notices its mount went and ends, leaving the new mount alone.
  const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true; } catch { return false; } };
  for (let i = 0; i < 100 && alive(oldKeeper.pid); i++) await sleep(50);
  assert.equal(alive(oldKeeper.pid), false, 'the old keeper exits');
  let newKeeper = keeperState();
  for (let i = 0; i < 100 && (!newKeeper || newKeeper.pid === oldKeeper.pid); i++) { await sleep(50); newKeeper = keeperState(); }
  assert.ok(newKeeper && newKeeper.pid !== oldKeeper.pid, 'the new mount\'s keeper state is there, its own');
  assert.equal(info().pid, second.pid, 'the new mount is served by its own daemon, none restarted for it');
  assert.ok(existsSync(nodeLogPath(at)), 'its node log is still there');
  writeFileSync(join(at, 'still'), 'ok');
  assert.equal(readFileSync(join(backing, 'still'), 'utf8'), 'ok');
  assert.equal(await umountCommand(at, {}), 0);
});
