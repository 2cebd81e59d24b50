/**
 * The warm attach of `prov rebuild` (root, real eBPF): reused without a new load, records the
 * tree of the process using it and nothing of a process an earlier user left running.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJournalReader } from '../collector/journal/reader.js';
import type { ProvEvent } from '../collector/events.js';
import { ebpfDecoders } from './decode.js';
import { attachedPrograms } from './loader.js';
import { warmCapture, detachWarm } from './warm.js';

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

  it('detaches on request: nothing stays pinned', () => {
    assert.ok(detachWarm({ pinDir, stateDir }).programs > 0);
    assert.equal(existsSync(pinDir), false);
  });
});
