/**
 * @module kernel/protocol
 * The FUSE kernel protocol as spoken on /dev/fuse, mirroring libfuse's `fuse_kernel.h` at
 * version 7.45: explicit opcode numbers, flag bits, and the byte layout of every struct provfs
 * reads or writes (little-endian, x86_64/aarch64). Struct sizes are asserted at load time so a
 * typo in an offset cannot go unnoticed.
 */

export const FUSE_KERNEL_VERSION = 7;
/** Highest minor version we speak; the kernel's INIT may negotiate it down. */
export const FUSE_KERNEL_MINOR_VERSION = 45;
/** Oldest minor version we accept (7.31 is Linux 5.4: max_pages, explicit inval data). */
export const FUSE_MIN_MINOR_VERSION = 31;
export const FUSE_ROOT_ID = 1;
/** The kernel marks a resent request with this bit in `unique` (FUSE_NOTIFY_RESEND). */
export const FUSE_UNIQUE_RESEND = 1n << 63n;

/** fuse_opcode */
export const OP = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9,
  UNLINK: 10, RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17,
  RELEASE: 18, FSYNC: 20, SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25,
  INIT: 26, OPENDIR: 27, READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32,
  SETLKW: 33, ACCESS: 34, CREATE: 35, INTERRUPT: 36, BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40,
  NOTIFY_REPLY: 41, BATCH_FORGET: 42, FALLOCATE: 43, READDIRPLUS: 44, RENAME2: 45, LSEEK: 46,
  COPY_FILE_RANGE: 47, SETUPMAPPING: 48, REMOVEMAPPING: 49, SYNCFS: 50, TMPFILE: 51, STATX: 52,
  COPY_FILE_RANGE_64: 53,
} as const;

/** Opcode number → name, for logs. */
export const OP_NAME: Record<number, string> = Object.fromEntries(Object.entries(OP).map(([k, v]) => [v, k]));

/** fuse_notify_code */
export const NOTIFY = {
  POLL: 1, INVAL_INODE: 2, INVAL_ENTRY: 3, STORE: 4, RETRIEVE: 5, DELETE: 6, RESEND: 7,
  INC_EPOCH: 8, PRUNE: 9,
} as const;

/** INIT flags (bits 0..31 in `flags`, bits 32..63 in `flags2`). */
export const INIT = {
  ASYNC_READ: 1n << 0n, POSIX_LOCKS: 1n << 1n, FILE_OPS: 1n << 2n, ATOMIC_O_TRUNC: 1n << 3n,
  EXPORT_SUPPORT: 1n << 4n, BIG_WRITES: 1n << 5n, DONT_MASK: 1n << 6n, SPLICE_WRITE: 1n << 7n,
  SPLICE_MOVE: 1n << 8n, SPLICE_READ: 1n << 9n, FLOCK_LOCKS: 1n << 10n, HAS_IOCTL_DIR: 1n << 11n,
  AUTO_INVAL_DATA: 1n << 12n, DO_READDIRPLUS: 1n << 13n, READDIRPLUS_AUTO: 1n << 14n,
  ASYNC_DIO: 1n << 15n, WRITEBACK_CACHE: 1n << 16n, NO_OPEN_SUPPORT: 1n << 17n,
  PARALLEL_DIROPS: 1n << 18n, HANDLE_KILLPRIV: 1n << 19n, POSIX_ACL: 1n << 20n,
  ABORT_ERROR: 1n << 21n, MAX_PAGES: 1n << 22n, CACHE_SYMLINKS: 1n << 23n,
  NO_OPENDIR_SUPPORT: 1n << 24n, EXPLICIT_INVAL_DATA: 1n << 25n, MAP_ALIGNMENT: 1n << 26n,
  SUBMOUNTS: 1n << 27n, HANDLE_KILLPRIV_V2: 1n << 28n, SETXATTR_EXT: 1n << 29n,
  INIT_EXT: 1n << 30n, INIT_RESERVED: 1n << 31n, SECURITY_CTX: 1n << 32n,
  HAS_INODE_DAX: 1n << 33n, CREATE_SUPP_GROUP: 1n << 34n, HAS_EXPIRE_ONLY: 1n << 35n,
  DIRECT_IO_ALLOW_MMAP: 1n << 36n, PASSTHROUGH: 1n << 37n, NO_EXPORT_SUPPORT: 1n << 38n,
  HAS_RESEND: 1n << 39n, ALLOW_IDMAP: 1n << 40n, OVER_IO_URING: 1n << 41n,
  REQUEST_TIMEOUT: 1n << 42n,
} as const;

/** FATTR_* bits of fuse_setattr_in.valid */
export const FATTR = {
  MODE: 1 << 0, UID: 1 << 1, GID: 1 << 2, SIZE: 1 << 3, ATIME: 1 << 4, MTIME: 1 << 5, FH: 1 << 6,
  ATIME_NOW: 1 << 7, MTIME_NOW: 1 << 8, LOCKOWNER: 1 << 9, CTIME: 1 << 10, KILL_SUIDGID: 1 << 11,
} as const;

/** FOPEN_* bits of fuse_open_out.open_flags */
export const FOPEN = {
  DIRECT_IO: 1 << 0, KEEP_CACHE: 1 << 1, NONSEEKABLE: 1 << 2, CACHE_DIR: 1 << 3, STREAM: 1 << 4,
  NOFLUSH: 1 << 5, PARALLEL_DIRECT_WRITES: 1 << 6, PASSTHROUGH: 1 << 7,
} as const;

/** fuse_open_in.open_flags / fuse_create_in.open_flags: the caller lacks CAP_FSETID and truncates (HANDLE_KILLPRIV_V2). */
export const OPEN_KILL_SUIDGID = 1 << 0;
/** fuse_write_in.write_flags: the writer lacks CAP_FSETID; clear set-user/group-id. */
export const WRITE_KILL_SUIDGID = 1 << 2;

export const RELEASE_FLUSH = 1 << 0;
export const FSYNC_FDATASYNC = 1 << 0;
export const GETATTR_FH = 1 << 0;

/** Device ioctls on /dev/fuse (FUSE_DEV_IOC_MAGIC 229). */
export const DEV_IOC = {
  /** _IOR(229, 0, uint32_t) */
  CLONE: 0x8004e500,
  /** _IOW(229, 1, struct fuse_backing_map) */
  BACKING_OPEN: 0x4010e501,
  /** _IOW(229, 2, uint32_t) */
  BACKING_CLOSE: 0x4004e502,
} as const;

/** Byte sizes of the structs provfs encodes or decodes. */
export const SIZE = {
  in_header: 40, out_header: 16, attr: 88, entry_out: 128, attr_out: 104, open_out: 16,
  init_in: 64, init_out: 64, getattr_in: 16, setattr_in: 88, mknod_in: 16, mkdir_in: 8,
  rename_in: 8, rename2_in: 16, link_in: 8, open_in: 8, create_in: 16, release_in: 24,
  flush_in: 24, read_in: 40, write_in: 40, write_out: 8, statfs_out: 80, fsync_in: 16,
  setxattr_in: 16, getxattr_in: 8, getxattr_out: 8, access_in: 8, forget_in: 8, forget_one: 16,
  batch_forget_in: 8, interrupt_in: 8, dirent: 24, direntplus: 152, backing_map: 16,
  lseek_in: 24, lseek_out: 8, fallocate_in: 32, notify_inval_entry_out: 16,
  notify_inval_inode_out: 24,
} as const;

/** Offsets inside struct fuse_attr (88 bytes). */
export const ATTR = {
  ino: 0, size: 8, blocks: 16, atime: 24, mtime: 32, ctime: 40, atimensec: 48, mtimensec: 52,
  ctimensec: 56, mode: 60, nlink: 64, uid: 68, gid: 72, rdev: 76, blksize: 80, flags: 84,
} as const;

/** struct fuse_in_header (40 bytes). */
export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  /** The caller's thread id (0 for RELEASE and kernel-internal requests). */
  pid: number;
  totalExtlen: number;
}

/**
 * Decode the header into `h` in place, all but `unique` (left as it was: the request loop copies
 * the unique id byte for byte; {@link readUnique} reads it when needed).
 */
export function readInHeaderInto(b: Buffer, h: InHeader): void {
  h.len = b.readUInt32LE(0);
  h.opcode = b.readUInt32LE(4);
  h.nodeid = b.readUInt32LE(16) + b.readUInt32LE(20) * 0x100000000;
  h.uid = b.readUInt32LE(24);
  h.gid = b.readUInt32LE(28);
  h.pid = b.readUInt32LE(32);
  h.totalExtlen = b.readUInt16LE(36);
}

export function readUnique(b: Buffer): bigint {
  return b.readBigUInt64LE(8);
}

export function writeOutHeader(b: Buffer, len: number, error: number, unique: bigint): void {
  b.writeUInt32LE(len, 0);
  b.writeInt32LE(error, 4);
  b.writeBigUInt64LE(unique, 8);
}

/** Align to the 8-byte record boundary (FUSE_REC_ALIGN). */
export const recAlign = (n: number): number => (n + 7) & ~7;

/** fuse_dirent name offset (ino 8, off 8, namelen 4, type 4). */
export const DIRENT_NAME_OFFSET = 24;
/** fuse_direntplus name offset (entry_out 128 + dirent header 24). */
export const DIRENTPLUS_NAME_OFFSET = 152;

// Sanity: the offsets above add up to the sizes the kernel expects.
function assertSizes(): void {
  const sum = (...xs: number[]): number => xs.reduce((a, b) => a + b, 0);
  const checks: Array<[string, number, number]> = [
    ['in_header', sum(4, 4, 8, 8, 4, 4, 4, 2, 2), SIZE.in_header],
    ['out_header', sum(4, 4, 8), SIZE.out_header],
    ['attr', ATTR.flags + 4, SIZE.attr],
    ['entry_out', sum(8, 8, 8, 8, 4, 4) + SIZE.attr, SIZE.entry_out],
    ['attr_out', sum(8, 4, 4) + SIZE.attr, SIZE.attr_out],
    ['open_out', sum(8, 4, 4), SIZE.open_out],
    ['init_out', sum(4, 4, 4, 4, 2, 2, 4, 4, 2, 2, 4, 4, 2) + 2 * 11, SIZE.init_out],
    ['init_in', sum(4, 4, 4, 4, 4) + 4 * 11, SIZE.init_in],
    ['setattr_in', sum(4, 4, 8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 4), SIZE.setattr_in],
    ['statfs_out', sum(8, 8, 8, 8, 8, 4, 4, 4, 4) + 4 * 6, SIZE.statfs_out],
    ['direntplus', SIZE.entry_out + SIZE.dirent, SIZE.direntplus],
    ['read_in', sum(8, 8, 4, 4, 8, 4, 4), SIZE.read_in],
  ];
  for (const [name, got, want] of checks) {
    if (got !== want) throw new Error(`fuse protocol: struct ${name} is ${got} bytes, expected ${want}`);
  }
}
assertSizes();
