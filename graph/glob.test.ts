/**
 * @module graph/glob.test
 * Prefix ranges and glob literal prefixes, including the code points at the edges of UTF-8.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { globLiteralPrefix, globMatcher, prefixUpperBound } from './glob.js';

/** Code-point (= UTF-8 byte) order, as SQLite's BINARY collation compares. */
function cmp(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

describe('glob helpers', () => {
  it('bounds every string with a prefix, and nothing else', () => {
    const cases = ['/a', '/src/', 'x\uD7FF', 'max\u{10FFFF}', 'emoji😀', 'ü'];
    const probes = ['', '/', '/a', '/a/b', '/b', '/src', '/src/', '/src/x', '/srd', 'x\uD7FF', 'x\uD7FFz', 'x\uE000', 'max', 'max\u{10FFFF}',
      'max\u{10FFFF}\u{10FFFF}x', 'may', 'emoji😀', 'emoji😀!', 'emoji😁', 'ü', 'üb', 'ý'];
    for (const p of cases) {
      const hi = prefixUpperBound(p);
      for (const s of probes) {
        const inRange = cmp(s, p) >= 0 && (hi === null || cmp(s, hi) < 0);
        assert.equal(inRange, s.startsWith(p), `${JSON.stringify(s)} vs prefix ${JSON.stringify(p)} (hi ${JSON.stringify(hi)})`);
      }
    }
    assert.equal(prefixUpperBound(''), null);
    assert.equal(prefixUpperBound('\u{10FFFF}'), null);
    assert.equal(prefixUpperBound('x\uD7FF'), 'x\uE000');
  });

  it('takes the literal part of a glob', () => {
    assert.equal(globLiteralPrefix('/src/**/*.c'), '/src/');
    assert.equal(globLiteralPrefix('/etc/passwd'), '/etc/passwd');
    assert.equal(globLiteralPrefix('!(foo)'), '');
    assert.equal(globLiteralPrefix('/a/{b,c}'), '/a/');
    assert.equal(globLiteralPrefix('/a/\\*x'), '/a/');
    assert.equal(globLiteralPrefix('/d😀/[ab]'), '/d😀/');
  });

  it('matches dot files and names with newlines', () => {
    assert.ok(globMatcher('/h/*')('/h/.bashrc'));
    assert.ok(globMatcher('/h/*')('/h/a\nb'));
    assert.ok(!globMatcher('/h/*')('/h/a/b'));
    assert.ok(globMatcher('/h/**')('/h/a/b\nc'));
  });
});
