/**
 * @module kernel/setid.test
 * Passthrough writes run with the daemon's credentials, so under HANDLE_KILLPRIV_V2 the kernel
 * would never clear set-id bits on them. provfs closes both holes: a file cannot become set-id
 * while a user holds a passthrough handle open for writing on it (ETXTBSY), and a set-id file
 * opened for writing by anyone, root included, is served by the daemon (direct I/O), so a
 * descriptor root opened and handed to a user still clears the bits when the user writes.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, statSync, chmodSync, chownSync, openSync, closeSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountProvfs, type ProvfsMount } from './daemon.js';
import { unmount } from './mount.js';

const NOBODY = 65534;
const base = mkdtempSync(join(tmpdir(), 'provfs-setid-'));
let m: ProvfsMount | null = null;
const children: ChildProcess[] = [];
after(async () => {
  // A failed assertion leaves a writer holding a file on the mount: end it (ours, by pid) first.
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  if (m) { try { await m.stop(); } catch { try { unmount(m.mountpoint, true); } catch { /* gone */ } } }
  rmSync(base, { recursive: true, force: true });
});

/**
 * A process running as nobody holding `file` open for writing until its stdin closes (then it
 * writes one byte). With `fd`, the descriptor is inherited instead of opened by the child.
 */
function userWriter(file: string | null, fd?: number): Promise<{ done: Promise<number>; end(): void }> {
  const code = `const fs=require('fs');const fd=${file ? `fs.openSync(${JSON.stringify(file)},'r+')` : '3'};` +
    `process.stdout.write('open\\n');process.stdin.on('data',()=>{});process.stdin.on('end',()=>{fs.writeSync(fd,'x',0);process.exit(0)});`;
  const child = spawn(process.execPath, ['-e', code], {
    uid: NOBODY, gid: NOBODY, cwd: '/', stdio: fd === undefined ? ['pipe', 'pipe', 'inherit'] : ['pipe', 'pipe', 'inherit', fd],
  });
  children.push(child);
  const done = new Promise<number>((res) => child.once('exit', (c) => res(c ?? -1)));
  return new Promise((res, rej) => {
    child.stdout!.once('data', () => res({ done, end: () => child.stdin!.end() }));
    child.once('exit', (c) => rej(new Error(`the writer running as nobody exited ${c} before opening`)));
  });
}

test('set-id bits and passthrough writers', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  chmodSync(base, 0o755);
  const backing = join(base, 'b'), mnt = join(base, 'm');
  mkdirSync(backing, { mode: 0o755 }); mkdirSync(mnt, { mode: 0o755 });
  m = await mountProvfs({ backing, mountpoint: mnt, mode: 'plain' });
  assert.equal(m.passthrough, true, 'the kernel did not accept FUSE_PASSTHROUGH');
  const f = join(mnt, 'tool');
  writeFileSync(f, 'binary\n', { mode: 0o755 });
  chownSync(f, NOBODY, NOBODY);
  chmodSync(f, 0o757); // writable by nobody whatever the owner becomes

  // 1. A user holds it open for writing (passthrough): making it set-id is refused meanwhile.
  const w = await userWriter(f);
  chownSync(f, 0, 0);
  chmodSync(f, 0o757);
  assert.throws(() => chmodSync(f, 0o4757), (e: NodeJS.ErrnoException) => e.code === 'ETXTBSY', 'chmod u+s was allowed while a user writes through passthrough');
  w.end();
  assert.equal(await w.done, 0);
  assert.equal(statSync(f).mode & 0o7777, 0o757, 'the refused chmod changed the mode');
  chmodSync(f, 0o4757);
  assert.equal(statSync(f).mode & 0o7777, 0o4757, 'chmod u+s after the writer closed');

  // 2. Root opens the set-id file for writing and hands the descriptor to a user, who writes.
  const fd = openSync(f, 'r+');
  try {
    const w2 = await userWriter(null, fd);
    w2.end();
    assert.equal(await w2.done, 0);
  } finally { closeSync(fd); }
  assert.equal(statSync(f).mode & 0o7777, 0o757, 'a user write through a root-opened descriptor kept set-user-id');

  // 3. Root writing keeps it (CAP_FSETID), as on ext4.
  chmodSync(f, 0o4757);
  writeFileSync(f, 'root rewrote\n', { flag: 'r+' });
  assert.equal(statSync(f).mode & 0o7777, 0o4757, 'a write by root cleared set-user-id');
  const info = await m.stop();
  m = null;
  assert.ok((info.counts['16'] ?? 0) >= 2, 'writes to the set-id file did not reach the daemon (WRITE)');
});
