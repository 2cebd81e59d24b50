/**
 * The warm attach of `prov rebuild` (root, real eBPF): reused without a new load, records the
 * tree of the process using it and nothing of a process an earlier user left running.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJournalReader } from '../collector/journal/reader.js';
import type { ProvEvent } from '../collector/events.js';
import { ebpfDecoders } from './decode.js';
import { attachedPrograms, trackPid } from './loader.js';
import { warmCapture, detachWarm, recoverWarm, setWarmResident, prearmWarm, disarmWarm, setStartToken, selfStartServed } from './warm.js';

const run = (argv: string[], opts: { detached?: boolean } = {}): Promise<number | null> => new Promise((resolve) => {
  const c = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', detached: opts.detached });
  if (opts.detached) { c.unref(); resolve(null); } else c.on('close', resolve);
});

function events(journalDir: string, stream: string): ProvEvent[] {
  const r = openJournalReader(journalDir, { decoders: ebpfDecoders });
  try {
    const out: ProvEvent[] = [];
    for (let b = r.readBatch(100000); b.length; b = r.readBatch(100000)) for (const x of b) if (x.stream === stream) out.push(x.event as ProvEvent);
    return out;
  } finally {
    r.close();
  }
}

const execs = (ev: ProvEvent[]): string[] => ev.filter((e) => e.op === 'exec').map((e) => (e as { argv?: string[] }).argv?.join(' ') ?? '');

describe('ebpf warm attach (prov rebuild)', () => {
  if (process.getuid?.() !== 0) assert.fail('the warm attach test needs root (eBPF)');
  const pinDir = `/sys/fs/bpf/prov-warmtest-${process.pid}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'prov-warm-state-'));
  const journalDir = mkdtempSync(join(tmpdir(), 'prov-warm-j-'));
  after(() => {
    detachWarm({ pinDir, stateDir });
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(journalDir, { recursive: true, force: true });
  });

  /**
   * A separate process takes the warm capture into `stream` (draining every `pumpMs`), runs
   * `body` (with `h` the handle and `spawnSync` in scope) and kills itself with SIGKILL.
   */
  const recordThenDie = (stream: string, pumpMs: number, body: string): ReturnType<typeof spawnSync> => {
    const mod = fileURLToPath(new URL('./warm.js', import.meta.url));
    const script = `const { warmCapture } = await import(${JSON.stringify(mod)});
      const { spawnSync } = await import('node:child_process');
      const h = await warmCapture({ journalDir: ${JSON.stringify(journalDir)}, stream: ${JSON.stringify(stream)}, pinDir: ${JSON.stringify(pinDir)}, stateDir: ${JSON.stringify(stateDir)}, ringBytes: 1 << 20, pumpMs: ${pumpMs} });
      if (!h) process.exit(3);
      ${body}
      process.kill(process.pid, 'SIGKILL');`;
    return spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  };

  it('attaches once, is reused, records only the current user\'s tree', async () => {
    const first = await warmCapture({ journalDir, stream: 'one', pinDir, stateDir, ringBytes: 1 << 20 });
    assert.ok(first, 'not busy');
    assert.equal(first.reused, false);
    assert.equal(await run(['sh', '-c', 'echo first-run > /dev/null']), 0);
    // Left running after this user stops: it stays tracked and emits into the idle ring.
    await run(['sh', '-c', 'sleep 0.3; exec sh -c "echo leftover-run > /dev/null"'], { detached: true });
    await first.stop();
    assert.ok(attachedPrograms(pinDir).length > 0, 'stays attached after stop');
    await new Promise((r) => setTimeout(r, 700));

    const second = await warmCapture({ journalDir, stream: 'two', pinDir, stateDir, ringBytes: 1 << 20 });
    assert.ok(second);
    assert.equal(second.reused, true, 'the attach of the first user is reused');
    assert.equal(await run(['sh', '-c', 'echo second-run > /dev/null']), 0);
    const stats = await second.stop();
    assert.equal(stats.lost, 0);

    const one = execs(events(journalDir, 'one'));
    const two = execs(events(journalDir, 'two'));
    assert.ok(one.some((a) => a.includes('first-run')), `first user's command recorded: ${JSON.stringify(one)}`);
    assert.ok(two.some((a) => a.includes('second-run')), `second user's command recorded: ${JSON.stringify(two)}`);
    assert.ok(!two.some((a) => a.includes('leftover-run')), `the process the first user left behind is not in the second's record: ${JSON.stringify(two)}`);
    assert.ok(!two.some((a) => a.includes('first-run')));
  });

  it('one user at a time: a second concurrent user is told it is busy', async () => {
    const a = await warmCapture({ journalDir, stream: 'a', pinDir, stateDir, ringBytes: 1 << 20 });
    assert.ok(a);
    try {
      assert.equal(await warmCapture({ journalDir, stream: 'b', pinDir, stateDir, ringBytes: 1 << 20 }), null);
    } finally {
      await a.stop();
    }
    const c = await warmCapture({ journalDir, stream: 'c', pinDir, stateDir, ringBytes: 1 << 20 });
    assert.ok(c, 'free again after stop');
    await c.stop();
  });

  it('a user killed after its drain but before its flush loses nothing: the next one journals what it owed, once', async () => {
    // A process that records two commands (the first made durable by the drain's own flushes,
    // the second only appended), then dies by SIGKILL before the flush (as a rebuild server that
    // answered first would).
    const r = recordThenDie('crash', 50, `spawnSync('sh', ['-c', 'echo crash-one > /dev/null']);
      await new Promise((r) => setTimeout(r, 200));
      spawnSync('sh', ['-c', 'echo crash-two > /dev/null']);
      await h.drain();`);
    assert.equal(r.signal, 'SIGKILL', `the recording process did not get as far as its drain: ${r.status} ${r.stderr}`);
    const before = execs(events(journalDir, 'crash'));
    assert.equal(before.filter((a) => a.includes('crash-one')).length, 1, 'the first command was journaled while it ran (the test needs part of the drain durable)');
    assert.equal(before.filter((a) => a.includes('crash-two')).length, 0, 'the second command was not flushed before the kill (the test needs it owed)');
    assert.ok(existsSync(join(stateDir, `${pinDir.split('/').pop()}.inflight.json`)), 'the claim is left behind');
    // What the rebuild server does at start (a later warm user does the same before tracking itself).
    assert.equal(await recoverWarm({ pinDir, stateDir }), true);
    const after = execs(events(journalDir, 'crash'));
    assert.equal(after.filter((a) => a.includes('crash-one')).length, 1, `crash-one exactly once: ${JSON.stringify(after)}`);
    assert.equal(after.filter((a) => a.includes('crash-two')).length, 1, `crash-two journaled, exactly once: ${JSON.stringify(after)}`);
    assert.equal(existsSync(join(stateDir, `${pinDir.split('/').pop()}.inflight.json`)), false, 'the claim is settled');
    // The next user starts clean and records only its own tree.
    const next = await warmCapture({ journalDir, stream: 'next', pinDir, stateDir, ringBytes: 1 << 20 });
    assert.ok(next);
    assert.equal(next.reused, true);
    assert.equal(await run(['sh', '-c', 'echo next-run > /dev/null']), 0);
    await next.stop();
    const n = execs(events(journalDir, 'next'));
    assert.ok(n.some((a) => a.includes('next-run')) && !n.some((a) => a.includes('crash-')), JSON.stringify(n));
  });

  it('a user killed while its commands ran, before anything was journaled: the next one journals it all', async () => {
    const r = recordThenDie('early', 60000, `spawnSync('sh', ['-c', 'echo early-run > /dev/null']);`);
    assert.equal(r.signal, 'SIGKILL', `the recording process did not get as far as its command: ${r.status} ${r.stderr}`);
    assert.deepEqual(execs(events(journalDir, 'early')), [], 'nothing journaled before the kill (short runs append at the end)');
    const next = await warmCapture({ journalDir, stream: 'after-early', pinDir, stateDir, ringBytes: 1 << 20 });
    assert.ok(next);
    await next.stop();
    const got = execs(events(journalDir, 'early'));
    assert.equal(got.filter((a) => a.includes('early-run')).length, 1, `journaled by the next user, once: ${JSON.stringify(got)}`);
    assert.ok(!execs(events(journalDir, 'after-early')).some((a) => a.includes('early-run')));
  });

  it('armed ahead in a resident process: the next capture with its options starts from it; other options, or another process asking, get it let go', async () => {
    setWarmResident(true);
    try {
      const opts = { journalDir, stream: 'armed', pinDir, stateDir, ringBytes: 1 << 20 };
      const h0 = await warmCapture(opts);
      assert.ok(h0);
      await h0.stop();
      assert.equal(await prearmWarm(), true, 'armed after a capture');
      const h1 = await warmCapture(opts);
      assert.ok(h1, 'the armed attach is taken');
      assert.equal(await run(['sh', '-c', 'echo armed-run > /dev/null']), 0);
      await h1.stop();
      assert.ok(execs(events(journalDir, 'armed')).some((a) => a.includes('armed-run')), 'the armed capture recorded its commands');
      // Other options: the armed attach is let go and taken again (not "busy").
      assert.equal(await prearmWarm(), true);
      const h2 = await warmCapture({ ...opts, stream: 'armed-other' });
      assert.ok(h2, 'other options: armed attach let go, lock taken again');
      await h2.stop();
      // Another process finds it locked, asks, and gets it.
      assert.equal(await prearmWarm(), true);
      const warmJs = fileURLToPath(new URL('./warm.js', import.meta.url));
      const code = `const m = await import(${JSON.stringify(warmJs)}); const h = await m.warmCapture(${JSON.stringify({ ...opts, stream: 'asker' })}); console.log(h ? 'got it' : 'busy'); if (h) await h.stop();`;
      const out = await new Promise<string>((resolve) => {
        const c = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
        let o = '';
        c.stdout!.on('data', (d: Buffer) => { o += d.toString(); });
        c.on('close', () => resolve(o.trim()));
      });
      assert.equal(out, 'got it', 'the armed holder let the asking process have the attach');
    } finally {
      await disarmWarm();
      setWarmResident(false);
    }
  });

  it('a start token taken by a client: what the ring holds then is journaled with the next capture, and the attach is not given away until its request is served', async () => {
    setWarmResident(true);
    const tokenPath = join(stateDir, 'start-token');
    setStartToken(tokenPath);
    const warmJs = fileURLToPath(new URL('./warm.js', import.meta.url));
    const opts = { journalDir, stream: 'token', pinDir, stateDir, ringBytes: 1 << 20 };
    const ask = (stream: string): Promise<string> => new Promise<string>((resolve) => {
      const code = `const m = await import(${JSON.stringify(warmJs)}); const h = await m.warmCapture(${JSON.stringify({ ...opts, stream })}); console.log(h ? 'got it' : 'busy'); if (h) await h.stop();`;
      const c = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
      let o = '';
      c.stdout!.on('data', (d: Buffer) => { o += d.toString(); });
      c.on('close', () => resolve(o.trim()));
    });
    try {
      const h0 = await warmCapture(opts);
      assert.ok(h0);
      await h0.stop();
      assert.equal(await prearmWarm(), true);
      assert.ok(existsSync(tokenPath), 'armed and idle, it leaves a start token');
      const [magic, id, tokenPin, tokenJournal] = readFileSync(tokenPath, 'utf8').split('\0');
      assert.deepEqual([magic, tokenPin, tokenJournal], ['PT1', pinDir, journalDir]);
      // A client takes it and starts a command, tracked, before any request.
      renameSync(tokenPath, `${tokenPath}.client`);
      const child = spawn('sh', ['-c', 'read go; sh -c "echo token-run > /dev/null"'], { stdio: ['pipe', 'ignore', 'inherit'] });
      trackPid(child.pid!, pinDir);
      child.stdin!.end('go\n');
      await new Promise((r) => child.once('close', r));
      // Another rebuild asking for the attach meanwhile is refused (it would drop those records).
      assert.equal(await ask('asker-refused'), 'busy');
      // The next capture (the client's request, or anyone's) keeps and journals them.
      const h1 = await warmCapture(opts);
      assert.ok(h1);
      await h1.stop();
      assert.ok(execs(events(journalDir, 'token')).some((a) => a.includes('token-run')), 'the records of the command the client started were dropped');
      selfStartServed(id!);
      // Served: armed again with a new token, and an asker gets the attach again.
      assert.equal(await prearmWarm(), true);
      assert.ok(existsSync(tokenPath));
      assert.equal(await ask('asker'), 'got it');
    } finally {
      setStartToken(null);
      await disarmWarm();
      setWarmResident(false);
      rmSync(`${tokenPath}.client`, { force: true });
    }
  });

  it('detaches on request: nothing stays pinned', () => {
    assert.ok(detachWarm({ pinDir, stateDir }).programs > 0);
    assert.equal(existsSync(pinDir), false);
  });
});
