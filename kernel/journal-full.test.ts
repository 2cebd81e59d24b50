/**
 * @module kernel/journal-full.test
 * A prov mount whose journal file system fills up goes on serving. Its records wait in memory
 * (the journal writer undoes the failed commit and retries it) and reach the journal once there
 * is room; records past the memory bound are counted and journaled as one `lost` record that
 * says how many. Before, the first failed commit failed the writer for good and the next drain
 * threw out of a timer: the daemon died and left a stale mount (ECONNABORTED).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, statfsSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mountProvfs, journalStreamName } from './daemon.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { verifyJournal } from '../collector/journal/verify.js';
import type { LostEvent, ProvEvent } from '../collector/events.js';
import { tmpfsScratch } from '../test/tmpfs.js';
import { openJournalWriter } from '../collector/journal/writer.js';
import { provfsRecordEvent } from '../collector/provfs-record.js';
import { StoreError } from '../graph/errors.js';
import { EventRing } from './eventring.js';
import { ringFilePath } from './ringfiles.js';
import * as libc from './libc.js';

const scratch = tmpfsScratch('provfs-journal-full-');
const { base, small } = scratch;

/** A 64 MiB tmpfs for journals, all but 64 KiB of it taken by the returned filler file. */
function fullJournalFs(name: string): string {
  if (!existsSync('/dev/fuse')) assert.fail('needs /dev/fuse');
  scratch.mount('64m');
  const s = statfsSync(small);
  const filler = join(small, `${name}.filler`);
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (64 << 10)));
  return filler;
}

/**
 * Create and remove `n` files under `dir` from one python process. Not spawnSync: the daemon's
 * main thread (this one) must go on draining while the workload runs.
 */
async function createAndRemove(dir: string, n: number): Promise<void> {
  const child = spawn('python3', ['-c', 'import os, sys\nfor i in range(int(sys.argv[2])):\n    p = os.path.join(sys.argv[1], "f%d" % i); os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)); os.unlink(p)', dir, String(n)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const [code] = await once(child, 'exit') as [number | null];
  assert.equal(code, 0, `the workload failed: ${stderr}`);
}

async function journaled(journalDir: string, mnt: string): Promise<ProvEvent[]> {
  const v = verifyJournal(journalDir);
  assert.equal(v.ok, true, JSON.stringify(v.problems));
  const reader = openJournalReader(journalDir);
  const got = reader.readBatch(1_000_000, [journalStreamName(mnt)]);
  reader.close();
  return got.map((x) => x.event);
}

const opsOf = (evs: ProvEvent[], op: string): number => evs.filter((e) => e.op === op).length;

test('a prov mount whose journal disk is full serves on and journals every record once there is room', async () => {
  const filler = fullJournalFs('a');
  const backing = join(base, 'backing-a'), mnt = join(base, 'mnt-a'), journalDir = join(small, 'journal-a');
  mkdirSync(backing); mkdirSync(mnt);
  const daemon = scratch.daemon = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir });
  await createAndRemove(mnt, 4000); // about 1.5 MiB of records: 64 KiB of journal room is soon gone
  assert.ok(statSync(mnt).isDirectory(), 'the mount still answers');
  await createAndRemove(mnt, 10);
  // The journal changes hands in an upgrade: refused while it cannot be written, still serving.
  const up = await daemon.upgrade({ mode: 'prov', journalDir });
  assert.equal(up.ok, false);
  assert.match(up.reason ?? '', /journal cannot be written \(ENOSPC/);
  assert.ok(statSync(mnt).isDirectory(), 'still served after the refused upgrade');
  rmSync(filler);
  await daemon.stop();
  scratch.daemon = null;
  const evs = await journaled(journalDir, mnt);
  assert.equal(opsOf(evs, 'create'), 4010, 'every create journaled');
  assert.equal(opsOf(evs, 'unlink'), 4010, 'every unlink journaled');
  assert.equal(opsOf(evs, 'lost'), 0, 'nothing lost');
});

test('past its memory bound a stalled prov mount counts the records it drops and journals their loss', async () => {
  const filler = fullJournalFs('b');
  const backing = join(base, 'backing-b'), mnt = join(base, 'mnt-b'), journalDir = join(small, 'journal-b');
  mkdirSync(backing); mkdirSync(mnt);
  // No records held beyond the 8 MiB ring: what the loop sends once the ring is full is dropped.
  const daemon = scratch.daemon = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir, stallHoldBytes: 0 });
  const files = 30_000;
  await createAndRemove(mnt, files);
  rmSync(filler);
  // Writing works again: the next records (and the loss) reach the journal while still mounted.
  await createAndRemove(mnt, 10);
  await daemon.stop();
  scratch.daemon = null;
  const evs = await journaled(journalDir, mnt);
  const lost = evs.filter((e): e is LostEvent => e.op === 'lost');
  assert.equal(lost.length, 1, 'one lost record');
  assert.match(lost[0]!.reason, /journal could not be written \(ENOSPC/);
  assert.ok(lost[0]!.count > 0 && lost[0]!.from <= lost[0]!.to, JSON.stringify(lost[0]));
  const kept = evs.length - 1;
  const perFile = 3; // create, close, unlink
  assert.equal(kept + lost[0]!.count, perFile * (files + 10), `${kept} journaled + ${lost[0]!.count} lost is every record`);
  assert.ok(kept > (8 << 20) / 200, `the ring's records were kept (${kept})`);
});

test('a journal that fails for good: the mount serves on, and the records it could not take are left in the ring file at the end', async () => {
  if (!existsSync('/dev/fuse')) assert.fail('needs /dev/fuse');
  const backing = join(base, 'backing-c'), mnt = join(base, 'mnt-c'), journalDir = join(base, 'journal-c'), rings = join(base, 'rings-c');
  mkdirSync(backing); mkdirSync(mnt);
  const w = openJournalWriter({ dir: journalDir, stream: journalStreamName(mnt) });
  // The real writer, until it fails as one whose undo of a failed write failed (collector/journal/writer).
  let broken = false;
  const refuse = (): never => { throw new StoreError(`journal stream ${w.stream} failed earlier: a failed write could not be undone`); };
  const sink = {
    get lastSeq() { return w.lastSeq; },
    get durableSeq() { return w.durableSeq; },
    append: (e: ProvEvent) => (broken ? refuse() : w.append(e)),
    appendEncoded: (codec: number, payloads: readonly Uint8Array[]) => (broken ? refuse() : w.appendEncoded(codec, payloads)),
    flush: () => w.flush(),
  };
  const daemon = scratch.daemon = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journal: sink, rings });
  await createAndRemove(mnt, 100);
  await new Promise((r) => setTimeout(r, 300)); // drained and made durable
  broken = true;
  await createAndRemove(mnt, 300);
  assert.ok(statSync(mnt).isDirectory(), 'the mount still answers');
  await daemon.stop();
  scratch.daemon = null;
  await w.close();
  const journaled = await (async () => { const r = openJournalReader(journalDir); const got = r.readBatch(100_000).map((x) => x.event); r.close(); return got; })();
  assert.equal(opsOf(journaled, 'create'), 100, 'the first 100 creates are in the journal');
  const path = ringFilePath(rings);
  assert.ok(existsSync(path), 'the ring file stays');
  const fd = libc.open(path, libc.O.RDWR);
  const ring = EventRing.map(fd, statSync(path).size, false);
  libc.close(fd);
  try {
    const { recs, damaged } = ring.unjournaled();
    assert.equal(damaged, undefined);
    assert.ok(recs.every((r) => r.seq === 0), 'unstamped: a recovery appends them all');
    const creates = recs.map((r) => provfsRecordEvent(r.data)).filter((e) => e.op === 'create').map((e) => (e as { file: { name: string } }).file.name);
    assert.deepEqual(creates, Array.from({ length: 300 }, (_, i) => `f${i}`), 'the other 300 creates, in order, once each');
  } finally {
    ring.unmap();
    rmSync(path, { force: true });
  }
});
