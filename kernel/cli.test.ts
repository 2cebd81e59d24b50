/**
 * @module kernel/cli.test
 * `prov mount` / `prov umount` as a user runs them: the daemon is a separate detached process;
 * SIGTERM unmounts cleanly; a daemon killed with SIGKILL leaves a stale mount that both
 * commands recognise and explain, and `prov umount` clears. Also mounting over the backing
 * directory itself.
 *
 * The daemons list themselves in a private runtime directory (PROV_RUNTIME_DIR, set before the
 * modules that read it load): "upgrade every provfs mount" must not reach mounts of anything
 * else running on this host (it did: another process's benchmark mounts were upgraded).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, readFileSync, readdirSync, writeFileSync, existsSync, statfsSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountState, unmount } from './mount.js';
import type { DaemonInfo } from './runtime.js';
import { openJournalReader } from '../collector/journal/reader.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-cli-'));
process.env.PROV_RUNTIME_DIR = join(base, 'run');
const { mountCommand, umountCommand, upgradeAllCommand } = await import('../cli/actions/mount.js');
const { daemonInfoPath } = await import('./runtime.js');
const started: number[] = [];
const mountpoints: string[] = [];
after(async () => {
  for (const mp of mountpoints) {
    if (mountState(mp) !== 'none') { try { unmount(mp, true); } catch { /* gone */ } }
  }
  for (const pid of started) { try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ } }
  for (const mp of mountpoints) for (const ext of ['.json', '.log', '.sock', '.nodes']) rmSync(daemonInfoPath(mp).replace(/\.json$/, ext), { force: true });
  rmSync(base, { recursive: true, force: true });
});

function daemonOf(mp: string): DaemonInfo {
  const info = JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo;
  started.push(info.pid);
  return info;
}

async function gone(pid: number, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try { process.kill(pid, 0); } catch { return true; }
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

/** Capture what a command writes to stderr (the logger) while it runs. */
async function withStderr(fn: () => Promise<number>): Promise<{ code: number; err: string }> {
  const orig = process.stderr.write.bind(process.stderr);
  let err = '';
  process.stderr.write = ((chunk: string | Uint8Array) => { err += chunk.toString(); return true; }) as typeof process.stderr.write;
  try {
    return { code: await fn(), err };
  } finally {
    process.stderr.write = orig;
  }
}

test('prov mount starts a daemon; SIGTERM unmounts cleanly', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const backing = join(base, 'b1'), mp = join(base, 'm1');
  mkdirSync(backing); mkdirSync(mp); mountpoints.push(mp);
  assert.equal(await mountCommand(backing, mp, { mode: 'prov', journal: join(base, 'journal') }), 0);
  const info = daemonOf(mp);
  assert.equal(info.mode, 'prov');
  assert.equal(mountState(mp), 'live');
  writeFileSync(join(mp, 'f'), 'through the daemon');
  assert.equal(readFileSync(join(backing, 'f'), 'utf8'), 'through the daemon');
  assert.equal((await withStderr(() => mountCommand(backing, mp, {}))).code, 2, 'mounting twice is refused');
  process.kill(info.pid, 'SIGTERM');
  assert.ok(await gone(info.pid), 'daemon exits after SIGTERM');
  assert.equal(mountState(mp), 'none', 'SIGTERM unmounted');
  assert.equal(existsSync(daemonInfoPath(mp)), false, 'state file removed');
  // The daemon handed its JSON records to the journal as bytes: they read back as valid events.
  const reader = openJournalReader(join(base, 'journal'));
  const recs = reader.readBatch(1000, [info.stream!]);
  assert.equal(reader.stats.rejected, 0);
  reader.close();
  const create = recs.find((r) => r.event.op === 'create');
  assert.ok(create, `no create record in ${info.stream}`);
  assert.equal((create.event as { file: { name: string } }).file.name, 'f');
  assert.deepEqual(recs.map((r) => r.event.seq), recs.map((_, i) => i + 1));
});

test('a killed daemon leaves a stale mount that prov mount explains and prov umount clears', async () => {
  const backing = join(base, 'b2'), mp = join(base, 'm2');
  mkdirSync(backing); mkdirSync(mp); mountpoints.push(mp);
  assert.equal(await mountCommand(backing, mp, { mode: 'plain', keeper: false }), 0);
  const info = daemonOf(mp);
  process.kill(info.pid, 'SIGKILL');
  assert.ok(await gone(info.pid));
  assert.throws(() => statfsSync(mp), /ENOTCONN/);
  assert.equal(mountState(mp), 'stale');
  const again = await withStderr(() => mountCommand(backing, mp, {}));
  assert.equal(again.code, 2);
  assert.match(again.err, /daemon is gone.*ENOTCONN.*prov umount/s);
  const um = await withStderr(() => umountCommand(mp, {}));
  assert.equal(um.code, 0, um.err);
  assert.equal(mountState(mp), 'none');
  assert.equal((await withStderr(() => umountCommand(mp, {}))).code, 3, 'umount of nothing: not found');
  assert.deepEqual(runtimeFilesOf(mp), ['.log'], 'only the dead daemon\'s log stays');
});

/** The runtime files of `mp`'s daemons still there, by what follows the stream name (`.json`, `.<pid>.ring`, …). */
function runtimeFilesOf(mp: string): string[] {
  const stem = daemonInfoPath(mp).replace(/\.json$/, ''), dir = join(stem, '..'), name = stem.slice(dir.length + 1);
  return readdirSync(dir).filter((f) => f.startsWith(`${name}.`)).map((f) => f.slice(name.length)).sort();
}

test('prov umount of a killed prov daemon\'s stale mount journals what its ring still held: every record once, nothing left behind but its log', async () => {
  const backing = join(base, 'b-killed-prov'), mp = join(base, 'm-killed-prov'), journal = join(base, 'j-killed-prov');
  mkdirSync(backing); mkdirSync(mp); mountpoints.push(mp);
  assert.equal(await mountCommand(backing, mp, { mode: 'prov', journal, keeper: false }), 0);
  const info = daemonOf(mp);
  const names = Array.from({ length: 300 }, (_, i) => `f${i}`);
  for (const n of names) writeFileSync(join(mp, n), n);
  process.kill(info.pid, 'SIGKILL'); // within the journal's fsync interval of the last records
  assert.ok(await gone(info.pid));
  assert.ok(runtimeFilesOf(mp).includes(`.nodes.${info.pid}.ring`), `the dead daemon's ring file is there: ${runtimeFilesOf(mp).join(' ')}`);
  const um = await withStderr(() => umountCommand(mp, {}));
  assert.equal(um.code, 0, um.err);
  assert.deepEqual(runtimeFilesOf(mp), ['.log'], `only the dead daemon's log stays (${um.err})`);
  const reader = openJournalReader(journal);
  const recs = reader.readBatch(100_000, [info.stream!]);
  assert.equal(reader.stats.rejected, 0);
  reader.close();
  const created = recs.filter((r) => r.event.op === 'create').map((r) => (r.event as { file: { name: string } }).file.name);
  assert.deepEqual(created.sort(), [...names].sort(), 'one create record per file');
  assert.deepEqual(recs.map((r) => r.event.seq), recs.map((_, i) => i + 1), 'seqs without a gap or a double');
  assert.deepEqual(recs.filter((r) => r.event.op === 'lost').map((r) => r.event), [], 'the ring held everything: no gap to mark');
});

test('prov mount over the backing directory itself', async () => {
  const dir = join(base, 'self');
  mkdirSync(dir); mountpoints.push(dir);
  writeFileSync(join(dir, 'before'), 'old');
  assert.equal(await mountCommand(dir, dir, { mode: 'plain' }), 0);
  const info = daemonOf(dir);
  assert.equal(readFileSync(join(dir, 'before'), 'utf8'), 'old', 'existing files visible through the mount');
  writeFileSync(join(dir, 'after'), 'new');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'x'), 'x');
  assert.equal(await umountCommand(dir, {}), 0);
  assert.ok(await gone(info.pid));
  assert.equal(readFileSync(join(dir, 'after'), 'utf8'), 'new', 'written through to the directory underneath');
  assert.equal(readFileSync(join(dir, 'sub', 'x'), 'utf8'), 'x');
});

test('upgrade of every provfs mount to prov mode and back (the provfs half of prov up / prov down)', async () => {
  const mps: string[] = [];
  for (const n of ['u1', 'u2']) {
    const backing = join(base, `${n}-b`), mp = join(base, `${n}-m`);
    mkdirSync(backing); mkdirSync(mp); mountpoints.push(mp); mps.push(mp);
    assert.equal(await mountCommand(backing, mp, { mode: 'plain', keeper: false }), 0);
    daemonOf(mp);
  }
  const fd = openSync(join(mps[0]!, 'open-across'), 'w+');
  writeSync(fd, 'before ');
  assert.equal(await upgradeAllCommand('prov', { journal: join(base, 'journal-all'), json: true }), 0);
  for (const mp of mps) {
    const info = daemonOf(mp);
    assert.equal(info.mode, 'prov', `${mp} is in prov mode`);
  }
  writeSync(fd, 'after');
  closeSync(fd);
  assert.equal(readFileSync(join(mps[0]!, 'open-across'), 'utf8'), 'before after');
  assert.equal(await upgradeAllCommand('plain', { json: true }), 0);
  for (const mp of mps) assert.equal(daemonOf(mp).mode, 'plain');
  for (const mp of mps) {
    const pid = daemonOf(mp).pid;
    assert.equal(await umountCommand(mp, {}), 0);
    assert.ok(await gone(pid));
  }
});
