/**
 * The reader's prefilter option: records it turns down are passed over undecoded, and the
 * records delivered (and `passedOver`) account for every seq, so a consumer that checks seq
 * continuity still sees a record that was damaged or is missing among the passed-over ones.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JournalRecord, RecordPrefilter } from './api.js';
import { openJournalWriter } from './writer.js';
import { openJournalReader } from './reader.js';
import { anySampleEvent } from './samples.js';

const root = mkdtempSync(join(tmpdir(), 'prov-journal-prefilter-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

/** A journal of `count` JSON records; records whose seq is a multiple of 10 carry a marker. */
async function journal(count: number): Promise<string> {
  const dir = join(root, `j${n++}`);
  const w = openJournalWriter({ dir, stream: 's' });
  for (let i = 1; i <= count; i++) {
    const ev = anySampleEvent(i, 'provfs');
    if (i % 10 === 0) (ev as { comm?: string }).comm = 'KEEP-ME';
    w.append(ev);
  }
  await w.close();
  return dir;
}

const marker = Buffer.from('KEEP-ME');
const keepMarked: RecordPrefilter = (_s, _c, buf, start, len) => Buffer.from(buf.buffer, buf.byteOffset + start, len).includes(marker);

async function read(dir: string, prefilter?: RecordPrefilter): Promise<{ recs: JournalRecord[]; passed: Record<string, number>; checkpoint: Record<string, number>; rejected: number }> {
  const r = openJournalReader(dir, { prefilter });
  const recs: JournalRecord[] = [];
  for await (const rec of r.records()) recs.push(rec);
  const out = { recs, passed: r.passedOver(), checkpoint: r.checkpoint(), rejected: r.stats.rejected };
  r.close();
  return out;
}

/** Seqs a consumer can account for: each delivered record and the run passed over before it. */
/** Flip a payload byte of a record, so its CRC no longer matches. */
function damage(dir: string, victim: JournalRecord): void {
  const fd = openSync(join(dir, 's', victim.segment), 'r+');
  const b = Buffer.alloc(1);
  readSync(fd, b, 0, 1, victim.offset + 20);
  b[0] = b[0]! ^ 0xff;
  writeSync(fd, b, 0, 1, victim.offset + 20);
  closeSync(fd);
}

function covered(recs: JournalRecord[]): number[] {
  const seqs: number[] = [];
  for (const r of recs) for (let s = r.seq - (r.skipped ?? 0); s <= r.seq; s++) seqs.push(s);
  return seqs;
}

describe('journal reader prefilter', () => {
  it('passes over what it turns down, and the records say how many', async () => {
    const dir = await journal(105);
    const { recs, passed, checkpoint } = await read(dir, keepMarked);
    assert.deepEqual(recs.map((r) => r.seq), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    assert.ok(recs.every((r) => r.skipped === 9), 'nine records passed over before each');
    assert.deepEqual(covered(recs), Array.from({ length: 100 }, (_, i) => i + 1));
    assert.deepEqual(passed, { s: 105 }, 'the tail after the last delivered record');
    assert.deepEqual(checkpoint, { s: 105 });
    const plain = await read(dir);
    assert.equal(plain.recs.length, 105);
    assert.ok(plain.recs.every((r) => r.skipped === undefined), 'no prefilter, no skipped field');
  });

  it('a damaged record among the passed-over ones stays visible as a gap', async () => {
    const dir = await journal(60);
    const all = (await read(dir)).recs;
    damage(dir, all.find((r) => r.seq === 35)!);
    const { recs, rejected } = await read(dir, keepMarked);
    assert.equal(rejected, 1, 'the damaged record was reported');
    const seqs = covered(recs);
    assert.ok(!seqs.includes(35), 'seq 35 is not claimed by any passed-over run');
    const at40 = recs.find((r) => r.seq === 40)!;
    assert.ok(at40.seq - (at40.skipped ?? 0) > 31, 'the run before 40 does not reach back over the damage');
  });

  it('a damaged record in the tail keeps passedOver from claiming it', async () => {
    const dir = await journal(58);
    const all = (await read(dir)).recs;
    damage(dir, all.find((r) => r.seq === 55)!);
    const { passed, checkpoint } = await read(dir, keepMarked);
    assert.deepEqual(passed, {}, 'the tail after 50 is not contiguous');
    assert.equal(checkpoint.s, 50);
  });
});
