/**
 * @module collector/rebuild/stamp
 * What rebuild remembers between runs, in one small file (0600, its directory 0700): for each
 * command (by key), the recorded run it vouches for and the content of every input and output
 * as it was when that run was last confirmed or re-run (inode, size, mtime and, for files up to
 * 16 MiB, a SHA-256). With it, a later decision is exact: a file whose inode, size and mtime
 * are unchanged is the same; one whose stat changed is compared by content.
 * Also a cache of plans keyed by the store's checkpoint, so a no-op rebuild needs no graph walk.
 */
import { createRequire } from 'node:module';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import type { Plan } from './plan.js';

export interface FileStamp {
  ino: number;
  size: number;
  /** mtime in ns (as a string: bigint). */
  mtime: string;
  /** sha256 hex, absent for large files (stat only). */
  hash?: string;
}

export interface CommandStamp {
  run: string;
  files: Record<string, FileStamp>;
}

export interface StampFile {
  version: 1;
  commands: Record<string, CommandStamp>;
  /** storeFiles: the store's file fingerprint when the checkpoint was read (rebuild/fingerprint). */
  plans: Record<string, { checkpoint: string; plan: Plan; storeFiles?: string }>;
}

export const HASH_LIMIT = 16 << 20;

// node:crypto is loaded on the first hash only: a no-op rebuild compares stat results and hashes
// nothing, and loading it is a noticeable part of what that costs.
const require = createRequire(import.meta.url);
let crypto: typeof import('node:crypto') | null = null;
const sha256 = () => (crypto ??= require('node:crypto') as typeof import('node:crypto')).createHash('sha256');

/**
 * The object this process last saved, while the file is still the one it wrote (same inode,
 * size and mtime: every save is a new file renamed into place). A long-lived process (the
 * rebuild server) then loads without parsing again — for a 100-file project a few ms. The
 * object is handed over, not shared: a load takes it out of the cache (the caller may change
 * it), and only a save puts one back. Between its save and the next load its saver may still
 * add to it (a plan, a stamp: each a whole, valid entry), which the next load then sees too.
 */
let lastSaved: { path: string; key: string; value: StampFile } | null = null;

function fileKey(path: string): string | null {
  const st = statSync(path, { bigint: true, throwIfNoEntry: false });
  return st ? `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}` : null;
}

export function loadStamps(path: string): StampFile {
  const saved = lastSaved;
  lastSaved = null;
  if (saved && saved.path === path) {
    try { if (fileKey(path) === saved.key) return saved.value; } catch { /* read it below */ }
  }
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as StampFile;
    if (s.version === 1 && s.commands && s.plans) return s;
  } catch { /* missing or unreadable: start afresh */ }
  return { version: 1, commands: {}, plans: {} };
}

export function saveStamps(path: string, s: StampFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
  renameSync(tmp, path);
  try {
    const key = fileKey(path);
    lastSaved = key ? { path, key, value: s } : null;
  } catch {
    lastSaved = null;
  }
}

/** SHA-256 of a file's content (null when larger than the limit or unreadable). */
export function hashFile(path: string, size: number): string | null {
  if (size > HASH_LIMIT) return null;
  let fd: number;
  try { fd = openSync(path, 'r'); } catch { return null; }
  try {
    const h = sha256();
    const buf = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } finally {
    closeSync(fd);
  }
}

/** What the stamp checks compare, taken from a stat once per path (see {@link FileCache.ident}). */
export interface FileIdent {
  ino: number;
  size: number;
  /** mtime in ns, as a stamp writes it. */
  mtime: string;
}

/** Stats and hashes, each path at most once per rebuild. */
export class FileCache {
  private stats = new Map<string, Stats & { mtimeNs: bigint; ino: number } | null>();
  private idents = new Map<string, FileIdent | null>();
  private hashes = new Map<string, string | null>();

  stat(path: string): (Stats & { mtimeNs: bigint }) | null {
    if (!this.stats.has(path)) {
      let st: ReturnType<FileCache['stat']> = null;
      try { st = statSync(path, { bigint: true }) as unknown as Stats & { mtimeNs: bigint }; } catch { st = null; }
      this.stats.set(path, st as never);
    }
    return this.stats.get(path) ?? null;
  }

  /**
   * Inode, size and mtime of the file as plain values (null when missing), converted from the
   * stat's bigints once per path: a plan checks the same compiler, libraries and headers for
   * every command, and converting them again for each check was most of what deciding a
   * 100-command plan cost.
   */
  ident(path: string): FileIdent | null {
    let id = this.idents.get(path);
    if (id === undefined) {
      const st = this.stat(path);
      id = st ? { ino: Number(st.ino), size: Number(st.size), mtime: String(st.mtimeNs) } : null;
      this.idents.set(path, id);
    }
    return id;
  }

  hash(path: string): string | null {
    if (!this.hashes.has(path)) {
      const st = this.stat(path);
      this.hashes.set(path, st ? hashFile(path, Number(st.size)) : null);
    }
    return this.hashes.get(path) ?? null;
  }

  /** Does the file start with "#!" (an interpreted script)? */
  isScript(path: string): boolean {
    let fd: number;
    try { fd = openSync(path, 'r'); } catch { return false; }
    try {
      const b = Buffer.alloc(2);
      return readSync(fd, b, 0, 2, 0) === 2 && b[0] === 0x23 && b[1] === 0x21;
    } finally {
      closeSync(fd);
    }
  }

  /** Forget what is known about these paths (they were just rewritten). */
  forget(paths: Iterable<string>): void {
    for (const p of paths) { this.stats.delete(p); this.idents.delete(p); this.hashes.delete(p); }
  }

  /**
   * A stamp of the file as it is now (null when missing). When `prior` (an earlier stamp of the
   * same path) has the same inode, size and mtime, its hash is taken over instead of reading the
   * file again: the same test {@link matches} trusts, so a re-run does not re-hash the libraries
   * and headers that did not change.
   */
  stampOf(path: string, prior?: FileStamp): FileStamp | null {
    const id = this.ident(path);
    if (!id) return null;
    const same = prior?.hash !== undefined && id.ino === prior.ino && id.size === prior.size && id.mtime === prior.mtime;
    const hash = same ? prior.hash! : this.hash(path);
    return { ino: id.ino, size: id.size, mtime: id.mtime, hash: hash ?? undefined };
  }

  /** Does the file now hold what the stamp describes? */
  matches(path: string, s: FileStamp): boolean {
    const id = this.ident(path);
    if (!id) return false;
    if (id.ino === s.ino && id.size === s.size && id.mtime === s.mtime) return true;
    if (!s.hash || id.size !== s.size) return false;
    return this.hash(path) === s.hash;
  }
}
