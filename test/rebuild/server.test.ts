/**
 * @module test/rebuild/server.test
 * The resident rebuild server (`prov rebuild-server`, cli/rebuild-server) and the native client
 * (dist/cli/prov, cli/prov-client.c) on a C project recorded live under make (root, real eBPF
 * capture): served rebuilds answer as the command line does, the rebuilt binary equals make's
 * and its new version is what `prov lineage` shows; a failing command's output and exit code
 * come through; the client runs the command line itself when no server listens; a non-root
 * peer cannot reach the socket. The server is stopped by pid at the end.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveConfig, type ProvConfig } from '../../cli/config.js';
import { writeCProject } from './project.js';
import { runCaptured } from '../../ebpf/run-captured.js';
import { runPipeline } from '../../collector/pipeline.js';
import { openStore } from '../../graph/open.js';
import { ebpfDecoders } from '../../ebpf/decode.js';
import { joinStatePath } from '../../cli/actions/ingest.js';
import { detachWarm } from '../../ebpf/warm.js';
import { sqlitePath } from '../../collector/rebuild/fingerprint.js';
import { rebuildSocketPath, runningRebuildServer, startRebuildServer, stopRebuildServer } from '../../cli/rebuild-server.js';
import { chmodSync } from 'node:fs';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
const CLIENT = fileURLToPath(new URL('../../cli/prov', import.meta.url));
const WARM_PIN = `/sys/fs/bpf/prov-rbsrv-warm-${process.pid}`;

/** Record `argv` in dir under capture into cfg's journal and ingest it. */
async function record(cfg: ProvConfig, dir: string, argv: string[]): Promise<void> {
  const r = await runCaptured(argv, { cwd: dir, journalDir: cfg.journal, env: { LC_ALL: 'C', ...process.env } });
  assert.equal(r.code, 0, `${argv.join(' ')} failed: ${r.stderr}`);
  const store = await openStore(cfg.store);
  try {
    await runPipeline({ journalDir: cfg.journal, store, statePath: joinStatePath(cfg), decoders: ebpfDecoders });
  } finally {
    await store.close();
  }
}

interface Out { code: number | null; stdout: string; stderr: string }

describe('prov rebuild-server and the native client', () => {
  let home: string, dir: string, rt: string, cfg: ProvConfig, server: ChildProcess | null = null;
  let env: NodeJS.ProcessEnv;
  /**
   * Until no ingest is pending (the server's background ingest after its last answer holds the
   * store's marker from before that answer) and the store's files were last written `ms` ago or
   * more (at most 20 s).
   */
  const storeQuiet = async (ms: number): Promise<void> => {
    const db = sqlitePath(cfg.store);
    if (!db) return;
    const age = (): number => Math.min(...[db, `${db}-wal`].map((f) => (existsSync(f) ? Date.now() - statSync(f).mtimeMs : Infinity)));
    const quiet = (): boolean => !existsSync(`${db}.ingest-pending`) && age() >= ms;
    for (const until = Date.now() + 20_000; Date.now() < until && !quiet();) await new Promise((r) => setTimeout(r, 25));
    assert.ok(quiet(), 'the store was still being written 20 s later');
  };
  const client = (args: string[], extra: NodeJS.ProcessEnv = {}): Out => {
    const r = spawnSync(CLIENT, ['--home', home, ...args], { encoding: 'utf8', cwd: dir, env: { ...env, ...extra } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}): Out => {
    const r = spawnSync(process.execPath, [CLI, '--home', home, ...args], { encoding: 'utf8', cwd: dir, env: { ...env, ...extra } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  /** The armed server's start token (ebpf/start-token), once it is there (at most 10 s). */
  const startToken = async (): Promise<string> => {
    const token = join(rt, 'rebuild', 'start-token');
    for (const until = Date.now() + 10_000; !existsSync(token) && Date.now() < until;) await new Promise((r) => setTimeout(r, 20));
    assert.ok(existsSync(token), 'the armed server left no start token');
    return token;
  };
  /** True when the request was answered by the server (its timeline starts at the request). */
  const served = (o: Out): boolean => o.stderr.includes('"name":"request received"');

  before(async () => {
    if (process.getuid?.() !== 0) assert.fail('rebuild server tests need root (eBPF capture); run npm test as root');
    assert.ok(existsSync(CLIENT), `${CLIENT} is missing: cli/build.sh did not build the native client (is cc installed?)`);
    home = mkdtempSync(join(tmpdir(), 'prov-rbs-home-'));
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rbs-c-')));
    rt = mkdtempSync('/tmp/prov-rbs-rt-');
    cfg = resolveConfig({ home });
    env = { ...process.env, NO_COLOR: '1', PROV_REBUILD_PIN_DIR: WARM_PIN, PROV_RUNTIME_DIR: rt };
    delete env.PROV_NO_SERVER;
    writeCProject(dir, 4);
    await record(cfg, dir, ['make']);
    const s = spawn(process.execPath, [CLI, 'rebuild-server', '--idle-minutes', '5'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    server = s;
    let log = '';
    await new Promise<void>((resolve, reject) => {
      s.stderr!.on('data', (d: Buffer) => { log += d.toString(); if (log.includes('listening on')) resolve(); });
      s.once('exit', (code) => reject(new Error(`rebuild-server exited (${code}) before listening: ${log}`)));
    });
  });
  after(async () => {
    const s = server;
    if (s && s.exitCode === null && s.pid !== undefined) {
      const gone = new Promise((r) => s.once('exit', r));
      process.kill(s.pid, 'SIGTERM');
      await gone;
    }
    detachWarm({ pinDir: WARM_PIN });
    for (const d of [home, dir, rt]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('listens on a 0600 socket in a 0700 directory', () => {
    const sock = rebuildSocketPath(rt);
    assert.equal(statSync(sock).mode & 0o777, 0o600);
    assert.equal(statSync(join(rt, 'rebuild')).mode & 0o777, 0o700);
    assert.equal(readFileSync(join(rt, 'rebuild', 'server.pid'), 'utf8').trim(), String(server!.pid));
  });

  it('answers --dry-run --explain and a no-op byte for byte as the command line does', () => {
    appendFileSync(join(dir, 'util.c'), 'int served_a(void) { return 1; }\n');
    for (const args of [['rebuild', 'app', '--dry-run', '--explain'], ['rebuild', 'app', '--dry-run', '-j', '2']]) {
      const a = client(args, { PROV_REBUILD_TRACE: 'json' });
      const b = cli(args);
      assert.ok(served(a), `not served: ${a.stderr}`);
      assert.equal(a.code, b.code);
      assert.equal(a.stdout, b.stdout);
      assert.match(a.stdout, /would run +cc -O1 -g -c util\.c -o util\.o/);
    }
  });

  it('rebuilds after a change: its compile and the link, the binary equals make\'s, lineage shows the new version', async () => {
    const t0 = process.hrtime.bigint();
    const r = client(['rebuild', 'app'], { PROV_REBUILD_TRACE: 'json' });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(served(r), `not served: ${r.stderr}`);
    assert.match(r.stdout, /^rebuilt app: ran 2 of 5 commands\n$/);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '42\n');
    const l = cli(['lineage', join(dir, 'app'), '--json', '--depth', '1']);
    assert.equal(l.code, 0, l.stderr);
    const g = JSON.parse(l.stdout) as { root: string; nodes: Array<{ id: string; ts: number }> };
    assert.ok(BigInt(g.nodes.find((n) => n.id === g.root)!.ts) > t0, 'lineage shows the version of app from before the served rebuild');
    // The command line agrees that everything is up to date now.
    const j = cli(['rebuild', 'app', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual((JSON.parse(j.stdout) as { ran: unknown[] }).ran, []);
    const rebuilt = readFileSync(join(dir, 'app'));
    copyFileSync(join(dir, 'app'), join(dir, 'app.served'));
    await record(cfg, dir, ['make', '-B']);
    assert.ok(rebuilt.equals(readFileSync(join(dir, 'app'))), 'the served rebuild\'s app differs from make\'s');
    rmSync(join(dir, 'app.served'));
    // The server did the background ingest itself (no finisher process): nothing went wrong in it.
    const flog = join(home, 'rebuild', 'finish.log');
    assert.equal(existsSync(flog) ? readFileSync(flog, 'utf8').trim() : '', '', 'the served background ingest reported nothing');
    const noop = client(['rebuild', 'app']);
    assert.deepEqual(noop, cli(['rebuild', 'app']));
    assert.equal(noop.stdout, 'app: up to date (5 recorded commands)\n');
  });

  it('arms the warm capture for its next rebuild while idle, and lets it go to a command-line rebuild that asks', async () => {
    appendFileSync(join(dir, 'util.c'), 'int armed_a(void) { return 1; }\n');
    const r = client(['rebuild', 'app']);
    assert.equal(r.code, 0, r.stderr);
    // After its background ingest the server holds the warm attach's lock (armed ahead).
    const { createServer } = await import('node:net');
    const lockTaken = (): Promise<boolean> => new Promise((resolve) => {
      const probe = createServer();
      probe.once('error', () => resolve(true));
      probe.listen(`\0prov-warm:${WARM_PIN}`, () => probe.close(() => resolve(false)));
    });
    const deadline = Date.now() + 10_000;
    while (!(await lockTaken())) {
      assert.ok(Date.now() < deadline, 'the server did not arm the warm attach within 10 s of its rebuild');
      await new Promise((res) => setTimeout(res, 20));
    }
    // A command-line rebuild asks for it and gets it (not a private attach).
    appendFileSync(join(dir, 'util.c'), 'int armed_b(void) { return 1; }\n');
    const c = cli(['rebuild', 'app', '--json'], { PROV_NO_SERVER: '1' });
    assert.equal(c.code, 0, c.stderr);
    const j = JSON.parse(c.stdout) as { capture: string; ran: Array<{ argv: string[] }> };
    assert.equal(j.capture, 'warm');
    assert.equal(j.ran.length, 2);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '42\n');
    // The server arms again for its own next rebuild (once the command line let go), which still
    // runs exactly what changed.
    const rearmBy = Date.now() + 10_000;
    while (!(await lockTaken())) {
      assert.ok(Date.now() < rearmBy, 'the server did not arm the warm attach again within 10 s of the command-line rebuild');
      await new Promise((res) => setTimeout(res, 20));
    }
    appendFileSync(join(dir, 'util.c'), 'int armed_c(void) { return 1; }\n');
    const again = client(['rebuild', 'app'], { PROV_REBUILD_TRACE: 'json' });
    assert.equal(again.code, 0, again.stderr);
    assert.ok(served(again), `not served: ${again.stderr}`);
    assert.match(again.stdout, /^rebuilt app: ran 2 of 5 commands\n$/);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '42\n');
    // Its compile went to the client, which ran it, before the rest of the plan was decided (the
    // server's early start).
    const line = again.stderr.split('\n').find((x) => x.startsWith('{"trace"'))!;
    const names = (JSON.parse(line) as { trace: Array<{ name: string }> }).trace.map((m) => m.name);
    const sent = names.indexOf('sent cc -O1 -g');
    assert.ok(names.includes('early start done') && sent >= 0 && sent < names.lastIndexOf('plan+decide done'), `compile not started ahead: ${names.join(', ')}`);
    assert.ok(names.indexOf('client tracked') < sent && names.includes('report received'), `the client did not run the commands: ${names.join(', ')}`);
  });

  it('the client runs the commands: early cutoff by its own hashes, --jobs 2, what ran recorded and stamped', async () => {
    await storeQuiet(150);
    const h = readFileSync(join(dir, 'util.h'), 'utf8');
    // A comment: the objects come out byte-identical, the client cuts the link off.
    appendFileSync(join(dir, 'util.h'), '/* served comment */\n');
    const before = readFileSync(join(dir, 'app'));
    const r = client(['rebuild', 'app', '--jobs', '2'], { PROV_REBUILD_TRACE: 'json', PROV_CLIENT_TRACE: '1' });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(served(r), `not served: ${r.stderr}`);
    assert.equal(r.stdout, 'not run: cc -g -o app main.o util.o plain.o m3.o (the commands it depends on re-made byte-identical outputs)\n'
      + 'rebuilt app: ran 3 of 5 commands, 1 cut off\n');
    assert.ok(readFileSync(join(dir, 'app')).equals(before), 'the link ran although it was cut off');
    const clientTrace = r.stderr.split('\n').find((x) => x.startsWith('{"client"'));
    assert.ok(clientTrace?.includes('first command spawned'), `the client spawned nothing: ${r.stderr}`);
    // What the client ran is recorded and stamped: the command line finds everything up to date.
    await storeQuiet(150);
    const j = cli(['rebuild', 'app', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual((JSON.parse(j.stdout) as { ran: unknown[] }).ran, []);
    // A real change: every compile that reads the header, then the link.
    writeFileSync(join(dir, 'util.h'), h.replace('#define OFFSET 1', '#define OFFSET 2'));
    try {
      const r2 = client(['rebuild', 'app', '--jobs', '2']);
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(r2.stdout, 'rebuilt app: ran 4 of 5 commands\n');
      assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '43\n');
    } finally {
      writeFileSync(join(dir, 'util.h'), h);
    }
    const r3 = client(['rebuild', 'app']);
    assert.equal(r3.code, 0, r3.stderr);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '42\n');
  });

  it('the client starts the first stale commands itself (fast start) before the server reads its request; what they do is recorded', async () => {
    // After a served rebuild the server leaves a start file beside the shortcut and, armed, a start token.
    const warmUp = client(['rebuild', 'app']);
    assert.equal(warmUp.code, 0, warmUp.stderr);
    await storeQuiet(150);
    const token = await startToken();
    const t0 = process.hrtime.bigint();
    appendFileSync(join(dir, 'util.c'), 'int fast_a(void) { return 1; }\n');
    const r = client(['rebuild', 'app'], { PROV_CLIENT_TRACE: '1' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'rebuilt app: ran 2 of 5 commands\n');
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '42\n');
    const names = (JSON.parse(r.stderr.split('\n').find((x) => x.startsWith('{"client"'))!) as { client: Array<{ name: string }> }).client.map((m) => m.name);
    assert.ok(names.includes('start token taken') && names.indexOf('first command spawned') < names.indexOf('request sent'),
      `the client did not start the compile itself: ${names.join(', ')}`);
    // The compile it started was captured: the store has the util.o it made.
    await storeQuiet(150);
    const l = cli(['lineage', join(dir, 'util.o'), '--json', '--depth', '1']);
    assert.equal(l.code, 0, l.stderr);
    const g = JSON.parse(l.stdout) as { root: string; nodes: Array<{ id: string; ts: number }> };
    assert.ok(BigInt(g.nodes.find((n) => n.id === g.root)!.ts) > t0, 'the store lacks the util.o the fast-started compile made');
    // A header change with --jobs 2: two compiles started by the client, the third and the link after the server's answer.
    const h = readFileSync(join(dir, 'util.h'), 'utf8');
    await startToken();
    writeFileSync(join(dir, 'util.h'), h.replace('#define OFFSET 1', '#define OFFSET 2'));
    try {
      const r2 = client(['rebuild', 'app', '--jobs', '2'], { PROV_CLIENT_TRACE: '1' });
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(r2.stdout, 'rebuilt app: ran 4 of 5 commands\n');
      assert.ok(r2.stderr.includes('start token taken'), `no fast start: ${r2.stderr}`);
      assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '43\n');
    } finally {
      writeFileSync(join(dir, 'util.h'), h);
    }
    await storeQuiet(150);
    const back = client(['rebuild', 'app']);
    assert.equal(back.code, 0, back.stderr);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '42\n');
    // The command line agrees everything is up to date (what the client started was stamped).
    await storeQuiet(150);
    const j = cli(['rebuild', 'app', '--json']);
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual((JSON.parse(j.stdout) as { ran: unknown[] }).ran, []);
  });

  it('while a client that took the start token has not been served, other requests wait for it (they would run its commands a second time)', async () => {
    await storeQuiet(150);
    const token = await startToken();
    // "A" takes the token, as a client starting commands itself does…
    renameSync(token, `${token}.A`);
    const id = readFileSync(`${token}.A`, 'utf8').split('\0')[1]!;
    rmSync(`${token}.A`);
    const order: string[] = [];
    // …then "B", a request that started nothing, arrives first: it must wait for A's.
    const b = spawn(CLIENT, ['--home', home, 'rebuild', 'app', '--dry-run'], { cwd: dir, env, stdio: 'ignore' });
    const bDone = new Promise<void>((r) => b.once('exit', () => { order.push('B'); r(); }));
    await new Promise((r) => setTimeout(r, 300));
    // A dry-run takes milliseconds: B still running after 300 ms is B waiting for A.
    assert.equal(b.exitCode, null, 'a request was served while a client that took the start token had not asked yet');
    // A's request (prov4, naming the token, nothing started after all).
    const f = ['prov4', dir, '000', '22', '1', id, '4', '--home', home, 'rebuild', 'app', '1', `PATH=${process.env.PATH}`];
    const bodyA = Buffer.from(f.map((x) => `${x}\0`).join(''));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(bodyA.length);
    const { connect } = await import('node:net');
    const aDone = new Promise<void>((resolve, reject) => {
      const c = connect(rebuildSocketPath(rt), () => c.write(Buffer.concat([len, bodyA])));
      // A is answered when its first frame arrives, not when its socket closes: a socket's close
      // comes in a later phase of the event loop than a child's exit seen in the same turn.
      c.once('data', () => order.push('A'));
      c.on('data', () => undefined);
      c.once('close', () => resolve());
      c.once('error', reject);
    });
    await Promise.all([aDone, bDone]);
    assert.deepEqual(order, ['A', 'B'], 'a request was served while a client that took the start token waited');
    assert.equal(b.exitCode, 0);
  });

  it('a no-op is answered by the client itself from the shortcut (no server, no node); a change is not', async () => {
    const none = mkdtempSync('/tmp/prov-rbs-none-');
    try {
      // The shortcut trusts the store's files once they are 100 ms old; a no-op then (re)writes it.
      // The server's background ingest of the last test may still write them on a loaded machine.
      await storeQuiet(150);
      assert.equal(cli(['rebuild', 'app']).stdout, 'app: up to date (5 recorded commands)\n');
      // No server there, and node "fails": only the client's own check can answer.
      const alone = { PROV_RUNTIME_DIR: none, PROV_NODE: '/bin/false' };
      const a = client(['rebuild', 'app'], alone);
      assert.deepEqual(a, { code: 0, stdout: 'app: up to date (5 recorded commands)\n', stderr: '' });
      // --jobs does not change the answer: the client answers with it too (either order).
      assert.deepEqual(client(['rebuild', '--jobs', '2', 'app'], alone), a);
      assert.deepEqual(client(['rebuild', 'app', '-j', '1'], alone), a);
      appendFileSync(join(dir, 'util.c'), '/* changed */\n');
      const b = client(['rebuild', 'app'], alone);
      assert.notEqual(b.code, 0, 'a changed input must not be answered from the shortcut');
      assert.equal(b.stdout, '');
    } finally {
      rmSync(none, { recursive: true, force: true });
    }
  });

  it('the commands get the client\'s umask', () => {
    appendFileSync(join(dir, 'plain.c'), 'int served_umask;\n');
    rmSync(join(dir, 'plain.o'));
    const r = spawnSync('/bin/sh', ['-c', 'umask 077; exec "$0" "$@"', CLIENT, '--home', home, 'rebuild', 'app'], { encoding: 'utf8', cwd: dir, env: { ...env, PROV_REBUILD_TRACE: 'json' } });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(served({ code: r.status, stdout: r.stdout, stderr: r.stderr }), `not served: ${r.stderr}`);
    assert.equal(statSync(join(dir, 'plain.o')).mode & 0o777, 0o600);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '42\n');
  });

  it('a failing command: its output and exit code come through as from the command line', () => {
    const src = readFileSync(join(dir, 'util.c'), 'utf8');
    try {
      writeFileSync(join(dir, 'util.c'), `${src}int broken(void) { return nope; }\n`);
      const a = client(['rebuild', 'app'], { PROV_REBUILD_TRACE: 'json' });
      assert.ok(served(a), `not served: ${a.stderr}`);
      assert.equal(a.code, 1, a.stderr);
      assert.match(a.stderr, /'nope' undeclared/);
      assert.match(a.stderr, /prov rebuild: `cc -O1 -g -c util\.c -o util\.o` failed \(exit 1\); stopped/);
      const b = cli(['rebuild', 'app']);
      assert.equal(b.code, 1);
      assert.equal(a.stdout, b.stdout);
      assert.equal(a.stderr.split('\n').filter((x) => !x.startsWith('{"trace"')).join('\n'), b.stderr);
    } finally {
      writeFileSync(join(dir, 'util.c'), src);
    }
    const ok = client(['rebuild', 'app']);
    assert.equal(ok.code, 0, ok.stderr);
  });

  it('a client that goes away (Ctrl-C) interrupts its commands: nothing runs on for nobody', async () => {
    writeFileSync(join(dir, 'slow.in'), 'one\n');
    writeFileSync(join(dir, 'slow.sh'), '#!/bin/sh\necho started > slow.started\nsleep 3\ncat slow.in > slow.out\n', { mode: 0o755 });
    await record(cfg, dir, ['./slow.sh']);
    assert.equal(readFileSync(join(dir, 'slow.out'), 'utf8'), 'one\n');
    rmSync(join(dir, 'slow.started'));
    writeFileSync(join(dir, 'slow.in'), 'two\n');
    const c = spawn(CLIENT, ['--home', home, 'rebuild', 'slow.out'], { cwd: dir, env, stdio: 'ignore' });
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    for (let i = 0; !existsSync(join(dir, 'slow.started')); i++) {
      if (i > 400) assert.fail('the served rebuild did not start slow.sh within 20 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    process.kill(c.pid!, 'SIGINT'); // our own child: what Ctrl-C does to the client
    await exited;
    await new Promise((r) => setTimeout(r, 3500)); // past the time slow.sh would have finished
    assert.equal(readFileSync(join(dir, 'slow.out'), 'utf8'), 'one\n', 'the interrupted command ran on and wrote its output');
    const again = client(['rebuild', 'slow.out']);
    assert.ok(again.code === 0, `the server did not serve the next request: ${again.stderr}`);
    assert.equal(readFileSync(join(dir, 'slow.out'), 'utf8'), 'two\n');
  });

  it('other commands, and every command when no server listens, run the command line', () => {
    const help = client(['rebuild', '--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: prov rebuild/);
    const empty = mkdtempSync('/tmp/prov-rbs-none-');
    try {
      const a = client(['rebuild', 'app', '--dry-run', '--explain'], { PROV_RUNTIME_DIR: empty, PROV_REBUILD_TRACE: 'json' });
      assert.equal(a.code, 0, a.stderr);
      assert.ok(!served(a), 'answered without a server?');
      assert.match(a.stderr, /"name":"node: bootstrap complete"/, 'the fallback is node dist/cli/main.js');
      assert.equal(a.stdout, cli(['rebuild', 'app', '--dry-run', '--explain']).stdout);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    const off = client(['rebuild', 'app', '--dry-run'], { PROV_NO_SERVER: '1', PROV_REBUILD_TRACE: 'json' });
    assert.equal(off.code, 0, off.stderr);
    assert.ok(!served(off));
  });

  it('a non-root peer cannot reach the socket', () => {
    const sock = rebuildSocketPath(rt);
    const probe = `require('net').connect(${JSON.stringify(sock)}).on('connect',()=>{console.log('connected');process.exit(0)}).on('error',(e)=>{console.log(e.code);process.exit(0)})`;
    const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', uid: 65534, gid: 65534 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'EACCES');
  });

  it('refuses a peer of another uid (SO_PEERCRED) even when the socket\'s permissions let it connect', () => {
    const sock = rebuildSocketPath(rt);
    // The checkout may sit where uid 65534 cannot reach (a 0700 temp dir, root's home): its own copy of the client.
    const bin = mkdtempSync('/tmp/prov-rbs-client-');
    chmodSync(bin, 0o755);
    const client65534 = join(bin, 'prov');
    copyFileSync(CLIENT, client65534);
    chmodSync(client65534, 0o755);
    // Loosen what normally keeps others out, so the peer check alone stands between them and the server.
    chmodSync(rt, 0o755);
    chmodSync(join(rt, 'rebuild'), 0o755);
    chmodSync(sock, 0o666);
    try {
      const r = spawnSync(client65534, ['--home', '/nonexistent', 'rebuild', 'app', '--dry-run'], { encoding: 'utf8', cwd: '/', uid: 65534, gid: 65534, env: { PATH: process.env.PATH, PROV_RUNTIME_DIR: rt } });
      assert.equal(r.status, 4, `${r.error?.message ?? ''}${r.stdout}${r.stderr}`);
      assert.match(r.stderr, /the rebuild server \(uid 0\) serves only root and uid 0; pid \d+ runs as uid 65534: refused/);
      assert.equal(r.stdout, '');
    } finally {
      chmodSync(sock, 0o600);
      chmodSync(join(rt, 'rebuild'), 0o700);
      chmodSync(rt, 0o700);
      rmSync(bin, { recursive: true, force: true });
    }
    // Root (the socket's owner here) is still served.
    const ok = client(['rebuild', 'app', '--dry-run'], { PROV_REBUILD_TRACE: 'json' });
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(served(ok), `not served: ${ok.stderr}`);
  });

  it('prov up starts it in the background and prov down stops it (startRebuildServer / stopRebuildServer)', async () => {
    const own = mkdtempSync('/tmp/prov-rbs-up-');
    const logPath = join(own, 'log', 'server.log');
    try {
      assert.equal(runningRebuildServer(own), null);
      const a = await startRebuildServer({ runtimeDir: own, logPath });
      assert.equal(a.started, true);
      assert.equal(runningRebuildServer(own), a.pid);
      assert.equal(readFileSync(join(own, 'rebuild', 'server.pid'), 'utf8').trim(), String(a.pid));
      // A second `prov up` finds it running.
      assert.deepEqual(await startRebuildServer({ runtimeDir: own, logPath }), { pid: a.pid, started: false });
      const r = client(['rebuild', 'app', '--dry-run'], { PROV_RUNTIME_DIR: own, PROV_REBUILD_TRACE: 'json' });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(served(r), `not served by the started server: ${r.stderr}`);
      assert.equal(await stopRebuildServer(own), true);
      assert.equal(runningRebuildServer(own), null);
      assert.equal(existsSync(rebuildSocketPath(own)), false, 'its socket is removed');
      assert.equal(await stopRebuildServer(own), false, 'nothing left to stop');
      assert.match(readFileSync(logPath, 'utf8'), /listening on/);
    } finally {
      const left = runningRebuildServer(own);
      if (left) process.kill(left, 'SIGTERM');
      rmSync(own, { recursive: true, force: true });
    }
  });

  it('exits by itself after its idle time, removing its socket', () => {
    const own = mkdtempSync('/tmp/prov-rbs-idle-');
    try {
      const mod = fileURLToPath(new URL('../../cli/rebuild-server.js', import.meta.url));
      // 0.005 minutes = 300 ms without a request.
      const script = `const { runRebuildServer } = await import(${JSON.stringify(mod)}); const t0 = Date.now();
        const code = await runRebuildServer({ idleMinutes: 0.005, socketPath: ${JSON.stringify(rebuildSocketPath(own))} });
        console.log(code, Date.now() - t0 >= 300); process.exit(code);`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env, timeout: 30_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), '0 true');
      assert.equal(existsSync(rebuildSocketPath(own)), false);
    } finally {
      rmSync(own, { recursive: true, force: true });
    }
  });

  it('stops on SIGTERM by pid, removing its socket', async () => {
    const s = server!;
    const gone = new Promise<number | null>((r) => s.once('exit', (code) => r(code)));
    process.kill(s.pid!, 'SIGTERM');
    assert.equal(await gone, 0);
    assert.equal(existsSync(rebuildSocketPath(rt)), false);
    assert.equal(existsSync(join(rt, 'rebuild', 'server.pid')), false);
  });
});
