/**
 * @module kernel/backing.test
 * Passthrough backing files stay registered after their last handle closes (the next open of
 * the file skips a reopen and a BACKING_OPEN), but no more than a bounded number of them: after
 * reading many more files than that, the daemon holds at most that many non-O_PATH fds on
 * backing files, every read returned the right bytes, and a file rewritten between two opens
 * reads back new contents.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync, readdirSync, readlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountProvfs, type ProvfsMount } from './daemon.js';
import { unmount } from './mount.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-backing-'));
let m: ProvfsMount | null = null;
after(async () => {
  if (m) { try { await m.stop(); } catch { try { unmount(m.mountpoint, true); } catch { /* gone */ } } }
  rmSync(base, { recursive: true, force: true });
});

/** fds of this process (the loop runs in a worker here) open on files below `dir`, not O_PATH. */
function openBackingFds(dir: string): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try { target = readlinkSync(`/proc/self/fd/${fd}`); } catch { continue; }
    if (!target.startsWith(dir + '/')) continue;
    const flags = /flags:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
    if (flags && (parseInt(flags[1]!, 8) & 0o10000000) === 0) n++;
  }
  return n;
}

test('idle backing files are reused and bounded; contents stay right', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const backing = join(base, 'b'), mnt = join(base, 'm');
  mkdirSync(backing); mkdirSync(mnt);
  m = await mountProvfs({ backing, mountpoint: mnt, mode: 'plain', timeouts: { entry: 60, attr: 60, negative: 60 } });
  assert.equal(m.passthrough, true, 'the kernel did not accept FUSE_PASSTHROUGH');
  const N = 1300;
  for (let i = 0; i < N; i++) writeFileSync(join(mnt, `f${i}`), `file ${i}\n`);
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < N; i++) assert.equal(readFileSync(join(mnt, `f${i}`), 'utf8'), `file ${i}\n`);
  }
  // The kernel sends RELEASE after close(2) has returned: the last files read may still be open
  // (not idle yet) for a moment, on top of the idle ones.
  let held = openBackingFds(backing);
  for (let i = 0; i < 100 && held > 1024; i++) {
    await new Promise((r) => setTimeout(r, 20));
    held = openBackingFds(backing);
  }
  assert.ok(held > 0, 'no backing file kept registered after its last close');
  assert.ok(held <= 1024, `${held} backing fds held for closed files (at most 1024)`);
  // Rewritten between two opens (through the mount, and behind its back in the backing directory).
  writeFileSync(join(mnt, 'f7'), 'rewritten\n');
  assert.equal(readFileSync(join(mnt, 'f7'), 'utf8'), 'rewritten\n');
  writeFileSync(join(backing, `f${N - 1}`), 'behind\n');
  assert.equal(readFileSync(join(mnt, `f${N - 1}`), 'utf8'), 'behind\n');
  const info = await m.stop();
  m = null;
  assert.equal(info.counts['15'] ?? 0, 0, 'READ reached the daemon');
  assert.equal(openBackingFds(backing), 0, 'backing fds left open after unmount');
});
