import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CODEC, type JournalRecord, type PayloadDecoder } from './api.js';
import { openJournalWriter } from './writer.js';
import { openJournalReader } from './reader.js';
import { verifyJournal } from './verify.js';
import { resumeSegment } from './cursor.js';
import { anySampleEvent, sampleEvent } from './samples.js';
import { parseSegmentName } from './format.js';
import { SCHEMA_VERSION, type ProvEvent } from '../events.js';
import { PROVFS_BIT, PROVFS_HEADER_BYTES, PROVFS_OP, encodeProvfsFile, writeProvfsHeader } from '../provfs-record.js';

const root = mkdtempSync(join(tmpdir(), 'prov-journal-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(root, `j${n++}`);

async function readAll(dir: string, from?: Record<string, number>): Promise<JournalRecord[]> {
  const r = openJournalReader(dir, { from });
  const out: JournalRecord[] = [];
  for await (const rec of r.records()) out.push(rec);
  r.close();
  return out;
}

describe('journal writer', () => {
  it('appends, reopens and continues the seq', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'provfs-1' });
    const evs = Array.from({ length: 10 }, (_, i) => anySampleEvent(i, 'provfs'));
    for (const [i, ev] of evs.entries()) {
      ev.seq = 999; // the writer overwrites it
      assert.equal(w.append(ev), i + 1);
      assert.equal(ev.seq, i + 1);
    }
    assert.equal(w.lastSeq, 10);
    await w.close();
    const w2 = openJournalWriter({ dir, stream: 'provfs-1' });
    assert.equal(w2.lastSeq, 10);
    assert.equal(w2.recovered, undefined);
    const extra = anySampleEvent(10, 'provfs');
    assert.equal(w2.append(extra), 11);
    await w2.close();
    const got = await readAll(dir);
    assert.deepEqual(got.map((r) => r.seq), Array.from({ length: 11 }, (_, i) => i + 1));
    assert.deepEqual(got.map((r) => r.event), [...evs, extra]);
    assert.equal(got[3]!.pos, 'provfs-1:4');
    assert.equal(verifyJournal(dir).ok, true);
  });

  it('creates 0700 directories and 0600 files', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf' });
    w.append(anySampleEvent(0));
    await w.close();
    assert.equal(statSync(join(dir, 'ebpf')).mode & 0o777, 0o700);
    for (const f of readdirSync(join(dir, 'ebpf'))) assert.equal(statSync(join(dir, 'ebpf', f)).mode & 0o077, 0, f);
  });

  it('makes an append durable within the fsync interval without flush()', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf', fsyncIntervalMs: 10 });
    w.append(anySampleEvent(0));
    assert.equal(w.durableSeq, 0);
    assert.ok(w.pendingBytes > 0);
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(w.durableSeq, 1);
    assert.equal(w.pendingBytes, 0);
    assert.equal((await readAll(dir)).length, 1);
    await w.close();
  });

  it('rotates segments by size, names them by first seq, and chains across them', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf', segmentBytes: 8192, fsyncIntervalMs: 1 });
    for (let i = 0; i < 1000; i++) {
      w.append(anySampleEvent(i));
      if (i % 97 === 0) await w.flush();
    }
    await w.close();
    const segs = readdirSync(join(dir, 'ebpf')).filter((f) => f.endsWith('.seg'));
    assert.ok(segs.length >= 10, `only ${segs.length} segments`);
    for (const s of segs) assert.ok(statSync(join(dir, 'ebpf', s)).size <= 8192, `${s} is larger than the limit`);
    const got = await readAll(dir);
    assert.deepEqual(got.map((r) => r.seq), Array.from({ length: 1000 }, (_, i) => i + 1));
    for (const r of got) assert.ok(parseSegmentName(r.segment)! <= r.seq);
    const v = verifyJournal(dir);
    assert.equal(v.ok, true, JSON.stringify(v.problems));
    assert.equal(v.records, 1000);
    assert.equal(v.streams[0]!.segments, segs.length);
  });

  it('refuses a second live writer on the same stream', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf' });
    assert.throws(() => openJournalWriter({ dir, stream: 'ebpf' }), /already open for writing by pid/);
    await w.close();
    assert.throws(() => openJournalWriter({ dir, stream: '../etc' }), /stream name/);
    // Another live process's lock holds; a lock whose pid was reused (other start time) does not.
    const { writeFileSync } = await import('node:fs');
    const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    writeFileSync(join(dir, 'ebpf', 'LOCK'), `${process.ppid} ${start}`);
    assert.throws(() => openJournalWriter({ dir, stream: 'ebpf' }), new RegExp(`already open for writing by pid ${process.ppid}`));
    writeFileSync(join(dir, 'ebpf', 'LOCK'), `${process.ppid} 1`);
    const w2 = openJournalWriter({ dir, stream: 'ebpf' });
    await w2.close();
  });
});

describe('journal reader', () => {
  it('resumes exactly after a checkpoint, from the right segment', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf', segmentBytes: 8192 });
    for (let i = 0; i < 600; i++) w.append(anySampleEvent(i));
    await w.close();

    // Read part of the stream, stop, and resume from the reader's checkpoint.
    const r1 = openJournalReader(dir);
    const first: number[] = [];
    for await (const rec of r1.records()) {
      first.push(rec.seq);
      if (rec.seq === 333) break;
    }
    const cp = r1.checkpoint();
    r1.close();
    assert.deepEqual(cp, { ebpf: 333 });
    const seg = resumeSegment(dir, 'ebpf', 333)!;
    assert.ok(parseSegmentName(seg)! > 1 && parseSegmentName(seg)! <= 334, seg);
    const rest = await readAll(dir, cp);
    assert.equal(rest[0]!.seq, 334);
    assert.equal(rest[0]!.segment, seg);
    assert.deepEqual([...first, ...rest.map((r) => r.seq)], Array.from({ length: 600 }, (_, i) => i + 1));
    assert.deepEqual(await readAll(dir, { ebpf: 600 }), []);
  });

  it('follow mode sees new appends, across rotations, exactly once, and stops on abort', async () => {
    const dir = freshDir();
    const total = 3000;
    const w = openJournalWriter({ dir, stream: 'ebpf', fsyncIntervalMs: 2, segmentBytes: 4096 });
    const r = openJournalReader(dir);
    const ac = new AbortController();
    const seen: number[] = [];
    const done = (async () => {
      for await (const rec of r.records({ follow: true, signal: ac.signal, pollMs: 5 })) {
        seen.push(rec.seq);
        if (seen.length === total) ac.abort();
      }
    })();
    for (let i = 0; i < total; i++) {
      w.append(anySampleEvent(i));
      if (i % 100 === 99) await new Promise((res) => setTimeout(res, 3));
    }
    await w.flush();
    const timeout = setTimeout(() => ac.abort(), 10_000);
    await done;
    clearTimeout(timeout);
    assert.equal(seen.length, total);
    assert.deepEqual(seen, Array.from({ length: total }, (_, i) => i + 1));
    assert.equal(r.stats.rejected, 0, JSON.stringify(r.rejections.slice(0, 3)));
    r.close();
    await w.close();
  });

  it('merges streams by ts and keeps a checkpoint per stream', async () => {
    const dir = freshDir();
    const a = openJournalWriter({ dir, stream: 'ebpf' });
    const b = openJournalWriter({ dir, stream: 'provfs-1' });
    for (let i = 0; i < 50; i++) {
      const ev = anySampleEvent(i * 2);
      a.append(ev);
      b.append(anySampleEvent(i * 2 + 1, 'provfs'));
    }
    await Promise.all([a.close(), b.close()]);
    const got = await readAll(dir);
    assert.equal(got.length, 100);
    const ts = got.map((r) => r.event.ts);
    assert.deepEqual(ts, [...ts].sort((x, y) => x - y));
    const r = openJournalReader(dir, { from: { ebpf: 10 } });
    const recs = r.readBatch(1000);
    assert.equal(recs.filter((x) => x.stream === 'ebpf').length, 40);
    assert.deepEqual(r.checkpoint(), { ebpf: 50, 'provfs-1': 50 });
  });

  it('says which streams a batch read to their end, and a stream that grows is no longer drained', async () => {
    const dir = freshDir();
    const a = openJournalWriter({ dir, stream: 'ebpf' });
    const b = openJournalWriter({ dir, stream: 'provfs-1' });
    for (let i = 0; i < 3; i++) a.append(anySampleEvent(i));
    for (let i = 10; i < 30; i++) b.append(anySampleEvent(i, 'provfs'));
    await a.flush();
    await b.flush();
    const r = openJournalReader(dir);
    // ebpf's three records come first by ts; five records in, only ebpf has been read to its end.
    assert.equal(r.readBatch(5).length, 5);
    assert.deepEqual(r.drained(), ['ebpf']);
    assert.equal(r.readBatch(100).length, 18);
    assert.deepEqual(r.drained().sort(), ['ebpf', 'provfs-1']);
    a.append(anySampleEvent(40));
    await a.flush();
    const more = r.readBatch(1);
    assert.deepEqual(more.map((x) => x.stream), ['ebpf']);
    assert.deepEqual(r.drained(), ['provfs-1']);
    assert.equal(r.readBatch(10).length, 0);
    assert.deepEqual(r.drained().sort(), ['ebpf', 'provfs-1']);
    r.close();
    await Promise.all([a.close(), b.close()]);
  });

  it('decodes binary payloads with a registered decoder and rejects what fails', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf' });
    const payloads = Array.from({ length: 5 }, (_, i) => Buffer.from([i, 100 + i]));
    assert.equal(w.appendEncoded(CODEC.ebpfRaw, payloads), 5);
    w.append(sampleEvent('exit', 5));
    await w.close();
    const decoder: PayloadDecoder = (p, where) => {
      if (p[0] === 3) throw new Error(`${where}: opcode 3 is not known`);
      return { ...sampleEvent('exit', 0), pid: p[1]! } as ProvEvent;
    };
    const r = openJournalReader(dir, { decoders: new Map([[CODEC.ebpfRaw, decoder]]) });
    const got = r.readBatch(100);
    assert.deepEqual(got.map((x) => x.seq), [1, 2, 3, 5, 6]);
    assert.deepEqual(got.slice(0, 4).map((x) => x.event.pid), [100, 101, 102, 104]);
    assert.equal(got[0]!.event.seq, 1);
    assert.equal(r.stats.rejected, 1);
    assert.equal(r.rejections[0]!.seq, 4);
    assert.match(r.rejections[0]!.reason, /codec 1 decoder: .*opcode 3 is not known/);

    const r2 = openJournalReader(dir);
    assert.equal(r2.readBatch(100).length, 1);
    assert.equal(r2.stats.rejectedByStream.ebpf, 5);
    assert.match(r2.rejections[0]!.reason, /no decoder registered for codec 1/);
  });

  it('decodes binary provfs records without being given a decoder, and rejects a damaged one saying where', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'provfs-1' });
    const record = (op: number, bits: number, name: string, tid: number): Uint8Array => {
      const file = encodeProvfsFile(2049, 77, 2, 0o100000, Buffer.from(name), Buffer.from('/mnt/'), Buffer.from('host'))!;
      const b = new Uint8Array(PROVFS_HEADER_BYTES + file.length);
      writeProvfsHeader(new DataView(b.buffer), 0, op, bits, tid, 1234, 0o644, 0o100101, 9);
      b.set(file, PROVFS_HEADER_BYTES);
      return b;
    };
    const bad = record(PROVFS_OP.open, 0, 'x', 1).slice(0, 40);
    w.appendEncoded(CODEC.provfsRaw, [record(PROVFS_OP.create, PROVFS_BIT.flags | PROVFS_BIT.fh, 'a "b"', 11), record(PROVFS_OP.unlink, 0, 'c', 12), bad]);
    await w.close();
    const r = openJournalReader(dir);
    const got = r.readBatch(10);
    assert.deepEqual(got.map((x) => x.event), [
      { op: 'create', file: { dev: 2049, ino: 77, parent: 2, name: 'a "b"', path: '/mnt/a "b"', type: 0o100000 }, mode: 0o644, flags: 0o100101, fh: 9, v: SCHEMA_VERSION, src: 'provfs', seq: 1, host: 'host', pid: 0, ts: 1234, tid: 11 },
      { op: 'unlink', file: { dev: 2049, ino: 77, parent: 2, name: 'c', path: '/mnt/c', type: 0o100000 }, deleted: false, v: SCHEMA_VERSION, src: 'provfs', seq: 2, host: 'host', pid: 0, ts: 1234, tid: 12 },
    ]);
    assert.equal(r.stats.rejected, 1);
    assert.equal(r.rejections[0]!.seq, 3);
    assert.match(r.rejections[0]!.reason, /codec 2 decoder: provfs record of 40 bytes is shorter than its 66-byte fixed part/);
  });

  it('rejects invalid events with stream, seq, segment, offset and reason, and goes on', async () => {
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf' });
    w.append(sampleEvent('exec', 0));
    w.append({ ...sampleEvent('exec', 1), argv: ['cc', 7] } as unknown as ProvEvent);
    w.append(sampleEvent('exit', 2));
    await w.close();
    const r = openJournalReader(dir);
    const got = r.readBatch(10);
    assert.deepEqual(got.map((x) => x.seq), [1, 3]);
    assert.equal(r.stats.rejected, 1);
    const rej = r.rejections[0]!;
    assert.equal(rej.stream, 'ebpf');
    assert.equal(rej.seq, 2);
    assert.equal(rej.segment, '00000000000000000001.seg');
    assert.equal(rej.offset, got[0]!.offset + readFileSync(join(dir, 'ebpf', rej.segment)).readUInt32LE(got[0]!.offset + 4) + 20);
    assert.equal(rej.reason, 'ebpf seq 2: exec.argv[1] is not a string (got 7)');
  });
});

describe('journal sparse index', () => {
  it('resumes inside a big segment from its sparse index, and ignores a bad index', async () => {
    const { StreamCursor } = await import('./cursor.js');
    const dir = freshDir();
    const w = openJournalWriter({ dir, stream: 'ebpf', fsyncIntervalMs: 1 });
    const payload = Buffer.alloc(300, 1);
    for (let i = 0; i < 20; i++) {
      w.appendEncoded(CODEC.ebpfRaw, Array.from({ length: 500 }, () => payload));
      await w.flush();
    }
    await w.close();
    const idxPath = join(dir, 'ebpf', '00000000000000000001.idx');
    assert.ok(statSync(idxPath).size >= 2 * 16, 'the index has entries');
    const decoders = new Map<number, PayloadDecoder>([[CODEC.ebpfRaw, () => sampleEvent('exit', 0)]]);
    const rejects: unknown[] = [];
    const c = new StreamCursor(dir, 'ebpf', 7000, decoders, (r) => rejects.push(r));
    const out: JournalRecord[] = [];
    c.read(5, out);
    assert.deepEqual(out.map((r) => r.seq), [7001, 7002, 7003, 7004, 7005]);
    assert.ok(c.resumedAt > 1 << 20, `resumed at offset ${c.resumedAt}, not from the index`);
    c.close();
    // A garbled index is only a hint: the cursor falls back to scanning the segment.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(idxPath, Buffer.alloc(64, 0x41));
    const c2 = new StreamCursor(dir, 'ebpf', 7000, decoders, (r) => rejects.push(r));
    const out2: JournalRecord[] = [];
    c2.read(2, out2);
    assert.deepEqual(out2.map((r) => r.seq), [7001, 7002]);
    assert.equal(c2.resumedAt, 72);
    c2.close();
    assert.deepEqual(rejects, []);
  });
});
