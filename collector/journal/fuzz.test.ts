import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPS } from '../events.js';
import { checkEvent } from '../validate.js';
import { crc32c } from './crc32c.js';
import { FRAME_HEADER_BYTES, findNextFrame, isFrame, parseFrame, writeFrameHeader, KIND_RECORD } from './format.js';
import { openJournalWriter } from './writer.js';
import { openJournalReader } from './reader.js';
import { verifyJournal } from './verify.js';
import { listSegments } from './segments.js';
import { sampleEvent, anySampleEvent } from './samples.js';
import { rng } from '../../test/rng.js';

const SEED = Number(process.env.PROV_FUZZ_SEED ?? 20261121);
const rand = rng(SEED);
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const root = mkdtempSync(join(tmpdir(), 'prov-journal-fuzz-'));
after(() => rmSync(root, { recursive: true, force: true }));

function randomBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
}

/** A valid frame (seeded with `seed`) around `payload`. */
function frame(payload: Buffer, seq: number, seed: number): Buffer {
  const b = Buffer.alloc(payload.length + 20);
  writeFrameHeader(b, 0, int(3), KIND_RECORD, payload.length, seq);
  payload.copy(b, FRAME_HEADER_BYTES);
  b.writeUInt32LE(crc32c(b, 0, FRAME_HEADER_BYTES + payload.length, seed), FRAME_HEADER_BYTES + payload.length);
  return b;
}

const WEIRD: readonly unknown[] = [
  null, true, false, 0, -1, 1.5, -0.5, 1e300, -1e300, 2 ** 64, 2 ** 53 + 2, Number.MAX_SAFE_INTEGER,
  '', 'x', '12', [], [1], ['a', 2], {}, { dev: 1 }, Infinity, NaN,
];

/** A value of a different JS type than `v` (always invalid for a schema field that held `v`). */
function otherType(v: unknown): unknown {
  if (typeof v === 'number') return pick(['7', null, true, [], {}, NaN, Infinity, 1e300 * 10]);
  if (typeof v === 'string') return pick([7, null, true, [], {}]);
  if (typeof v === 'boolean') return pick([1, 'true', null, [], {}]);
  if (Array.isArray(v)) return pick([7, 'a', null, true, {}]);
  return pick([7, 'a', null, true, []]);
}

let cases = 0;

describe('fuzz: frame decoder and validator', () => {
  it('the frame decoder never throws and explains every rejection', () => {
    for (let i = 0; i < 40_000; i++, cases++) {
      const seed = int(2 ** 32);
      let b: Buffer;
      let intact = false;
      let mustFail = false;
      const kind = int(6);
      if (kind === 0) {
        b = randomBytes(int(300));
      } else {
        const payload = rand() < 0.5 ? Buffer.from(JSON.stringify(anySampleEvent(i))) : randomBytes(int(200));
        b = frame(payload, 1 + int(2 ** 40), seed);
        if (kind === 1) { intact = true; }
        else if (kind === 2) { b = b.subarray(0, int(b.length)); mustFail = true; }
        else if (kind === 3) {
          const flips = 1 + int(3);
          const at = new Set<number>();
          while (at.size < flips) at.add(int(b.length * 8));
          for (const bit of at) b[bit >> 3]! ^= 1 << (bit & 7);
          mustFail = true; // CRC-32C catches every 1-3 bit error at these lengths
        } else if (kind === 4) {
          b.writeUInt32LE(pick([0xffffffff, 0x7fffffff, b.length, int(2 ** 32), 0]), 4);
          mustFail = b.readUInt32LE(4) !== b.length - 20;
        } else {
          b = Buffer.concat([b, randomBytes(1 + int(40))]);
          intact = true; // trailing junk does not affect this frame
        }
      }
      const f = parseFrame(b, 0, b.length, seed);
      if (isFrame(f)) {
        assert.ok(!mustFail, `case ${i} (kind ${kind}): a damaged frame parsed`);
        assert.ok(f.end <= b.length);
      } else {
        assert.ok(!intact, `case ${i} (kind ${kind}): an intact frame was rejected: ${f.reason}`);
        assert.equal(typeof f.reason, 'string');
        assert.ok(f.reason.length > 0);
      }
      if (i % 20 === 0) {
        const at = findNextFrame(b, 1, b.length);
        assert.ok(at === -1 || (at >= 1 && at < b.length));
      }
    }
  });

  it('the validator never throws and explains every rejection', () => {
    for (let i = 0; i < 60_000; i++, cases++) {
      const ev = JSON.parse(JSON.stringify(sampleEvent(pick(OPS), i, rand() < 0.5 ? 'ebpf' : 'provfs'))) as Record<string, unknown>;
      const keys = Object.keys(ev);
      let mustFail = true;
      const kind = int(8);
      if (kind === 0) {
        const k = pick(['v', 'src', 'op', 'seq', 'ts', 'host', 'pid', 'tid']);
        delete ev[k];
      } else if (kind === 1) {
        const k = pick(keys);
        ev[k] = otherType(ev[k]);
      } else if (kind === 2) {
        // nested: a file reference or an array element
        const objs = keys.filter((x) => typeof ev[x] === 'object' && ev[x] !== null);
        const k = objs.length > 0 ? pick(objs) : pick(keys);
        const o = ev[k];
        if (Array.isArray(o) && o.length > 0) { const j = int(o.length); o[j] = otherType(o[j]); }
        else if (o && typeof o === 'object' && Object.keys(o).length > 0) {
          const inner = o as Record<string, unknown>;
          const ik = pick(Object.keys(inner));
          inner[ik] = otherType(inner[ik]);
        } else { ev[k] = otherType(o); }
      } else if (kind === 3) {
        ev.op = pick(['', 'OPEN', 'execve', 'unlinkat', 42, null]);
      } else if (kind === 4) {
        ev[pick(['pid', 'tid', 'ts', 'seq'])] = pick([-1, 1.5, 1e300, 2 ** 64, NaN, -0.001]);
      } else if (kind === 5) {
        // another op's name on these fields: may or may not be valid, must not crash
        ev.op = pick(OPS);
        mustFail = false;
      } else if (kind === 6) {
        ev[pick(keys)] = pick(WEIRD);
        mustFail = false;
      } else {
        // garbage JSON values and bytes
        const text = rand() < 0.5 ? JSON.stringify(ev) : JSON.stringify(pick(WEIRD));
        const bytes = Buffer.from(text);
        for (let f = 0; f < 1 + int(3); f++) bytes[int(bytes.length)] = int(256);
        let parsed: unknown;
        try { parsed = JSON.parse(bytes.toString('utf8', 0, int(bytes.length + 1))); } catch { continue; }
        const c = checkEvent(parsed, 'fuzz');
        if (!c.ok) assert.match(c.reason, /^fuzz: \S+ seq \S+: .+/);
        continue;
      }
      const c = checkEvent(ev);
      if (mustFail) assert.equal(c.ok, false, `case ${i} (kind ${kind}) accepted: ${JSON.stringify(ev)}`);
      if (!c.ok) {
        assert.match(c.reason, /^\S+ seq \S+: .+/, `case ${i}: unexplained rejection`);
      }
    }
  });

  it('the reader and verify survive damaged segment files and explain what they skip', async () => {
    const base = join(root, 'base');
    const w = openJournalWriter({ dir: base, stream: 's', segmentBytes: 16384 });
    for (let i = 0; i < 200; i++) w.append(anySampleEvent(i));
    await w.close();
    const segs = listSegments(join(base, 's'));
    // Hundreds of expected rejections: keep the log to errors for this test.
    const level = process.env.PROV_LOG;
    process.env.PROV_LOG = 'error';
    after(() => { if (level === undefined) delete process.env.PROV_LOG; else process.env.PROV_LOG = level; });
    for (let i = 0; i < 300; i++, cases++) {
      const d = join(root, `d${i}`);
      mkdirSync(join(d, 's'), { recursive: true });
      for (const s of segs) copyFileSync(s.path, join(d, 's', s.name));
      copyFileSync(join(base, 's', 'HEAD'), join(d, 's', 'HEAD'));
      const target = join(d, 's', pick(segs).name);
      let b = readFileSync(target);
      const kind = int(4);
      if (kind === 0) for (let k = 0; k < 1 + int(8); k++) b[int(b.length)] = int(256);
      else if (kind === 1) b = b.subarray(0, int(b.length));
      else if (kind === 2) { const at = int(b.length); b = Buffer.concat([b.subarray(0, at), randomBytes(1 + int(64)), b.subarray(at)]); }
      else { const at = int(b.length), len = int(300); b = Buffer.concat([b.subarray(0, at), b.subarray(at, at + len), b.subarray(at)]); }
      writeFileSync(target, b);
      const r = openJournalReader(d);
      const got = r.readBatch(10_000);
      let last = 0;
      for (const rec of got) { assert.ok(rec.seq > last, 'seqs must increase'); last = rec.seq; }
      for (const rej of r.rejections) assert.ok(rej.reason.length > 0 && rej.stream === 's');
      r.close();
      const v = verifyJournal(d);
      for (const p of v.problems) assert.ok(p.message.length > 0 && p.segment.length > 0);
      rmSync(d, { recursive: true, force: true });
    }
  });

  it(`ran at least 100,000 cases (seed ${SEED})`, () => {
    assert.ok(cases >= 100_000, `only ${cases} cases`);
  });
});
