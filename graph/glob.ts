/**
 * @module graph/glob
 * Path matching helpers shared by stores: a prefix as an index range, and a glob narrowed to
 * the literal prefix it starts with (so a store scans `/src/` names for `/src/**\/*.c`, not all).
 * Globs use picomatch syntax with `dot: true` (a forensic search must not hide dot files) and
 * match across newlines in names.
 */
import picomatch from 'picomatch';
import { InputError } from './errors.js';
import type { NodeKind } from './model.js';
import type { SearchQuery } from './store.js';

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

/** A search query checked once for every store: its kind, page and glob are usable. */
export interface CheckedSearch {
  kind: NodeKind;
  limit: number;
  offset: number;
}

/** Validate a SearchQuery (InputError naming `where` otherwise); every store calls this first. */
export function checkSearchQuery(q: SearchQuery, where: string): CheckedSearch {
  const kind = q.kind ?? 'file';
  if (!NODE_KIND_NAMES.includes(kind)) throw new InputError(`unknown node kind ${JSON.stringify(kind)}`, where);
  const limit = q.limit ?? 100;
  const offset = q.offset ?? 0;
  if (!Number.isInteger(limit) || limit < 1 || limit > 100_000) throw new InputError(`limit must be an integer in 1..100000, got ${String(q.limit)}`, where);
  if (!Number.isInteger(offset) || offset < 0) throw new InputError(`offset must be a non-negative integer, got ${String(q.offset)}`, where);
  if (q.prefix !== undefined && typeof q.prefix !== 'string') throw new InputError('prefix must be a string', where);
  if (q.glob !== undefined && (typeof q.glob !== 'string' || q.glob === '')) throw new InputError('glob must be a non-empty string', where);
  if (q.glob !== undefined && q.glob.length > 1024) throw new InputError(`glob is ${q.glob.length} characters long; at most 1024`, where);
  if (q.glob !== undefined) {
    try {
      globMatcher(q.glob)('/');
    } catch (err) {
      throw new InputError(`bad glob ${JSON.stringify(q.glob)}: ${(err as Error).message}`, where);
    }
  }
  return { kind, limit, offset };
}

const NODE_KIND_NAMES: readonly NodeKind[] = ['process', 'file', 'pipe', 'socket', 'user'];
