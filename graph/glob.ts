/**
 * @module graph/glob
 * Path matching helpers shared by stores: a prefix as an index range, and a glob narrowed to
 * the literal prefix it starts with (so a store scans `/src/` names for `/src/**\/*.c`, not all).
 * Globs use picomatch syntax with `dot: true` (a forensic search must not hide dot files) and
 * match across newlines in names.
 */
import picomatch from 'picomatch';

/** Characters that end the literal part of a glob (picomatch syntax, incl. extglobs and escapes). */
const GLOB_SPECIAL = new Set(['*', '?', '[', ']', '{', '}', '(', ')', '!', '+', '@', '\\']);

/** The longest literal prefix of a glob: every path the glob matches starts with it. */
export function globLiteralPrefix(glob: string): string {
  let i = 0;
  for (const ch of glob) {
    if (GLOB_SPECIAL.has(ch)) break;
    i += ch.length;
  }
  return glob.slice(0, i);
}

/**
 * The smallest string greater than every string that starts with `prefix`, in code-point order
 * (which is SQLite's BINARY order over UTF-8), or null when there is none (empty prefix, or a
 * prefix of U+10FFFF only). `prefix <= s < upper` ⇔ `s.startsWith(prefix)`.
 */
export function prefixUpperBound(prefix: string): string | null {
  const cps = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (cps.length > 0 && cps[cps.length - 1] === 0x10ffff) cps.pop();
  if (cps.length === 0) return null;
  let last = cps[cps.length - 1]! + 1;
  if (last === 0xd800) last = 0xe000; // skip the surrogate range: not valid code points in UTF-8
  cps[cps.length - 1] = last;
  return String.fromCodePoint(...cps);
}

/** An index range `[lo, hi)` covering every string with this prefix (`hi` null: unbounded). */
export function prefixRange(prefix: string): { lo: string; hi: string | null } {
  return { lo: prefix, hi: prefixUpperBound(prefix) };
}

const matcherCache = new Map<string, (s: string) => boolean>();

/** A compiled matcher for a glob (cached; picomatch, `dot: true`). */
export function globMatcher(glob: string): (s: string) => boolean {
  let m = matcherCache.get(glob);
  if (!m) {
    if (matcherCache.size > 256) matcherCache.clear();
    // dotAll: a file name may contain a newline, and `*` must still match it.
    m = picomatch(glob, { dot: true, flags: 's' });
    matcherCache.set(glob, m);
  }
  return m;
}
