/**
 * @module collector/journal/full-disk.test
 * A journal whose file system fills up stalls instead of failing: the group commit that hits
 * ENOSPC is undone (new segment files removed, the segment it appended to cut back), its records
 * stay in memory with everything appended after them, and the commit is retried until there is
 * room again. Then every record is on disk once, in order, and the chain verifies. Before, the
 * first ENOSPC failed the writer for good, and the next append threw.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statfsSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { openJournalWriter } from './writer.js';
import { openJournalReader } from './reader.js';
import { verifyJournal } from './verify.js';
import { anySampleEvent } from './samples.js';
import type { ProvEvent } from '../events.js';

const base = mkdtempSync(join(tmpdir(), 'prov-journal-full-'));
const small = join(base, 'small');
let mounted = false;
after(() => {
  if (mounted) spawnSync('umount', ['-l', small]);
  rmSync(base, { recursive: true, force: true });
});

/** A 2 MiB tmpfs for the journal, with all but `leave` bytes of it taken by a filler file. */
function nearlyFullTmpfs(leave: number): string {
  if (process.getuid?.() !== 0) assert.fail('needs root (mounts a 2 MiB tmpfs)');
  mkdirSync(small, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'prov-journal-full-test', small], { encoding: 'utf8' });
  assert.equal(r.status, 0, `mount -t tmpfs failed: ${r.stderr}`);
  mounted = true;
  const s = statfsSync(small);
  const filler = join(small, 'filler');
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - leave));
  return filler;
}

test('a journal on a full file system keeps its records in memory and writes them all once there is room', async () => {
  const filler = nearlyFullTmpfs(48 << 10);
  const dir = join(small, 'journal');
  const w = openJournalWriter({ dir, stream: 'provfs-1', segmentBytes: 32 << 10, fsyncIntervalMs: 2 });
  const events: ProvEvent[] = [];
  let failure: Error | null = null;
  for (let i = 0; i < 3000; i++) {
    const ev = anySampleEvent(i, 'provfs');
    events.push(ev);
    assert.equal(w.append(ev), i + 1, 'appends go on while the disk is full');
    if (i % 100 === 99) await w.flush().catch((e: Error) => { failure ??= e; });
  }
  assert.ok(failure, 'a flush failed: the 48 KiB left cannot hold 3000 records');
  assert.match(String((failure as Error).message), /ENOSPC|no space/i);
  assert.match(String((failure as Error).message), /kept in memory and retried/);
  assert.ok(w.stalled, 'the writer says it is stalled');
  assert.ok(w.durableSeq < 3000, `durable seq ${w.durableSeq}`);
  const stuck = w.durableSeq;
  // Room again: the writer's own retry (no flush, no append) writes everything.
  rmSync(filler);
  const until = Date.now() + 5000;
  while (w.durableSeq < 3000 && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  assert.equal(w.durableSeq, 3000, `the retry made every record durable (stuck at ${stuck})`);
  assert.equal(w.stalled, null);
  await w.close();

  const v = verifyJournal(dir);
  assert.equal(v.ok, true, JSON.stringify(v.problems));
  assert.equal(v.records, 3000);
  assert.ok(readdirSync(join(dir, 'provfs-1')).filter((f) => f.endsWith('.seg')).length >= 8, 'it rotated segments across the stall');
  const r = openJournalReader(dir);
  const got: ProvEvent[] = [];
  for await (const rec of r.records()) got.push(rec.event);
  r.close();
  assert.deepEqual(got.map((e) => e.seq), events.map((_, i) => i + 1), 'every record once, in order');
  assert.deepEqual(got, events);
});

test('a journal closed while its disk is still full says which records were not written, and the rest reopens clean', async () => {
  const filler = join(small, 'filler2');
  const s = statfsSync(small);
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (64 << 10)));
  const dir = join(small, 'journal2');
  const w = openJournalWriter({ dir, stream: 'ebpf', segmentBytes: 1 << 20, fsyncIntervalMs: 2 });
  for (let i = 0; i < 100; i++) w.append(anySampleEvent(i));
  await w.flush();
  for (let i = 100; i < 2000; i++) w.append(anySampleEvent(i));
  await assert.rejects(w.close(), /closed with records 101–2000 not written/);
  rmSync(filler);
  const w2 = openJournalWriter({ dir, stream: 'ebpf' });
  assert.equal(w2.recovered, undefined, 'the failed commit left no torn tail');
  assert.equal(w2.lastSeq, 100, "reopened after the last durable record");
  await w2.close();
  assert.equal(verifyJournal(dir).ok, true);
});
