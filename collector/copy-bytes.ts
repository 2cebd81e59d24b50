/**
 * @module collector/copy-bytes
 * Copying the small pieces records are made of (names, paths, a record into a log), on paths
 * that run for every record.
 */

/** Up to this many bytes are copied element by element (see {@link copyBytes}). */
export const SMALL_COPY = 256;

/**
 * Copy `src` into `dst` at `at`; returns where the copy ends in `dst`. Pieces of up to
 * {@link SMALL_COPY} bytes go element by element in the compiled loop: for tens of bytes
 * TypedArray.prototype.set (a call into the runtime and a memmove each) cost provfs's request
 * loop more than the copy itself (perf of the loop thread, prov minus plain).
 */
export function copyBytes(dst: Uint8Array, at: number, src: Uint8Array): number {
  const n = src.length;
  if (n > SMALL_COPY) {
    dst.set(src, at);
    return at + n;
  }
  for (let i = 0; i < n; i++) dst[at++] = src[i]!;
  return at;
}

/**
 * Whether `a` and `b` hold the same bytes. For names (tens of bytes) compared per request, where
 * Buffer.prototype.equals (a call into C++) cost the request loop about 0.15 µs per removal.
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (n !== b.length) return false;
  if (n > SMALL_COPY) return Buffer.compare(a, b) === 0;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}
