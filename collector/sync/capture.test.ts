/**
 * `prov sync` on REAL capture: the events come from the eBPF programs (any file system) or from
 * provfs (a FUSE mount logging its own operations), started here and cleaned up after. The
 * workload runs as a child process (the process that attaches capture is excluded from it).
 * Needs root, bpffs, /dev/fuse: without them the test fails and says what is missing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { ebpfDecoders } from '../../ebpf/capture.js';
import { mountProvfs, type ProvfsMount } from '../../kernel/daemon.js';
import { JournalFeed } from './journalfeed.js';
import { syncOnce, type SyncOptions, type SyncResult } from './engine.js';
import { treeDiff, treeHash } from './treehash.js';
import { startCaptureChild, stopCaptureChild } from './capture-child.js';

process.env.PROV_LOG ??= 'warn';
const run = promisify(execFile);
const RUNNER = fileURLToPath(new URL('./workload-run.js', import.meta.url));

const HASH = { mtimes: true, dirMtimes: true };
/**
 * Attribute changes alone: directory renames in the full mix make sync compare whole subtrees,
 * which would hide a chmod or utimens the record missed; here only the setattr events say what
 * changed. Truncate is left out here: Node's truncate opens the file for writing, which sync sees
 * anyway; chmod and utimes open nothing.
 */
const ATTRS_ONLY = ['--without', 'truncate,create,append,renameFile,renameOver,renameDir,deleteFile,deleteDir,mkdir,symlink,tempSave,tempDiscard'];

/** Run the workload in a child, without blocking this thread (an in-process drainer appends here). */
async function workload(root: string, seed: number, steps: number, extra: string[] = []): Promise<void> {
  try {
    await run(process.execPath, [RUNNER, root, String(seed), String(steps), ...extra]);
  } catch (e) {
    assert.fail(`workload failed: ${(e as { stderr?: string }).stderr ?? (e as Error).message}`);
  }
}

function assertSame(src: string, dst: string, what: string): void {
  assert.equal(treeHash(dst, HASH), treeHash(src, HASH), `${what}: DST differs from SRC:\n${treeDiff(src, dst, HASH).join('\n')}`);
}

function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) assert.fail(`${what} needs root (CAP_BPF / CAP_SYS_ADMIN); run the tests as root`);
}

function expectMode(r: SyncResult, mode: 'incremental' | 'full', what: string, reason?: RegExp): void {
  assert.equal(r.mode, mode, `${what}: expected ${mode}, got ${r.mode}${r.reason ? ` (${r.reason})` : ''}`);
  if (reason) assert.match(r.reason ?? '', reason, what);
}


describe('sync under real eBPF capture', () => {
  it('random workloads with chmod/touch/truncate: DST equals SRC (contents, modes, mtimes) each time; capture stopped or restarted forces the full path', async () => {
    requireRoot('eBPF capture');
    const base = fs.mkdtempSync('/tmp/pst-');
    const src = `${base}/src`, dst = `${base}/dst`, journal = `${base}/journal`, state = `${base}/state`;
    fs.mkdirSync(src);
    const pinDir = `/sys/fs/bpf/prov-sync-test-${process.pid}`;
    let cap: ChildProcess | null = null;
    const feed = new JournalFeed(journal, ebpfDecoders);
    try {
      // No pathPrefix: the eBPF prefix filter judges an absolute path by the caller's working
      // directory and drops operations on SRC made from elsewhere (reported to the ebpf area).
      const start = (): Promise<ChildProcess> => startCaptureChild(journal, pinDir);
      cap = await start();
      const opts: SyncOptions = { src, dst, delete: true, feed, stateDir: state, barrierTimeoutMs: 3000 };
      await workload(src, 100, 0, ['--populate', '12', '150']);
      expectMode(await syncOnce(opts), 'full', 'first sync', /checkpoint/);
      assertSame(src, dst, 'first sync');
      for (const seed of [101, 102, 103]) {
        await workload(src, seed, 250);
        const r = await syncOnce(opts);
        expectMode(r, 'incremental', `seed ${seed}`);
        assert.ok(r.relevant > 0, 'records under SRC were used');
        assertSame(src, dst, `seed ${seed}`);
      }
      await workload(src, 108, 60, ATTRS_ONLY);
      const attrs = await syncOnce(opts);
      expectMode(attrs, 'incremental', 'chmod/touch only');
      assert.ok(attrs.relevant > 0, 'setattr records under SRC were used');
      assertSame(src, dst, 'chmod/touch only');
      // Capture stops: the changes made meanwhile are in no record.
      await stopCaptureChild(cap);
      cap = null;
      await workload(src, 104, 100);
      expectMode(await syncOnce(opts), 'full', 'capture not running', /probe/);
      assertSame(src, dst, 'capture not running');
      // Changes while stopped, then capture starts again before the next sync.
      await workload(src, 105, 100);
      cap = await start();
      await workload(src, 106, 50);
      expectMode(await syncOnce(opts), 'full', 'capture restarted', /restarted/);
      assertSame(src, dst, 'capture restarted');
      await workload(src, 107, 200);
      expectMode(await syncOnce(opts), 'incremental', 'after the restart');
      assertSame(src, dst, 'after the restart');
    } finally {
      await feed.close();
      if (cap) await stopCaptureChild(cap);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});

describe('sync under real provfs capture', () => {
  it('random workloads with chmod/touch/truncate: DST equals SRC; a remount forces the full path', async () => {
    requireRoot('provfs (FUSE mount)');
    if (!fs.existsSync('/dev/fuse')) assert.fail('provfs needs /dev/fuse');
    const base = fs.mkdtempSync('/tmp/psf-');
    const backing = `${base}/backing`, mnt = `${base}/mnt`, dst = `${base}/dst`, journal = `${base}/journal`, state = `${base}/state`;
    fs.mkdirSync(backing);
    fs.mkdirSync(mnt);
    let m: ProvfsMount | null = null;
    const feed = new JournalFeed(journal);
    try {
      m = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir: journal });
      const opts: SyncOptions = { src: mnt, dst, delete: true, feed, stateDir: state, barrierTimeoutMs: 3000 };
      await workload(mnt, 200, 0, ['--populate', '10', '120']);
      expectMode(await syncOnce(opts), 'full', 'first sync', /checkpoint/);
      assertSame(mnt, dst, 'first sync');
      for (const seed of [201, 202, 203]) {
        await workload(mnt, seed, 200);
        const r = await syncOnce(opts);
        expectMode(r, 'incremental', `seed ${seed}`);
        assertSame(mnt, dst, `seed ${seed}`);
      }
      // Unmounted: changes go to the backing directory with no record; then mounted again.
      await m.stop();
      m = null;
      await workload(backing, 204, 100);
      m = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir: journal });
      expectMode(await syncOnce(opts), 'full', 'remounted', /restarted/);
      assertSame(mnt, dst, 'remounted');
      await workload(mnt, 205, 150);
      expectMode(await syncOnce(opts), 'incremental', 'after the remount');
      assertSame(mnt, dst, 'after the remount');
    } finally {
      await feed.close();
      if (m) await m.stop({ lazy: true });
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
