/**
 * @module collector/sync/safefs
 * File-system calls confined to one tree. Every relative path is checked to be clean
 * ({@link splitRel}) and every directory on the way to it is lstat'ed: a symlink (or anything
 * that is not a directory) among the parents stops the call with {@link UnsafePathError}, so a
 * symlink planted in DST, or a name with "..", can never make sync write outside DST (nor read
 * outside SRC). The final component is never followed either: files are written to a new temp
 * file (O_EXCL) in the same directory and renamed over, symlinks are replaced the same way,
 * times are set with AT_SYMLINK_NOFOLLOW, modes only after an lstat says "directory" or on the
 * fd of the file sync just created.
 *
 * Checked directories are cached; the cache is dropped whenever sync itself renames or removes
 * a directory. (Another process racing to swap a checked directory for a symlink is outside
 * what these checks cover; DST is assumed to belong to the sync.)
 */
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import { RESERVED_PREFIX, isCleanName, joinRel, parentRel, splitRel } from './paths.js';
import { setMtimeNs, setMtimeNsAsync } from './nstime.js';

export class UnsafePathError extends Error {
  constructor(message: string) { super(message); this.name = 'UnsafePathError'; }
}

export type BigStats = fs.BigIntStats;

let tmpCounter = 0;

export class SafeTree {
  private okDirs = new Set<string>(['']);

  /** @param root an absolute, real (symlink-free) directory path. */
  constructor(readonly root: string) {}

  /** Absolute path of `rel` after checking its parents. */
  abs(rel: string): string {
    // Fast path: the parent was checked (and its components validated) already.
    const slash = rel.lastIndexOf('/');
    if (slash > 0 && this.okDirs.has(rel.slice(0, slash)) && isCleanName(rel.slice(slash + 1))) return this.root + '/' + rel;
    const parts = splitRel(rel);
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = joinRel(cur, parts[i]!);
      if (this.okDirs.has(cur)) continue;
      let st: fs.Stats;
      try { st = fs.lstatSync(this.root + '/' + cur); } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') {
          const err = new Error(`${this.root}/${cur}: missing`) as NodeJS.ErrnoException;
          err.code = 'ENOENT';
          throw err;
        }
        throw e;
      }
      if (st.isSymbolicLink()) throw new UnsafePathError(`${this.root}/${cur} is a symlink; refusing to go through it`);
      if (!st.isDirectory()) {
        const err = new Error(`${this.root}/${cur}: not a directory`) as NodeJS.ErrnoException;
        err.code = 'ENOTDIR';
        throw err;
      }
      this.okDirs.add(cur);
    }
    return parts.length ? this.root + '/' + rel : this.root;
  }

  /** Forget checked directories (after this tree's namespace changed under them). */
  invalidate(): void { this.okDirs = new Set(['']); }

  /** lstat, or null when absent (a missing or non-directory parent counts as absent). */
  lstat(rel: string): BigStats | null {
    try {
      // throwIfNoEntry: an absent entry (common: checks before a create) costs no exception.
      return fs.lstatSync(this.abs(rel), { bigint: true, throwIfNoEntry: false }) ?? null;
    } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c === 'ENOENT' || c === 'ENOTDIR') return null;
      throw e;
    }
  }

  readdir(rel: string): string[] {
    return fs.readdirSync(this.abs(rel));
  }

  readlink(rel: string): string {
    return fs.readlinkSync(this.abs(rel));
  }

  /** rename(2) within the tree; replaces a file (or an empty directory) at `to`. */
  rename(from: string, to: string): void {
    const a = this.abs(from), b = this.abs(to);
    fs.renameSync(a, b);
    // Only directories sync checked can be stale now: a moved one, or one replaced at `to`.
    if (this.okDirs.has(from) || this.okDirs.has(to)) this.forgetUnder(from, to);
  }

  /**
   * {@link rename} on libuv's pool; false when `from`, or a parent of `from` or of `to`, does not
   * exist (ENOENT, as rename(2) says it).
   */
  async renameAsync(from: string, to: string): Promise<boolean> {
    let a: string, b: string;
    try { a = this.abs(from); b = this.abs(to); } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR') return false;
      throw e;
    }
    try {
      await fsp.rename(a, b);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
    if (this.okDirs.has(from) || this.okDirs.has(to)) this.forgetUnder(from, to);
    return true;
  }

  /** {@link remove} on libuv's pool. */
  async removeAsync(rel: string): Promise<boolean> {
    if (rel === '') throw new UnsafePathError('refusing to remove the tree root');
    let p: string;
    try { p = this.abs(rel); } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c === 'ENOENT' || c === 'ENOTDIR') return false;
      throw e;
    }
    // unlink first: most objects removed are files, and unlink(2) never follows a final symlink.
    // A directory answers EISDIR, and is then removed with everything in it.
    try {
      await fsp.unlink(p);
      return true;
    } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c === 'ENOENT' || c === 'ENOTDIR') return false;
      if (c !== 'EISDIR' && c !== 'EPERM') throw e;
    }
    let st: fs.Stats | undefined;
    try { st = fs.lstatSync(p, { throwIfNoEntry: false }); } catch { return false; }
    if (!st) return false;
    if (!st.isDirectory()) throw new Error(`cannot remove ${p}: unlink refused a non-directory`);
    await fsp.rm(p, { recursive: true, force: true });
    this.forgetUnder(rel);
    return true;
  }

  private forgetUnder(...roots: string[]): void {
    for (const d of this.okDirs) {
      if (roots.some((r) => d === r || d.startsWith(r + '/'))) this.okDirs.delete(d);
    }
  }

  /** Remove `rel` and everything under it (symlinks are removed, never followed). False if absent. */
  remove(rel: string): boolean {
    if (rel === '') throw new UnsafePathError('refusing to remove the tree root');
    let p: string;
    try { p = this.abs(rel); } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c === 'ENOENT' || c === 'ENOTDIR') return false; // a parent is missing: so is it
      throw e;
    }
    let st: fs.Stats;
    try { st = fs.lstatSync(p); } catch { return false; }
    if (st.isDirectory()) {
      fs.rmSync(p, { recursive: true, force: true });
      this.forgetUnder(rel);
    } else fs.unlinkSync(p);
    return true;
  }

  mkdir(rel: string, mode: number): void {
    const p = this.abs(rel);
    fs.mkdirSync(p, { mode: mode & 0o7777 });
    fs.chmodSync(p, mode & 0o7777); // mkdir applied the umask
  }

  /** chmod a directory (checked with lstat first: never through a symlink). */
  chmodDir(rel: string, mode: number): void {
    const p = this.abs(rel);
    if (!fs.lstatSync(p).isDirectory()) throw new UnsafePathError(`${p} is not a directory`);
    fs.chmodSync(p, mode & 0o7777);
  }

  setMtime(rel: string, mtimeNs: bigint): void {
    setMtimeNs(this.abs(rel), mtimeNs);
  }

  private tempName(rel: string): string {
    return joinRel(parentRel(rel), `${RESERVED_PREFIX}${process.pid}-${++tmpCounter}`);
  }

  /** Put a temp object in place of `rel`, removing a directory that is in the way. */
  private install(tmpAbs: string, rel: string): void {
    const p = this.abs(rel);
    try {
      fs.renameSync(tmpAbs, p);
    } catch (e) {
      const c = (e as NodeJS.ErrnoException).code;
      if (c !== 'EISDIR' && c !== 'ENOTEMPTY' && c !== 'EEXIST' && c !== 'ENOTDIR') throw e;
      this.remove(rel);
      fs.renameSync(tmpAbs, p);
    }
  }

  /**
   * Copy regular file `srcAbs` to `rel` atomically (temp file in the same directory, then
   * rename), with mtime, and with `mode` when given (else the source's, as copyfile sets it).
   * Returns the bytes copied.
   */
  writeFileFrom(rel: string, srcAbs: string, mode: number | undefined, mtimeNs: bigint): number {
    const tmp = this.tempName(rel);
    const tmpAbs = this.abs(tmp);
    try {
      // COPYFILE_EXCL: the temp is created with O_EXCL, so nothing already there is followed.
      // libuv's copyfile gives the copy the source's permission bits (fchmod on its own fd).
      fs.copyFileSync(srcAbs, tmpAbs, fs.constants.COPYFILE_EXCL);
      const size = fs.lstatSync(tmpAbs).size;
      if (mode !== undefined) fs.chmodSync(tmpAbs, mode & 0o7777);
      setMtimeNs(tmpAbs, mtimeNs);
      this.install(tmpAbs, rel);
      return size;
    } catch (e) {
      try { fs.unlinkSync(tmpAbs); } catch { /* already renamed or never made */ }
      throw e;
    }
  }

  /**
   * {@link writeFileFrom} with the copy, the time and the rename on libuv's thread pool, so that
   * several files are copied at once. Parents are checked here, before the first await: the
   * caller runs these only when no directory of the tree moves meanwhile.
   */
  async writeFileFromAsync(rel: string, srcAbs: string, mtimeNs: bigint): Promise<void> {
    const tmpAbs = this.abs(this.tempName(rel));
    const p = this.abs(rel);
    try {
      await fsp.copyFile(srcAbs, tmpAbs, fs.constants.COPYFILE_EXCL);
      await setMtimeNsAsync(tmpAbs, mtimeNs);
      try {
        await fsp.rename(tmpAbs, p);
      } catch (e) {
        const c = (e as NodeJS.ErrnoException).code;
        if (c !== 'EISDIR' && c !== 'ENOTEMPTY' && c !== 'EEXIST' && c !== 'ENOTDIR') throw e;
        this.remove(rel);
        fs.renameSync(tmpAbs, this.abs(rel));
      }
    } catch (e) {
      try { fs.unlinkSync(tmpAbs); } catch { /* already renamed or never made */ }
      throw e;
    }
  }

  /** Create or replace symlink `rel` → `target` atomically, with its mtime. */
  writeSymlink(rel: string, target: string, mtimeNs: bigint): void {
    const tmp = this.tempName(rel);
    const tmpAbs = this.abs(tmp);
    try {
      fs.symlinkSync(target, tmpAbs);
      setMtimeNs(tmpAbs, mtimeNs);
      this.install(tmpAbs, rel);
    } catch (e) {
      try { fs.unlinkSync(tmpAbs); } catch { /* gone */ }
      throw e;
    }
  }
}
