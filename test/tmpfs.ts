/**
 * @module test/tmpfs
 * A scratch directory with a small tmpfs in it, for tests of what happens when a file system
 * fills up (a runtime directory, a journal). After the test file's tests it stops the provfs
 * daemon the tests left in `daemon` (unmounting it at least), unmounts the tmpfs and removes
 * the scratch directory, also when a test failed.
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { unmount } from '../kernel/mount.js';
import type { ProvfsMount } from '../kernel/daemon.js';

export interface TmpfsScratch {
  /** The scratch directory (on the ordinary temp file system). */
  readonly base: string;
  /** Where the tmpfs goes (`base/small`), once {@link mount} has run. */
  readonly small: string;
  /** Mount the tmpfs of `size` (mount(8)'s `size=`, e.g. `1m`) at {@link small}; later calls do nothing. Fails without root. */
  mount(size: string): void;
  /** A daemon a test started: stopped after the tests if still set. */
  daemon: ProvfsMount | null;
}

/** A scratch directory named `<prefix>XXXXXX` in the temp directory, cleaned up after this file's tests. */
export function tmpfsScratch(prefix: string): TmpfsScratch {
  const base = mkdtempSync(join(tmpdir(), prefix));
  const small = join(base, 'small');
  let mounted = false;
  const s: TmpfsScratch = {
    base, small, daemon: null,
    mount(size: string): void {
      if (mounted) return;
      if (process.getuid?.() !== 0) assert.fail(`needs root (mounts a ${size} tmpfs)`);
      mkdirSync(small, { recursive: true });
      const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, `${prefix}test`, small], { encoding: 'utf8' });
      assert.equal(r.status, 0, `mount -t tmpfs failed: ${r.stderr}`);
      mounted = true;
    },
  };
  after(async () => {
    const d = s.daemon;
    if (d) { try { await d.stop(); } catch { try { unmount(d.mountpoint, true); } catch { /* gone */ } } }
    if (mounted) spawnSync('umount', ['-l', small]);
    rmSync(base, { recursive: true, force: true });
  });
  return s;
}
