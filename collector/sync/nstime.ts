/**
 * @module collector/sync/nstime
 * Set a path's modification time to the nanosecond without following a final symlink:
 * utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW) through koffi. Node's own utimes take
 * seconds as a double (about 0.2 µs resolution today), which would make a synced copy's mtime
 * differ from the original's and defeat the size+mtime quick check of the full comparison.
 * If libc cannot be loaded, falls back to fs.lutimesSync.
 */
import { lutimesSync } from 'node:fs';
import koffi from 'koffi';

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const UTIME_OMIT = (1 << 30) - 2;

type Utimensat = (dirfd: number, path: string, times: Buffer, flags: number) => number;
let utimensat: Utimensat | null | undefined;

function load(): Utimensat | null {
  if (utimensat !== undefined) return utimensat;
  try {
    const libc = koffi.load('libc.so.6');
    utimensat = libc.func('int utimensat(int dirfd, const char *path, const void *times, int flags)') as Utimensat;
  } catch {
    utimensat = null;
  }
  return utimensat;
}

function timesBuf(mtimeNs: bigint): Buffer {
  const b = Buffer.alloc(32);
  b.writeBigInt64LE(0n, 0);
  b.writeBigInt64LE(BigInt(UTIME_OMIT), 8);
  b.writeBigInt64LE(mtimeNs / 1_000_000_000n, 16);
  b.writeBigInt64LE(mtimeNs % 1_000_000_000n, 24);
  return b;
}

/**
 * {@link setMtimeNs} on a worker thread (koffi's asynchronous call), so that several files'
 * times are set at once. errno is per thread: a failure is retried on this thread to name it.
 */
export function setMtimeNsAsync(path: string, mtimeNs: bigint): Promise<void> {
  const f = load() as (Utimensat & { async?: (...a: unknown[]) => void }) | null;
  if (!f?.async) return Promise.resolve().then(() => setMtimeNs(path, mtimeNs));
  return new Promise((resolve, reject) => {
    f.async!(AT_FDCWD, path, timesBuf(mtimeNs), AT_SYMLINK_NOFOLLOW, (err: unknown, r: number) => {
      if (err) return reject(err as Error);
      if (r === 0) return resolve();
      try { setMtimeNs(path, mtimeNs); resolve(); } catch (e) { reject(e as Error); }
    });
  });
}

/** Set mtime (ns since the epoch) of `path`, leaving atime alone; a final symlink is not followed. */
export function setMtimeNs(path: string, mtimeNs: bigint): void {
  const f = load();
  if (f) {
    if (f(AT_FDCWD, path, timesBuf(mtimeNs), AT_SYMLINK_NOFOLLOW) === 0) return;
    const errno = koffi.errno();
    const e = new Error(`utimensat ${path}: errno ${errno}`) as NodeJS.ErrnoException;
    e.code = errno === 2 ? 'ENOENT' : 'EUTIMENSAT';
    throw e;
  }
  const s = Number(mtimeNs) / 1e9;
  lutimesSync(path, s, s);
}
