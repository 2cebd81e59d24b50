/**
 * @module collector/proc.test
 * /proc/PID/stat readings on real processes: this one, a zombie child, a pid that is gone; the
 * polling probe of a thread's CPU agrees with lastCpu, past an odd command name, and says -1
 * once the thread is gone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAP, hasCapability, lastCpu, running, startTime, statFields, ThreadCpuProbe } from './proc.js';

test('this process: running, a start time, a CPU, state in field 3', () => {
  assert.equal(running(process.pid), true);
  assert.match(startTime(process.pid) ?? '', /^\d+$/);
  assert.equal(startTime(process.pid), startTime(process.pid));
  const cpu = lastCpu(process.pid);
  assert.ok(cpu >= 0 && cpu < availableParallelism() * 64, `cpu ${cpu}`);
  assert.match(statFields(process.pid)![0]!, /^[RS]$/);
});

test('a pid that is gone: not running, no start time, cpu -1', () => {
  const gone = spawnSync('true').pid!;
  assert.equal(running(gone), false);
  assert.equal(startTime(gone), null);
  assert.equal(lastCpu(gone), -1);
  assert.equal(statFields(gone), null);
});

test('a zombie (exited, not yet reaped) is not running though signal 0 reaches it', async (t) => {
  // A command name (the executable's file name) with a space and a parenthesis must not shift the fields.
  const dir = mkdtempSync(join(tmpdir(), 'prov-proc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const exe = join(dir, 'a b) c');
  copyFileSync('/bin/true', exe);
  chmodSync(exe, 0o755);
  const child = spawn(exe, [], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  const pid = child.pid!;
  // Node reaps children from its event loop: while this loop spins synchronously the child stays a zombie.
  const until = Date.now() + 5000;
  let state = '';
  while (Date.now() < until && state !== 'Z') state = statFields(pid)?.[0] ?? '';
  assert.equal(state, 'Z', `child state ${state} (stat: ${readFileSync(`/proc/${pid}/stat`, 'latin1').slice(0, 60)})`);
  process.kill(pid, 0);
  assert.equal(running(pid), false);
  assert.match(startTime(pid) ?? '', /^\d+$/, 'field 22 found past the odd command name');
  await exited;
});

test('the CPU probe (one open /proc/TID/stat read again) agrees with lastCpu, also past an odd command name, and says -1 once the thread is gone', async (t) => {
  const probe = new ThreadCpuProbe();
  t.after(() => probe.close());
  const cpu = probe.cpu(process.pid);
  assert.ok(cpu >= 0 && cpu < availableParallelism() * 64, `cpu ${cpu}`);
  // This thread may move between two reads: they agree at least once in a few tries.
  assert.ok([1, 2, 3, 4, 5].some(() => probe.cpu(process.pid) === lastCpu(process.pid)), 'probe and lastCpu agree');
  const dir = mkdtempSync(join(tmpdir(), 'prov-proc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const exe = join(dir, 'x) 1 2 3 4 5 (y');
  copyFileSync('/bin/sleep', exe);
  chmodSync(exe, 0o755);
  const child = spawn(exe, ['5'], { stdio: 'ignore' });
  const exited = new Promise((r) => child.once('exit', r));
  const pid = child.pid!;
  while (!statFields(pid) || statFields(pid)![0] === 'R') await new Promise((r) => setTimeout(r, 5));
  assert.equal(probe.cpu(pid), lastCpu(pid), 'field 39 found past the odd command name');
  const f = statFields(pid)!;
  assert.equal(probe.ticks, Number(f[14 - 3]) + Number(f[15 - 3]), 'utime + stime (fields 14 and 15)');
  child.kill('SIGKILL');
  await exited;
  assert.equal(probe.cpu(pid), -1, 'a thread gone');
  assert.equal(probe.ticks, -1);
});

test('capabilities: root holds CAP_SYS_ADMIN and CAP_SYS_NICE; no bit past the last capability is set', () => {
  if (process.getuid?.() !== 0) assert.fail('run the tests as root (CI does)');
  assert.equal(hasCapability(CAP.SYS_ADMIN), true);
  assert.equal(hasCapability(CAP.SYS_NICE), true);
  assert.equal(hasCapability(63), false);
});
