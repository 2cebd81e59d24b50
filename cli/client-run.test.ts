/**
 * @module cli/client-run.test
 * The native client running a rebuild's commands (cli/client-run.c, protocol "prov3"): the real
 * dist/cli/prov connects to a socket this test serves the way the rebuild server does, with the
 * server's own encoder and report decoder (collector/rebuild/remote) — only the deciding and the
 * capture are left out (test/rebuild/server.test runs the whole server under eBPF capture).
 * Checked: dependency order, early cutoff by the client's own SHA-256 of outputs, --jobs
 * parallelism, a failing command, a command that cannot be spawned, a command started before
 * the list is complete, and what the client prints.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { commandClient } from './rebuild-server.js';
import { RemoteRun, replyFrame } from '../collector/rebuild/remote.js';
import type { Command } from '../collector/rebuild/plan.js';
import type { Decisions } from '../collector/rebuild/decide.js';
import type { StampFile } from '../collector/rebuild/stamp.js';
import type { RunResult } from '../collector/rebuild/run.js';
import { Cutoff } from '../collector/rebuild/cutoff.js';

const CLIENT = fileURLToPath(new URL('./prov', import.meta.url));

/** A command of the plan: `sh -c script` in `cwd`. */
function sh(name: string, cwd: string, script: string, o: { deps?: string[]; outputs?: string[] } = {}): Command {
  return {
    key: name, run: `run-${name}`, argv: ['sh', '-c', script], exe: '/bin/sh', cwd, env: ['PATH=/usr/bin:/bin', 'LC_ALL=C'],
    uid: 0, gid: 0, start: 0, inputs: [], images: 1, sockets: [],
    outputs: (o.outputs ?? []).map((p, i) => ({ id: `${name}-out${i}`, path: p, dev: 0, ino: 0, version: 1, ts: 0 })),
    deps: (o.deps ?? []).map((d) => `run-${d}`),
  };
}

/** Decisions for `stale` (all stale; `conditional` ones only because a dependency runs) among `all`. */
function decisions(all: Command[], stale: Command[], conditional: Command[] = []): Decisions {
  return {
    plan: { target: '/t', targetVersion: 'v', commands: all, sources: 0 },
    decisions: all.map((cmd) => {
      const s = stale.includes(cmd), c = conditional.includes(cmd);
      return { cmd, stale: s, reasons: s ? ['changed'] : [], own: s && !c ? ['changed'] : [] };
    }),
    hazards: [],
  };
}

interface Served { result: RunResult; code: number | null; stdout: string; stderr: string }

describe('the native client runs the commands (prov3)', () => {
  let dir: string, rt: string, server: Server;
  /** What the test's "server" does with the next connection. */
  let serve: (c: Socket) => void = () => undefined;

  before(async () => {
    assert.ok(existsSync(CLIENT), `${CLIENT} is missing: cli/build.sh did not build the native client (is cc installed?)`);
    dir = mkdtempSync(join(tmpdir(), 'prov-crun-'));
    rt = mkdtempSync(join(tmpdir(), 'prov-crun-rt-'));
    mkdirSync(join(rt, 'rebuild'), { mode: 0o700 });
    server = createServer((c) => serve(c));
    await new Promise<void>((r) => server.listen(join(rt, 'rebuild', 'server.sock'), r));
  });
  after(() => {
    server?.close();
    for (const d of [dir, rt]) if (d) rmSync(d, { recursive: true, force: true });
  });

  /**
   * Run the client against a server that sends `stale` to it (`early` first, started at once),
   * then after its report `after` frames (a failure's line and exit code).
   */
  const run = (all: Command[], stale: Command[], o: { conditional?: Command[]; stamps?: StampFile; jobs?: number; early?: Command; failCode?: number } = {}): Promise<Served> =>
    new Promise((resolve, reject) => {
      let result: RunResult | null = null;
      serve = (c) => {
        let got = Buffer.alloc(0);
        const onData = (d: Buffer): void => {
          got = Buffer.concat([got, d]);
          if (got.length < 4 || got.length < 4 + got.readUInt32LE(0)) return;
          c.off('data', onData);
          const n = got.readUInt32LE(0);
          const fields = got.subarray(4, 4 + n).toString().split('\0');
          if (fields[0] !== 'prov4') { c.destroy(); reject(new Error(`request version ${fields[0]}`)); return; }
          const remote = new RemoteRun(commandClient(c, got.subarray(4 + n), () => ({ pid: 0, uid: process.getuid!(), gid: process.getgid!() })));
          if (o.early) remote.startNow(o.early);
          const stamps = o.stamps ?? { version: 1, commands: {}, plans: {} };
          const decided = decisions(all, stale, o.conditional);
          remote.finish(stale, decided, stamps, new Cutoff(decided, stamps), { jobs: o.jobs ?? 1, progress: false, file: 'target' }, null).then((r) => {
            result = r;
            // As the server answers: a failure's line, then the exit code (the client waits for it).
            if (r.failed) c.write(Buffer.concat([replyFrame('e', 'stopped\n'), replyFrame('x', String(o.failCode ?? 1))]));
            c.end();
          }, reject);
        };
        c.on('data', onData);
        c.on('error', () => undefined);
      };
      const p = spawn(CLIENT, ['--home', join(dir, 'home'), 'rebuild', 'target'], { cwd: dir, env: { PATH: process.env.PATH, PROV_RUNTIME_DIR: rt } });
      let stdout = '', stderr = '';
      p.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
      p.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
      p.once('close', (code) => {
        // The report is read on the server's side after the client may have exited: wait for it.
        const waitResult = (): void => { if (result) resolve({ result, code, stdout, stderr }); else setTimeout(waitResult, 5); };
        waitResult();
      });
    });

  const ran = (r: RunResult): string[] => r.ran.map((o) => o.cmd.key);

  it('runs in dependency order and cuts off a command whose dependencies re-made identical outputs', async () => {
    const a = sh('a', dir, 'printf one > a.txt; echo made-a');
    const b = sh('b', dir, 'cat a.txt > b.txt', { deps: ['a'], outputs: [join(dir, 'b.txt')] });
    const c = sh('c', dir, 'cat b.txt > c.txt; echo made-c', { deps: ['b'] });
    a.outputs = [{ id: 'a-out', path: join(dir, 'a.txt'), dev: 0, ino: 0, version: 1, ts: 0 }];
    const sha = (s: string): string => createHash('sha256').update(s).digest('hex');
    // a re-makes a.txt exactly as stamped: b (stale only because a runs) is cut off; so is c.
    const stamps: StampFile = { version: 1, commands: { a: { run: 'run-a', files: { [join(dir, 'a.txt')]: { ino: 0, size: 3, mtime: '0', hash: sha('one') } } } }, plans: {} };
    writeFileSync(join(dir, 'b.txt'), 'old');
    const s = await run([a, b, c], [a, b, c], { conditional: [b, c], stamps });
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(ran(s.result), ['a']);
    assert.deepEqual(s.result.skipped.map((x) => x.cmd.key), ['b', 'c']);
    assert.equal(s.result.byClient, true);
    assert.equal(s.stdout, 'made-a\nnot run: sh -c "cat a.txt > b.txt" (the commands it depends on re-made byte-identical outputs)\n'
      + 'not run: sh -c "cat b.txt > c.txt; echo made-c" (the commands it depends on re-made byte-identical outputs)\nrebuilt target: ran 1 of 3 commands, 2 cut off\n');
    assert.equal(readFileSync(join(dir, 'b.txt'), 'utf8'), 'old');
    assert.ok(stamps.commands.b?.run === 'run-b', 'a command the client cut off is stamped anew');
    // A stamped hash that differs: b runs, then c (its dependency changed its output).
    stamps.commands.a!.files[join(dir, 'a.txt')]!.hash = sha('two');
    const s2 = await run([a, b, c], [a, b, c], { conditional: [b, c], stamps });
    assert.equal(s2.code, 0, s2.stderr);
    assert.deepEqual(ran(s2.result), ['a', 'b', 'c']);
    assert.equal(readFileSync(join(dir, 'c.txt'), 'utf8'), 'one');
    assert.equal(s2.stdout, 'made-a\nmade-c\nrebuilt target: ran 3 of 3 commands\n');
  });

  it('runs independent commands side by side with --jobs 2 (each waits to see the other started)', async () => {
    const both = (me: string, other: string): string => `touch ${me}.started; for i in $(seq 200); do [ -e ${other}.started ] && exit 0; sleep 0.02; done; exit 9`;
    const x = sh('x', dir, both('x', 'y')), y = sh('y', dir, both('y', 'x'));
    const s = await run([x, y], [x, y], { jobs: 2 });
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(ran(s.result).sort(), ['x', 'y']);
    assert.equal(s.result.failed, null);
  });

  it('a failing command stops the run: its output, the server\'s line, the server\'s exit code', async () => {
    const ok = sh('ok', dir, 'echo fine');
    const bad = sh('bad', dir, 'echo to-out; echo to-err >&2; exit 3', { deps: ['ok'] });
    const never = sh('never', dir, 'touch never.ran', { deps: ['bad'] });
    const s = await run([ok, bad, never], [ok, bad, never], { failCode: 1 });
    assert.equal(s.code, 1);
    assert.deepEqual(ran(s.result), ['ok', 'bad']);
    assert.equal(s.result.failed?.cmd.key, 'bad');
    assert.equal(s.result.failed?.code, 3);
    assert.equal(s.stdout, 'to-out\n');
    assert.equal(s.stderr, 'to-err\nstopped\n');
    assert.ok(!existsSync(join(dir, 'never.ran')));
  });

  it('a command that cannot be started fails with the reason; a signal is reported by name', async () => {
    const missing = { ...sh('missing', dir, ''), exe: join(dir, 'no-such-program'), argv: ['no-such-program'] };
    const s = await run([missing], [missing]);
    assert.equal(s.code, 1);
    assert.equal(s.result.failed?.code, null);
    assert.match(s.stderr, /^spawn .*no-such-program: No such file or directory\n/);
    const killed = sh('killed', dir, 'kill -TERM $$');
    const k = await run([killed], [killed]);
    assert.equal(k.result.failed?.signal, 'SIGTERM');
  });

  it('is asked to run commands only as the server would run them (same user and group, argv whole)', () => {
    const me = { uid: process.getuid!(), gid: process.getgid!() };
    const client = (uid: number, gid: number) => new RemoteRun({ pid: 1, uid, gid, send: () => undefined, report: async () => null });
    const mine = sh('mine', dir, 'true');
    mine.uid = me.uid;
    mine.gid = me.gid;
    assert.equal(client(me.uid, me.gid).canRun([mine]), true);
    assert.equal(client(me.uid + 1, me.gid).canRun([mine]), false, 'a client of another user');
    assert.equal(client(me.uid, me.gid + 1).canRun([mine]), false, 'a client of another group');
    assert.equal(client(me.uid, me.gid).canRun([{ ...mine, argvTruncated: true }]), false);
    if (me.uid === 0) assert.equal(client(0, me.gid).canRun([{ ...mine, uid: 1000, gid: 1000 }]), false, 'a command recorded as another user (setuid is the server\'s)');
  });

  it('starts the first command before the rest of the list arrives', async () => {
    const first = sh('first', dir, 'echo first > first.txt');
    const second = sh('second', dir, 'cat first.txt > second.txt', { deps: ['first'] });
    const s = await run([first, second], [first, second], { early: first });
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(ran(s.result), ['first', 'second']);
    assert.equal(readFileSync(join(dir, 'second.txt'), 'utf8'), 'first\n');
  });
});
