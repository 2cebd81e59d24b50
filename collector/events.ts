/**
 * @module collector/events
 * The event schema: the single source of truth for what capture sources (provfs, eBPF) write
 * to the journal and what the join engine reads. Every record is a plain JSON-able object.
 *
 * Conventions that every source must follow:
 * - `ts` is CLOCK_MONOTONIC in nanoseconds as a JS number (bpf_ktime_get_ns() and
 *   process.hrtime.bigint() share this clock). Integers are exact up to 2^53 ns ≈ 104 days of
 *   uptime; past that, precision degrades to 2–4 ns, which only affects tie-breaking.
 * - `dev` is the userspace st_dev encoding (what stat(2) returns, e.g. 0xfe00 for 254:0),
 *   never the kernel's MAJOR<<20|MINOR: use {@link kernelDevToUser} to convert.
 * - `pid` is the thread-group id (process id), `tid` the thread id. Sources that only know the
 *   tid (FUSE reports the caller's thread id) set `pid` to 0 and the join maps tid → tgid.
 * - `seq` counts per source stream from 1; a gap in seq is loss, reported as a `lost` event.
 * - Paths and names are strings; bytes that are not valid UTF-8 are escaped by
 *   {@link decodeNameBytes} so that a name survives JSON.
 */

/** Version of the record layout below. Bump on any incompatible change. */
export const SCHEMA_VERSION = 1 as const;

/** Which witness produced the record. */
export type EventSource = 'provfs' | 'ebpf';

/** A file as named by a source: identity (dev, ino) plus where it was seen. */
export interface FileRef {
  dev: number;
  ino: number;
  /** Inode of the parent directory, when known. */
  parent?: number;
  /** Last path component, when known. */
  name?: string;
  /** Absolute path, when the source knows it. */
  path?: string;
  /** File type as in st_mode & S_IFMT (e.g. 0o100000 regular), when known. */
  type?: number;
}

/** A directory entry name without identity (the source side of a rename). */
export interface NameRef {
  parent?: number;
  name?: string;
  path?: string;
}

/** Fields every record carries. */
export interface EventBase {
  v: typeof SCHEMA_VERSION;
  src: EventSource;
  seq: number;
  ts: number;
  host: string;
  pid: number;
  tid: number;
  /** Parent process id at the time of the event, when the source knows it. */
  ppid?: number;
  /** Short command name (task comm), when the source knows it. */
  comm?: string;
}

// ---- process lifecycle (eBPF) ----

/** clone/fork/vfork/clone3: `child` is the new tgid (== pid for a thread). */
export interface ForkEvent extends EventBase { op: 'fork'; child: number; childTid: number; thread: boolean }
/** A successful execve/execveat: starts a new process image (a new PROV activity). */
export interface ExecEvent extends EventBase {
  op: 'exec';
  filename: string;
  argv: string[];
  argvTruncated?: boolean;
  env?: string[];
  envTruncated?: boolean;
  cwd?: string;
  uid: number;
  gid: number;
  /** The executable file, when resolved. */
  exe?: FileRef;
}
/** A thread or process ended. `group` is true when the whole thread group is gone. */
export interface ExitEvent extends EventBase { op: 'exit'; code: number; group: boolean }

// ---- file descriptors (eBPF, syscall level) ----

export interface PipeEvent extends EventBase { op: 'pipe'; fds: [number, number]; ino: number; dev?: number; cloexec?: boolean }
/** dup/dup2/dup3 and fcntl(F_DUPFD, F_DUPFD_CLOEXEC). */
export interface DupEvent extends EventBase { op: 'dup'; oldfd: number; newfd: number; cloexec?: boolean }
export interface SocketEvent extends EventBase {
  op: 'socket' | 'accept' | 'connect';
  fd: number;
  /** For accept: the new connected fd. */
  newfd?: number;
  /** Inode of the socket (sockfs) behind fd (for accept: behind newfd). */
  ino: number;
  /** Inode of the peer socket when it is on this host (UNIX sockets, loopback). */
  peer?: number;
  family?: number;
  type?: number;
  /** Remote address as text (e.g. "127.0.0.1:8080" or a UNIX path), when known. */
  addr?: string;
}
/** sendmsg/sendmmsg/sendto and recvmsg/recvmmsg/recvfrom. */
export interface MsgEvent extends EventBase {
  op: 'sendmsg' | 'recvmsg';
  fd: number;
  /** Inode of the socket behind fd. */
  sock: number;
  peer?: number;
  bytes?: number;
  /** fds passed with SCM_RIGHTS: on send the sender's fds, on receive the receiver's new fds. */
  fds?: number[];
  /** The files behind `fds`, in the same order (resolved in the kernel). */
  files?: FileRef[];
}

// ---- file-system operations (provfs from inside the file system; eBPF at syscall exit) ----

/**
 * open/openat/openat2/creat (eBPF: `fd` set) or FUSE OPEN/CREATE (provfs: `fh` set).
 * `created` is true when this open created the file.
 */
export interface OpenEvent extends EventBase { op: 'open'; file: FileRef; flags: number; fd?: number; fh?: number; created?: boolean; mode?: number }
/**
 * close (eBPF: `fd`, or `fd`..`fdMax` for close_range) or FUSE FLUSH (provfs: `file` and
 * `fh`; the closing pid comes with FLUSH, RELEASE carries none). `release`: provfs gave this
 * handle out without FLUSH (passthrough handles: a close(2) costs no round trip) and recorded
 * its close at RELEASE, once, when its last descriptor went, with the opener's tid.
 */
export interface CloseEvent extends EventBase { op: 'close'; fd?: number; fdMax?: number; file?: FileRef; fh?: number; release?: boolean }
export interface CreateEvent extends EventBase { op: 'create'; file: FileRef; mode: number; flags?: number; fh?: number }
export interface MkdirEvent extends EventBase { op: 'mkdir'; file: FileRef; mode: number }
export interface SymlinkEvent extends EventBase { op: 'symlink'; file: FileRef; target: string }
/** A new hard link: `file` names the existing inode under its new name. */
export interface LinkEvent extends EventBase { op: 'link'; file: FileRef }
export interface RenameEvent extends EventBase {
  op: 'rename';
  /** The moved inode with its new name (parent, name, path). */
  file: FileRef;
  from: NameRef;
  /** renameat2 flags: RENAME_NOREPLACE=1, RENAME_EXCHANGE=2, RENAME_WHITEOUT=4. */
  flags: number;
  /** The inode that was at the destination and got replaced (or exchanged). */
  overwritten?: FileRef;
  /** True when the replaced inode lost its last link. */
  overwrittenDeleted?: boolean;
}
export interface UnlinkEvent extends EventBase { op: 'unlink'; file: FileRef; deleted: boolean }
export interface RmdirEvent extends EventBase { op: 'rmdir'; file: FileRef }
/** chmod/chown/utimens/truncate (FUSE SETATTR or the syscalls). Only the changed fields are set. */
export interface SetattrEvent extends EventBase { op: 'setattr'; file: FileRef; mode?: number; uid?: number; gid?: number; size?: number; mtime?: number }

// ---- loss ----

/** Events were lost between `from` and `to` (monotonic ns) on this source; `count` if known. */
export interface LostEvent extends EventBase {
  op: 'lost';
  count: number;
  from: number;
  to: number;
  reason: string;
}

/** Any record in the journal. */
export type ProvEvent =
  | ForkEvent | ExecEvent | ExitEvent
  | PipeEvent | DupEvent | SocketEvent | MsgEvent
  | OpenEvent | CloseEvent | CreateEvent | MkdirEvent | SymlinkEvent | LinkEvent
  | RenameEvent | UnlinkEvent | RmdirEvent | SetattrEvent
  | LostEvent;

/** Every op name, in a fixed order (its index is the binary op code where one is needed). */
export const OPS = [
  'fork', 'exec', 'exit',
  'pipe', 'dup', 'socket', 'accept', 'connect', 'sendmsg', 'recvmsg',
  'open', 'close', 'create', 'mkdir', 'symlink', 'link', 'rename', 'unlink', 'rmdir', 'setattr',
  'lost',
] as const;
export type Op = (typeof OPS)[number];

/** Ops that change the file-system namespace or contents (what sync and provfs care about). */
export const FS_OPS: ReadonlySet<Op> = new Set<Op>([
  'open', 'close', 'create', 'mkdir', 'symlink', 'link', 'rename', 'unlink', 'rmdir', 'setattr',
]);

/** Convert a kernel dev_t (MAJOR<<20 | MINOR) to the userspace st_dev encoding. */
export function kernelDevToUser(kdev: number): number {
  const major = Math.floor(kdev / 0x100000) & 0xfff;
  const minor = kdev & 0xfffff;
  return ((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12)) >>> 0;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Decode a file name from raw bytes. Valid UTF-8 is returned as is; otherwise every byte that
 * is not printable ASCII is written as `\xNN` (and a backslash as `\\`), so the name survives
 * JSON and stays distinguishable.
 */
export function decodeNameBytes(bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    let s = '';
    for (const b of bytes) {
      if (b === 0x5c) s += '\\\\';
      else if (b >= 0x20 && b < 0x7f) s += String.fromCharCode(b);
      else s += '\\x' + b.toString(16).padStart(2, '0');
    }
    return s;
  }
}
