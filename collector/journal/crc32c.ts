/**
 * @module collector/journal/crc32c
 * CRC-32C (Castagnoli), slicing-by-8 in plain JS over a byte range of a buffer. It is the
 * journal's per-record checksum and chain link: a record's CRC is computed with the previous
 * record's CRC as seed, so each record commits to its predecessor. Measured here it is as fast
 * as zlib.crc32's binding on ~100-byte records (the call overhead dominates there) and needs no
 * sub-buffer allocation.
 */
const POLY = 0x82f63b78;
const T = new Int32Array(256 * 8);
for (let n = 0; n < 256; n++) {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? POLY ^ (c >>> 1) : c >>> 1;
  T[n] = c;
}
for (let n = 0; n < 256; n++) {
  let c = T[n]!;
  for (let k = 1; k < 8; k++) {
    c = T[c & 0xff]! ^ (c >>> 8);
    T[k * 256 + n] = c;
  }
}

/** CRC-32C of `buf[start, end)` continuing from `seed` (0 for a fresh CRC). Returns an unsigned 32-bit value. */
export function crc32c(buf: Uint8Array, start: number, end: number, seed: number): number {
  let c = ~seed;
  let i = start;
  for (; i + 8 <= end; i += 8) {
    c ^= buf[i]! | (buf[i + 1]! << 8) | (buf[i + 2]! << 16) | (buf[i + 3]! << 24);
    c = T[1792 + (c & 0xff)]! ^ T[1536 + ((c >>> 8) & 0xff)]! ^ T[1280 + ((c >>> 16) & 0xff)]! ^ T[1024 + (c >>> 24)]!
      ^ T[768 + buf[i + 4]!]! ^ T[512 + buf[i + 5]!]! ^ T[256 + buf[i + 6]!]! ^ T[buf[i + 7]!]!;
  }
  for (; i < end; i++) c = T[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}
