/**
 * @module kernel/mmhold.test
 * A daemon's memory holder: a process sharing its address space, with no descriptor and every
 * signal blocked, at SCHED_IDLE in a session of its own; a SIGKILLed owner is gone at once (its
 * threads unmap nothing), and the holder exits by itself a while later. Counting standbys from
 * /proc skips a holder, also in the moment before it names itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { MMHOLD_LIBRARY } from './mmhold.js';
import { isMemoryHolder, HOLDER_NAME, standbyPids } from './runtime.js';
import { statFields } from '../collector/proc.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const alive = (pid: number): boolean => { const st = statFields(pid)?.[0]; return st !== undefined && st !== 'Z' && st !== 'X'; };

test('the holder shares the memory of a process, outlives its SIGKILL by the linger, and holds nothing else', async () => {
  assert.ok(existsSync(MMHOLD_LIBRARY), `${MMHOLD_LIBRARY} is missing: kernel/build.sh did not compile kernel/mmhold.c (is cc installed?)`);
  const dir = mkdtempSync(join(tmpdir(), 'prov-mmhold-'));
  const script = join(dir, 'owner.mjs');
  const mmhold = new URL('./mmhold.js', import.meta.url).href;
  // A Node process with a heap worth unmapping, its holder started as a daemon's is.
  writeFileSync(script, `import { holdMemoryPastExit } from ${JSON.stringify(mmhold)};
const keep = []; for (let i = 0; i < 3e5; i++) keep.push({ i, s: 'x' + i });
process.stdout.write(String(holdMemoryPastExit(300)) + '\\n');
setInterval(() => keep.length, 1e6);\n`);
  const owner = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const holder = Number(await new Promise<string>((res) => owner.stdout!.once('data', (d: Buffer) => res(d.toString().trim()))));
    assert.ok(holder > 0, `holdMemoryPastExit returned ${holder}`);
    await sleep(50);
    assert.equal(readFileSync(`/proc/${holder}/comm`, 'utf8').trim(), HOLDER_NAME);
    assert.equal(isMemoryHolder(holder), true);
    assert.equal(isMemoryHolder(owner.pid!), false);
    // The same address space: the same command line, read from the same memory.
    assert.equal(readFileSync(`/proc/${holder}/cmdline`, 'utf8'), readFileSync(`/proc/${owner.pid}/cmdline`, 'utf8'));
    // No descriptor of its owner kept open: only the pidfd it waits on.
    const fds = readdirSync(`/proc/${holder}/fd`).map((fd) => readlinkSync(`/proc/${holder}/fd/${fd}`));
    assert.deepEqual(fds, ['anon_inode:[pidfd]']);
    const status = readFileSync(`/proc/${holder}/status`, 'utf8');
    assert.match(status, /^SigBlk:\s+fffffffffffbfeff$/m, 'every signal blocked (all but SIGKILL and SIGSTOP, which cannot be)');
    assert.equal(statFields(holder)?.[41 - 3], '5', 'SCHED_IDLE (policy field of /proc/PID/stat)');
    assert.equal(statFields(holder)?.[6 - 3], String(holder), 'the leader of a session of its own');
    const killed = performance.now();
    const exited = new Promise<void>((res) => owner.once('exit', () => res()));
    process.kill(owner.pid!, 'SIGKILL');
    await exited;
    const gone = performance.now() - killed;
    assert.ok(alive(holder), `the holder outlives its owner (owner gone after ${gone.toFixed(1)} ms)`);
    // It exits by itself once the linger is over.
    for (let i = 0; i < 200 && alive(holder); i++) await sleep(10);
    assert.equal(alive(holder), false, 'the holder exits after its linger');
  } finally {
    if (owner.exitCode === null && owner.signalCode === null) owner.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('standbyPids counts a standby once: its holder reads as the same command line, also before it names itself', async () => {
  const mp = `/nonexistent/prov-standby-${process.pid}`;
  // A stand-in standby that starts a child with its very command line, as a holder's clone has
  // until it names itself (the window this covers).
  const code = `if (!process.env.PROV_TEST_CHILD) { const c = require('node:child_process').spawn(process.execPath, [...process.execArgv, '--', ...process.argv.slice(1)], { env: { ...process.env, PROV_TEST_CHILD: '1' }, stdio: 'ignore' }); process.stdout.write(c.pid + '\\n'); } setTimeout(() => {}, 30000);`;
  const standby = spawn(process.execPath, ['-e', code, '--', '--standby', '--mountpoint', mp], { stdio: ['ignore', 'pipe', 'inherit'] });
  let child = 0;
  try {
    child = Number(await new Promise<string>((res) => standby.stdout!.once('data', (d: Buffer) => res(d.toString().trim()))));
    for (let i = 0; i < 100 && !existsSync(`/proc/${child}/cmdline`); i++) await sleep(10);
    await sleep(50);
    assert.equal(readFileSync(`/proc/${child}/cmdline`, 'utf8'), readFileSync(`/proc/${standby.pid}/cmdline`, 'utf8'), 'the child reads as its parent');
    assert.deepEqual(standbyPids(mp), [standby.pid]);
  } finally {
    if (child > 0) { try { process.kill(child, 'SIGKILL'); } catch { /* gone */ } }
    standby.kill('SIGKILL');
  }
});
