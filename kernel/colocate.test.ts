/**
 * @module kernel/colocate.test
 * The loop's CPU placement: a thread's CPU read from /proc, and the Colocator pinning the
 * calling thread to the CPU of a single caller and releasing it when several threads call;
 * yielding on a quiet machine, where the caller's and the daemon's own CPU time are not noise.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import * as libc from './libc.js';
import { Colocator, CHECK_MS, MIN_REQUESTS, PLACE_MS, SPLIT_EVERY } from './colocate.js';
import { lastCpu } from '../collector/proc.js';

/** CPUs this thread may run on, from /proc/thread-self/status (e.g. "0-1" or "1"). */
const allowed = (): string => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync('/proc/thread-self/status', 'utf8'))![1]!;

after(() => { libc.pinThread(-1); });

test('lastCpu reads the CPU a thread last ran on; -1 for no such thread', () => {
  const cpu = lastCpu(libc.gettid());
  assert.ok(Number.isInteger(cpu) && cpu >= 0 && cpu < cpus().length, `cpu ${cpu}`);
  assert.equal(lastCpu(2 ** 30), -1);
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
  assert.equal(allowed(), String(lastCpu(me)), 'pinned to the caller\'s CPU (this thread)');
  feed([me]);
  assert.equal(c.moves, 1, 'same caller, same CPU: no move');
  feed([me, process.pid === me ? me + 1 : process.pid]);
  assert.equal(c.moves, 2, 'two callers: released');
  assert.equal(allowed(), before, 'every CPU allowed again');
  now += PLACE_MS / 2;
  for (let i = 0; i < MIN_REQUESTS * 4; i++) c.note(me);
  assert.equal(c.moves, 2, `nothing reconsidered within ${PLACE_MS} ms`);
  c.release();
});

test('pinned to a single caller on a quiet machine the loop yields (SCHED_IDLE); it stops when the machine gets busy or the caller pauses', () => {
  let now = 0;
  let idleTicks = 0, runnable = 1;
  // Two CPUs: the one this thread runs on and another, whose idle share the probe controls.
  const times = (): Array<[number, number]> => [[idleTicks, now], [idleTicks, now]];
  const policy = (): number => Number(readFileSync('/proc/thread-self/sched', 'utf8').match(/^policy\s*:\s*(\d+)/m)![1]);
  const c = new Colocator(() => now, true, { times, runnable: () => runnable });
  const me = libc.gettid();
  const feed = (step = CHECK_MS + 1, quietShare = 1): void => {
    for (let i = 0; i < MIN_REQUESTS; i++) { now += step / MIN_REQUESTS; idleTicks += (step / MIN_REQUESTS) * quietShare; c.note(me); }
  };
  try {
    for (let i = 0; i < 8; i++) feed();
    assert.equal(c.idle, true, 'yielding while pinned on a quiet machine');
    assert.equal(policy(), 5, 'SCHED_IDLE');
    runnable = 4;
    feed();
    assert.equal(c.idle, false, 'back to ordinary scheduling when other tasks are runnable');
    assert.equal(policy(), 0, 'SCHED_OTHER');
    assert.ok(c.busy >= 1);
    runnable = 1;
    for (let i = 0; i < 8; i++) feed();
    assert.equal(c.idle, true, 'yielding again once quiet');
    for (let i = 0; i < 8; i++) feed(CHECK_MS + 1, 0.1);
    assert.equal(c.idle, false, 'the other CPU busy: not yielding');
    for (let i = 0; i < 8; i++) feed();
    assert.equal(c.idle, true);
    now += 20 * CHECK_MS; // the caller paused
    c.note(me);
    assert.equal(c.idle, false, 'a pause ends the yielding');
    c.allowIdle = false;
    for (let i = 0; i < 8; i++) feed();
    assert.equal(c.idle, false, 'never while a handover owns the thread\'s scheduling');
  } finally {
    c.release();
  }
  assert.equal(policy(), 0, 'released: ordinary scheduling');
});

test('the caller\'s own time and the daemon\'s own threads do not count as a busy machine', () => {
  let now = 0, idleTicks = 0, partnerTicks = 0, runnable = 1, own = 1;
  const times = (): Array<[number, number]> => [[idleTicks, now], [idleTicks, now]];
  const me = libc.gettid();
  const cpu = lastCpu(me);
  const caller = { cpu: () => cpu, get ticks() { return partnerTicks; }, close: () => {} };
  const c = new Colocator(() => now, true, { times, runnable: () => runnable, ownOther: () => 0, ownRunning: () => own, caller });
  // The other CPU idle 20 % of the time; `partnerShare` of it is the caller's (or this daemon's).
  const feed = (partnerShare: number): void => {
    const step = CHECK_MS + 1;
    for (let i = 0; i < MIN_REQUESTS; i++) {
      now += step / MIN_REQUESTS;
      idleTicks += (step / MIN_REQUESTS) * 0.2;
      partnerTicks += (step / MIN_REQUESTS) * partnerShare;
      c.note(me);
    }
  };
  try {
    for (let i = 0; i < 12; i++) feed(0);
    assert.equal(c.idle, false, 'the other CPU 80 % busy with someone else: not yielding');
    for (let i = 0; i < 12; i++) feed(0.6);
    assert.equal(c.idle, true, 'busy with the caller itself (moved off the shared CPU): yielding, which brings it back');
    c.ordinary();
    runnable = 4; own = 1;
    for (let i = 0; i < 12; i++) feed(0.6);
    assert.equal(c.idle, false, 'two others runnable now: not yielding');
    own = 3;
    for (let i = 0; i < 12; i++) feed(0.6);
    assert.equal(c.idle, true, 'the others runnable are this daemon\'s own threads: yielding');
  } finally {
    c.release();
  }
});

test('while pinned, the thread to keep off (the draining one) may run on every CPU but the pinned one, and anywhere again once released', async (t) => {
  assert.ok(cpus().length >= 2, `this test needs two CPUs to keep a thread off one (the machine has ${cpus().length})`);
  const { spawn } = await import('node:child_process');
  // Another task to move: a sleeping child (its one thread's tid is its pid).
  const other = spawn('sleep', ['30'], { stdio: 'ignore' });
  t.after(() => { other.kill(); });
  const allowedOf = (tid: number): string => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${tid}/status`, 'utf8'))![1]!;
  const everywhere = allowedOf(other.pid!);
  let now = 0;
  const c = new Colocator(() => now, false);
  c.keepOff = other.pid!;
  const me = libc.gettid();
  now += CHECK_MS + 1;
  for (let i = 0; i < MIN_REQUESTS; i++) c.note(me);
  const pinned = lastCpu(me);
  assert.equal(allowed(), String(pinned));
  const left = allowedOf(other.pid!);
  assert.ok(!expand(left).includes(pinned), `kept off CPU ${pinned}: allowed ${left}`);
  assert.deepEqual(expand(left), expand(everywhere).filter((x) => x !== pinned));
  c.release();
  assert.equal(allowedOf(other.pid!), everywhere, 'anywhere again');
});

test('a thread kept off the pinned CPU gets back the CPUs it had, not every CPU', async (t) => {
  assert.ok(cpus().length >= 2, `this test needs two CPUs (the machine has ${cpus().length})`);
  const { spawn } = await import('node:child_process');
  // A thread an administrator restricted to CPU 1 (taskset), while the loop's caller runs on CPU 0.
  const other = spawn('taskset', ['-c', '1', 'sleep', '30'], { stdio: 'ignore' });
  t.after(() => { other.kill(); });
  const allowedOf = (tid: number): string => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${tid}/status`, 'utf8'))![1]!;
  for (let i = 0; i < 50 && allowedOf(other.pid!) !== '1'; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(allowedOf(other.pid!), '1');
  let now = 0;
  const c = new Colocator(() => now, false);
  c.keepOff = other.pid!;
  const me = libc.gettid();
  assert.ok(libc.pinThread(0));
  now += CHECK_MS + 1;
  for (let i = 0; i < MIN_REQUESTS; i++) c.note(me);
  assert.equal(allowed(), '0', 'the loop pinned to its caller\'s CPU');
  assert.equal(allowedOf(other.pid!), '1', 'kept off CPU 0: still CPU 1 only');
  c.release();
  assert.equal(allowedOf(other.pid!), '1', 'its own CPU again, not every CPU');
});

test('threadSleeps counts the calling thread\'s sleeps (voluntary context switches)', () => {
  const before = libc.threadSleeps();
  assert.ok(before >= 0, 'getrusage(RUSAGE_THREAD) answered');
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 3; i++) Atomics.wait(cell, 0, 0, 2); // sleeps 2 ms, three times
  const slept = (libc.threadSleeps() - before) >>> 0;
  assert.ok(slept >= 3 && slept < 100, `slept ${slept} times`);
});

test('a pinned loop that starts sleeping on its reads (its caller woken on another CPU) follows the caller at once, not at the next placement check', () => {
  assert.ok(cpus().length >= 2, `this test needs two CPUs (the machine has ${cpus().length})`);
  let now = 0, callerCpu = 0, sleeps = 0;
  const caller = { cpu: () => callerCpu, ticks: 0, close: () => {} };
  // A quiet machine (the other CPU idle, nothing else runnable): the loop yields once pinned.
  const c = new Colocator(() => now, true, { times: () => [[now, now], [now, now]], runnable: () => 1, sleeps: () => sleeps, caller });
  const me = libc.gettid();
  try {
    for (let k = 0; k < 10 && !c.idle; k++) { // the quiet rule looks at whole windows of the other CPU's idle time
      now += CHECK_MS + 1;
      for (let i = 0; i < MIN_REQUESTS; i++) c.note(me);
    }
    assert.equal(allowed(), '0', 'pinned to the caller\'s CPU');
    assert.equal(c.idle, true, 'yielding');
    // The scheduler wakes the caller on CPU 1. Within PLACE_MS of the last check, the loop hardly
    // ever sleeping (its caller runs while it is preempted): it stays.
    callerCpu = 1;
    for (let i = 0; i < 4 * SPLIT_EVERY; i++) { if (i % (2 * SPLIT_EVERY) === 0) sleeps++; c.note(me); }
    assert.equal(allowed(), '0', 'a sleep now and then is no split');
    assert.equal(c.splits, 0);
    // Sleeping on most reads: apart. Followed within a couple of SPLIT_EVERY requests, the clock standing still.
    for (let i = 0; i < 2 * SPLIT_EVERY; i++) { sleeps++; c.note(me); }
    assert.equal(allowed(), '1', 'followed the caller to CPU 1');
    assert.ok(c.splits >= 1, `brought forward by the sleeps (${c.splits})`);
    assert.equal(c.moves, 2);
    // Several callers: no placement check is brought forward (the next regular one lets go).
    callerCpu = 0;
    for (let i = 0; i < 2 * SPLIT_EVERY; i++) { sleeps++; c.note(i % 2 ? me : me + 1); }
    assert.equal(allowed(), '1', 'not moved for a caller that is not the only one');
    // Not yielding (a busy machine): sleeping on reads is what an ordinary loop does, together or not.
    c.ordinary();
    callerCpu = 0;
    const before = c.splits;
    for (let i = 0; i < 4 * SPLIT_EVERY; i++) { sleeps++; c.note(me); }
    assert.equal(c.splits, before, 'no check brought forward while not yielding');
    assert.equal(allowed(), '1');
  } finally {
    c.release();
  }
});

/** "0-2,5" → [0, 1, 2, 5]. */
function expand(list: string): number[] {
  return list.split(',').flatMap((r) => {
    const [a, b] = r.split('-').map(Number);
    return b === undefined ? [a!] : Array.from({ length: b - a! + 1 }, (_, i) => a! + i);
  });
}
