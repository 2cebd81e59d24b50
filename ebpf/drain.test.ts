/**
 * @module ebpf/drain.test
 * Draining on the real kernel: a restarted consumer resumes from the pinned ring (nothing lost,
 * nothing twice), kernel drops surface as `lost` records in the journal, and the CLI's
 * start/status/stop leave a journal and nothing pinned.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { attachCapture, detachCapture, readCounters } from './loader.js';
import { Drainer } from './drain.js';
import { decodeRecord } from './decode.js';
import { ebpfDecoders } from './capture.js';
import { stopCapture } from './capture.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { openJournalWriter } from '../collector/journal/writer.js';
import type { ProvEvent } from '../collector/events.js';

const pinDir = `/sys/fs/bpf/prov-test-drain-${process.pid}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** A process that exists and is not a zombie. */
function running(pid: number): boolean {
  try { return !/^\d+ \(.*\) [ZX]/.test(readFileSync(`/proc/${pid}/stat`, 'utf8')); } catch { return false; }
}

/** A shell that runs /bin/true once per line it reads, and says "ok" after each. */
function lineRunner(): ChildProcessWithoutNullStreams {
  return spawn('bash', ['-c', 'while read -r n; do /bin/true "$n"; echo ok; done'], { stdio: ['pipe', 'pipe', 'pipe'] });
}
async function runLines(child: ChildProcessWithoutNullStreams, tags: string[]): Promise<void> {
  let got = 0;
  const done = new Promise<void>((resolve) => {
    const on = (d: Buffer) => { got += d.toString().split('\n').filter((l) => l === 'ok').length; if (got >= tags.length) { child.stdout.off('data', on); resolve(); } };
    child.stdout.on('data', on);
  });
  child.stdin.write(tags.map((t) => t + '\n').join(''));
  await done;
}
function trueTags(events: ProvEvent[]): string[] {
  return events.flatMap((e) => (e.op === 'exec' && e.filename === '/bin/true' ? [e.argv[1]!] : []));
}

test('a restarted consumer resumes from the pinned ring: nothing lost, nothing twice', async (t) => {
  const child = lineRunner();
  t.after(() => { child.kill('SIGKILL'); detachCapture(pinDir); });
  attachCapture({ pinDir, pidTree: [child.pid!], ringBytes: 1 << 22 });
  const seen: ProvEvent[] = [];
  const sink = { appendEncoded: (_c: number, ps: readonly Uint8Array[]) => { for (const p of ps) seen.push(decodeRecord(p, 'test')); return seen.length; } };

  const a = await Drainer.start({ pinDir, sink });
  await runLines(child, ['a1', 'a2', 'a3']);
  await sleep(50);
  await a.stop();
  assert.deepEqual(trueTags(seen), ['a1', 'a2', 'a3']);

  // No consumer: events wait in the pinned ring.
  await runLines(child, ['b1', 'b2', 'b3', 'b4']);
  const b = await Drainer.start({ pinDir, sink });
  await runLines(child, ['c1']);
  await sleep(50);
  await b.stop();
  assert.deepEqual(trueTags(seen), ['a1', 'a2', 'a3', 'b1', 'b2', 'b3', 'b4', 'c1']);
  const keys = seen.map((e) => `${e.ts}:${e.tid}:${e.op}`);
  assert.equal(new Set(keys).size, keys.length, 'a record was delivered twice');
  assert.equal(readCounters(pinDir).dropped, 0);
  assert.equal(readCounters(pinDir).emitted, seen.length);
});

test('records a consumer could not make durable stay in the ring for the next one', async (t) => {
  const child = lineRunner();
  t.after(() => { child.kill('SIGKILL'); detachCapture(pinDir); });
  attachCapture({ pinDir, pidTree: [child.pid!], ringBytes: 1 << 22 });
  const firstSeen: ProvEvent[] = [];
  // A journal that takes the records but whose fsync fails: nothing may be given back to the kernel.
  const failing = {
    appendEncoded: (_c: number, ps: readonly Uint8Array[]) => { for (const p of ps) firstSeen.push(decodeRecord(p, 'test')); return 0; },
    // fails once both records were taken (so the first consumer surely read them)
    flush: () => new Promise<void>((_res, rej) => {
      const check = () => (trueTags(firstSeen).length >= 2 ? rej(new Error('disk full')) : setTimeout(check, 5));
      check();
    }),
  };
  const a = await Drainer.start({ pinDir, sink: failing, durableDelayMs: 1 });
  await runLines(child, ['e1', 'e2']);
  await sleep(100);
  await a.stop();
  assert.deepEqual(trueTags(firstSeen), ['e1', 'e2'], 'the first consumer read the records');
  assert.match(String(a.error?.message), /disk full/);

  const seen: ProvEvent[] = [];
  const b = await Drainer.start({ pinDir, sink: { appendEncoded: (_c, ps) => { for (const p of ps) seen.push(decodeRecord(p, 'test')); return 0; } } });
  await runLines(child, ['e3']);
  await sleep(50);
  await b.stop();
  assert.deepEqual(trueTags(seen), ['e1', 'e2', 'e3'], 'the second consumer gets what the first could not keep');
});

test('ring overflow is counted in the kernel and journalled as a lost event', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prov-lost-'));
  const child = lineRunner();
  t.after(() => { child.kill('SIGKILL'); detachCapture(pinDir); rmSync(dir, { recursive: true, force: true }); });
  attachCapture({ pinDir, pidTree: [child.pid!], ringBytes: 1 << 14 }); // 16 KiB: a few execs fill it
  const writer = openJournalWriter({ dir, stream: 'ebpf' });
  // credits 0: the consumer never reads, so the ring overflows while the drainer watches the counter
  const d = await Drainer.start({ pinDir, sink: writer, lossCheckMs: 20, credits: 0 });
  await runLines(child, Array.from({ length: 40 }, (_, i) => `burst${i}`));
  await sleep(100);
  const stats = await d.stop();
  await writer.close();
  const dropped = readCounters(pinDir).dropped;
  assert.ok(dropped > 0, 'a 16 KiB ring with no consumer should have dropped records');
  assert.equal(stats.lost, dropped);

  const reader = openJournalReader(dir, { decoders: ebpfDecoders });
  t.after(() => reader.close());
  const recs = reader.readBatch(1_000_000);
  assert.equal(reader.stats.rejected, 0, JSON.stringify(reader.rejections.slice(0, 3)));
  const lost = recs.map((r) => r.event).filter((e) => e.op === 'lost');
  assert.ok(lost.length >= 1, 'no lost event in the journal');
  assert.equal(lost.reduce((s, e) => s + (e.op === 'lost' ? e.count : 0), 0), dropped);
  for (const e of lost) if (e.op === 'lost') assert.ok(e.to >= e.from && e.reason.length > 0);
});

/** `prov capture SUB` with `opts` (--json), in its own process as from a shell; its parsed output. */
function captureCli(sub: string, opts: object): unknown {
  const cli = fileURLToPath(new URL('../cli/actions/capture.js', import.meta.url));
  const code = `import(${JSON.stringify(cli)}).then(async (m) => { process.exitCode = await m.default(${JSON.stringify(sub)}, ${JSON.stringify(opts)}); })`;
  const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, `prov capture ${sub} exited ${r.status}: ${r.stdout} ${r.stderr}`);
  return JSON.parse(r.stdout) as unknown;
}

test('prov capture start | status | stop: a daemon drains into the journal, a restarted one resumes; nothing stays pinned', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prov-cli-'));
  const stateDir = join(dir, 'state');
  const journal = join(dir, 'journal');
  const child = lineRunner();
  t.after(async () => {
    child.kill('SIGKILL');
    if (existsSync(pinDir)) await stopCapture({ pinDir, stateDir }).catch(() => undefined);
    detachCapture(pinDir);
    rmSync(dir, { recursive: true, force: true });
  });
  const run = captureCli;
  const start = run('start', { journal, pinDir, stateDir, pid: [child.pid!], ringMib: 4, json: true });
  await runLines(child, ['d1', 'd2']);
  const statusOut = run('status', { pinDir, stateDir, json: true });
  // The collector dies; events keep arriving in the pinned ring; a new start resumes from it.
  await sleep(300);
  process.kill((start as { daemonPid: number }).daemonPid, 'SIGKILL');
  await runLines(child, ['d3']);
  const restart = run('start', { journal, pinDir, stateDir, json: true }) as { resumed: boolean; daemonPid: number };
  assert.equal(restart.resumed, true);
  await runLines(child, ['d4']);
  const stopOut = run('stop', { pinDir, stateDir, json: true });
  const started = start as { daemonPid: number; programs: string[] };
  const status = statusOut as { attached: boolean; programs: string[]; daemon: { alive: boolean } };
  const stopped = stopOut as { programs: number; records: number; daemonStopped: boolean };
  assert.equal(status.attached, true);
  assert.equal(status.programs.length, started.programs.length);
  assert.equal(status.daemon.alive, true);
  assert.equal(stopped.programs, started.programs.length);
  assert.equal(stopped.daemonStopped, true);
  assert.ok(stopped.records > 0);
  assert.ok(!running(restart.daemonPid), 'the second collector still runs after stop');
  assert.equal(existsSync(pinDir), false, 'pins left after stop');
  assert.ok(!running(started.daemonPid), 'collector daemon still running after stop');

  const reader = openJournalReader(journal, { decoders: ebpfDecoders });
  t.after(() => reader.close());
  const events = reader.readBatch(1_000_000).map((r) => r.event);
  assert.equal(reader.stats.rejected, 0);
  assert.deepEqual(trueTags(events), ['d1', 'd2', 'd3', 'd4']);
  assert.ok(!events.some((e) => e.pid === started.daemonPid || e.pid === restart.daemonPid), 'a collector daemon captured itself');
});

test('a consumer whose journal disk is full keeps draining once there is room: nothing lost', async (t) => {
  if (process.getuid?.() !== 0) assert.fail('needs root (mounts a tmpfs)');
  const child = lineRunner();
  const dir = mkdtempSync(join(tmpdir(), 'prov-drain-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'prov-drain-full-test', dir], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mount -t tmpfs failed: ${r.stderr}`);
  let drainer: Drainer | null = null;
  t.after(async () => {
    child.kill('SIGKILL');
    await drainer?.stop().catch(() => undefined);
    detachCapture(pinDir);
    spawnSync('umount', ['-l', dir]);
    rmSync(dir, { recursive: true, force: true });
  });
  attachCapture({ pinDir, pidTree: [child.pid!], ringBytes: 1 << 22 });
  const { statfsSync, writeFileSync } = await import('node:fs');
  const s = statfsSync(dir);
  writeFileSync(join(dir, 'filler'), Buffer.alloc(s.bavail * s.bsize - (8 << 10)));
  const writer = openJournalWriter({ dir: join(dir, 'journal'), stream: 'ebpf' });
  drainer = await Drainer.start({ pinDir, sink: writer, durableDelayMs: 1 });
  const tags = Array.from({ length: 300 }, (_, i) => `full${i}`);
  await runLines(child, tags); // execs, forks and exits: far more than 8 KiB of records
  for (let i = 0; i < 100 && !writer.stalled; i++) await sleep(10);
  assert.ok(writer.stalled, 'the journal filled up');
  rmSync(join(dir, 'filler'));
  await runLines(child, ['after']);
  await sleep(50);
  const d = drainer;
  drainer = null;
  await d.stop();
  assert.equal(d.error, null, 'the drain never gave up');
  await writer.close();
  const reader = openJournalReader(join(dir, 'journal'), { decoders: ebpfDecoders });
  const seen = reader.readBatch(1_000_000).map((x) => x.event);
  reader.close();
  assert.deepEqual(trueTags(seen), [...tags, 'after'], 'every record reached the journal, once, in order');
  assert.equal(seen.filter((e) => e.op === 'lost').length, 0);
});

/**
 * `prov capture` with its journal on a tmpfs that fills up while events flow, then has room
 * again. `stateOnFullDisk`: the collector's state files and log share that disk.
 */
async function captureOnFullDisk(t: TestContext, stateOnFullDisk: boolean): Promise<void> {
  if (process.getuid?.() !== 0) assert.fail('needs root (mounts a tmpfs)');
  const child = lineRunner();
  const dir = mkdtempSync(join(tmpdir(), 'prov-capture-full-'));
  const disk = join(dir, 'disk');
  mkdirSync(disk);
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'prov-capture-full-test', disk], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mount -t tmpfs failed: ${r.stderr}`);
  const stateDir = join(stateOnFullDisk ? disk : dir, 'state'), journal = join(disk, 'journal');
  t.after(async () => {
    child.kill('SIGKILL');
    if (existsSync(pinDir)) await stopCapture({ pinDir, stateDir }).catch(() => undefined);
    detachCapture(pinDir);
    spawnSync('umount', ['-l', disk]);
    rmSync(dir, { recursive: true, force: true });
  });
  const start = captureCli('start', { journal, pinDir, stateDir, pid: [child.pid!], ringMib: 4, json: true }) as { daemonPid: number };
  await runLines(child, ['warm']);
  await sleep(300);
  const s = statfsSync(disk);
  writeFileSync(join(disk, 'filler'), Buffer.alloc(s.bavail * s.bsize));
  const tags = Array.from({ length: 200 }, (_, i) => `full${i}`);
  await runLines(child, tags);
  type Status = { daemon: { alive: boolean; stalled?: string } };
  let status = captureCli('status', { pinDir, stateDir, json: true }) as Status;
  for (let i = 0; i < 15 && (!stateOnFullDisk && !status.daemon.stalled); i++) { await sleep(200); status = captureCli('status', { pinDir, stateDir, json: true }) as Status; }
  assert.equal(status.daemon.alive, true, 'the collector survives the full disk');
  // With its state on the full disk the collector cannot say so (its progress file cannot be written).
  if (!stateOnFullDisk) assert.match(status.daemon.stalled ?? '', /ENOSPC|no space/i, 'status says the journal is stalled');
  rmSync(join(disk, 'filler'));
  await runLines(child, ['after']);
  const stopped = captureCli('stop', { pinDir, stateDir, json: true }) as { daemonStopped: boolean };
  assert.equal(stopped.daemonStopped, true);
  assert.ok(!running(start.daemonPid));
  const reader = openJournalReader(journal, { decoders: ebpfDecoders });
  t.after(() => reader.close());
  const events = reader.readBatch(1_000_000).map((x) => x.event);
  assert.deepEqual(trueTags(events), ['warm', ...tags, 'after'], 'every event once, in order');
  assert.equal(events.filter((e) => e.op === 'lost').length, 0);
}

test('prov capture with its journal on a disk that fills up: status says the journal is stalled, and every event lands once there is room', (t) => captureOnFullDisk(t, false));

test('the same with the collector\'s state and log on that disk: it survives what it cannot write, and every event lands', (t) => captureOnFullDisk(t, true));
