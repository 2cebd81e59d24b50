/**
 * @module test/posix/posix.test
 * POSIX semantics of provfs on a real mount, compared operation by operation with the same
 * scenario on a plain ext4 directory: once as root and once as the unprivileged user nobody,
 * in plain mode with kernel passthrough, in prov mode, and with passthrough off (the daemon
 * serves READ/WRITE itself).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, chownSync, chmodSync, rmSync, existsSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { mountProvfs, type ProvfsMount } from '../../kernel/daemon.js';
import { unmount } from '../../kernel/mount.js';

const SCENARIO = fileURLToPath(new URL('./scenario.js', import.meta.url));
const NOBODY = 65534;
/** Writes the scenario makes through set-id files as a user (steps setid.write*): served by the daemon. */
const SETID_WRITES = 2;

function requireFuse(): void {
  if (process.getuid?.() !== 0) assert.fail('the POSIX suite mounts FUSE file systems and must run as root');
  if (!existsSync('/dev/fuse')) assert.fail('/dev/fuse is missing: load the fuse module or run where FUSE exists');
}

/**
 * Run the scenario in `dir` as `uid` and parse its report. Asynchronously: the daemon under test
 * runs in this process, and its main thread drains the record ring. Blocked in spawnSync, it left
 * the ring full and each prov-mode record waited its 200 ms for room (60 s for the scenario).
 */
const SCENARIO_TIMEOUT_MS = 300_000;

function scenario(dir: string, uid: number): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [SCENARIO, dir, '--as', String(uid)], {
      // Minutes on a machine running something else beside it (files over 4 GiB, 10,000 entries).
      encoding: 'utf8', timeout: SCENARIO_TIMEOUT_MS, cwd: '/', env: { ...process.env, HOME: '/' }, maxBuffer: 64 << 20,
    }, (err, stdout, stderr) => {
      if (err?.killed) return reject(new Error(`scenario in ${dir} as uid ${uid} did not finish within ${SCENARIO_TIMEOUT_MS / 1000} s: ${stderr}`));
      if (err) return reject(new Error(`scenario in ${dir} as uid ${uid} failed (${err.message}): ${stderr}`));
      try { resolve(JSON.parse(stdout) as Record<string, unknown>); } catch (e) { reject(e as Error); }
    });
  });
}

/** Compare step by step so a failure names the operation. */
function assertSame(got: Record<string, unknown>, want: Record<string, unknown>, label: string): void {
  for (const k of Object.keys(want)) assert.deepEqual(got[k], want[k], `${label}: step ${k} differs from ext4`);
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `${label}: steps differ`);
}

const base = mkdtempSync(join(tmpdir(), 'provfs-posix-'));
chmodSync(base, 0o755);
const mounts: ProvfsMount[] = [];
after(async () => {
  for (const m of mounts) {
    try { await m.stop(); } catch { try { unmount(m.mountpoint, true); } catch { /* gone */ } }
  }
  rmSync(base, { recursive: true, force: true });
});

/** A fresh ext4 directory and a fresh provfs mount, both writable by `uid`. */
async function pair(name: string, uid: number, opts: { mode: 'plain' | 'prov'; passthrough?: boolean }): Promise<{ ext4: string; mnt: string; m: ProvfsMount }> {
  const ext4 = join(base, `${name}-ext4`), backing = join(base, `${name}-backing`), mnt = join(base, `${name}-mnt`);
  for (const d of [ext4, backing, mnt]) { mkdirSync(d); chownSync(d, uid, uid); }
  const m = await mountProvfs({ backing, mountpoint: mnt, mode: opts.mode, passthrough: opts.passthrough, onEvent: () => {} });
  mounts.push(m);
  return { ext4, mnt, m };
}

async function compare(name: string, uid: number, opts: { mode: 'plain' | 'prov'; passthrough?: boolean; upgradeTo?: 'plain' | 'prov' }): Promise<void> {
  requireFuse();
  const { ext4, mnt, m } = await pair(name, uid, opts);
  if (opts.passthrough !== false) assert.equal(m.passthrough, true, 'the kernel did not accept FUSE_PASSTHROUGH');
  let successor = 0;
  if (opts.upgradeTo) {
    const r = await m.upgrade({ mode: opts.upgradeTo, journalDir: join(base, `${name}-journal`) });
    assert.equal(r.ok, true, `upgrade failed: ${r.reason}`);
    successor = r.pid!;
  }
  const want = await scenario(ext4, uid);
  const got = await scenario(mnt, uid);
  assertSame(got, want, `${name} (uid ${uid})`);
  if (successor) {
    unmount(mnt);
    mounts.splice(mounts.indexOf(m), 1);
    for (let i = 0; i < 250; i++) { try { process.kill(successor, 0); await new Promise((r) => setTimeout(r, 20)); } catch { return; } }
    process.kill(successor, 'SIGKILL');
    assert.fail(`successor ${successor} did not exit after unmount`);
  }
  const info = await m.stop();
  mounts.splice(mounts.indexOf(m), 1);
  if (opts.passthrough !== false) {
    assert.equal(info.counts['15'] ?? 0, 0, 'READ requests reached the daemon despite passthrough');
    // Only writes through a set-id file reach the daemon (it clears the bits for writers
    // without CAP_FSETID; a descriptor root opened may be handed to one).
    assert.ok((info.counts['16'] ?? 0) <= SETID_WRITES, `${info.counts['16']} WRITE requests reached the daemon despite passthrough (at most ${SETID_WRITES}: the scenario's writes to set-id files)`);
  } else {
    assert.ok((info.counts['16'] ?? 0) > 0, 'without passthrough the daemon must serve WRITE');
  }
}

test('POSIX semantics as root match ext4 (plain mode, passthrough)', async () => {
  await compare('root-plain', 0, { mode: 'plain' });
});

test('POSIX semantics as nobody match ext4 (plain mode, passthrough)', async () => {
  await compare('nobody-plain', NOBODY, { mode: 'plain' });
});

test('POSIX semantics as nobody match ext4 (prov mode)', async () => {
  await compare('nobody-prov', NOBODY, { mode: 'prov' });
});

test('POSIX semantics as nobody match ext4 after a live upgrade plain → prov (served by the successor)', async () => {
  await compare('nobody-upgraded', NOBODY, { mode: 'plain', upgradeTo: 'prov' });
});

test('POSIX semantics as root match ext4 without passthrough (daemon serves READ/WRITE)', async () => {
  await compare('root-nopt', 0, { mode: 'plain', passthrough: false });
});
