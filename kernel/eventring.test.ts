/**
 * @module kernel/eventring.test
 * The record ring between the request loop and the journal: records come out whole, in order,
 * none lost or doubled, across many wrap-arounds of a small ring, for bytes and for strings
 * encoded in place (multi-byte UTF-8 included); a full ring refuses instead of overwriting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventRing } from './eventring.js';

test('records survive wrap-around in order, none lost or doubled', () => {
  const ring = EventRing.create(4096);
  const dec = new TextDecoder();
  const sent: string[] = [], got: string[] = [];
  for (let i = 0; i < 50_000; i++) {
    const s = JSON.stringify({ i, name: 'é'.repeat(i % 60), tail: 'x'.repeat(i % 13) });
    const ok = i % 2 ? ring.pushString(s) : ring.push(new TextEncoder().encode(s));
    if (!ok) { for (const r of ring.drain()) got.push(dec.decode(r)); i--; continue; }
    sent.push(s);
    if (i % 7 === 0) for (const r of ring.drain()) got.push(dec.decode(r));
  }
  for (const r of ring.drain()) got.push(dec.decode(r));
  assert.equal(got.length, sent.length);
  assert.deepEqual(got, sent);
});

test('a full ring refuses a record instead of overwriting unread ones', () => {
  const ring = EventRing.create(256);
  let n = 0;
  while (ring.pushString('y'.repeat(20))) n++;
  assert.ok(n > 0 && n < 20);
  assert.equal(ring.drain().length, n);
  assert.equal(ring.pushString('after'), true);
});
