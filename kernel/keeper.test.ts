/**
 * @module kernel/keeper.test
 * Crash survival: `prov mount` starts an fd keeper; kill -9 of the daemon under a workload is
 * a pause for applications, not an error — the keeper restarts the daemon, which rebuilds its
 * node table from the node log and has the kernel resend what was never answered. The first
 * crash is taken over by the keeper's warm standby (no Node start-up), the second, right after,
 * by whatever the keeper has by then (a standby not yet warm: a cold start). Files kept open
 * across the crashes keep their data; the journal marks each gap with a `lost` record and
 * records again afterwards.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, readdirSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountCommand, umountCommand } from '../cli/actions/mount.js';
import { mountState, unmount } from './mount.js';
import { daemonInfoPath, type DaemonInfo } from './runtime.js';
import { journalStreamName } from './daemon.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { startWorkload } from './workload.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-keeper-'));
const pids: number[] = [];
let mp = '';
after(async () => {
  if (mp && mountState(mp) !== 'none') { try { unmount(mp, true); } catch { /* gone */ } }
  await new Promise((r) => setTimeout(r, 1500)); // the keeper notices the unmount and exits
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  rmSync(base, { recursive: true, force: true });
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const info = (): DaemonInfo => JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo;

/** Pids of `provfsd --standby` processes for the mount point `mp`. */
function standbys(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let args: string[];
    try { args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'); } catch { continue; }
    if (args.includes('--standby') && args[args.indexOf('--mountpoint') + 1] === mp) out.push(Number(d));
  }
  return out;
}

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
  mkdirSync(backing); mkdirSync(mp);
  writeFileSync(join(backing, 'ro'), 'read-only data '.repeat(1000));
  assert.equal(await mountCommand(backing, mp, { mode: 'prov', journal }), 0);
  const first = info();
  pids.push(first.pid);
  const w = startWorkload(mp, pids);
  await w.started;
  // The keeper starts a standby for the mount; wait until it runs (its readiness is the keeper's business).
  let sb: number[] = [];
  for (let i = 0; i < 100 && sb.length === 0; i++) { await sleep(50); sb = standbys(); }
  assert.equal(sb.length, 1, 'the keeper keeps one warm standby');
  pids.push(...sb);
  await sleep(1000);
  const second = await crash(first);
  assert.equal(second.pid, sb[0], 'the warm standby took over');
  // The first gap's mark reaches the disk beside serving: wait for it before the next crash.
  for (let waited = 0; waited < 5000; waited += 50) {
    const reader = openJournalReader(journal);
    const marked = reader.readBatch(1_000_000, [journalStreamName(mp)]).some((r) => r.event.op === 'lost');
    reader.close();
    if (marked) break;
    await sleep(50);
  }
  pids.push(...standbys());
  const third = await crash(second);
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
  const lostAt = recs.findIndex((r) => r.event.op === 'lost');
  assert.ok(lostAt > 0, 'the restart is marked by a lost record after earlier records');
  assert.equal(recs.filter((r) => r.event.op === 'lost').length, 2, `each restart is marked (lost at ${recs.flatMap((r, i) => (r.event.op === 'lost' ? [i] : [])).join(',')} of ${recs.length})`);
  assert.ok(third.pid !== second.pid);
  assert.match((recs[lostAt]!.event as { reason: string }).reason, /crashed/);
  assert.ok(recs.slice(lostAt + 1).some((r) => r.event.op === 'create'), 'records continue after the restart');
  const lastLost = recs.map((r) => r.event.op).lastIndexOf('lost');
  assert.ok(recs.slice(lastLost + 1).some((r) => r.event.op === 'create'), 'and after the second (the daemon after a standby knows the journal too)');
});
