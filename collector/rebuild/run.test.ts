/**
 * @module collector/rebuild/run.test
 * Running recorded commands for real: argv spawned directly (no shell), recorded cwd and
 * environment, as the recorded user (privilege dropped), dependency order, parallel jobs, and
 * the stop at the first failure; a command started ahead by the caller.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCommands, runOne, envFor } from './run.js';
import { commandKey, type Command } from './plan.js';

const dir = mkdtempSync(join(tmpdir(), 'prov-rb-run-'));
chmodSync(dir, 0o777);
after(() => rmSync(dir, { recursive: true, force: true }));

function cmd(run: string, argv: string[], deps: string[] = [], extra: Partial<Command> = {}): Command {
  return {
    key: commandKey(argv, dir), run, argv, exe: argv[0]!.startsWith('/') ? argv[0]! : `/usr/bin/${argv[0]}`, cwd: dir,
    env: ['PATH=/usr/bin:/bin', 'GREETING=hi'], uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, start: 0,
    inputs: [], outputs: [], deps, images: 1, sockets: [], ...extra,
  };
}

describe('rebuild run', () => {
  it('runs argv directly with the recorded cwd and environment (shell metacharacters stay literal)', async () => {
    const o = await runOne(cmd('r', ['sh', '-c', 'printf "%s|%s|%s" "$GREETING" "$PWD" "$1"', 'x', '$(id);*']));
    assert.equal(o.code, 0, o.stderr);
    assert.equal(o.stdout, `hi|${dir}|$(id);*`);
  });

  it('a truncated recorded environment keeps what was recorded whole and fills in the rest', () => {
    const env = envFor(cmd('r', ['true'], [], { env: ['A=1', 'PATH=/us'], envTruncated: true }));
    assert.equal(env.A, '1');
    assert.equal(env.PATH, process.env.PATH);
    // Recorded variables come first: the re-run is captured again, and capture keeps the front.
    assert.equal(Object.keys(env)[0], 'A');
  });

  it('runs as the recorded user, never as root when someone else recorded it', async () => {
    if (process.getuid?.() !== 0) assert.fail('this test drops privilege and needs root');
    const o = await runOne(cmd('r', ['id', '-u'], [], { uid: 65534, gid: 65534 }));
    assert.equal(o.code, 0, o.stderr);
    assert.equal(o.stdout.trim(), '65534');
    const g = await runOne(cmd('r', ['id', '-G'], [], { uid: 65534, gid: 65534 }));
    assert.equal(g.stdout.trim(), '65534', 'supplementary groups dropped');
  });

  it('dependency order with parallel jobs; stops at the first failure', async () => {
    const log = join(dir, 'log');
    const step = (run: string, name: string, deps: string[] = [], sleep = '0') =>
      cmd(run, ['sh', '-c', `sleep ${sleep}; echo ${name} >> "$0"`, log], deps);
    const cmds = [step('a', 'a', [], '0.2'), step('b', 'b'), step('c', 'c', ['a', 'b'])];
    const r = await runCommands(cmds, { jobs: 2 });
    assert.equal(r.failed, null);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['b', 'a', 'c']);
    const bad = [cmd('x', ['sh', '-c', 'echo boom >&2; exit 3']), cmd('y', ['true'], ['x'])];
    const f = await runCommands(bad, { jobs: 2 });
    assert.equal(f.failed?.code, 3);
    assert.equal(f.failed?.stderr, 'boom\n');
    assert.deepEqual(f.ran.map((o) => o.cmd.run), ['x'], 'nothing after the failure');
  });

  it('refuses a command whose recorded argv was truncated, before running anything', async () => {
    const log = join(dir, 'log3');
    await assert.rejects(runCommands([cmd('ok', ['sh', '-c', 'echo ran > "$0"', log]), cmd('cut', ['cc', '-c'], [], { argvTruncated: true })], { jobs: 1 }), /argv was cut/);
    assert.throws(() => readFileSync(log), /ENOENT/);
  });

  it('a command the skip predicate cuts off does not run, and what depends on it still does', async () => {
    const log = join(dir, 'log2');
    const step = (run: string, deps: string[] = []) => cmd(run, ['sh', '-c', `echo ${run} >> "$0"`, log], deps);
    const r = await runCommands([step('p'), step('q', ['p']), step('s', ['q'])], { jobs: 2, skip: (c) => (c.run === 'q' ? 'identical inputs' : null) });
    assert.deepEqual(r.skipped.map((x) => [x.cmd.run, x.why]), [['q', 'identical inputs']]);
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['p', 's']);
  });
  it('a command started ahead is waited for, not started again; what depends on it waits; its failure stops the run', async () => {
    const log = join(dir, 'log4');
    const step = (run: string, deps: string[] = [], sleep = '0') => cmd(run, ['sh', '-c', `sleep ${sleep}; echo ${run} >> "$0"`, log], deps);
    const first = step('f', [], '0.2');
    const starts: string[] = [];
    const r = await runCommands([step('e'), first, step('g', ['f'])], { jobs: 2, started: [{ cmd: first, outcome: runOne(first) }], onStart: (c) => starts.push(c.run) });
    assert.equal(r.failed, null);
    assert.deepEqual(starts, ['e', 'g'], 'onStart for the others only');
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['e', 'f', 'g']);
    assert.deepEqual(r.ran.map((o) => o.cmd.run).sort(), ['e', 'f', 'g']);
    const bad = cmd('x', ['sh', '-c', 'exit 4']);
    const f = await runCommands([bad, cmd('y', ['true'], ['x'])], { jobs: 1, started: [{ cmd: bad, outcome: runOne(bad) }] });
    assert.equal(f.failed?.code, 4);
    assert.deepEqual(f.ran.map((o) => o.cmd.run), ['x']);
    const stray = cmd('s', ['true']);
    await assert.rejects(runCommands([cmd('t', ['true'])], { jobs: 1, started: [{ cmd: stray, outcome: runOne(stray) }] }), /not among those to run/);
  });
});
