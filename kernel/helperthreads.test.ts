import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const MODULE = fileURLToPath(new URL('./helperthreads.js', import.meta.url));

/** Run `code` (an ES module importing helperthreads as H) in a fresh node with `flags`; its stdout as JSON. */
function inChild(flags: string[], code: string): Record<string, unknown> {
  const src = `import * as H from ${JSON.stringify(MODULE)}; import { readdirSync, readFileSync } from 'node:fs';
const policy = (t) => Number(/policy\\s+:\\s+(\\d+)/.exec(readFileSync('/proc/self/task/' + t + '/sched', 'utf8'))?.[1]);
${code}`;
  const r = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', src], { encoding: 'utf8', env: { ...process.env, UV_THREADPOOL_SIZE: '3' } });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

test('the libuv pool threads are told apart by blocking each in a read of a FIFO', () => {
  const out = inChild([], `const pool = await H.poolThreads(); console.log(JSON.stringify({ pool, all: readdirSync('/proc/self/task').map(Number) }));`);
  const pool = out.pool as number[], all = out.all as number[];
  assert.equal(pool.length, 3, 'UV_THREADPOOL_SIZE=3 pool threads');
  assert.equal(new Set(pool).size, 3);
  for (const t of pool) assert.ok(all.includes(t) && t !== all[0], `pool thread ${t} is a thread of the process, not its main one`);
});

test('with --single-threaded-gc every thread but the main one and the pool is made SCHED_IDLE; without it none', () => {
  const code = `const n = await H.idleV8Helpers(); const pool = await H.poolThreads();
console.log(JSON.stringify({ n, pool, policies: Object.fromEntries(readdirSync('/proc/self/task').map((t) => [t, policy(t)])), main: process.pid }));`;
  const on = inChild([H_FLAG], code);
  const pol = on.policies as Record<string, number>, pool = on.pool as number[];
  assert.ok((on.n as number) > 0, 'some helper threads were made idle');
  assert.equal(pol[String(on.main)], 0, 'the main thread stays ordinary');
  for (const t of pool) assert.equal(pol[String(t)], 0, `pool thread ${t} stays ordinary`);
  assert.equal(Object.values(pol).filter((p) => p === 5).length, on.n, 'exactly the threads counted are SCHED_IDLE');
  const off = inChild([], code);
  assert.equal(off.n, 0);
  assert.ok(Object.values(off.policies as Record<string, number>).every((p) => p === 0), 'nothing changed without the flag');
});

const H_FLAG = '--single-threaded-gc';
