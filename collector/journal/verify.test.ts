import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJournalWriter } from './writer.js';
import { openJournalReader } from './reader.js';
import { verifyJournal, type VerifyProblem } from './verify.js';
import { anySampleEvent } from './samples.js';
import { crc32c } from './crc32c.js';
import { listSegments } from './segments.js';
import verifyCli from '../../cli/actions/verify.js';

const root = mkdtempSync(join(tmpdir(), 'prov-journal-verify-'));
after(() => rmSync(root, { recursive: true, force: true }));
const pristine = join(root, 'pristine');
const STREAM = 'ebpf';
interface Loc { seq: number; segment: string; offset: number; len: number }
let locs: Loc[] = [];
let n = 0;

/** A fresh copy of the pristine journal to damage. */
function copy(): string {
  const d = join(root, `copy${n++}`);
  cpSync(pristine, d, { recursive: true });
  return d;
}
const segPath = (dir: string, seg: string) => join(dir, STREAM, seg);
const loc = (seq: number) => locs[seq - 1]!;

function onlyProblem(dir: string): VerifyProblem {
  const r = verifyJournal(dir);
  assert.equal(r.ok, false, 'verify said clean');
  assert.equal(r.problems.length, 1);
  return r.problems[0]!;
}

/** Two adjacent records in the same segment with nothing between them, at or after `from`. */
function adjacentPair(from: number): [Loc, Loc] {
  for (let s = from; s < locs.length; s++) {
    const a = loc(s), b = loc(s + 1);
    if (a.segment === b.segment && a.offset + a.len === b.offset) return [a, b];
  }
  throw new Error('no adjacent pair');
}

async function captureStdout(f: () => Promise<number>): Promise<{ code: number; out: string }> {
  const saved = process.stdout.write.bind(process.stdout);
  const savedErr = process.stderr.write.bind(process.stderr);
  let out = '';
  process.stdout.write = ((c: string | Uint8Array) => { out += c.toString(); return true; }) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => { out += c.toString(); return true; }) as typeof process.stderr.write;
  try {
    return { code: await f(), out };
  } finally {
    process.stdout.write = saved;
    process.stderr.write = savedErr;
  }
}

before(async () => {
  const w = openJournalWriter({ dir: pristine, stream: STREAM, segmentBytes: 8192 });
  for (let i = 0; i < 400; i++) {
    w.append(anySampleEvent(i));
    if (i % 50 === 49) await w.flush(); // a few commits: seals inside segments too
  }
  await w.close();
  const r = openJournalReader(pristine);
  locs = r.readBatch(1000).map((x) => ({
    seq: x.seq, segment: x.segment, offset: x.offset,
    len: readFileSync(segPath(pristine, x.segment)).readUInt32LE(x.offset + 4) + 20,
  }));
  assert.equal(locs.length, 400);
});

describe('verifyJournal', () => {
  it('finds a freshly written journal clean, and so does prov verify', async () => {
    const r = verifyJournal(pristine);
    assert.equal(r.ok, true, JSON.stringify(r.problems));
    assert.equal(r.records, 400);
    assert.equal(r.streams[0]!.lastSeq, 400);
    assert.match(r.streams[0]!.head!.seal, /^[0-9a-f]{64}$/);
    const { code, out } = await captureStdout(() => verifyCli(pristine, {}));
    assert.equal(code, 0);
    assert.match(out, /^journal .*: clean \(1 stream, 400 records\)\n$/);
  });

  for (const seq of [57, 321]) {
    it(`catches one flipped byte in record ${seq} at its segment, offset and seq`, async () => {
      const d = copy();
      const l = loc(seq);
      const b = readFileSync(segPath(d, l.segment));
      b[l.offset + 16 + 5]! ^= 0x01;
      writeFileSync(segPath(d, l.segment), b);
      const p = onlyProblem(d);
      assert.deepEqual({ kind: p.kind, stream: p.stream, segment: p.segment, offset: p.offset, seq: p.seq },
        { kind: 'modified', stream: STREAM, segment: l.segment, offset: l.offset, seq });
      const { code, out } = await captureStdout(() => verifyCli(d, {}));
      assert.equal(code, 5);
      assert.match(out, new RegExp(`NOT clean: modified record in stream ebpf segment ${l.segment} offset ${l.offset} seq ${seq}: `));
      assert.equal(out.trim().split('\n').length, 1);
    });
  }

  it('the reader names a damaged record, skips it and delivers the rest', () => {
    const d = copy();
    const l = loc(57);
    const b = readFileSync(segPath(d, l.segment));
    b[l.offset + 16 + 5]! ^= 0x01;
    writeFileSync(segPath(d, l.segment), b);
    const saved = process.env.PROV_LOG;
    process.env.PROV_LOG = 'error';
    try {
      const r = openJournalReader(d);
      const got = r.readBatch(1000).map((x) => x.seq);
      assert.equal(got.length, 399);
      assert.ok(!got.includes(57));
      assert.equal(r.stats.rejected, 1);
      const rej = r.rejections[0]!;
      assert.deepEqual({ stream: rej.stream, seq: rej.seq, segment: rej.segment, offset: rej.offset },
        { stream: STREAM, seq: 57, segment: l.segment, offset: l.offset });
      assert.match(rej.reason, new RegExp(`^checksum mismatch; skipped ${l.len} bytes to the next valid record$`));
    } finally {
      if (saved === undefined) delete process.env.PROV_LOG; else process.env.PROV_LOG = saved;
    }
  });

  it('names the damaged stream among several', async () => {
    const d = copy();
    const w = openJournalWriter({ dir: d, stream: 'provfs-1' });
    for (let i = 0; i < 30; i++) w.append(anySampleEvent(i, 'provfs'));
    await w.close();
    const seg = listSegments(join(d, 'provfs-1'))[0]!;
    const b = readFileSync(seg.path);
    b[b.length - 100]! ^= 0x40;
    writeFileSync(seg.path, b);
    const r = verifyJournal(d);
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems.map((p) => p.stream), ['provfs-1']);
    assert.equal(r.streams.find((s) => s.stream === STREAM)!.problem, undefined);
    assert.equal(r.records, 400 + r.streams.find((s) => s.stream === 'provfs-1')!.records);
  });

  it('catches a deleted record', () => {
    const d = copy();
    const [a] = adjacentPair(57);
    const p0 = segPath(d, a.segment);
    const b = readFileSync(p0);
    writeFileSync(p0, Buffer.concat([b.subarray(0, a.offset), b.subarray(a.offset + a.len)]));
    const p = onlyProblem(d);
    assert.deepEqual({ kind: p.kind, stream: p.stream, segment: p.segment, offset: p.offset, seq: p.seq },
      { kind: 'missing', stream: STREAM, segment: a.segment, offset: a.offset, seq: a.seq });
  });

  it('catches two swapped records', () => {
    const d = copy();
    const [a, c] = adjacentPair(140);
    const p0 = segPath(d, a.segment);
    const b = readFileSync(p0);
    const swapped = Buffer.concat([
      b.subarray(0, a.offset), b.subarray(c.offset, c.offset + c.len), b.subarray(a.offset, a.offset + a.len), b.subarray(c.offset + c.len),
    ]);
    writeFileSync(p0, swapped);
    const p = onlyProblem(d);
    assert.deepEqual({ kind: p.kind, stream: p.stream, segment: p.segment, offset: p.offset, seq: p.seq },
      { kind: 'reordered', stream: STREAM, segment: a.segment, offset: a.offset, seq: c.seq });
    assert.match(p.message, new RegExp(`seq ${c.seq} at offset ${a.offset} comes before seq ${a.seq}`));
  });

  it('catches an edit whose checksums were recomputed, through the seal', () => {
    const d = copy();
    const l = loc(200);
    const p0 = segPath(d, l.segment);
    const b = readFileSync(p0);
    const text = b.toString('latin1', l.offset + 16, l.offset + l.len - 4);
    const edited = text.replace('"host":"h1"', '"host":"h9"');
    assert.notEqual(edited, text);
    b.write(edited, l.offset + 16, 'latin1');
    // Re-chain every CRC from the edited record to the end of the segment, as a forger would.
    let seed = b.readUInt32LE(l.offset - 4);
    for (let off = l.offset; off < b.length; ) {
      const end = off + 16 + b.readUInt32LE(off + 4);
      seed = crc32c(b, off, end, seed);
      b.writeUInt32LE(seed, end);
      off = end + 4;
    }
    writeFileSync(p0, b);
    const p = onlyProblem(d);
    assert.equal(p.kind, 'modified');
    assert.equal(p.segment, l.segment);
    assert.match(p.message, /^seal at offset \d+ does not match: a record in seq (\d+)\.\.(\d+)/);
    const [, lo, hi] = /seq (\d+)\.\.(\d+)/.exec(p.message)!;
    assert.ok(Number(lo) <= 200 && 200 <= Number(hi), p.message);
    assert.equal(p.seq, Number(lo));
  });

  it('catches the newest records cut off, through HEAD', () => {
    const d = copy();
    const l = loc(400);
    truncateSync(segPath(d, l.segment), l.offset);
    const p = onlyProblem(d);
    assert.equal(p.kind, 'truncated');
    assert.equal(p.seq, 400);
    assert.match(p.message, /HEAD says seq 400 was committed but the stream ends at seq 399/);
  });

  it('catches a deleted middle segment', () => {
    const d = copy();
    const segs = listSegments(join(d, STREAM));
    assert.ok(segs.length >= 4);
    unlinkSync(segs[2]!.path);
    const p = onlyProblem(d);
    assert.deepEqual({ kind: p.kind, segment: p.segment, offset: p.offset, seq: p.seq },
      { kind: 'missing', segment: segs[3]!.name, offset: 0, seq: segs[2]!.firstSeq });
  });

  it('reports a torn tail as an unrecovered crash, not as tampering', () => {
    const d = copy();
    const last = listSegments(join(d, STREAM)).at(-1)!;
    writeFileSync(last.path, Buffer.concat([readFileSync(last.path), Buffer.from([0xf5, 0x4a, 0, 0, 9])]));
    const r = verifyJournal(d);
    assert.equal(r.ok, true);
    assert.equal(r.streams[0]!.tornTail!.bytes, 5);
  });

  it('an external anchor catches what the chain alone cannot: a cut with HEAD removed, a rewrite', async () => {
    const anchorFile = join(root, 'anchor.json');
    const { out } = await captureStdout(() => verifyCli(pristine, { json: true }));
    writeFileSync(anchorFile, out);
    assert.equal((await captureStdout(() => verifyCli(pristine, { anchor: anchorFile }))).code, 0);

    // Cut the newest records on a record boundary and delete HEAD: a valid prefix of the chain.
    const d = copy();
    const l = locs.find((x) => x.segment === loc(400).segment && x.seq > locs.find((y) => y.segment === loc(400).segment)!.seq)!;
    truncateSync(segPath(d, l.segment), l.offset);
    unlinkSync(join(d, STREAM, 'HEAD'));
    const alone = verifyJournal(d);
    assert.equal(alone.ok, true, 'without an anchor the cut is invisible (documented limitation)');
    assert.match(alone.streams[0]!.warnings.join(), /no HEAD file/);
    const cut = await captureStdout(() => verifyCli(d, { anchor: anchorFile }));
    assert.equal(cut.code, 5);
    assert.match(cut.out, new RegExp(`NOT clean: truncated record in stream ebpf .* seq ${l.seq}: the anchor says seq 400 existed but the stream ends at seq ${l.seq - 1}`));

    // A wholesale rewrite: a fresh journal of other events in the same place.
    const r = join(root, 'rewritten');
    const w = openJournalWriter({ dir: r, stream: STREAM, segmentBytes: 8192 });
    for (let i = 0; i < 400; i++) w.append(anySampleEvent(i + 7));
    await w.close();
    assert.equal(verifyJournal(r).ok, true);
    const rewritten = await captureStdout(() => verifyCli(r, { anchor: anchorFile }));
    assert.equal(rewritten.code, 5);
    assert.match(rewritten.out, /modified record .* seq 400: (the seal at seq 400 differs from the anchor|no seal at seq 400)/);

    writeFileSync(join(root, 'bad-anchor.json'), '{"ebpf": {"seq": 1}}');
    const bad = await captureStdout(() => verifyCli(pristine, { anchor: join(root, 'bad-anchor.json') }));
    assert.equal(bad.code, 2);
    assert.match(bad.out, /needs a seq and a 64-hex-digit seal/);
  });

  it('finds a journal clean while its writer is appending and rotating', async () => {
    const d = join(root, 'live');
    const w = openJournalWriter({ dir: d, stream: STREAM, segmentBytes: 4096, fsyncIntervalMs: 1 });
    w.append(anySampleEvent(0));
    await w.flush(); // before the first commit there is no journal to verify yet
    for (let round = 0; round < 30; round++) {
      for (let i = 0; i < 50; i++) w.append(anySampleEvent(round * 50 + i + 1));
      await new Promise((res) => setTimeout(res, round % 3));
      const r = verifyJournal(d);
      assert.equal(r.ok, true, `round ${round}: ${JSON.stringify(r.problems)}`);
    }
    await w.close();
    assert.equal(verifyJournal(d).records, 1501);
  });

  it('prov verify: JSON output, and exit 3 when there is no journal', async () => {
    const { code, out } = await captureStdout(() => verifyCli(pristine, { json: true }));
    assert.equal(code, 0);
    const report = JSON.parse(out);
    assert.equal(report.ok, true);
    assert.equal(report.streams[0].records, 400);
    const missing = await captureStdout(() => verifyCli(join(root, 'nope'), {}));
    assert.equal(missing.code, 3);
    assert.match(missing.out, /^prov verify: no journal directory at .*nope\n$/);
  });
});
