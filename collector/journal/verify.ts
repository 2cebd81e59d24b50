/**
 * @module collector/journal/verify
 * `verifyJournal(dir)`: walk every stream's chain and name the first modified, missing or
 * reordered record (stream, segment file, byte offset, seq).
 *
 * What it checks: each segment header (magic, checksum, first seq against the file name, and
 * that it continues the previous segment's chain value and seal); each frame's framing and
 * chained CRC-32C; seq continuity (1, 2, 3, … across segments); every seal (SHA-256 over the
 * bytes since the previous seal, chained); and the stream's HEAD file (what was committed at
 * the last group commit) against the end of the stream.
 *
 * What the chain cannot detect on its own:
 * - Cutting off the newest records (or whole newest segments), as long as the cut falls on a
 *   record boundary and HEAD is rewritten or deleted too: a prefix of a valid chain is a valid
 *   chain. HEAD catches a cut made without touching HEAD; against someone who can rewrite the
 *   whole directory, only an anchor kept elsewhere helps: the report gives each stream's newest
 *   seal and the seq it covers (`head`); kept off the machine and passed back as `anchors`
 *   (`prov verify --anchor FILE`), it exposes any later truncation or rewrite up to that seq.
 * - A wholesale rewrite: someone who re-frames every record and recomputes every CRC and seal
 *   produces a valid journal. Seals make that require rewriting everything after the edit (so
 *   a remembered seal exposes it), but nothing in the directory alone can.
 * - Edits that recompute CRCs are caught by the seal of their window, which names the range of
 *   seqs it covers (a few hundred small records at most), not the single record.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { NotFoundError } from '../../graph/errors.js';
import {
  FRAME_MAGIC0, FRAME_MAGIC1, FRAME_OVERHEAD, HEAD_FILE, KIND_RECORD, KIND_SEAL,
  MAX_PAYLOAD, SEGMENT_HEADER_BYTES, ZERO_SEAL, computeSeal, decodeHead, decodeSegmentHeader,
  findNextFrame, isFrame, parseFrame, readU32, readU64, type Head,
} from './format.js';
import { listSegments, listStreams } from './segments.js';

export type ProblemKind = 'modified' | 'missing' | 'reordered' | 'truncated';

/** The first thing wrong with a stream. */
export interface VerifyProblem {
  kind: ProblemKind;
  stream: string;
  segment: string;
  /** Byte offset in the segment file. */
  offset: number;
  /** The seq at issue: the modified record's, the first missing one, or the one found out of order. */
  seq: number | null;
  message: string;
}

export interface StreamReport {
  stream: string;
  segments: number;
  records: number;
  seals: number;
  bytes: number;
  firstSeq: number | null;
  lastSeq: number | null;
  /** The last seq and seal (hex): record them elsewhere to anchor the chain. */
  head: { seq: number; seal: string } | null;
  /** Records after the newest seal (an unrecovered crash; covered by CRCs only). */
  unsealedRecords: number;
  /** A partial frame at the very end (a crash the writer has not recovered yet): not a problem by itself. */
  tornTail?: { segment: string; offset: number; bytes: number };
  problem?: VerifyProblem;
  warnings: string[];
}

export interface VerifyReport {
  dir: string;
  ok: boolean;
  records: number;
  streams: StreamReport[];
  /** The first problem of each stream that has one. */
  problems: VerifyProblem[];
}

/** Frames found by walking lengths only (no CRC): used to tell reordering from loss. */
function structuralSeqs(buf: Uint8Array, from: number, limit: number): Array<{ seq: number; offset: number }> {
  const out: Array<{ seq: number; offset: number }> = [];
  let off = from;
  while (off + FRAME_OVERHEAD <= buf.length && out.length < limit) {
    if (buf[off] !== FRAME_MAGIC0 || buf[off + 1] !== FRAME_MAGIC1) break;
    const len = readU32(buf, off + 4);
    if (len > MAX_PAYLOAD || off + len + FRAME_OVERHEAD > buf.length) break;
    if (buf[off + 3] === KIND_RECORD) out.push({ seq: readU64(buf, off + 8), offset: off });
    off += len + FRAME_OVERHEAD;
  }
  return out;
}

function verifyStream(dir: string, stream: string, anchor?: Anchor): StreamReport {
  const streamDir = join(dir, stream);
  // HEAD first: with a writer running, the segments listed afterwards hold at least what it names.
  let headBytes: Buffer | null = null;
  try { headBytes = readFileSync(join(streamDir, HEAD_FILE)); } catch { /* none */ }
  const segs = listSegments(streamDir);
  const r: StreamReport = {
    stream, segments: segs.length, records: 0, seals: 0, bytes: 0, firstSeq: null, lastSeq: null,
    head: null, unsealedRecords: 0, warnings: [],
  };
  let head: Head | null = null;
  if (headBytes === null) {
    if (segs.length > 0) r.warnings.push(`no ${HEAD_FILE} file: truncation of the newest records cannot be detected`);
  } else if (headBytes.length > 0) { // empty: opened, nothing committed yet
    const h = decodeHead(headBytes);
    if (typeof h === 'string') r.warnings.push(`${HEAD_FILE}: ${h} (ignored)`);
    else head = h;
  }
  let headSealSeen: Buffer | null = null;
  let anchorSealSeen: Buffer | null = null;
  let lastSealSeq = 0;

  let expected = 1;
  let prevCrc = 0;
  let prevSeal: Buffer = ZERO_SEAL;
  const fail = (kind: ProblemKind, segment: string, offset: number, seq: number | null, message: string): StreamReport => {
    r.problem = { kind, stream, segment, offset, seq, message };
    return r;
  };

  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    const bytes = readFileSync(seg.path);
    r.bytes += bytes.length;
    if (bytes.length < SEGMENT_HEADER_BYTES && last && expected === seg.firstSeq) {
      r.tornTail = { segment: seg.name, offset: 0, bytes: bytes.length };
      break;
    }
    const h = decodeSegmentHeader(bytes.subarray(0, SEGMENT_HEADER_BYTES));
    if (typeof h === 'string') return fail('modified', seg.name, 0, null, `segment header: ${h}`);
    if (h.firstSeq !== seg.firstSeq) {
      return fail('modified', seg.name, 0, h.firstSeq, `segment header says first seq ${h.firstSeq} but the file name says ${seg.firstSeq}`);
    }
    if (h.firstSeq > expected) {
      return fail('missing', seg.name, 0, expected, `records seq ${expected}..${h.firstSeq - 1} are missing before this segment`);
    }
    if (h.firstSeq < expected) {
      return fail('reordered', seg.name, 0, h.firstSeq, `segment starts at seq ${h.firstSeq} but seq ${expected - 1} came before it`);
    }
    if (h.prevCrc !== prevCrc || !h.prevSeal.equals(prevSeal)) {
      return fail('modified', seg.name, 0, h.firstSeq, 'segment header does not continue the chain of the previous segment (the previous segment was modified or replaced)');
    }
    let seed = h.crc;
    let sealPrev: Buffer = h.prevSeal;
    let windowStart = 0;
    let windowFirstSeq = expected;
    let off = SEGMENT_HEADER_BYTES;
    while (off < bytes.length) {
      const f = parseFrame(bytes, off, bytes.length, seed);
      if (!isFrame(f)) {
        const after = findNextFrame(bytes, off + 1, bytes.length);
        if (after < 0) {
          if (last) {
            r.tornTail = { segment: seg.name, offset: off, bytes: bytes.length - off };
            break;
          }
          return fail('truncated', seg.name, off, expected, `${f.reason}: the segment ends in a partial or damaged record although a newer segment exists`);
        }
        if (f.seq < 0 || f.kind === KIND_SEAL || f.seq === expected) {
          return fail('modified', seg.name, off, expected, `record seq ${expected} is damaged (${f.reason})`);
        }
        const ahead = structuralSeqs(bytes, off, 100_000);
        const foundExpected = ahead.find((a) => a.seq === expected);
        if (foundExpected) {
          return fail('reordered', seg.name, off, f.seq, `seq ${f.seq} at offset ${off} comes before seq ${expected} (at offset ${foundExpected.offset})`);
        }
        const next = ahead[1];
        if (f.seq > expected && next && next.seq === f.seq + 1) {
          return fail('missing', seg.name, off, expected, `records seq ${expected}..${f.seq - 1} are missing (seq ${f.seq} follows seq ${expected - 1})`);
        }
        return fail('modified', seg.name, off, expected, `record seq ${expected} is damaged (${f.reason}; its header reads seq ${f.seq})`);
      }
      if (f.kind === KIND_SEAL) {
        const want = computeSeal(sealPrev, bytes.subarray(windowStart, off));
        const got = bytes.subarray(f.payloadStart, f.payloadStart + f.len);
        if (!want.equals(got)) {
          return fail('modified', seg.name, windowStart === 0 ? SEGMENT_HEADER_BYTES : windowStart, windowFirstSeq,
            `seal at offset ${off} does not match: a record in seq ${windowFirstSeq}..${expected - 1} (offsets ${windowStart}..${off}) was modified and its checksums recomputed`);
        }
        sealPrev = Buffer.from(got);
        if (head && f.seq === head.seq) headSealSeen = sealPrev;
        if (anchor && f.seq === anchor.seq) anchorSealSeen = sealPrev;
        lastSealSeq = f.seq;
        windowStart = f.end;
        windowFirstSeq = expected;
        r.seals++;
        r.unsealedRecords = 0;
      } else {
        if (f.seq !== expected) {
          // CRCs check out, so the checksums were recomputed by whoever moved records.
          if (f.seq > expected) {
            const ahead = structuralSeqs(bytes, f.end, 100_000);
            const found = ahead.find((a) => a.seq === expected);
            if (found) return fail('reordered', seg.name, off, f.seq, `seq ${f.seq} at offset ${off} comes before seq ${expected} (at offset ${found.offset})`);
            return fail('missing', seg.name, off, expected, `records seq ${expected}..${f.seq - 1} are missing (seq ${f.seq} follows seq ${expected - 1})`);
          }
          return fail('reordered', seg.name, off, f.seq, `seq ${f.seq} at offset ${off} appears again after seq ${expected - 1}`);
        }
        r.firstSeq ??= f.seq;
        r.lastSeq = f.seq;
        r.records++;
        r.unsealedRecords++;
        expected++;
      }
      seed = f.crc;
      off = f.end;
    }
    prevCrc = seed;
    prevSeal = sealPrev;
    r.head = { seq: lastSealSeq, seal: sealPrev.toString('hex') };
  }

  if (anchor) {
    const lastSeq = expected - 1;
    const lastSeg = segs[segs.length - 1]?.name ?? '(none)';
    if (anchor.seq > lastSeq) {
      return fail('truncated', lastSeg, sizeOf(join(streamDir, lastSeg)), lastSeq + 1,
        `the anchor says seq ${anchor.seq} existed but the stream ends at seq ${lastSeq}: records ${lastSeq + 1}..${anchor.seq} are missing`);
    }
    if (anchor.seq > 0 && !(anchorSealSeen && anchorSealSeen.toString('hex') === anchor.seal.toLowerCase())) {
      return fail('modified', lastSeg, 0, anchor.seq,
        anchorSealSeen ? `the seal at seq ${anchor.seq} differs from the anchor: records up to seq ${anchor.seq} were rewritten` : `no seal at seq ${anchor.seq}, which the anchor names: the stream was rewritten`);
    }
  }
  if (head) {
    const lastSeq = expected - 1;
    const tail = r.tornTail ?? null;
    const lastSeg = segs[segs.length - 1]?.name ?? '(none)';
    if (head.seq > lastSeq) {
      return fail('truncated', tail?.segment ?? lastSeg, tail?.offset ?? (r.bytes > 0 ? sizeOf(join(streamDir, lastSeg)) : 0), lastSeq + 1,
        `${HEAD_FILE} says seq ${head.seq} was committed but the stream ends at seq ${lastSeq}: records ${lastSeq + 1}..${head.seq} are missing`);
    }
    if (head.seq > 0 && headSealSeen && !headSealSeen.equals(head.seal)) {
      return fail('modified', lastSeg, 0, head.seq, `the seal at seq ${head.seq} differs from the one ${HEAD_FILE} recorded when it was committed`);
    }
  }
  return r;
}

function sizeOf(p: string): number {
  try { return statSync(p).size; } catch { return 0; }
}

/** An external anchor: a stream's `head` from an earlier report, kept off the machine. */
export interface Anchor {
  seq: number;
  /** SHA-256 seal, hex. */
  seal: string;
}

export interface VerifyOptions {
  /** Per stream, the head recorded earlier: the stream must still contain that exact seal at that seq. */
  anchors?: Record<string, Anchor>;
}

/**
 * Verify every stream of the journal at `dir`, and against `opts.anchors` when given. Throws
 * {@link NotFoundError} when `dir` holds no journal stream; otherwise returns a report (`ok`
 * false when any stream has a problem).
 */
export function verifyJournal(dir: string, opts: VerifyOptions = {}): VerifyReport {
  let isDir = false;
  try { isDir = statSync(dir).isDirectory(); } catch { /* not there */ }
  if (!isDir) throw new NotFoundError(`no journal directory at ${dir}`);
  const streams = listStreams(dir).filter((s) => listSegments(join(dir, s)).length > 0 || sizeOf(join(dir, s, HEAD_FILE)) > 0);
  if (streams.length === 0) throw new NotFoundError(`no journal streams in ${dir}`);
  const anchors = opts.anchors ?? {};
  const reports = streams.map((s) => verifyStream(dir, s, anchors[s]));
  for (const [s, a] of Object.entries(anchors)) {
    if (!streams.includes(s)) {
      reports.push({
        stream: s, segments: 0, records: 0, seals: 0, bytes: 0, firstSeq: null, lastSeq: null, head: null, unsealedRecords: 0, warnings: [],
        problem: { kind: 'missing', stream: s, segment: '(none)', offset: 0, seq: 1, message: `the anchor names stream ${s} (up to seq ${a.seq}) but the journal has no such stream` },
      });
    }
  }
  const problems = reports.flatMap((s) => (s.problem ? [s.problem] : []));
  return { dir, ok: problems.length === 0, records: reports.reduce((n, s) => n + s.records, 0), streams: reports, problems };
}
