/**
 * @module kernel/upgrade.test
 * Live upgrade on a real mount. This test process is the first daemon; successors are separate
 * provfsd processes (stopped by unmounting, then by pid). A concurrent workload keeps files open
 * (passthrough) and keeps creating, writing, reading and deleting through plain → prov and
 * prov → prov upgrades: no errors, content verified by hash, and the journal holds each
 * operation done in prov mode exactly once. Successors that cannot start, speak another state
 * version or reject the state leave the old daemon serving.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountProvfs, journalStreamName, type ProvfsMount } from './daemon.js';
import { mountState, unmount } from './mount.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { startWorkload } from './workload.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-upgrade-'));
const pids: number[] = [];
const mountpoints: string[] = [];
after(async () => {
  for (const mp of mountpoints) if (mountState(mp) !== 'none') { try { unmount(mp, true); } catch { /* gone */ } }
  await new Promise((r) => setTimeout(r, 200));
  for (const pid of pids) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
  rmSync(base, { recursive: true, force: true });
});

function requireFuse(): void {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('live upgrade tests need root and /dev/fuse');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('upgrade plain → prov → prov under a workload: no errors, data intact, every prov record once', async () => {
  requireFuse();
  const backing = join(base, 'b1'), mnt = join(base, 'm1'), journalDir = join(base, 'journal');
  mkdirSync(backing); mkdirSync(mnt); mountpoints.push(mnt);
  writeFileSync(join(backing, 'ro'), createHash('sha256').update('ro').digest('hex').repeat(100));
  const m: ProvfsMount = await mountProvfs({ backing, mountpoint: mnt, mode: 'plain', journalDir });
  const w = startWorkload(mnt, pids);
  await w.started;
  await sleep(300);
  // State version 2 here (a successor of the previous build reads no 3); the next handover uses 3.
  const r1 = await m.upgrade({ mode: 'prov', journalDir, stateVersion: 2 });
  assert.equal(r1.ok, true, `plain → prov failed: ${r1.reason}`);
  assert.equal(r1.stateVersion, 2);
  pids.push(r1.pid!);
  const end1 = await m.done;
  assert.equal(end1.reason, 'upgraded', 'the old daemon ends once the successor serves');
  await sleep(300);

  // prov → prov: ask the successor (now a separate process) through its control socket.
  const { upgradeCommand } = await import('../cli/actions/mount.js');
  const code = await upgradeCommand(mnt, { mode: 'prov', journal: journalDir, json: true });
  assert.equal(code, 0, 'prov → prov through prov upgrade');
  await sleep(300);
  writeFileSync(join(mnt, 'STOP'), '');
  const res = await w.result;
  assert.equal(res.nerrors, 0, `workload saw errors: ${JSON.stringify(res.errors)}`);
  assert.ok((res.ops as number) > 20, `workload made progress (${String(res.ops)} rounds)`);
  const kept = readFileSync(join(backing, 'keep'));
  assert.equal(createHash('sha256').update(kept).digest('hex'), res.hash, 'the file kept open across both upgrades has every block');

  // Every file the workload created after the switch to prov appears exactly once, in order.
  const stream = journalStreamName(mnt);
  // The daemon still serves: its last records reach the journal within one ring drain plus one
  // group commit (readers see only committed records), so read until the workload's last create
  // and its unlink (the workload's last operation) are there or a generous bound passes.
  const lastName = (res.created as string[]).at(-1);
  let recs: Awaited<ReturnType<ReturnType<typeof openJournalReader>['readBatch']>> = [];
  for (let waited = 0; ; waited += 50) {
    const reader = openJournalReader(journalDir);
    recs = reader.readBatch(1_000_000, [stream]);
    assert.equal(reader.stats.rejected, 0);
    reader.close();
    const named = (op: string): boolean => recs.some((r) => r.event.op === op && (r.event as { file: { name?: string } }).file.name === lastName);
    const seen = named('create') && named('unlink');
    if (seen || waited >= 5000) break;
    await sleep(50);
  }
  assert.deepEqual(recs.map((r) => r.seq), recs.map((_, i) => i + 1), 'journal seq has no gap across the prov → prov handover');
  const createdNames = recs.filter((r) => r.event.op === 'create').map((r) => (r.event as { file: { name: string } }).file.name).filter((n) => n.startsWith('w-'));
  const workloadNames = res.created as string[];
  assert.ok(createdNames.length > 0, 'prov mode recorded creates');
  assert.equal(new Set(createdNames).size, createdNames.length, 'no create recorded twice');
  const first = workloadNames.indexOf(createdNames[0]!);
  assert.ok(first > 0, 'creates from the plain period are not recorded');
  assert.deepEqual(createdNames, workloadNames.slice(first), 'from the switch on, every create is recorded, none lost');
  const unlinked = recs.filter((r) => r.event.op === 'unlink').map((r) => (r.event as { file: { name: string } }).file.name).filter((n) => n.startsWith('w-'));
  // The file created just before the switch may be unlinked just after it: then its unlink is recorded too.
  const uFirst = workloadNames.indexOf(unlinked[0]!);
  assert.ok(uFirst === first || uFirst === first - 1, `unlinks start at the switch (${unlinked[0]} vs ${createdNames[0]})`);
  assert.deepEqual(unlinked, workloadNames.slice(uFirst), 'and every unlink, once');

  // The last successor still serves; unmount ends it.
  unmount(mnt);
  assert.equal(mountState(mnt), 'none');
});

test('a successor that cannot start, speaks another state version or rejects the state leaves the old daemon serving', async () => {
  requireFuse();
  const backing = join(base, 'b2'), mnt = join(base, 'm2');
  mkdirSync(backing); mkdirSync(mnt); mountpoints.push(mnt);
  const m = await mountProvfs({ backing, mountpoint: mnt, mode: 'plain' });
  writeFileSync(join(mnt, 'f'), 'one');
  const { openSync, writeSync, readSync, closeSync } = await import('node:fs');
  const fd = openSync(join(mnt, 'f'), 'r+');

  const missing = await m.upgrade({ mode: 'prov', daemon: join(base, 'nope.js'), journalDir: join(base, 'j2') });
  assert.equal(missing.ok, false);
  assert.match(missing.reason!, /did not start/);

  const future = join(base, 'future.js');
  writeFileSync(future, `process.send({ type: 'warm', pid: process.pid, stateVersions: [99] }); setTimeout(() => {}, 60000);`);
  const v = await m.upgrade({ mode: 'prov', daemon: future, journalDir: join(base, 'j2') });
  assert.equal(v.ok, false);
  assert.match(v.reason!, /state versions 99/);

  const picky = join(base, 'picky.js');
  writeFileSync(picky, `process.send({ type: 'warm', pid: process.pid, stateVersions: [1] });
process.on('message', (m) => { if (m.type === 'transfer') process.send({ type: 'rejected', reason: 'node table too large for this build' }); });`);
  const rj = await m.upgrade({ mode: 'prov', daemon: picky, journalDir: join(base, 'j2') });
  assert.equal(rj.ok, false);
  assert.match(rj.reason!, /rejected the state: node table too large/);

  // State version 2: a successor that rejects the snapshot, and one that says it copied the
  // snapshot but never reads the changes (gone before the handover): the old loop serves on.
  const snapReject = join(base, 'snap-reject.js');
  writeFileSync(snapReject, `process.send({ type: 'warm', pid: process.pid, stateVersions: [2] });
process.on('message', (m) => { if (m.type === 'precopy') process.send({ type: 'rejected', reason: 'snapshot unreadable here' }); });`);
  const sr = await m.upgrade({ mode: 'prov', daemon: snapReject, journalDir: join(base, 'j2') });
  assert.equal(sr.ok, false);
  assert.match(sr.reason!, /rejected the state: snapshot unreadable here/);
  writeFileSync(join(mnt, 'after-snap-reject'), 'x');
  const deaf = join(base, 'deaf.js');
  writeFileSync(deaf, `process.send({ type: 'warm', pid: process.pid, stateVersions: [2] });
process.on('message', (m) => { if (m.type === 'precopy') process.send({ type: 'prepared' }); });`);
  const df = await m.upgrade({ mode: 'prov', daemon: deaf, journalDir: join(base, 'j2') });
  assert.equal(df.ok, false);
  assert.match(df.reason!, /rejected the state/);
  assert.equal(readFileSync(join(mnt, 'after-snap-reject'), 'utf8'), 'x');

  // Still served by the same daemon: the open file and new files work.
  writeSync(fd, 'ONE+', 0);
  const b = Buffer.alloc(8);
  const n = readSync(fd, b, 0, 8, 0);
  assert.equal(b.subarray(0, n).toString(), 'ONE+');
  closeSync(fd);
  writeFileSync(join(mnt, 'g'), 'two');
  assert.equal(readFileSync(join(backing, 'g'), 'utf8'), 'two');
  // And then a real upgrade on this idle mount (state version 3: the snapshot slices and the
  // catch-up must not wait for a request that never comes).
  const idle = await m.upgrade({ mode: 'plain' });
  assert.equal(idle.ok, true, `idle upgrade failed: ${idle.reason}`);
  assert.equal(idle.stateVersion, 3);
  pids.push(idle.pid!);
  assert.equal((await m.done).reason, 'upgraded');
  assert.equal(readFileSync(join(mnt, 'g'), 'utf8'), 'two');
  unmount(mnt);
  assert.equal(mountState(mnt), 'none');
});

/**
 * Churn beside the workload, while the table is copied ahead and handed over: lists a directory
 * of `n` files slowly (a directory handle open across the handover), reads a sample back
 * (content by hash), and renames a few files back and forth (nodes that change under the
 * snapshot). Stops when STOP appears; prints rounds and errors.
 */
const CHURN = String.raw`
import os, sys, json, hashlib, random, time
d = sys.argv[1]; n = int(sys.argv[2])
P = lambda *x: os.path.join(d, *x)
want = set('f-%d' % i for i in range(n))
content = lambda i: hashlib.sha256(b'%d' % i).hexdigest().encode() * 4
errors = []; rounds = 0
print('started', flush=True)
while not os.path.exists(P('STOP')):
    try:
        seen = set()
        with os.scandir(P('tree')) as it:
            for k, e in enumerate(it):
                seen.add(e.name)
                if k % 500 == 0: time.sleep(0.001)
        if seen != want: errors.append('listing differs: %d missing, %d extra' % (len(want - seen), len(seen - want)))
        for i in random.sample(range(n), 100):
            with open(P('tree', 'f-%d' % i), 'rb') as f:
                if f.read() != content(i): errors.append('content of f-%d' % i)
        for j in range(20):
            a, b = P('mv', 'm-%d' % j), P('mv', 'm-%d.b' % j)
            os.rename(a, b)
            with open(b, 'rb') as f:
                if f.read() != b'm%d' % j: errors.append('content of m-%d' % j)
            os.rename(b, a)
    except OSError as e:
        errors.append(str(e))
    rounds += 1
print(json.dumps({'rounds': rounds, 'nerrors': len(errors), 'errors': errors[:10]}), flush=True)
`;

test('upgrade with thousands of nodes under a workload and table churn: data by hash, no errors, every prov record once', async () => {
  requireFuse();
  const N = 5000;
  const backing = join(base, 'b3'), mnt = join(base, 'm3'), journalDir = join(base, 'journal3');
  mkdirSync(backing); mkdirSync(mnt); mountpoints.push(mnt);
  mkdirSync(join(backing, 'tree')); mkdirSync(join(backing, 'mv'));
  const content = (i: number): string => createHash('sha256').update(String(i)).digest('hex').repeat(4);
  for (let i = 0; i < N; i++) writeFileSync(join(backing, 'tree', `f-${i}`), content(i));
  for (let j = 0; j < 20; j++) writeFileSync(join(backing, 'mv', `m-${j}`), `m${j}`);
  writeFileSync(join(backing, 'ro'), createHash('sha256').update('ro').digest('hex').repeat(100));
  // Long cache timeouts: the kernel keeps every node id, so reads after the upgrades go through
  // the nodes (and fds) the successors were handed, not through fresh lookups.
  const m = await mountProvfs({ backing, mountpoint: mnt, mode: 'plain', journalDir, timeouts: { entry: 3600, attr: 3600, negative: 0 } });
  const { statSync } = await import('node:fs');
  for (let i = 0; i < N; i++) statSync(join(mnt, 'tree', `f-${i}`));
  const w = startWorkload(mnt, pids);
  const { spawn } = await import('node:child_process');
  const churn = spawn('python3', ['-c', CHURN, mnt, String(N)], { stdio: ['ignore', 'pipe', 'inherit'] });
  pids.push(churn.pid!);
  let churnOut = '';
  churn.stdout.setEncoding('utf8');
  const churnStarted = new Promise<void>((r) => churn.stdout.on('data', (c: string) => { churnOut += c; if (churnOut.includes('started')) r(); }));
  const churnDone = new Promise<void>((r) => churn.once('exit', () => r()));
  await Promise.all([w.started, churnStarted]);
  await sleep(300);
  const r1 = await m.upgrade({ mode: 'prov', journalDir });
  assert.equal(r1.ok, true, `plain → prov failed: ${r1.reason}`);
  assert.equal(r1.stateVersion, 3, 'the table was written in slices and copied ahead (state version 3)');
  const ph = r1.phases!;
  assert.ok(ph.catchUps.length >= 1, 'at least one catch-up delta went ahead of the stall');
  // Causal order only (each step needs the one before); `written` is stamped after the write returns, maybe after the successor read it.
  const order = [ph.seen, ph.built, ph.deltaIn, ph.applied, ph.serving];
  assert.ok(order.every((x) => typeof x === 'number'), `every phase inside the stall is timed: ${JSON.stringify(ph)}`);
  for (let i = 1; i < order.length; i++) assert.ok(order[i]! >= order[i - 1]!, `phases in order: ${JSON.stringify(ph)}`);
  pids.push(r1.pid!);
  assert.equal((await m.done).reason, 'upgraded');
  await sleep(300);
  const { upgradeCommand } = await import('../cli/actions/mount.js');
  assert.equal(await upgradeCommand(mnt, { mode: 'prov', journal: journalDir, json: true }), 0, 'prov → prov through prov upgrade');
  await sleep(300);
  writeFileSync(join(mnt, 'STOP'), '');
  const res = await w.result;
  await churnDone;
  const ch = JSON.parse(churnOut.slice(churnOut.indexOf('{'))) as { rounds: number; nerrors: number; errors: string[] };
  assert.equal(res.nerrors, 0, `workload saw errors: ${JSON.stringify(res.errors)}`);
  assert.equal(ch.nerrors, 0, `churn saw errors: ${JSON.stringify(ch.errors)}`);
  assert.ok(ch.rounds >= 1, 'the churn made progress');
  const kept = readFileSync(join(backing, 'keep'));
  assert.equal(createHash('sha256').update(kept).digest('hex'), res.hash, 'the file kept open across both upgrades has every block');
  // Every file through the last successor's table: content by hash.
  let bad = 0;
  for (let i = 0; i < N; i++) if (readFileSync(join(mnt, 'tree', `f-${i}`), 'utf8') !== content(i)) bad++;
  assert.equal(bad, 0, `${bad} of ${N} files read back wrong after the upgrades`);
  // Every create from the switch to prov on is journaled exactly once, in order, across the prov → prov handover.
  const reader = openJournalReader(journalDir);
  const recs = reader.readBatch(10_000_000, [journalStreamName(mnt)]);
  assert.equal(reader.stats.rejected, 0);
  reader.close();
  assert.deepEqual(recs.map((r) => r.seq), recs.map((_, i) => i + 1), 'journal seq has no gap');
  const createdNames = recs.filter((r) => r.event.op === 'create').map((r) => (r.event as { file: { name: string } }).file.name).filter((nm) => nm.startsWith('w-'));
  const workloadNames = res.created as string[];
  assert.ok(createdNames.length > 0, 'prov mode recorded creates');
  const first = workloadNames.indexOf(createdNames[0]!);
  assert.ok(first > 0, 'creates from the plain period are not recorded');
  assert.deepEqual(createdNames, workloadNames.slice(first), 'from the switch on, every create is recorded once, none lost');
  const renames = recs.filter((r) => r.event.op === 'rename').length;
  assert.ok(renames > 0, 'the churn\'s renames in prov mode are recorded');
  unmount(mnt);
  assert.equal(mountState(mnt), 'none');
});
