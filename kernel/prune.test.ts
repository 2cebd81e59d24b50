/**
 * @module kernel/prune.test
 * Every node holds an fd, so a tree larger than the fd limit must make the kernel forget nodes:
 * with RLIMIT_NOFILE lowered to 1500 in this process (which serves the mount), `ls -l` over
 * 4000 files (READDIRPLUS looks every one up) and a stat of each still succeed, because the loop
 * sends FUSE_NOTIFY_PRUNE for idle nodes and closes their fds when the FORGETs come.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, statSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';
import { mountProvfs, type ProvfsMount } from './daemon.js';
import { unmount } from './mount.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-prune-'));
let m: ProvfsMount | null = null;
after(async () => {
  if (m) { try { await m.stop(); } catch { try { unmount(m.mountpoint, true); } catch { /* gone */ } } }
  rmSync(base, { recursive: true, force: true });
});

test('a tree larger than the fd limit: idle nodes are pruned, nothing fails with EMFILE', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const backing = join(base, 'b'), mnt = join(base, 'm');
  mkdirSync(join(backing, 'many'), { recursive: true }); mkdirSync(mnt);
  for (let i = 0; i < 4000; i++) writeFileSync(join(backing, 'many', `f${i}`), String(i));
  libc.setNofileLimit(1500, 1500);
  m = await mountProvfs({ backing, mountpoint: mnt, mode: 'plain', timeouts: { entry: 60, attr: 60, negative: 60 } });
  const ls = spawnSync('ls', ['-l', join(mnt, 'many')], { encoding: 'utf8', maxBuffer: 1 << 24 });
  assert.equal(ls.status, 0, `ls -l failed: ${ls.stderr.slice(0, 300)}`);
  assert.equal(ls.stdout.trim().split('\n').length, 4001);
  for (let i = 0; i < 4000; i += 7) assert.equal(statSync(join(mnt, 'many', `f${i}`)).size, String(i).length);
  const info = await m.stop();
  m = null;
  assert.ok((info.counts['2'] ?? 0) + (info.counts['42'] ?? 0) > 0, 'the kernel sent FORGETs after the prunes');
});
