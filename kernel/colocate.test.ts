/**
 * @module kernel/colocate.test
 * The loop's CPU placement: a thread's CPU read from /proc, and the Colocator pinning the
 * calling thread to the CPU of a single caller and releasing it when several threads call.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as libc from './libc.js';
import { Colocator, cpuOfThread, CHECK_MS, MIN_REQUESTS } from './colocate.js';

/** CPUs this thread may run on, from /proc/thread-self/status (e.g. "0-1" or "1"). */
const allowed = (): string => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))![1]!;

after(() => { libc.pinThread(-1); });

test('cpuOfThread reads the CPU a thread last ran on; -1 for no such thread', () => {
  const cpu = cpuOfThread(libc.gettid());
  assert.ok(Number.isInteger(cpu) && cpu >= 0 && cpu < cpus().length, `cpu ${cpu}`);
  assert.equal(cpuOfThread(2 ** 30), -1);
});

test('the colocator pins to a single caller\'s CPU and lets go when several call', () => {
  const before = allowed();
  let now = 0;
  const c = new Colocator(() => now);
  const me = libc.gettid();
  const feed = (tids: number[]): void => {
    now += CHECK_MS + 1;
    for (let i = 0; i < MIN_REQUESTS; i++) c.note(tids[i % tids.length]!);
  };
  feed([me, 0]); // pid 0 (RELEASE, FORGET) does not count as another caller
  assert.equal(c.moves, 1, 'pinned after a stretch of one caller');
  assert.equal(allowed(), String(cpuOfThread(me)), 'pinned to the caller\'s CPU (this thread)');
  feed([me]);
  assert.equal(c.moves, 1, 'same caller, same CPU: no move');
  feed([me, process.pid === me ? me + 1 : process.pid]);
  assert.equal(c.moves, 2, 'two callers: released');
  assert.equal(allowed(), before, 'every CPU allowed again');
  now += 1;
  for (let i = 0; i < MIN_REQUESTS * 4; i++) c.note(me);
  assert.equal(c.moves, 2, `nothing reconsidered within ${CHECK_MS} ms`);
  c.release();
});
