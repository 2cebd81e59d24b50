/**
 * @module collector/sync/treehash
 * One hash for a whole tree: every entry's relative path, type, permission bits, and contents
 * (SHA-256 of a file, the target of a symlink), optionally with mtimes (ns). Used by the tests
 * and the benchmark to check that DST equals SRC after a sync. Names sync reserves are skipped.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import { isReserved, joinRel } from './paths.js';

export interface TreeHashOptions {
  /** Include mtimes: of files and symlinks, and of directories when `dirMtimes`. */
  mtimes?: boolean;
  dirMtimes?: boolean;
  /** With `mtimes`: also of symlinks (default true; rsync sets them only to the second). */
  linkMtimes?: boolean;
  /** Include permission bits (default true). */
  modes?: boolean;
}

/** Per-entry lines, sorted (handy to show which entries differ). */
export function treeLines(root: string, opts: TreeHashOptions = {}): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    const abs = rel === '' ? root : `${root}/${rel}`;
    for (const name of fs.readdirSync(abs).sort()) {
      if (isReserved(name)) continue;
      const r = joinRel(rel, name);
      const p = `${root}/${r}`;
      const st = fs.lstatSync(p, { bigint: true });
      const mode = opts.modes === false ? '-' : (st.mode & 0o7777n).toString(8);
      const mt = opts.mtimes ? ` ${st.mtimeNs}` : '';
      if (st.isFile()) out.push(`${r} f ${mode} ${createHash('sha256').update(fs.readFileSync(p)).digest('hex')}${mt}`);
      else if (st.isSymbolicLink()) out.push(`${r} l ${JSON.stringify(fs.readlinkSync(p))}${opts.linkMtimes === false ? '' : mt}`);
      else if (st.isDirectory()) {
        out.push(`${r} d ${mode}${opts.dirMtimes ? ` ${st.mtimeNs}` : ''}`);
        walk(r);
      } else out.push(`${r} other`);
    }
  };
  walk('');
  const rootSt = fs.lstatSync(root, { bigint: true });
  out.push(`. d ${opts.modes === false ? '-' : (rootSt.mode & 0o7777n).toString(8)}${opts.dirMtimes ? ` ${rootSt.mtimeNs}` : ''}`);
  return out;
}

/** SHA-256 over {@link treeLines}. */
export function treeHash(root: string, opts: TreeHashOptions = {}): string {
  return createHash('sha256').update(treeLines(root, opts).join('\n')).digest('hex');
}

/** The first differing lines of two trees (for a readable assertion message). */
export function treeDiff(a: string, b: string, opts: TreeHashOptions = {}, max = 10): string[] {
  const la = new Set(treeLines(a, opts)), lb = new Set(treeLines(b, opts));
  const d: string[] = [];
  for (const l of la) if (!lb.has(l)) d.push(`- ${l}`);
  for (const l of lb) if (!la.has(l)) d.push(`+ ${l}`);
  return d.sort((x, y) => x.slice(2).localeCompare(y.slice(2))).slice(0, max);
}
