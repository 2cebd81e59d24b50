/**
 * @module collector/sync/paths
 * Relative paths inside a synced tree. Every path sync handles is a list of clean components
 * (no "", ".", "..", "/" or NUL), joined with "/"; the empty string is the tree's root. Names
 * come from event records and from the trees themselves, so they are untrusted: anything that
 * is not a clean component is rejected here, once, before it can reach a file-system call.
 */
import { posix } from 'node:path';

/** Prefix of the names sync itself creates (staging dir, temp files, probes); never synced. */
export const RESERVED_PREFIX = '.prov-sync-';

/** True when `name` is a single clean path component. */
export function isCleanName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0');
}

/** True for the names sync creates itself (skipped in both trees). */
export function isReserved(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX);
}

/** Split a relative path into components; throws on an unclean one. */
export function splitRel(rel: string): string[] {
  if (rel === '') return [];
  const parts = rel.split('/');
  for (const p of parts) if (!isCleanName(p)) throw new Error(`unsafe path component ${JSON.stringify(p)} in ${JSON.stringify(rel)}`);
  return parts;
}

/** Join a relative parent and a name. */
export function joinRel(parent: string, name: string): string {
  return parent === '' ? name : `${parent}/${name}`;
}

/** Parent of a relative path ('' for a top-level name). */
export function parentRel(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** Number of components (root = 0). */
export function depthOf(rel: string): number {
  if (rel === '') return 0;
  let n = 1;
  for (let i = 0; i < rel.length; i++) if (rel.charCodeAt(i) === 47) n++;
  return n;
}

/** Consecutive runs of `items` (sorted by depth) whose paths have the same depth. */
export function* depthRuns<T>(items: readonly T[], pathOf: (item: T) => string): Generator<T[]> {
  for (let i = 0; i < items.length;) {
    const depth = depthOf(pathOf(items[i]!));
    let j = i + 1;
    while (j < items.length && depthOf(pathOf(items[j]!)) === depth) j++;
    yield items.slice(i, j);
    i = j;
  }
}

/**
 * The path of absolute `abs` relative to the root `root` (both absolute), or null when `abs`
 * is not inside `root`. `abs` is normalised first, so `root/a/../../etc` is outside.
 */
export function relativeTo(root: string, abs: string): string | null {
  if (!abs.startsWith('/')) return null;
  const n = posix.normalize(abs).replace(/\/+$/, '') || '/';
  if (n === root) return '';
  const prefix = root === '/' ? '/' : root + '/';
  if (!n.startsWith(prefix)) return null;
  const rel = n.slice(prefix.length);
  for (const p of rel.split('/')) if (!isCleanName(p)) return null;
  return rel;
}

/** True when `rel` is `anc` or below it. */
export function isWithin(rel: string, anc: string): boolean {
  return anc === '' || rel === anc || rel.startsWith(anc + '/');
}
