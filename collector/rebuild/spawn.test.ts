/**
 * posix_spawn for re-run commands (collector/rebuild/spawn): the child gets what node's spawn
 * would give it — argv[0] as given, environment, cwd, stdin on /dev/null, output captured whole, no
 * ignored or blocked signal, no stray descriptor — and its exit code, signal or spawn error
 * come back as node's would.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { spawnFast, fastSpawnAvailable } from './spawn.js';

const run = async (exe: string, argv: string[], env: NodeJS.ProcessEnv = { PATH: process.env.PATH }, cwd = '/tmp') => {
  const c = spawnFast(exe, argv, env, cwd);
  assert.ok(c, 'posix_spawn is available on Linux with glibc');
  return c.done;
};

describe('collector/rebuild/spawn (posix_spawn)', () => {
  it('is available here', () => assert.equal(fastSpawnAvailable(), true));

  it('argv[0], environment, cwd and stdin as node spawn gives them', async () => {
    const o = await run('/bin/sh', ['custom-argv0', '-c', 'printf "%s|%s|%s|" "$0" "$GREETING" "$PWD"; cat; echo err >&2; exit 7'], { GREETING: 'hi' }, '/usr');
    assert.deepEqual(o, { code: 7, signal: null, stdout: 'custom-argv0|hi|/usr|', stderr: 'err\n' });
  });

  it('no signal ignored or blocked (node ignores SIGPIPE), no descriptor node\'s spawn would not pass too', async () => {
    const st = await run('/bin/cat', ['cat', '/proc/self/status']);
    assert.match(st.stdout, /^SigIgn:\s+0+$/m);
    assert.match(st.stdout, /^SigBlk:\s+0+$/m);
    const fds = await run('/bin/sh', ['sh', '-c', 'ls /proc/$$/fd']);
    // Descriptors this process inherited without close-on-exec (a test harness's) pass with either.
    const viaNode = spawnSync('/bin/sh', ['-c', 'ls /proc/$$/fd'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).stdout;
    assert.deepEqual(fds.stdout.trim().split('\n').sort(), viaNode.trim().split('\n').sort());
    assert.ok(fds.stdout.trim().split('\n').length < 10, fds.stdout);
  });

  it('a signal and a spawn error come back as node reports them', async () => {
    const k = await run('/bin/sh', ['sh', '-c', 'kill -TERM $$']);
    assert.deepEqual([k.code, k.signal], [null, 'SIGTERM']);
    const missing = await run('/nonexistent/tool', ['tool']);
    assert.deepEqual([missing.code, missing.signal, missing.stderr], [null, null, 'spawn /nonexistent/tool ENOENT\n']);
    const badCwd = await run('/bin/true', ['true'], {}, '/nonexistent-dir');
    assert.equal(badCwd.code, null);
    assert.match(badCwd.stderr, /^spawn \/bin\/true ENOENT/);
    const onPath = await run('true', ['true']);
    assert.equal(onPath.code, 0);
  });

  it('output past a pipe\'s capacity comes back whole, and a process left behind does not hold the command up', async () => {
    const big = await run('/bin/sh', ['sh', '-c', 'head -c 1000000 /dev/zero | tr "\\0" a; head -c 300000 /dev/zero | tr "\\0" b >&2']);
    assert.equal(big.code, 0);
    assert.equal(big.stdout.length, 1_000_000);
    assert.match(big.stdout, /^a+$/);
    assert.equal(big.stderr.length, 300_000);
    const t0 = performance.now();
    // The background sleep keeps the command's stdout and stderr open for 5 s; it is ended here, by pid.
    const left = await run('/bin/sh', ['sh', '-c', 'sleep 5 & echo $!']);
    const leftover = Number(left.stdout.trim());
    try {
      assert.equal(left.code, 0);
      assert.ok(leftover > 0, left.stdout);
      assert.ok(performance.now() - t0 < 4000, 'done when the command exited, not when its leftover did');
    } finally {
      if (leftover > 0) try { process.kill(leftover, 'SIGKILL'); } catch { /* gone */ }
    }
  });

  it('many commands at once each get their own exit status and output', async () => {
    const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => run('/bin/sh', ['sh', '-c', `echo ${i}; exit ${i % 7}`])));
    outs.forEach((o, i) => assert.deepEqual([o.code, o.stdout], [i % 7, `${i}\n`]));
  });

  it('can be killed while it runs', async () => {
    const c = spawnFast('/bin/sleep', ['sleep', '5'], {}, '/tmp')!;
    assert.equal(c.exited(), false);
    assert.equal(c.kill('SIGINT'), true);
    const o = await c.done;
    assert.equal(o.signal, 'SIGINT');
    assert.equal(c.exited(), true);
    assert.equal(c.kill('SIGINT'), false);
  });
});
