/**
 * @module test/rebuild/rebuild.test
 * `prov rebuild` on real builds recorded live (root, real eBPF capture): a multi-file C
 * program built by make, then no change, one .c changed (byte-identical to make's result),
 * the header changed, an output deleted; and a shell-script pipeline (sort | uniq, python3).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCaptured } from '../../ebpf/run-captured.js';
import { captureToJournal } from '../../ebpf/capture.js';
import { runPipeline } from '../../collector/pipeline.js';
import { openStore } from '../../graph/open.js';
import { ebpfDecoders } from '../../ebpf/decode.js';
import { resolveConfig, type ProvConfig } from '../../cli/config.js';
import { joinStatePath } from '../../cli/actions/ingest.js';
import { writeCProject, writePipelineProject } from './project.js';
import { detachWarm } from '../../ebpf/warm.js';
import { attachedPrograms } from '../../ebpf/loader.js';

const CLI = fileURLToPath(new URL('../../cli/main.js', import.meta.url));
/** The warm attach these tests' rebuilds leave (their own, so a host's is never touched); detached at the end. */
const WARM_PIN = `/sys/fs/bpf/prov-rbtest-warm-${process.pid}`;
after(() => { detachWarm({ pinDir: WARM_PIN }); });

function needRoot(): void {
  if (process.getuid?.() !== 0) assert.fail('rebuild integration tests need root (eBPF capture); run npm test as root');
}

/** Record `argv` in dir under capture into cfg's journal and ingest it. */
export async function record(cfg: ProvConfig, dir: string, argv: string[], env: NodeJS.ProcessEnv = {}, inherit = true): Promise<void> {
  const r = await runCaptured(argv, { cwd: dir, journalDir: cfg.journal, env: { LC_ALL: 'C', ...env, ...(inherit ? process.env : {}) } });
  assert.equal(r.code, 0, `${argv.join(' ')} failed: ${r.stderr}`);
  assert.equal(r.drain.lost, 0, 'capture lost events');
  await ingest(cfg);
}

export async function ingest(cfg: ProvConfig): Promise<void> {
  const store = await openStore(cfg.store);
  try {
    await runPipeline({ journalDir: cfg.journal, store, statePath: joinStatePath(cfg), decoders: ebpfDecoders });
  } finally {
    await store.close();
  }
}

interface RebuildJson {
  commands: Array<{ argv: string[]; stale: boolean; reasons: string[]; env?: string[] }>;
  hazards: Array<{ kind: string; message: string }>;
  ran: Array<{ argv: string[]; code: number }>;
  cutoff: Array<{ argv: string[]; why: string }>;
  failed: unknown;
  staleAfter?: unknown[];
  capture: string;
}

export function rebuildCli(cfg: ProvConfig, file: string, ...flags: string[]): { code: number | null; json: RebuildJson; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, '--home', cfg.home, 'rebuild', file, '--json', ...flags], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', PROV_REBUILD_PIN_DIR: WARM_PIN } });
  let json: RebuildJson;
  try { json = JSON.parse(r.stdout) as RebuildJson; } catch { assert.fail(`prov rebuild printed no JSON (exit ${r.status}): ${r.stdout}\n${r.stderr}`); }
  return { code: r.status, json, stderr: r.stderr };
}

const ranArgs = (j: RebuildJson): string[] => j.ran.map((r) => r.argv.join(' ')).sort();
/** Why the commands that ran were stale (assertion messages). */
const why = (j: RebuildJson): string => JSON.stringify(j.commands.filter((c) => c.stale).map((c) => [c.argv.join(' '), c.reasons]));

describe('prov rebuild: a C program recorded under make', () => {
  let home: string, dir: string, cfg: ProvConfig;
  before(async () => {
    needRoot();
    home = mkdtempSync(join(tmpdir(), 'prov-rb-home-'));
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rb-c-')));
    cfg = resolveConfig({ home });
    writeCProject(dir, 4);
    await record(cfg, dir, ['make']);
  });
  after(() => {
    if (home) rmSync(home, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('plans commands at the grain a person names them (cc -c …, cc -o app …), not make, not cc1/as/ld', () => {
    const { code, json } = rebuildCli(cfg, join(dir, 'app'), '--dry-run');
    assert.equal(code, 0);
    const argvs = json.commands.map((c) => c.argv.join(' ')).sort();
    assert.deepEqual(argvs, [
      'cc -O1 -g -c m3.c -o m3.o', 'cc -O1 -g -c main.c -o main.o', 'cc -O1 -g -c plain.c -o plain.o',
      'cc -O1 -g -c util.c -o util.o', 'cc -g -o app main.o util.o plain.o m3.o',
    ]);
  });

  it('(a) nothing changed: nothing runs', () => {
    const { code, json } = rebuildCli(cfg, join(dir, 'app'));
    assert.equal(code, 0);
    assert.deepEqual(json.ran, [], why(json));
    assert.ok(json.commands.every((c) => !c.stale), JSON.stringify(json.commands.filter((c) => c.stale)));
  });

  it('(b) one .c changed: exactly its compile and the link run; the binary equals make\'s', async () => {
    appendFileSync(join(dir, 'util.c'), 'int unused_helper(void) { return 7; }\n');
    const { code, json, stderr } = rebuildCli(cfg, join(dir, 'app'));
    assert.equal(code, 0, stderr);
    assert.deepEqual(ranArgs(json), ['cc -O1 -g -c util.c -o util.o', 'cc -g -o app main.o util.o plain.o m3.o'], why(json));
    assert.deepEqual(json.staleAfter, []);
    assert.equal(json.capture, 'warm (attached now)', 'the first rebuild that runs something leaves a warm attach');
    assert.ok(attachedPrograms(WARM_PIN).length > 0, 'warm attach pinned');
    const out = spawnSync(join(dir, 'app'), { encoding: 'utf8' });
    assert.equal(out.stdout, '42\n');
    const rebuilt = readFileSync(join(dir, 'app'));
    copyFileSync(join(dir, 'app'), join(dir, 'app.rebuilt'));
    // make from the same sources in the same directory (debug info holds paths), recorded.
    await record(cfg, dir, ['make', '-B']);
    assert.ok(rebuilt.equals(readFileSync(join(dir, 'app'))), 'rebuilt app differs from make\'s');
    unlinkSync(join(dir, 'app.rebuilt'));
  });

  it('after a recorded make -B: nothing runs', () => {
    const { json } = rebuildCli(cfg, join(dir, 'app'));
    assert.deepEqual(json.ran, [], why(json));
  });

  it('(c) the header changed: exactly the compiles that read it (the link only when an object changed)', () => {
    const compiles = ['cc -O1 -g -c m3.c -o m3.o', 'cc -O1 -g -c main.c -o main.o', 'cc -O1 -g -c util.c -o util.o'];
    // A comment: the objects come out byte-identical, so the link is cut off.
    appendFileSync(join(dir, 'util.h'), '/* changed */\n');
    const { code, json, stderr } = rebuildCli(cfg, join(dir, 'app'));
    assert.equal(code, 0, stderr);
    assert.deepEqual(ranArgs(json), compiles, why(json));
    assert.deepEqual(json.cutoff.map((c) => c.argv.join(' ')), ['cc -g -o app main.o util.o plain.o m3.o']);
    assert.deepEqual(json.staleAfter, []);
    // A real change: the compiles that read it, then the link.
    writeFileSync(join(dir, 'util.h'), readFileSync(join(dir, 'util.h'), 'utf8').replace('#define OFFSET 1', '#define OFFSET 2'));
    const r2 = rebuildCli(cfg, join(dir, 'app'));
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(r2.json.capture, 'warm', 'later rebuilds reuse the warm attach');
    assert.deepEqual(ranArgs(r2.json), [...compiles, 'cc -g -o app main.o util.o plain.o m3.o'], why(r2.json));
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '43\n');
    assert.deepEqual(rebuildCli(cfg, join(dir, 'app')).json.ran, []);
  });

  it('(d) an output deleted: the command that made it', () => {
    unlinkSync(join(dir, 'app'));
    const { code, json, stderr } = rebuildCli(cfg, join(dir, 'app'));
    assert.equal(code, 0, stderr);
    assert.deepEqual(ranArgs(json), ['cc -g -o app main.o util.o plain.o m3.o'], why(json));
    assert.ok(statSync(join(dir, 'app')).isFile());
    // An object deleted: its compile runs; it comes out identical, so the link is cut off.
    unlinkSync(join(dir, 'plain.o'));
    const r2 = rebuildCli(cfg, join(dir, 'app'));
    assert.deepEqual(ranArgs(r2.json), ['cc -O1 -g -c plain.c -o plain.o'], why(r2.json));
    assert.deepEqual(r2.json.cutoff.map((c) => c.argv.join(' ')), ['cc -g -o app main.o util.o plain.o m3.o']);
    const r3 = rebuildCli(cfg, join(dir, 'app'));
    assert.deepEqual(ranArgs(r3.json), [], why(r3.json));
  });

  it('a rebuild finding the warm attach in use attaches privately; --cold too; both record the new versions', async () => {
    const { createServer } = await import('node:net');
    const holder = createServer();
    await new Promise<void>((res, rej) => { holder.once('error', rej); holder.listen(`\0prov-warm:${WARM_PIN}`, res); });
    try {
      appendFileSync(join(dir, 'plain.c'), 'int busy_a(void) { return 1; }\n');
      // spawnSync would block the holder's event loop; the socket is bound either way.
      const r = rebuildCli(cfg, join(dir, 'app'));
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.json.capture, 'private (warm attach busy)');
      assert.deepEqual(ranArgs(r.json), ['cc -O1 -g -c plain.c -o plain.o', 'cc -g -o app main.o util.o plain.o m3.o'], why(r.json));
      assert.deepEqual(r.json.staleAfter, []);
    } finally {
      holder.close();
    }
    appendFileSync(join(dir, 'plain.c'), 'int cold_a(void) { return 1; }\n');
    const c = rebuildCli(cfg, join(dir, 'app'), '--cold');
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.json.capture, 'cold');
    assert.deepEqual(c.json.staleAfter, []);
    assert.deepEqual(rebuildCli(cfg, join(dir, 'app')).json.ran, []);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '43\n');
  });

  it('without --json the ingest finishes in the background; the next prov lineage and prov rebuild see the new versions', () => {
    appendFileSync(join(dir, 'util.c'), 'int deferred_a(void) { return 1; }\n');
    const t0 = process.hrtime.bigint(); // CLOCK_MONOTONIC, the clock capture stamps records with
    const env = { ...process.env, NO_COLOR: '1', PROV_REBUILD_PIN_DIR: WARM_PIN };
    const r = spawnSync(process.execPath, [CLI, '--home', cfg.home, 'rebuild', join(dir, 'app')], { encoding: 'utf8', env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /rebuilt .*app: ran 2 of 5 commands/);
    assert.equal(spawnSync(join(dir, 'app'), { encoding: 'utf8' }).stdout, '43\n', 'the outputs are in place when the command returns');
    // Run at once: lineage waits for the background ingest (the store's pending-ingest marker).
    const l = spawnSync(process.execPath, [CLI, '--home', cfg.home, 'lineage', join(dir, 'app'), '--json', '--depth', '1'], { encoding: 'utf8', env });
    assert.equal(l.status, 0, l.stderr);
    const root = (JSON.parse(l.stdout) as { root: string; nodes: Array<{ id: string; ts: number }> });
    const version = root.nodes.find((n) => n.id === root.root)!;
    assert.ok(BigInt(version.ts) > t0, `lineage shows the version of app from before the rebuild (${version.ts} < ${t0})`);
    const again = rebuildCli(cfg, join(dir, 'app'));
    assert.deepEqual(again.json.ran, [], why(again.json));
    assert.equal(again.json.capture, 'none');
    assert.equal(existsSync(`${join(cfg.home, 'graph.db')}.ingest-pending`), false, 'the marker is gone');
    assert.equal(readFileSync(join(cfg.home, 'rebuild', 'finish.log'), 'utf8').trim(), '', 'the background ingest reported nothing');
    // Nothing changed since: a plain rebuild answers from the no-op shortcut; a changed input goes the full way.
    const plain = (): { out: string; shortcut: boolean } => {
      const p = spawnSync(process.execPath, [CLI, '--home', cfg.home, 'rebuild', join(dir, 'app')], { encoding: 'utf8', env: { ...env, PROV_REBUILD_TRACE: 'json' } });
      assert.equal(p.status, 0, p.stderr);
      return { out: p.stdout, shortcut: p.stderr.includes('answered from the no-op shortcut') };
    };
    const deadline = Date.now() + 5000; // the store's files must be older than the fingerprint's freshness window
    let q = plain();
    while (!q.shortcut && Date.now() < deadline) { spawnSync('sleep', ['0.2']); q = plain(); }
    assert.ok(q.shortcut, 'the no-op shortcut was never used');
    assert.match(q.out, /up to date \(5 recorded commands\)/);
    appendFileSync(join(dir, 'util.c'), 'int deferred_b(void) { return 1; }\n');
    const changed = plain();
    assert.equal(changed.shortcut, false);
    assert.match(changed.out, /rebuilt .*app: ran 2 of 5 commands/);
  });

  it('records a dead background ingest left behind are ingested by the next rebuild (its marker orphaned)', async () => {
    // make re-makes app under capture, but nothing ingests it: as if the background ingest died.
    appendFileSync(join(dir, 'util.c'), 'int orphan_a(void) { return 1; }\n');
    const m = await runCaptured(['make'], { cwd: dir, journalDir: cfg.journal, env: { LC_ALL: 'C', ...process.env } });
    assert.equal(m.code, 0, m.stderr);
    const db = join(cfg.home, 'graph.db');
    const dead = spawnSync('true').pid;
    writeFileSync(`${db}.ingest-pending`, JSON.stringify({ pid: dead, start: '1', what: 'prov rebuild (ingest)' }), { mode: 0o600 });
    // Without the ingest the store's app is the old version: app would look modified and re-link.
    const r = rebuildCli(cfg, join(dir, 'app'));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json.ran, [], why(r.json));
    assert.equal(existsSync(`${db}.ingest-pending`), false);
  });

  it('a touched but unchanged input is not a change once stamped (content compared)', () => {
    const t = new Date(Date.now() + 2000);
    spawnSync('touch', ['-d', t.toISOString(), join(dir, 'plain.c')]);
    const { json } = rebuildCli(cfg, join(dir, 'app'));
    assert.deepEqual(json.ran, [], why(json));
  });

  it('the warm attach is detached on request (what prov capture stop / prov down call): nothing stays pinned', () => {
    assert.ok(attachedPrograms(WARM_PIN).length > 0);
    assert.ok(detachWarm({ pinDir: WARM_PIN }).programs > 0);
    assert.equal(existsSync(WARM_PIN), false);
    // The next rebuild attaches again.
    appendFileSync(join(dir, 'plain.c'), 'int again(void) { return 1; }\n');
    const r = rebuildCli(cfg, join(dir, 'app'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.capture, 'warm (attached now)');
    assert.deepEqual(r.json.staleAfter, []);
  });
});

describe('prov rebuild: a shell-script pipeline (sort | uniq, python3)', () => {
  let home: string, dir: string, cfg: ProvConfig;
  before(async () => {
    needRoot();
    home = mkdtempSync(join(tmpdir(), 'prov-rb-home-'));
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rb-sh-')));
    cfg = resolveConfig({ home });
    writePipelineProject(dir);
    // Capture keeps a bounded prefix of the environment and the shell that starts the command
    // re-orders it; under `npm test` the npm_* variables alone fill the bound. So this script
    // is recorded with a small environment that certainly fits, secret included.
    await record(cfg, dir, ['sh', './gen.sh'], { PATH: process.env.PATH, HOME: process.env.HOME, PROV_TEST_API_TOKEN: 'hunter2-secret' }, false);
  });
  after(() => {
    if (home) rmSync(home, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('redacts secret-looking environment values in --json and --explain', () => {
    const { json } = rebuildCli(cfg, join(dir, 'counts.txt'), '--dry-run');
    const env = json.commands[0]!.env ?? [];
    assert.ok(env.includes('PROV_TEST_API_TOKEN=<redacted>'), `recorded env lacks the redacted token: ${env.slice(0, 5).join(' ')}`);
    const explain = spawnSync(process.execPath, [CLI, '--home', cfg.home, 'rebuild', join(dir, 'counts.txt'), '--dry-run', '--explain'], { encoding: 'utf8' });
    assert.equal(explain.status, 0, explain.stderr);
    assert.match(explain.stdout, /PROV_TEST_API_TOKEN=<redacted>/);
    assert.ok(!explain.stdout.includes('hunter2') && !JSON.stringify(json).includes('hunter2'));
  });

  it('re-runs the script (its sort | uniq step is not runnable alone) when words.txt changes', () => {
    assert.deepEqual(rebuildCli(cfg, join(dir, 'counts.txt')).json.ran, []);
    appendFileSync(join(dir, 'words.txt'), 'kiwi\n');
    const { code, json, stderr } = rebuildCli(cfg, join(dir, 'counts.txt'));
    assert.equal(code, 0, stderr);
    assert.deepEqual(ranArgs(json), ['sh ./gen.sh'], why(json));
    assert.equal(readFileSync(join(dir, 'counts.txt'), 'utf8'), '4 apple,fig,kiwi,pear\n');
    const again = rebuildCli(cfg, join(dir, 'counts.txt')).json;
    assert.deepEqual(again.ran, [], why(again));
  });
});

describe('prov rebuild: a command recorded as another user runs as that user', () => {
  let home: string, dir: string, cfg: ProvConfig;
  before(async () => {
    needRoot();
    home = mkdtempSync(join(tmpdir(), 'prov-rb-home-'));
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-rb-uid-')));
    chmodSync(dir, 0o777);
    cfg = resolveConfig({ home });
    writeFileSync(join(dir, 'words.txt'), 'b\na\n', { mode: 0o644 });
    // Held as uid 65534 until capture is attached, like ebpf/run-captured but as another user.
    const child = spawn('sh', ['-c', 'read -r _ || exit 97; exec sh -c "id -u > uid.txt; sort words.txt > sorted.txt"'], {
      cwd: dir, uid: 65534, gid: 65534, stdio: ['pipe', 'ignore', 'inherit'],
    });
    const exited = new Promise<number | null>((r) => child.on('close', (c) => r(c)));
    const handle = await captureToJournal({ journalDir: cfg.journal, pinDir: `/sys/fs/bpf/prov-rbtest-${process.pid}`, pidTree: [child.pid!], ringBytes: 4 << 20 });
    try {
      child.stdin!.end('\n');
      assert.equal(await exited, 0);
    } finally {
      await handle.stop();
    }
    await ingest(cfg);
    assert.equal(readFileSync(join(dir, 'uid.txt'), 'utf8'), '65534\n');
  });
  after(() => {
    if (home) rmSync(home, { recursive: true, force: true });
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('re-runs it as uid 65534, not as root', () => {
    unlinkSync(join(dir, 'uid.txt'));
    appendFileSync(join(dir, 'words.txt'), 'c\n');
    const { code, json, stderr } = rebuildCli(cfg, join(dir, 'sorted.txt'));
    assert.equal(code, 0, stderr);
    assert.deepEqual(ranArgs(json), ['sh -c id -u > uid.txt; sort words.txt > sorted.txt'], why(json));
    assert.equal(readFileSync(join(dir, 'uid.txt'), 'utf8'), '65534\n');
    assert.equal(statSync(join(dir, 'uid.txt')).uid, 65534);
    assert.equal(readFileSync(join(dir, 'sorted.txt'), 'utf8'), 'a\nb\nc\n');
  });
});
