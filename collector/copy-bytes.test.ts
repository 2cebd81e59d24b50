/**
 * @module collector/copy-bytes.test
 * copyBytes copies one array into another and says where it ended, the same below
 * and above the size it copies element by element.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyBytes, SMALL_COPY } from './copy-bytes.js';

test('copies below and above SMALL_COPY and returns where it ended', () => {
  for (const n of [0, 1, SMALL_COPY, SMALL_COPY + 1, 3 * SMALL_COPY]) {
    const src = Uint8Array.from({ length: n + 10 }, (_, i) => (i * 7 + 3) & 0xff);
    const dst = new Uint8Array(n + 20).fill(0xee);
    assert.equal(copyBytes(dst, 4, src.subarray(5, 5 + n)), 4 + n, `${n} bytes: end`);
    assert.deepEqual(dst.subarray(4, 4 + n), src.subarray(5, 5 + n), `${n} bytes: copied`);
    assert.ok(dst.subarray(0, 4).every((b) => b === 0xee) && dst.subarray(4 + n).every((b) => b === 0xee), `${n} bytes: nothing else touched`);
    const whole = new Uint8Array(src.length);
    assert.equal(copyBytes(whole, 0, src), src.length);
    assert.deepEqual(whole, src);
  }
});
