/**
 * @module kernel/ringfiles.test
 * A ring file takes all its pages when it is made. On a runtime directory too full for it, it is
 * refused with a message that says where and why, and no file is left. A prov daemon then keeps
 * its ring in memory, goes on serving and journals every record. Before, the sparse ring was
 * made anyway, and the first write to a page the tmpfs could no longer supply killed the daemon
 * with SIGBUS.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statfsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { openRingFile } from './ringfiles.js';
import { applyRecord, parseNodeLog, type NodeLogFold } from './nodelog.js';
import { mountProvfs, journalStreamName } from './daemon.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { tmpfsScratch } from '../test/tmpfs.js';

const scratch = tmpfsScratch('provfs-ringfiles-');
const { base, small } = scratch;
/** A 1 MiB tmpfs: the runtime directory that filled up. */
const smallTmpfs = (): void => scratch.mount('1m');

const freeBytes = (dir: string): number => { const s = statfsSync(dir); return s.bfree * s.bsize; };

test('a ring file takes its pages when made, and one with no room is refused and removed', () => {
  smallTmpfs();
  const before = freeBytes(small);
  const ring = openRingFile(join(small, 'fits.1.ring'), 256 << 10);
  after(() => rmSync(join(small, 'fits.1.ring'), { force: true }));
  assert.ok(before - freeBytes(small) >= 256 << 10, `the 256 KiB ring took ${before - freeBytes(small)} bytes of the tmpfs`);
  // Filled to the end, drained, filled again: every page is there to write.
  const rec = 'x'.repeat(1000);
  for (let round = 0; round < 2; round++) {
    let n = 0;
    while (ring.pushString(rec)) n++;
    assert.ok(n > 200, `only ${n} records fit`);
    ring.drain();
  }
  assert.throws(() => openRingFile(join(small, 'big.1.ring'), 8 << 20), (e: Error) => {
    assert.match(e.message, /cannot allocate the 8 MiB record ring in .*small: .*(ENOSPC|space)/i);
    return true;
  });
  assert.deepEqual(readdirSync(small).sort(), ['fits.1.ring'], 'the refused ring file is gone');
  ring.unmap();
  rmSync(join(small, 'fits.1.ring'));
});

test('a prov daemon whose ring file has no room keeps its ring in memory and journals every record', async () => {
  if (!existsSync('/dev/fuse')) assert.fail('needs /dev/fuse');
  smallTmpfs();
  const backing = join(base, 'backing'), mnt = join(base, 'mnt'), journalDir = join(base, 'journal');
  mkdirSync(backing); mkdirSync(mnt);
  const daemon = scratch.daemon = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir, rings: join(small, 'mnt.nodes') });
  // 4,000 creates and removals: 12,000 records, about 1.5 MiB, more than the tmpfs holds.
  const r = spawnSync('python3', ['-c', 'import os, sys\nfor i in range(4000):\n    p = os.path.join(sys.argv[1], "f%d" % i); os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)); os.unlink(p)', mnt], { encoding: 'utf8' });
  assert.equal(r.status, 0, `the workload failed: ${r.stderr}`);
  await daemon.stop();
  scratch.daemon = null;
  const reader = openJournalReader(journalDir);
  const got = reader.readBatch(100_000, [journalStreamName(mnt)]);
  reader.close();
  const creates = new Set(got.filter((x) => x.event.op === 'create').map((x) => (x.event as { file: { name: string } }).file.name));
  const unlinks = got.filter((x) => x.event.op === 'unlink').length;
  assert.equal(creates.size, 4000, 'every create journaled');
  assert.equal(unlinks, 4000, 'every unlink journaled');
  assert.deepEqual(readdirSync(small), [], 'no ring file was left on the full tmpfs');
});

test('a node log whose disk is full: the mount serves on, journals every record, and the log catches up once there is room', async () => {
  if (!existsSync('/dev/fuse')) assert.fail('needs /dev/fuse');
  smallTmpfs();
  const filler = join(small, 'filler');
  const s = statfsSync(small);
  writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - (16 << 10)));
  const backing = join(base, 'backing-nl'), mnt = join(base, 'mnt-nl'), journalDir = join(base, 'journal-nl');
  mkdirSync(backing); mkdirSync(mnt);
  const daemon = scratch.daemon = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir, nodeLog: join(small, 'mnt.nodes'), rings: join(base, 'rings-nl') });
  // 4,000 files kept: far more node records than 16 KiB holds. Before, each request whose node
  // could not be logged failed with EIO once the tmpfs was full.
  const r = spawnSync('python3', ['-c', 'import os, sys\nfor i in range(4000):\n    os.close(os.open(os.path.join(sys.argv[1], "k%d" % i), os.O_CREAT | os.O_WRONLY, 0o644))\nprint(len(os.listdir(sys.argv[1])))', mnt], { encoding: 'utf8' });
  assert.equal(r.status, 0, `the workload failed: ${r.stderr}`);
  assert.equal(r.stdout.trim(), '4000');
  // Room again: the next node written takes what waited in memory with it, in order.
  rmSync(filler);
  for (let i = 0; i < 10; i++) writeFileSync(join(mnt, `after${i}`), '');
  const log = readFileSync(join(small, 'mnt.nodes'));
  const nodes = new Map<number, unknown>();
  const known: NodeLogFold = { nodes, backings: new Map(), maxId: 1 };
  const parsed = parseNodeLog(log, 0, (rec) => applyRecord(known, rec));
  assert.equal(parsed.bad, false);
  assert.equal(parsed.end, log.length, 'no record cut short is left');
  // Every file made is a node the log knows (the 4,000 made while it was full, the 10 after).
  assert.ok(nodes.size >= 4010, `the log knows ${nodes.size} nodes`);
  await daemon.stop();
  scratch.daemon = null;
  const reader = openJournalReader(journalDir);
  const got = reader.readBatch(100_000, [journalStreamName(mnt)]);
  reader.close();
  assert.equal(got.filter((x) => x.event.op === 'create').length, 4010, 'every create journaled');
});
