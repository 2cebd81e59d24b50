/**
 * @module kernel/libc
 * The libc calls provfs needs and Node lacks (O_PATH and *at calls, statx with nanoseconds,
 * renameat2, mknodat, getdents64, xattrs, ioctl, mount/umount2, poll, pidfd_getfd), bound
 * with koffi. Paths and names are byte Buffers (file names are bytes, not UTF-8). Every wrapper
 * throws {@link Errno} on failure so handlers can turn it into a FUSE error reply.
 */
import koffi from 'koffi';
import { constants as osc } from 'node:os';
import { readFileSync } from 'node:fs';

/** A failed system call: `errno` is the positive error number sent back to the kernel. */
export class Errno extends Error {
  constructor(readonly errno: number, call: string) {
    // No stack: a failed call is an answer (ENOENT of a lookup is as common as success), and
    // capturing a stack trace per error was a measurable share of the request loop.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(`${call}: ${errnoName(errno)}`);
    Error.stackTraceLimit = limit;
  }
}

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(osc.errno).map(([k, v]) => [v, k]),
);
export function errnoName(e: number): string {
  return ERRNO_NAMES[e] ?? `errno ${e}`;
}
export const E = osc.errno;

const lib = koffi.load('libc.so.6');
const f = (decl: string) => lib.func(decl);

const c = {
  open: f('int open(void *path, int flags, uint32_t mode)'),
  openat: f('int openat(int dirfd, void *path, int flags, uint32_t mode)'),
  close: f('int close(int fd)'),
  read: f('intptr_t read(int fd, void *buf, size_t n)'),
  write: f('intptr_t write(int fd, void *buf, size_t n)'),
  pread: f('intptr_t pread64(int fd, void *buf, size_t n, int64_t off)'),
  pwrite: f('intptr_t pwrite64(int fd, void *buf, size_t n, int64_t off)'),
  statx: f('int statx(int dirfd, void *path, int flags, uint32_t mask, void *buf)'),
  fstatfs: f('int fstatfs(int fd, void *buf)'),
  mkdirat: f('int mkdirat(int dirfd, void *path, uint32_t mode)'),
  mknodat: f('int mknodat(int dirfd, void *path, uint32_t mode, uint64_t dev)'),
  symlinkat: f('int symlinkat(void *target, int dirfd, void *path)'),
  linkat: f('int linkat(int olddirfd, void *oldpath, int newdirfd, void *newpath, int flags)'),
  unlinkat: f('int unlinkat(int dirfd, void *path, int flags)'),
  renameat2: f('int renameat2(int olddirfd, void *oldpath, int newdirfd, void *newpath, uint32_t flags)'),
  readlinkat: f('intptr_t readlinkat(int dirfd, void *path, void *buf, size_t n)'),
  chmod: f('int chmod(void *path, uint32_t mode)'),
  fchownat: f('int fchownat(int dirfd, void *path, uint32_t uid, uint32_t gid, int flags)'),
  utimensat: f('int utimensat(int dirfd, void *path, void *times, int flags)'),
  truncate: f('int truncate64(void *path, int64_t len)'),
  ftruncate: f('int ftruncate64(int fd, int64_t len)'),
  fsync: f('int fsync(int fd)'),
  fdatasync: f('int fdatasync(int fd)'),
  fallocate: f('int fallocate64(int fd, int mode, int64_t off, int64_t len)'),
  lseek: f('int64_t lseek64(int fd, int64_t off, int whence)'),
  getdents64: f('intptr_t getdents64(int fd, void *buf, size_t n)'),
  getxattr: f('intptr_t getxattr(void *path, void *name, void *value, size_t n)'),
  setxattr: f('int setxattr(void *path, void *name, void *value, size_t n, int flags)'),
  listxattr: f('intptr_t listxattr(void *path, void *list, size_t n)'),
  removexattr: f('int removexattr(void *path, void *name)'),
  lgetxattr: f('intptr_t lgetxattr(void *path, void *name, void *value, size_t n)'),
  lsetxattr: f('int lsetxattr(void *path, void *name, void *value, size_t n, int flags)'),
  llistxattr: f('intptr_t llistxattr(void *path, void *list, size_t n)'),
  lremovexattr: f('int lremovexattr(void *path, void *name)'),
  ioctl: f('int ioctl(int fd, unsigned long req, void *arg)'),
  mount: f('int mount(void *src, void *target, void *fstype, unsigned long flags, void *data)'),
  umount2: f('int umount2(void *target, int flags)'),
  poll: f('int poll(void *fds, uint64_t nfds, int timeout)'),
  umask: f('uint32_t umask(uint32_t mask)'),
  pidfdOpen: f('int pidfd_open(int pid, uint32_t flags)'),
  inotifyInit1: f('int inotify_init1(int flags)'),
  inotifyAddWatch: f('int inotify_add_watch(int fd, const char *path, uint32_t mask)'),
  pidfdGetfd: f('int pidfd_getfd(int pidfd, int targetfd, uint32_t flags)'),
  gettid: f('int gettid()'),
  schedSetaffinity: f('int sched_setaffinity(int pid, size_t size, void *mask)'),
  schedGetaffinity: f('int sched_getaffinity(int pid, size_t size, _Out_ void *mask)'),
  getrusage: f('int getrusage(int who, void *usage)'),
  schedSetscheduler: f('int sched_setscheduler(int pid, int policy, void *param)'),
  dup: f('int dup(int fd)'),
  getrlimit: f('int getrlimit(int res, void *rlim)'),
  setrlimit: f('int setrlimit(int res, void *rlim)'),
  nameToHandleAt: f('int name_to_handle_at(int dirfd, void *path, void *handle, void *mountId, int flags)'),
  openByHandleAt: f('int open_by_handle_at(int mountfd, void *handle, int flags)'),
  fcntl: f('int fcntl(int fd, int cmd, int arg)'),
};

function fail(call: string): never {
  throw new Errno(koffi.errno(), call);
}
function ok(r: number, call: string): number {
  if (r < 0) fail(call);
  return r;
}
function okBig(r: number | bigint, call: string): number {
  const n = Number(r);
  if (n < 0) fail(call);
  return n;
}

/** NUL-terminated copy of a name or path (string or bytes). */
export function cstr(p: string | Buffer): Buffer {
  const b = typeof p === 'string' ? Buffer.from(p) : p;
  const out = Buffer.allocUnsafe(b.length + 1);
  b.copy(out);
  out[b.length] = 0;
  return out;
}
const EMPTY = Buffer.from([0]);

export const O = {
  RDONLY: 0, WRONLY: 1, RDWR: 2, ACCMODE: 3, CREAT: 0o100, EXCL: 0o200, NOCTTY: 0o400,
  TRUNC: 0o1000, APPEND: 0o2000, NONBLOCK: 0o4000, DIRECTORY: 0o200000, NOFOLLOW: 0o400000,
  CLOEXEC: 0o2000000, PATH: 0o10000000, DIRECT: 0o40000, LARGEFILE: 0o100000,
} as const;
export const AT = {
  FDCWD: -100, SYMLINK_NOFOLLOW: 0x100, REMOVEDIR: 0x200, SYMLINK_FOLLOW: 0x400,
  EMPTY_PATH: 0x1000, STATX_SYNC_AS_STAT: 0,
} as const;
export const S = {
  IFMT: 0o170000, IFDIR: 0o040000, IFREG: 0o100000, IFLNK: 0o120000, IFIFO: 0o010000,
  IFCHR: 0o020000, IFBLK: 0o060000, IFSOCK: 0o140000, ISUID: 0o4000, ISGID: 0o2000,
} as const;
export const MNT = { NOSUID: 2, NODEV: 4, DETACH: 2, FORCE: 1 } as const;
export const UTIME_NOW = (1 << 30) - 1;
export const UTIME_OMIT = (1 << 30) - 2;

/** What provfs keeps of a statx result. Times are split into seconds and nanoseconds. */
export interface Stat {
  dev: number;
  ino: bigint;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  size: bigint;
  blocks: bigint;
  blksize: number;
  atime: bigint; atimeNs: number;
  mtime: bigint; mtimeNs: number;
  ctime: bigint; ctimeNs: number;
}

const STATX_BASIC = 0x7ff;
const statxBuf = Buffer.alloc(256);
// 64-bit fields through typed views (Buffer.readBig*64LE is several times slower); statx's
// 64-bit fields are 8-byte aligned and Buffer.alloc gives a buffer of its own at offset 0.
const statxU64 = new BigUint64Array(statxBuf.buffer, statxBuf.byteOffset, 32);
const statxI64 = new BigInt64Array(statxBuf.buffer, statxBuf.byteOffset, 32);

/** userspace dev_t encoding from major/minor (glibc makedev). */
export function makedev(major: number, minor: number): number {
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

function parseStatx(_b: Buffer): Stat {
  // Through the word views (Node 20's Buffer.readUInt32LE validates its offset by a wrapper call).
  const w = statxWords;
  return {
    blksize: w[1]!,
    nlink: w[4]!,
    uid: w[5]!,
    gid: w[6]!,
    mode: w[7]! & 0xffff,
    ino: statxU64[4]!,
    size: statxU64[5]!,
    blocks: statxU64[6]!,
    atime: statxI64[8]!, atimeNs: w[18]!,
    ctime: statxI64[12]!, ctimeNs: w[26]!,
    mtime: statxI64[14]!, mtimeNs: w[30]!,
    rdev: makedev(w[32]!, w[33]!),
    dev: makedev(w[34]!, w[35]!),
  };
}

/** The last statx result as 32-bit words (see {@link fstatRaw}); valid until the next stat call. */
export const statxWords = new Uint32Array(statxBuf.buffer, statxBuf.byteOffset, 64);
/**
 * statx of an O_PATH fd into {@link statxWords}, without building a {@link Stat} (six BigInts
 * and an object): for replies that only copy the fields out (GETATTR).
 */
export function fstatRaw(fd: number): void {
  ok(c.statx(fd, EMPTY, AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW, STATX_BASIC, statxBuf), 'statx');
}
/**
 * statx of `name` in `dirfd` into {@link statxWords} (no {@link Stat}): false when the name does
 * not exist. The identity of the result: {@link statxDev} and {@link statxIno}.
 */
export function fstatatRawIfExists(dirfd: number, name: Buffer): boolean {
  return fstatatRawIfExistsZ(dirfd, cstr(name));
}
/**
 * {@link fstatatRawIfExists} of a name already NUL-terminated in place (a FUSE request carries
 * its names so): no copy of the name per call.
 */
export function fstatatRawIfExistsZ(dirfd: number, nameZ: Buffer): boolean {
  if (c.statx(dirfd, nameZ, AT.SYMLINK_NOFOLLOW, STATX_BASIC, statxBuf) < 0) {
    if (koffi.errno() === E.ENOENT) return false;
    fail('statx');
  }
  return true;
}
/** st_dev of the last raw statx (as {@link Stat.dev}). */
export function statxDev(): number {
  return makedev(statxWords[34]!, statxWords[35]!);
}
/** st_ino of the last raw statx. */
export function statxIno(): bigint {
  return statxU64[4]!;
}
/** statx of an O_PATH fd itself (AT_EMPTY_PATH). */
export function fstat(fd: number): Stat {
  ok(c.statx(fd, EMPTY, AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW, STATX_BASIC, statxBuf), 'statx');
  return parseStatx(statxBuf);
}
/** statx of `name` in directory `dirfd`, not following a final symlink. */
export function fstatat(dirfd: number, name: Buffer): Stat {
  ok(c.statx(dirfd, cstr(name), AT.SYMLINK_NOFOLLOW, STATX_BASIC, statxBuf), 'statx');
  return parseStatx(statxBuf);
}
/**
 * {@link fstatat}, but null when the name does not exist (ENOENT) instead of throwing: a
 * missing name is the common answer of a LOOKUP (every create asks first), and building and
 * unwinding an exception cost more than the system call itself.
 */
export function fstatatIfExists(dirfd: number, name: Buffer): Stat | null {
  return fstatatRawIfExists(dirfd, name) ? parseStatx(statxBuf) : null;
}
export function statPath(path: string): Stat {
  ok(c.statx(AT.FDCWD, cstr(path), 0, STATX_BASIC, statxBuf), 'statx');
  return parseStatx(statxBuf);
}

export function open(path: string | Buffer, flags: number, mode = 0): number {
  return ok(c.open(cstr(path), flags | O.CLOEXEC, mode), 'open');
}
export function openat(dirfd: number, name: Buffer, flags: number, mode = 0): number {
  return ok(c.openat(dirfd, cstr(name), flags | O.CLOEXEC, mode), 'openat');
}
/** Open the file behind an O_PATH fd with real access flags (the /proc magic link). */
export function reopen(fd: number, flags: number): number {
  return ok(c.open(procPath(fd), (flags & ~(O.CREAT | O.EXCL | O.NOCTTY | O.NOFOLLOW)) | O.CLOEXEC, 0), 'open');
}
export function close(fd: number): void {
  c.close(fd);
}
const procPaths = new Map<number, Buffer>();
/** `/proc/self/fd/N` as a C string (cached: fds are small integers reused often). */
export function procPath(fd: number): Buffer {
  let p = procPaths.get(fd);
  if (!p) { p = cstr(`/proc/self/fd/${fd}`); procPaths.set(fd, p); }
  return p;
}

export function read(fd: number, buf: Buffer, n = buf.length): number {
  return okBig(c.read(fd, buf, n), 'read');
}
export function write(fd: number, buf: Buffer, n = buf.length): number {
  return okBig(c.write(fd, buf, n), 'write');
}
export function pread(fd: number, buf: Buffer, n: number, off: bigint | number): number {
  return okBig(c.pread(fd, buf, n, off), 'pread');
}
export function pwrite(fd: number, buf: Buffer, n: number, off: bigint | number): number {
  return okBig(c.pwrite(fd, buf, n, off), 'pwrite');
}

export function mkdirat(dirfd: number, name: Buffer, mode: number): void {
  ok(c.mkdirat(dirfd, cstr(name), mode), 'mkdirat');
}
export function mknodat(dirfd: number, name: Buffer, mode: number, rdev: number): void {
  ok(c.mknodat(dirfd, cstr(name), mode, rdev), 'mknodat');
}
export function symlinkat(target: Buffer, dirfd: number, name: Buffer): void {
  ok(c.symlinkat(cstr(target), dirfd, cstr(name)), 'symlinkat');
}
/** Hard link the file behind an O_PATH fd (AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the /proc link does not). */
export function linkFd(fd: number, newdirfd: number, name: Buffer): void {
  if (c.linkat(fd, EMPTY, newdirfd, cstr(name), AT.EMPTY_PATH) === 0) return;
  ok(c.linkat(AT.FDCWD, procPath(fd), newdirfd, cstr(name), AT.SYMLINK_FOLLOW), 'linkat');
}
export function unlinkat(dirfd: number, name: Buffer, flags: number): void {
  ok(c.unlinkat(dirfd, cstr(name), flags), 'unlinkat');
}
/** {@link unlinkat} of a name already NUL-terminated in place (as a FUSE request carries it). */
export function unlinkatZ(dirfd: number, nameZ: Buffer, flags: number): void {
  ok(c.unlinkat(dirfd, nameZ, flags), 'unlinkat');
}
export function renameat2(olddirfd: number, oldname: Buffer, newdirfd: number, newname: Buffer, flags: number): void {
  ok(c.renameat2(olddirfd, cstr(oldname), newdirfd, cstr(newname), flags), 'renameat2');
}
const linkBuf = Buffer.alloc(4097);
export function readlinkFd(fd: number): Buffer {
  const n = okBig(c.readlinkat(fd, EMPTY, linkBuf, 4096), 'readlinkat');
  return Buffer.from(linkBuf.subarray(0, n));
}
export function chmodFd(fd: number, mode: number): void {
  ok(c.chmod(procPath(fd), mode), 'chmod');
}
export function chownFd(fd: number, uid: number, gid: number): void {
  ok(c.fchownat(fd, EMPTY, uid >>> 0, gid >>> 0, AT.EMPTY_PATH | AT.SYMLINK_NOFOLLOW), 'fchownat');
}
const timesBuf = Buffer.alloc(32);
/** Set atime/mtime (seconds, nanoseconds; UTIME_NOW/UTIME_OMIT in the ns field) of an O_PATH fd. */
export function utimensFd(fd: number, isLink: boolean, aSec: bigint, aNs: number, mSec: bigint, mNs: number): void {
  timesBuf.writeBigInt64LE(aSec, 0);
  timesBuf.writeBigInt64LE(BigInt(aNs), 8);
  timesBuf.writeBigInt64LE(mSec, 16);
  timesBuf.writeBigInt64LE(BigInt(mNs), 24);
  if (c.utimensat(fd, EMPTY, timesBuf, AT.EMPTY_PATH) === 0) return;
  if (isLink) fail('utimensat');
  ok(c.utimensat(AT.FDCWD, procPath(fd), timesBuf, 0), 'utimensat');
}
export function truncateFd(fd: number, size: bigint): void {
  ok(c.truncate(procPath(fd), size), 'truncate');
}
export function ftruncate(fd: number, size: bigint): void {
  ok(c.ftruncate(fd, size), 'ftruncate');
}
export function fsync(fd: number, dataOnly: boolean): void {
  ok(dataOnly ? c.fdatasync(fd) : c.fsync(fd), 'fsync');
}
export function fallocate(fd: number, mode: number, off: bigint, len: bigint): void {
  ok(c.fallocate(fd, mode, off, len), 'fallocate');
}
export function lseek(fd: number, off: bigint | number, whence: number): bigint {
  const r = BigInt(c.lseek(fd, off, whence));
  if (r < 0n) fail('lseek');
  return r;
}
export function getdents64(fd: number, buf: Buffer): number {
  return okBig(c.getdents64(fd, buf, buf.length), 'getdents64');
}

/** Statfs fields provfs forwards (struct statfs on 64-bit Linux). */
export interface StatFs {
  bsize: bigint; blocks: bigint; bfree: bigint; bavail: bigint; files: bigint; ffree: bigint;
  namelen: bigint; frsize: bigint;
}
const statfsBuf = Buffer.alloc(120);
export function fstatfs(fd: number): StatFs {
  ok(c.fstatfs(fd, statfsBuf), 'fstatfs');
  const b = statfsBuf;
  return {
    bsize: b.readBigInt64LE(8), blocks: b.readBigUInt64LE(16), bfree: b.readBigUInt64LE(24),
    bavail: b.readBigUInt64LE(32), files: b.readBigUInt64LE(40), ffree: b.readBigUInt64LE(48),
    namelen: b.readBigInt64LE(64), frsize: b.readBigInt64LE(72),
  };
}

/** getxattr of a C-string path (`link`: lgetxattr, not following a final symlink). */
export function getxattrPath(path: Buffer, name: Buffer, value: Buffer | null, size: number, link: boolean): number {
  return okBig((link ? c.lgetxattr : c.getxattr)(path, cstr(name), value, size), 'getxattr');
}
export function setxattrPath(path: Buffer, name: Buffer, value: Buffer, flags: number, link: boolean): void {
  ok((link ? c.lsetxattr : c.setxattr)(path, cstr(name), value, value.length, flags), 'setxattr');
}
export function listxattrPath(path: Buffer, list: Buffer | null, size: number, link: boolean): number {
  return okBig((link ? c.llistxattr : c.listxattr)(path, list, size), 'listxattr');
}
export function removexattrPath(path: Buffer, name: Buffer, link: boolean): void {
  ok((link ? c.lremovexattr : c.removexattr)(path, cstr(name)), 'removexattr');
}

export function ioctl(fd: number, req: number, arg: Buffer | null): number {
  return ok(c.ioctl(fd, req, arg), 'ioctl');
}
export function mount(src: string, target: string, fstype: string, flags: number, data: string): void {
  ok(c.mount(cstr(src), cstr(target), cstr(fstype), flags, cstr(data)), 'mount');
}
export function umount2(target: string, flags: number): void {
  ok(c.umount2(cstr(target), flags), 'umount2');
}
export const POLLIN = 1;
/** poll(2): an error on the fd (a FUSE connection aborted by an unmount). */
export const POLLERR = 8;
/** poll(2) over fds for POLLIN; returns the revents of each (blocks the calling thread). */
export function pollIn(fds: number[], timeoutMs: number): number[] {
  const b = Buffer.alloc(8 * fds.length);
  fds.forEach((fd, i) => { b.writeInt32LE(fd, i * 8); b.writeInt16LE(POLLIN, i * 8 + 4); });
  for (;;) {
    const r = c.poll(b, fds.length, timeoutMs);
    if (r >= 0) break;
    if (koffi.errno() !== E.EINTR) fail('poll');
  }
  return fds.map((_, i) => b.readInt16LE(i * 8 + 6));
}
/** poll(2) for POLLIN on one fd in the libuv thread pool: resolves with revents (0 on timeout). */
export function pollInAsync(fd: number, timeoutMs: number): Promise<number> {
  const b = Buffer.alloc(8);
  b.writeInt32LE(fd, 0);
  b.writeInt16LE(POLLIN, 4);
  return new Promise((resolve, reject) => {
    c.poll.async(b, 1, timeoutMs, (err: unknown, r: number) => {
      if (err) return reject(err as Error);
      resolve(r > 0 ? b.readInt16LE(6) : 0);
    });
  });
}
export function umask(mask: number): number {
  return c.umask(mask);
}
/** inotify(7) event bits. */
export const IN = { MODIFY: 0x2, MOVED_TO: 0x80, CREATE: 0x100 } as const;
/**
 * A non-blocking, close-on-exec inotify fd watching `path` for `mask` (see {@link IN}); poll it
 * for POLLIN and empty it with {@link drainInotify}.
 */
export function inotifyWatch(path: string, mask: number): number {
  const fd = ok(c.inotifyInit1(0o4000 | 0o2000000), 'inotify_init1'); // IN_NONBLOCK | IN_CLOEXEC
  if (c.inotifyAddWatch(fd, path, mask) < 0) {
    const e = koffi.errno();
    c.close(fd);
    throw new Errno(e, `inotify_add_watch ${path}`);
  }
  return fd;
}
const inotifyBuf = Buffer.alloc(4096);
/** Read and discard every event waiting on an inotify fd (only the wake-up matters). */
export function drainInotify(fd: number): void {
  while (c.read(fd, inotifyBuf, inotifyBuf.length) > 0);
}
/** `flags` PIDFD_THREAD: a pidfd of one thread (readable when that thread exits, not the whole process). */
export function pidfdOpen(pid: number, flags = 0): number {
  return ok(c.pidfdOpen(pid, flags), 'pidfd_open');
}
/** pidfd_open flag: the pidfd names one thread (Linux 6.9). */
export const PIDFD_THREAD = 0o200;
/** Duplicate fd `target` of the process behind `pidfd` into this process (needs ptrace rights). */
export function pidfdGetfd(pidfd: number, target: number): number {
  return ok(c.pidfdGetfd(pidfd, target, 0), 'pidfd_getfd');
}
/** The calling thread's id (for per-thread scheduling priority). */
/**
 * Restrict the calling thread to CPU `cpu` (-1: every CPU it may use, up to 1024). Returns false
 * when the kernel refuses (no such CPU, or a cpuset without it).
 */
export function pinThread(cpu: number): boolean {
  const mask = Buffer.alloc(128);
  if (cpu < 0) mask.fill(0xff);
  else if (cpu < 1024) mask[cpu >> 3] = 1 << (cpu & 7);
  else return false;
  return c.schedSetaffinity(0, mask.length, mask) === 0;
}
const rusage = Buffer.alloc(144);
const rusageWords = new Uint32Array(rusage.buffer, rusage.byteOffset, 36);
/**
 * The calling thread's voluntary context switches so far (getrusage(RUSAGE_THREAD) ru_nvcsw: the
 * times it slept), modulo 2^32; -1 when refused.
 */
export function threadSleeps(): number {
  return c.getrusage(1, rusage) === 0 ? rusageWords[32]! : -1; // ru_nvcsw: the 13th long after two timevals
}
/** The CPUs thread `tid` may run on, as a mask of 1024 bits; null when it cannot be read. */
export function getAffinity(tid: number): Buffer | null {
  const mask = Buffer.alloc(128);
  return c.schedGetaffinity(tid, mask.length, mask) >= 0 ? mask : null;
}
/**
 * Let thread `tid` run on the CPUs of `allowed` (a mask from {@link getAffinity}) but `cpu`
 * (-1: on all of `allowed` again). False when the kernel refuses (e.g. no CPU would be left).
 */
export function avoidCpu(tid: number, allowed: Buffer, cpu: number): boolean {
  if (cpu >= 1024) return false;
  const mask = Buffer.from(allowed);
  if (cpu >= 0) mask[cpu >> 3]! &= ~(1 << (cpu & 7));
  return c.schedSetaffinity(tid, mask.length, mask) === 0;
}
const schedParam = Buffer.alloc(4);
/** sched_setscheduler(2) of thread `tid` (0: the caller); false when refused (no CAP_SYS_NICE). */
export function setScheduler(tid: number, policy: number, priority: number): boolean {
  schedParam.writeInt32LE(priority, 0);
  return c.schedSetscheduler(tid, policy, schedParam) === 0;
}
export function gettid(): number {
  return c.gettid() as number;
}
export function dup(fd: number): number {
  return ok(c.dup(fd), 'dup');
}
const F_GETFL = 3, F_SETFL = 4, F_DUPFD_CLOEXEC = 1030;
/** A close-on-exec duplicate of `fd` (nothing a daemon spawns inherits it). */
export function dupCloexec(fd: number): number {
  return ok(c.fcntl(fd, F_DUPFD_CLOEXEC, 0), 'fcntl');
}
export function setNonblock(fd: number, on: boolean): void {
  const fl = ok(c.fcntl(fd, F_GETFL, 0), 'fcntl');
  ok(c.fcntl(fd, F_SETFL, on ? fl | O.NONBLOCK : fl & ~O.NONBLOCK), 'fcntl');
}

/** A file handle (name_to_handle_at): opaque bytes that name a file for open_by_handle_at. */
export interface FileHandle {
  type: number;
  bytes: Buffer;
}
const MAX_HANDLE = 128;
const handleBuf = Buffer.alloc(8 + MAX_HANDLE);
const mountIdBuf = Buffer.alloc(4);
/** The file handle of the file behind an O_PATH fd. */
export function handleOf(fd: number): FileHandle {
  handleBuf.writeUInt32LE(MAX_HANDLE, 0);
  ok(c.nameToHandleAt(fd, EMPTY, handleBuf, mountIdBuf, AT.EMPTY_PATH), 'name_to_handle_at');
  const n = handleBuf.readUInt32LE(0);
  return { type: handleBuf.readInt32LE(4), bytes: Buffer.from(handleBuf.subarray(8, 8 + n)) };
}
/** Open a file by handle on the file system of `mountFd` (needs CAP_DAC_READ_SEARCH). */
export function openByHandle(mountFd: number, h: FileHandle, flags: number): number {
  const b = Buffer.alloc(8 + h.bytes.length);
  b.writeUInt32LE(h.bytes.length, 0);
  b.writeInt32LE(h.type, 4);
  h.bytes.copy(b, 8);
  return ok(c.openByHandleAt(mountFd, b, flags | O.CLOEXEC), 'open_by_handle_at');
}

/**
 * Raise RLIMIT_NOFILE as far as allowed: every node provfs knows holds an O_PATH fd (as in
 * libfuse's passthrough examples), so a big tree needs far more than the usual 1024 or 20000.
 * Root may go up to fs.nr_open; others up to their hard limit. Returns the new soft limit.
 */
/** The soft RLIMIT_NOFILE. */
export function nofileLimit(): number {
  const b = Buffer.alloc(16);
  ok(c.getrlimit(7, b), 'getrlimit');
  return Number(b.readBigUInt64LE(0));
}

/** Set RLIMIT_NOFILE (soft and hard). */
export function setNofileLimit(soft: number, hard: number): void {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(BigInt(soft), 0);
  b.writeBigUInt64LE(BigInt(hard), 8);
  ok(c.setrlimit(7, b), 'setrlimit');
}

export function raiseNofileLimit(): number {
  const RLIMIT_NOFILE = 7;
  const b = Buffer.alloc(16);
  ok(c.getrlimit(RLIMIT_NOFILE, b), 'getrlimit');
  const cur = Number(b.readBigUInt64LE(0)), max = Number(b.readBigUInt64LE(8));
  let want = max;
  try { want = Math.max(max, Number(readFileSync('/proc/sys/fs/nr_open', 'utf8').trim())); } catch { /* keep the hard limit */ }
  for (const [soft, hard] of [[want, want], [max, max]] as const) {
    if (soft <= cur) return cur;
    b.writeBigUInt64LE(BigInt(soft), 0);
    b.writeBigUInt64LE(BigInt(hard), 8);
    if (c.setrlimit(RLIMIT_NOFILE, b) === 0) return soft;
  }
  return cur;
}
