/**
 * @module collector/journal/format
 * The on-disk format of a journal stream, shared by the writer, the reader and the verifier.
 *
 * A stream directory holds segment files named by their first seq (`00000000000000000001.seg`,
 * zero-padded so names sort in seq order) and a `HEAD` file. All integers are little-endian.
 *
 * Segment header (72 bytes):
 *   0  "PROVJSEG"   8  u16 format version (1)   10 u16 header length (72)   12 u32 0
 *   16 u64 first seq   24 u32 chain value of the previous segment's last frame (0 for the first)
 *   28 u32 0           32 32 bytes: the previous segment's last seal (zeros for the first)
 *   64 u32 CRC-32C of bytes 0..64 (this is the chain value the segment's first frame continues from)
 *   68 u32 0
 *
 * Frame (20 + len bytes): 0 u8 0xF5, 1 u8 0x4A (magic), 2 u8 codec, 3 u8 kind (0 record, 1 seal),
 *   4 u32 payload length, 8 u64 seq, 16 payload, then u32 CRC-32C of bytes 0..16+len seeded
 *   with the previous frame's CRC (or the header CRC for the first frame of a segment).
 *   The CRC is at once the record's checksum and its link in the chain: each record commits to
 *   the one before it, across segment boundaries (through the header).
 *
 * Seal frame: kind 1, seq = last record seq it covers, payload = SHA-256(previous seal ||
 *   every byte of the segment from the end of the previous seal frame, or the segment start,
 *   up to this frame). Seals are the cryptographic part of the chain: CRCs localise damage to
 *   one record but can be recomputed by whoever edits the file; a seal cannot be forged
 *   without breaking SHA-256, once the newest seal is anchored outside the journal (HEAD, or a
 *   copy the user keeps; see verify.ts). The writer seals at every group commit, every 64 KiB
 *   of records and before rotating, so a seal covers a few hundred small records at most.
 *
 * HEAD (64 bytes, rewritten in place after every fsync): "PROVHEAD", u64 seq, u32 CRC chain,
 *   u32 0, 32-byte seal, u32 CRC-32C of bytes 0..56, u32 0. It says what was durable at the
 *   last group commit; verify uses it to detect the newest records being cut off.
 */
import { createHash } from 'node:crypto';
import { crc32c } from './crc32c.js';

export const SEGMENT_MAGIC = Buffer.from('PROVJSEG', 'latin1');
export const FORMAT_VERSION = 1;
export const SEGMENT_HEADER_BYTES = 72;
export const FRAME_MAGIC0 = 0xf5;
export const FRAME_MAGIC1 = 0x4a;
export const FRAME_HEADER_BYTES = 16;
export const FRAME_TRAILER_BYTES = 4;
export const FRAME_OVERHEAD = FRAME_HEADER_BYTES + FRAME_TRAILER_BYTES;
export const KIND_RECORD = 0;
export const KIND_SEAL = 1;
export const SEAL_BYTES = 32;
export const SEAL_FRAME_BYTES = FRAME_OVERHEAD + SEAL_BYTES;
/** Largest payload accepted (a bigger length field is corruption, not a record). */
export const MAX_PAYLOAD = 16 * 1024 * 1024;
/** Codec byte reserved for seal frames' codec field (unused, always 0). */
export const SEGMENT_SUFFIX = '.seg';
export const HEAD_FILE = 'HEAD';
/**
 * Sparse index beside a segment (`<first seq>.idx`): entries of u64 seq, u64 offset, one per
 * MiB of segment, appended after each commit and not fsync'd. Only a hint: a reader resuming
 * mid-segment checks the frame an entry points at before trusting it.
 */
export const INDEX_SUFFIX = '.idx';
export const INDEX_ENTRY_BYTES = 16;
export const HEAD_MAGIC = Buffer.from('PROVHEAD', 'latin1');
export const HEAD_BYTES = 64;
export const ZERO_SEAL: Buffer = Buffer.alloc(SEAL_BYTES);

/** Segment file name for a segment whose first record has `firstSeq`. */
export function segmentName(firstSeq: number): string {
  return String(firstSeq).padStart(20, '0') + SEGMENT_SUFFIX;
}

/** First seq named by a segment file name, or null when the name is not a segment's. */
export function parseSegmentName(name: string): number | null {
  if (!/^\d{20}\.seg$/.test(name)) return null;
  const n = Number(name.slice(0, 20));
  return Number.isSafeInteger(n) && n >= 1 ? n : null;
}

/** Stream names become directory names: keep them to a safe alphabet. */
export function checkStreamName(stream: string): string | null {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(stream)) {
    return `stream name ${JSON.stringify(stream)} must be 1-128 characters of A-Z a-z 0-9 . _ - and not start with . _ -`;
  }
  return null;
}

export interface SegmentHeader {
  firstSeq: number;
  prevCrc: number;
  prevSeal: Buffer;
  /** CRC of the header: the chain value its first frame continues from. */
  crc: number;
}

export function writeU64(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32LE(v >>> 0, off);
  buf.writeUInt32LE(Math.floor(v / 0x100000000) >>> 0, off + 4);
}

export function readU64(buf: Uint8Array, off: number): number {
  const lo = (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16)) + buf[off + 3]! * 0x1000000;
  const hi = (buf[off + 4]! | (buf[off + 5]! << 8) | (buf[off + 6]! << 16)) + buf[off + 7]! * 0x1000000;
  return hi * 0x100000000 + lo;
}

export function readU32(buf: Uint8Array, off: number): number {
  return (buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16)) + buf[off + 3]! * 0x1000000;
}

/** Encode a segment header; returns the bytes and its CRC. */
export function encodeSegmentHeader(firstSeq: number, prevCrc: number, prevSeal: Uint8Array): { bytes: Buffer; crc: number } {
  const b = Buffer.alloc(SEGMENT_HEADER_BYTES);
  SEGMENT_MAGIC.copy(b, 0);
  b.writeUInt16LE(FORMAT_VERSION, 8);
  b.writeUInt16LE(SEGMENT_HEADER_BYTES, 10);
  writeU64(b, 16, firstSeq);
  b.writeUInt32LE(prevCrc >>> 0, 24);
  b.set(prevSeal, 32);
  const crc = crc32c(b, 0, 64, 0);
  b.writeUInt32LE(crc, 64);
  return { bytes: b, crc };
}

/** Decode a segment header, or say why it is not one. */
export function decodeSegmentHeader(b: Uint8Array): SegmentHeader | string {
  if (b.length < SEGMENT_HEADER_BYTES) return `segment header is truncated (${b.length} of ${SEGMENT_HEADER_BYTES} bytes)`;
  if (!SEGMENT_MAGIC.equals(b.subarray(0, 8))) return 'segment header has a wrong magic';
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const version = buf.readUInt16LE(8);
  if (version !== FORMAT_VERSION) return `segment format version ${version} is not supported (expected ${FORMAT_VERSION})`;
  if (buf.readUInt16LE(10) !== SEGMENT_HEADER_BYTES) return 'segment header length field is wrong';
  const crc = crc32c(b, 0, 64, 0);
  if (crc !== readU32(b, 64)) return 'segment header checksum mismatch';
  return { firstSeq: readU64(b, 16), prevCrc: readU32(b, 24), prevSeal: Buffer.from(b.subarray(32, 64)), crc };
}

/** A frame that parsed and whose CRC matched. */
export interface Frame {
  kind: number;
  codec: number;
  seq: number;
  /** Payload is buf[payloadStart, payloadStart + len). */
  payloadStart: number;
  len: number;
  /** Offset just after the trailer. */
  end: number;
  /** The frame's CRC (the chain value the next frame continues from). */
  crc: number;
}

/** Why a frame did not parse. `incomplete` means the bytes run out before the frame does. */
export interface FrameError {
  reason: string;
  incomplete: boolean;
  /** Header fields when they could be read (for reporting), else -1. */
  seq: number;
  kind: number;
}

/**
 * Parse the frame at `buf[off]`, checking magic, kind, length bound and the chained CRC against
 * `seed`. Never throws; returns a {@link FrameError} with a reason instead.
 */
export function parseFrame(buf: Uint8Array, off: number, end: number, seed: number): Frame | FrameError {
  if (end - off < FRAME_HEADER_BYTES) {
    return { reason: `frame header is truncated (${end - off} of ${FRAME_HEADER_BYTES} bytes)`, incomplete: true, seq: -1, kind: -1 };
  }
  if (buf[off] !== FRAME_MAGIC0 || buf[off + 1] !== FRAME_MAGIC1) {
    return { reason: 'bad frame magic', incomplete: false, seq: -1, kind: -1 };
  }
  const kind = buf[off + 3]!;
  const len = readU32(buf, off + 4);
  const seq = readU64(buf, off + 8);
  if (kind !== KIND_RECORD && kind !== KIND_SEAL) return { reason: `unknown frame kind ${kind}`, incomplete: false, seq, kind };
  if (len > MAX_PAYLOAD) return { reason: `frame length ${len} exceeds the ${MAX_PAYLOAD}-byte limit`, incomplete: false, seq, kind };
  if (kind === KIND_SEAL && len !== SEAL_BYTES) return { reason: `seal frame length ${len} is not ${SEAL_BYTES}`, incomplete: false, seq, kind };
  const crcAt = off + FRAME_HEADER_BYTES + len;
  if (crcAt + FRAME_TRAILER_BYTES > end) {
    return { reason: `frame is truncated (${end - off} of ${len + FRAME_OVERHEAD} bytes)`, incomplete: true, seq, kind };
  }
  const crc = crc32c(buf, off, crcAt, seed);
  if (crc !== readU32(buf, crcAt)) return { reason: 'checksum mismatch', incomplete: false, seq, kind };
  return { kind, codec: buf[off + 2]!, seq, payloadStart: off + FRAME_HEADER_BYTES, len, end: crcAt + FRAME_TRAILER_BYTES, crc };
}

export function isFrame(x: Frame | FrameError): x is Frame {
  return (x as Frame).end !== undefined;
}

/**
 * Find the first offset ≥ `from` where a whole, checksum-valid frame starts, taking the 4 bytes
 * before it as its seed (frames are contiguous, so that is the previous frame's CRC). Used to
 * resynchronise after damage and to tell a torn tail (nothing valid after) from damage in the
 * middle. Returns -1 when there is none.
 */
export function findNextFrame(buf: Uint8Array, from: number, end: number): number {
  for (let i = Math.max(from, 4); i + FRAME_OVERHEAD <= end; i++) {
    if (buf[i] !== FRAME_MAGIC0 || buf[i + 1] !== FRAME_MAGIC1) continue;
    const f = parseFrame(buf, i, end, readU32(buf, i - 4));
    if (isFrame(f)) return i;
  }
  return -1;
}

/** Write one frame header into `buf` at `off` (payload and trailer follow). */
export function writeFrameHeader(buf: Buffer, off: number, codec: number, kind: number, len: number, seq: number): void {
  buf[off] = FRAME_MAGIC0;
  buf[off + 1] = FRAME_MAGIC1;
  buf[off + 2] = codec;
  buf[off + 3] = kind;
  buf.writeUInt32LE(len, off + 4);
  buf.writeUInt32LE(seq >>> 0, off + 8);
  buf.writeUInt32LE(Math.floor(seq / 0x100000000) >>> 0, off + 12);
}

/** The seal over `window` (the bytes since the previous seal) continuing from `prevSeal`. */
export function computeSeal(prevSeal: Uint8Array, window: Uint8Array): Buffer {
  return createHash('sha256').update(prevSeal).update(window).digest();
}

export interface Head {
  seq: number;
  crc: number;
  seal: Buffer;
}

export function encodeHead(h: Head): Buffer {
  const b = Buffer.alloc(HEAD_BYTES);
  HEAD_MAGIC.copy(b, 0);
  writeU64(b, 8, h.seq);
  b.writeUInt32LE(h.crc >>> 0, 16);
  b.set(h.seal, 24);
  b.writeUInt32LE(crc32c(b, 0, 56, 0), 56);
  return b;
}

export function decodeHead(b: Uint8Array): Head | string {
  if (b.length !== HEAD_BYTES) return `HEAD is ${b.length} bytes, expected ${HEAD_BYTES}`;
  if (!HEAD_MAGIC.equals(b.subarray(0, 8))) return 'HEAD has a wrong magic';
  if (crc32c(b, 0, 56, 0) !== readU32(b, 56)) return 'HEAD checksum mismatch';
  return { seq: readU64(b, 8), crc: readU32(b, 16), seal: Buffer.from(b.subarray(24, 56)) };
}
