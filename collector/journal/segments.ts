/**
 * @module collector/journal/segments
 * Listing streams and segment files, and walking one segment's frames in memory. The walk is
 * what the writer's crash recovery runs on the newest segment: it follows the CRC chain and the
 * seals and stops at the first frame that does not parse.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import {
  KIND_SEAL, SEGMENT_HEADER_BYTES, checkStreamName, decodeSegmentHeader, isFrame,
  parseFrame, parseSegmentName, type FrameError, type SegmentHeader,
} from './format.js';

export interface SegmentFile {
  name: string;
  path: string;
  firstSeq: number;
}

/** Stream directories under a journal directory, sorted by name. */
export function listStreams(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => checkStreamName(n) === null && isDir(join(dir, n))).sort();
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Segment files of a stream directory in seq order (other files are ignored). */
export function listSegments(streamDir: string): SegmentFile[] {
  let names: string[];
  try {
    names = readdirSync(streamDir);
  } catch {
    return [];
  }
  const out: SegmentFile[] = [];
  for (const name of names) {
    const firstSeq = parseSegmentName(name);
    if (firstSeq !== null) out.push({ name, path: join(streamDir, name), firstSeq });
  }
  return out.sort((a, b) => a.firstSeq - b.firstSeq);
}

/** What a walk over a segment found. */
export interface SegmentWalk {
  header: SegmentHeader;
  /** Records (not seals) that parsed. */
  records: number;
  /** Seq of the last whole record, or firstSeq - 1 when none. */
  lastSeq: number;
  /** Chain value after the last whole frame. */
  lastCrc: number;
  /** Offset just after the last whole frame. */
  end: number;
  /** The newest seal in the segment (the header's prevSeal when there is none). */
  seal: Buffer;
  /** Offset just after the newest seal frame (0 when there is none: the window starts at the header). */
  sealEnd: number;
  /** Seq covered by the newest seal. */
  sealSeq: number;
  /** The first frame that failed, if any. */
  failure?: { offset: number; error: FrameError | { reason: string; incomplete: false; seq: number; kind: number } };
}

/**
 * Walk the frames of a whole segment held in memory, following the chain. It checks framing,
 * CRCs and seq continuity; seal contents are checked by verify only (recovery trusts CRCs).
 */
export function walkSegment(buf: Uint8Array, header: SegmentHeader): SegmentWalk {
  const w: SegmentWalk = {
    header, records: 0, lastSeq: header.firstSeq - 1, lastCrc: header.crc, end: SEGMENT_HEADER_BYTES,
    seal: header.prevSeal, sealEnd: 0, sealSeq: header.firstSeq - 1,
  };
  let off = SEGMENT_HEADER_BYTES;
  while (off < buf.length) {
    const f = parseFrame(buf, off, buf.length, w.lastCrc);
    if (!isFrame(f)) {
      w.failure = { offset: off, error: f };
      return w;
    }
    if (f.kind === KIND_SEAL) {
      w.seal = Buffer.from(buf.subarray(f.payloadStart, f.payloadStart + f.len));
      w.sealEnd = f.end;
      w.sealSeq = w.lastSeq;
    } else {
      if (f.seq !== w.lastSeq + 1) {
        w.failure = { offset: off, error: { reason: `seq ${f.seq} where ${w.lastSeq + 1} was expected`, incomplete: false, seq: f.seq, kind: f.kind } };
        return w;
      }
      w.lastSeq = f.seq;
      w.records++;
    }
    w.lastCrc = f.crc;
    w.end = f.end;
    off = f.end;
  }
  return w;
}

/** Parse a segment's header from a whole-file buffer. */
export function headerOf(buf: Uint8Array): SegmentHeader | string {
  return decodeSegmentHeader(buf.subarray(0, SEGMENT_HEADER_BYTES));
}
