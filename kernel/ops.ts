/**
 * @module kernel/ops
 * provfs's file operations over a backing directory, named after Bento's File Operations API
 * (lookup, getattr, setattr, create, mknod, mkdir, symlink, link, unlink, rmdir, rename, open,
 * flush, release, fsync, readdir, statfs, xattrs, access) plus `updatePrepare()` /
 * `updateTransfer(state)` for live upgrade. This is plain code over file descriptors: it runs
 * inside the FUSE request loop, and tests drive it directly without a kernel mount.
 *
 * Every operation works on O_PATH fds of the node table (never on paths below the backing root),
 * so provfs can be mounted over its own backing directory. Failures throw {@link libc.Errno}.
 * In prov mode each namespace operation, open and close is handed to {@link Recorder}.
 */
import * as libc from './libc.js';
import { E, O, S, AT } from './libc.js';
import { NodeTable, RENEW_MAX, type Node, type Handle, type DirEntry, type NodeTableState } from './nodes.js';
import { FATTR } from './protocol.js';
import type { Recorder } from './recorder.js';
import type { NodeLog } from './nodelog.js';

/** Who asked: from the request header. `pid` is the caller's thread id as FUSE reports it. */
export interface Ctx {
  uid: number;
  gid: number;
  pid: number;
}

/** A looked-up or created node and its attributes (an entry reply). */
export interface Entry {
  node: Node;
  stat: libc.Stat;
}

/** Result of open/create: the handle, and the backing id when the kernel does the I/O. */
export interface Opened {
  handle: Handle;
  backingId: number;
  /**
   * FOPEN_DIRECT_IO: every WRITE comes to the daemon, flagged when the writer may not keep
   * set-user/group-id bits (a set-id file opened for writing; see {@link ProvFs.openNode}).
   */
  direct: boolean;
}

/** Kernel passthrough: register a backing file on the connection (FUSE_DEV_IOC_BACKING_OPEN). */
export interface PassthroughDevice {
  open(fd: number): number;
  close(id: number): void;
}

/** Fields of a SETATTR (only those flagged in `valid` are meaningful). */
export interface SetattrIn {
  valid: number;
  fh: number;
  size: bigint;
  atime: bigint; atimeNs: number;
  mtime: bigint; mtimeNs: number;
  mode: number;
  uid: number;
  gid: number;
}

/** Transfer state of a provfs instance (versioned; see kernel/upgrade). */
export interface ProvFsState {
  version: 1;
  mode: 'plain' | 'prov';
  passthrough: boolean;
  table: NodeTableState;
}

export const RENAME_NOREPLACE = 1;
export const RENAME_EXCHANGE = 2;
export const RENAME_WHITEOUT = 4;

const DIRENT_BUF = 64 * 1024;
/** Backing files kept registered without an open handle (see ProvFs.idleBackings). */
const IDLE_BACKINGS = 1024;

/** Set-user-id, or set-group-id with group execute (a real set-gid, not a locking mark). */
function isSetId(mode: number): boolean {
  return (mode & S.ISUID) !== 0 || (mode & (S.ISGID | 0o010)) === (S.ISGID | 0o010);
}

/**
 * Clear what write(2) or truncate(2) by a caller without CAP_FSETID clears on a regular file:
 * set-user-id always, set-group-id when group execute is set. True when the mode changed.
 */
function killSuidgid(fd: number, st: libc.Stat): boolean {
  if ((st.mode & S.IFMT) !== S.IFREG || !isSetId(st.mode)) return false;
  const keepGid = (st.mode & 0o010) === 0;
  libc.chmodFd(fd, st.mode & 0o7777 & ~S.ISUID & ~(keepGid ? 0 : S.ISGID));
  return true;
}

export class ProvFs {
  readonly nodes: NodeTable;
  /** Set when the kernel negotiated FUSE_PASSTHROUGH. */
  passthrough: PassthroughDevice | null = null;
  recorder: Recorder | null;
  /** Crash survival: new nodes and backing ids are appended here before the kernel sees them. */
  nodeLog: NodeLog | null = null;
  private readonly direntBuf = Buffer.allocUnsafe(DIRENT_BUF);

  /**
   * @param rootFd O_PATH fd of the backing directory (opened before mounting, so mounting over
   *   the backing directory itself works).
   */
  /** The node table's and this file system's churned maps get fresh tables (see NodeTable.renewMaps). */
  renewMaps(): void {
    this.nodes.renewMaps();
    if (this.idleBackings.size <= RENEW_MAX) this.idleBackings = new Set(this.idleBackings);
  }

  constructor(rootFd: number, recorder: Recorder | null = null, table?: NodeTable) {
    this.nodes = table ?? new NodeTable(rootFd);
    this.recorder = recorder;
    this.nodes.onDropBacking = (n) => {
      this.idleBackings.delete(n.id);
      this.unregisterBacking(n);
    };
    // Backing files a predecessor kept registered without handles: bounded here too.
    for (const n of this.nodes.withIdleBacking()) this.idleBackings.add(n.id);
  }

  /**
   * Nodes whose backing file stays registered after their last handle went, oldest first: the
   * next OPEN of the file needs neither a reopen nor a BACKING_OPEN, its RELEASE no
   * BACKING_CLOSE (two to four system calls less per open/close pair). Each holds one fd more,
   * so at most {@link IDLE_BACKINGS}; the oldest is unregistered beyond that.
   */
  private idleBackings = new Set<number>();

  private unregisterBacking(n: Node): void {
    const b = n.backing;
    if (!b) return;
    this.passthrough?.close(b.id);
    this.nodeLog?.backing(n.id, b.id, false);
    if (b.fd >= 0) libc.close(b.fd);
    n.backing = null;
    this.nodes.changed(n);
  }

  // ---- names ----

  /**
   * LOOKUP: find `name` in `parent`; throws ENOENT when absent. A name whose file the table
   * already holds costs one statx; only a new file is opened (O_PATH) to pin it.
   */
  lookup(ctx: Ctx | null, parent: number, name: Buffer): Entry {
    const e = this.lookupIfExists(ctx, parent, name);
    if (!e) throw new libc.Errno(E.ENOENT, 'lookup');
    return e;
  }

  /** {@link lookup}, but null when `name` does not exist (no exception on the common path). */
  lookupIfExists(_ctx: Ctx | null, parent: number, name: Buffer): Entry | null {
    const p = this.nodes.get(parent);
    const seen = libc.fstatatIfExists(p.fd, name);
    if (!seen) return null;
    const known = this.nodes.findByIdentity(seen.dev, seen.ino);
    if (known) return { node: this.nodes.lookedUp(known, parent, name), stat: seen };
    return this.lookupNew(parent, name);
  }

  /**
   * The LOOKUP of a file new to the table: open it (O_PATH) to pin it, stat it through that fd
   * (what the node holds is what is described) and make its node. Throws ENOENT when it went.
   */
  lookupNew(parent: number, name: Buffer): Entry {
    const p = this.nodes.get(parent);
    const fd = libc.openat(p.fd, name, O.PATH | O.NOFOLLOW);
    let st: libc.Stat;
    try {
      st = libc.fstat(fd);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    return { node: this.nodes.adopt(fd, st, parent, name), stat: st };
  }

  /** FORGET / BATCH_FORGET */
  forget(id: number, nlookup: number): void {
    this.nodes.forget(id, nlookup);
  }

  getattr(_ctx: Ctx | null, id: number): libc.Stat {
    return libc.fstat(this.nodes.get(id).fd);
  }

  /**
   * LOOKUP of a name whose file the table already holds, with its attributes left in
   * {@link libc.statxWords} (no Stat object): the node, null when the name does not exist, or
   * undefined when the file is new to the table (then {@link lookupIfExists} makes its node).
   * `nameZ`: the name with its terminating NUL (as the request carries it), spares a copy.
   */
  lookupKnownRaw(parent: number, name: Buffer, nameZ?: Buffer): Node | null | undefined {
    const p = this.nodes.get(parent);
    if (!(nameZ ? libc.fstatatRawIfExistsZ(p.fd, nameZ) : libc.fstatatRawIfExists(p.fd, name))) return null;
    const known = this.nodes.findByStatx();
    return known ? this.nodes.lookedUp(known, parent, name) : undefined;
  }

  /** GETATTR into {@link libc.statxWords} (the reply copies the words; no Stat object). */
  getattrRaw(id: number): void {
    libc.fstatRaw(this.nodes.get(id).fd);
  }

  setattr(ctx: Ctx, id: number, a: SetattrIn): libc.Stat {
    const n = this.nodes.get(id);
    const isLink = n.type === S.IFLNK;
    if (a.valid & FATTR.MODE) {
      if (isLink) throw new libc.Errno(E.EOPNOTSUPP, 'chmod');
      // A user's passthrough writes would not clear set-id bits made now (the kernel writes the
      // backing file as the daemon): refuse, as execve refuses a file open for writing.
      // (A writer who is the owner only makes the file set-id to itself: harmless, allowed.)
      if (n.type === S.IFREG && isSetId(a.mode) && n.opens > 0) {
        const now = libc.fstat(n.fd);
        const owner = a.valid & FATTR.UID ? a.uid : now.uid;
        if (!isSetId(now.mode) && this.nodes.anyHandle(n.id, (h) => h.userWriter !== undefined && h.userWriter !== owner)) {
          throw new libc.Errno(E.ETXTBSY, 'chmod: set-id while another user has the file open for writing');
        }
      }
      libc.chmodFd(n.fd, a.mode & 0o7777);
    }
    if (a.valid & (FATTR.UID | FATTR.GID)) {
      libc.chownFd(n.fd, a.valid & FATTR.UID ? a.uid : -1, a.valid & FATTR.GID ? a.gid : -1);
    }
    if (a.valid & FATTR.SIZE) {
      const h = a.valid & FATTR.FH ? this.nodes.handle(a.fh) : null;
      if (h && h.fd >= 0) libc.ftruncate(h.fd, a.size);
      else libc.truncateFd(n.fd, a.size);
    }
    if (a.valid & (FATTR.ATIME | FATTR.MTIME)) {
      const aNs = a.valid & FATTR.ATIME_NOW ? libc.UTIME_NOW : a.valid & FATTR.ATIME ? a.atimeNs : libc.UTIME_OMIT;
      const mNs = a.valid & FATTR.MTIME_NOW ? libc.UTIME_NOW : a.valid & FATTR.MTIME ? a.mtimeNs : libc.UTIME_OMIT;
      libc.utimensFd(n.fd, isLink, a.atime, aNs, a.mtime, mNs);
    }
    let st = libc.fstat(n.fd);
    // HANDLE_KILLPRIV_V2: a truncation by a caller without CAP_FSETID clears the set-id bits
    // (the kernel leaves that to us; the daemon's own truncate, as root, keeps them).
    if (a.valid & FATTR.KILL_SUIDGID && killSuidgid(n.fd, st)) st = libc.fstat(n.fd);
    this.recorder?.setattr(ctx, n, a, st);
    return st;
  }

  readlink(_ctx: Ctx | null, id: number): Buffer {
    return libc.readlinkFd(this.nodes.get(id).fd);
  }

  mknod(ctx: Ctx, parent: number, name: Buffer, mode: number, rdev: number, umask = 0): Entry {
    const p = this.nodes.get(parent);
    mode &= ~umask;
    libc.mknodat(p.fd, name, mode, rdev);
    const e = this.ownNew(ctx, p, name, mode);
    this.recorder?.create(ctx, e, mode, undefined, undefined);
    return e;
  }

  mkdir(ctx: Ctx, parent: number, name: Buffer, mode: number, umask = 0): Entry {
    const p = this.nodes.get(parent);
    mode &= ~umask;
    libc.mkdirat(p.fd, name, mode);
    const e = this.ownNew(ctx, p, name, mode | S.IFDIR);
    this.recorder?.mkdir(ctx, e, mode);
    return e;
  }

  symlink(ctx: Ctx, parent: number, name: Buffer, target: Buffer): Entry {
    const p = this.nodes.get(parent);
    libc.symlinkat(target, p.fd, name);
    const e = this.ownNew(ctx, p, name, S.IFLNK | 0o777);
    this.recorder?.symlink(ctx, e, target);
    return e;
  }

  link(ctx: Ctx, id: number, newparent: number, newname: Buffer): Entry {
    const n = this.nodes.get(id);
    const p = this.nodes.get(newparent);
    libc.linkFd(n.fd, p.fd, newname);
    const e = this.lookup(ctx, newparent, newname);
    this.recorder?.link(ctx, e);
    return e;
  }

  /**
   * Recorded ahead (Recorder.ahead): once the name is gone, nothing says what it was. `nameZ`:
   * the name followed by a NUL where it lies (the request's body), for the system calls to take
   * as it is.
   */
  unlink(ctx: Ctx, parent: number, name: Buffer, nameZ?: Buffer): void {
    const p = this.nodes.get(parent);
    const rec = this.recorder;
    const z = nameZ ?? libc.cstr(name);
    if (!rec) return libc.unlinkatZ(p.fd, z, 0);
    // What the record needs of the file, read raw: building a Stat (an object and six BigInts)
    // per removal was about 6 % of what prov mode added to the request loop (perf samples of the
    // loop thread on create+unlink, prov minus plain).
    if (!libc.fstatatRawIfExistsZ(p.fd, z)) throw new libc.Errno(E.ENOENT, 'statx');
    const node = this.nodes.findByStatx();
    const w = libc.statxWords;
    const before = { mode: w[7]! & 0xffff, nlink: w[4]!, ino: node ? node.ino : libc.statxIno() };
    if (!rec.aheadBegin()) {
      libc.unlinkatZ(p.fd, z, 0);
      return rec.unlink(ctx, parent, name, before, node);
    }
    let ok = false;
    try {
      rec.unlink(ctx, parent, name, before, node);
      libc.unlinkatZ(p.fd, z, 0);
      ok = true;
    } finally {
      rec.aheadEnd(ok);
    }
  }

  rmdir(ctx: Ctx, parent: number, name: Buffer): void {
    const p = this.nodes.get(parent);
    const rec = this.recorder;
    if (!rec) return libc.unlinkat(p.fd, name, AT.REMOVEDIR);
    const before = libc.fstatat(p.fd, name);
    rec.ahead(() => rec.rmdir(ctx, parent, name, before), () => libc.unlinkat(p.fd, name, AT.REMOVEDIR));
  }

  /** RENAME / RENAME2 with RENAME_NOREPLACE, RENAME_EXCHANGE (and WHITEOUT as the backing allows). */
  rename(ctx: Ctx, parent: number, name: Buffer, newparent: number, newname: Buffer, flags: number): void {
    const p = this.nodes.get(parent);
    const np = this.nodes.get(newparent);
    const rec = this.recorder;
    const moved = libc.fstatat(p.fd, name);
    let over: libc.Stat | null = null;
    if (rec || flags & RENAME_EXCHANGE) {
      try { over = libc.fstatat(np.fd, newname); } catch { over = null; }
    }
    libc.renameat2(p.fd, name, np.fd, newname, flags);
    this.renamed(moved, parent, name, newparent, newname, over, flags);
    if (rec) rec.rename(ctx, parent, name, newparent, newname, moved, over, flags);
  }

  /** Keep the names the table knows in step with a rename (paths in later records). */
  private renamed(moved: libc.Stat, parent: number, name: Buffer, newparent: number, newname: Buffer, over: libc.Stat | null, flags: number): void {
    const m = this.nodes.findByIdentity(moved.dev, moved.ino);
    if (m) this.nodes.rename(m, newparent, newname);
    if (over && flags & RENAME_EXCHANGE) {
      const o = this.nodes.findByIdentity(over.dev, over.ino);
      if (o) this.nodes.rename(o, parent, name);
    }
  }

  // ---- files ----

  create(ctx: Ctx, parent: number, name: Buffer, mode: number, flags: number, umask = 0, killSuid = false): { entry: Entry; opened: Opened } {
    const p = this.nodes.get(parent);
    mode &= ~umask;
    // A CREATE that truncates a file someone else made meanwhile clears its set-id bits as an
    // OPEN with O_TRUNC would (HANDLE_KILLPRIV_V2); a file this call makes keeps the mode asked.
    let existed = false;
    if (killSuid && flags & O.TRUNC && !(flags & O.EXCL)) {
      try { libc.fstatat(p.fd, name); existed = true; } catch { existed = false; }
    }
    const fd = libc.openat(p.fd, name, (flags | O.CREAT) & ~O.NOCTTY, mode);
    let entry: Entry;
    try {
      if (existed && killSuidgid(fd, libc.fstat(fd))) { /* cleared */ }
      entry = this.ownNew(ctx, p, name, mode | S.IFREG);
    } catch (e) {
      libc.close(fd);
      throw e;
    }
    const opened = this.openNode(entry.node, flags, fd);
    this.noteOpener(opened.handle, ctx, flags);
    this.recorder?.create(ctx, entry, mode, flags, opened.handle.fh);
    return { entry, opened };
  }

  /** Who opened `h`: its thread (RELEASE carries none) and, for a user's passthrough writer, its uid (see Handle.userWriter). */
  private noteOpener(h: Handle, ctx: Ctx, flags: number): void {
    h.opener = ctx.pid;
    if (h.passthrough && ctx.uid !== 0 && (flags & O.ACCMODE) !== O.RDONLY) h.userWriter = ctx.uid;
  }

  /** OPEN; `killSuid`: the caller truncates without CAP_FSETID (FUSE_OPEN_KILL_SUIDGID). */
  open(ctx: Ctx, id: number, flags: number, killSuid = false): Opened {
    const n = this.nodes.get(id);
    if (killSuid && flags & O.TRUNC && n.type === S.IFREG) killSuidgid(n.fd, libc.fstat(n.fd));
    const opened = this.openNode(n, flags, -1);
    this.noteOpener(opened.handle, ctx, flags);
    this.recorder?.open(ctx, n, flags, opened.handle.fh);
    return opened;
  }

  /**
   * Make a handle on `n`. With passthrough, the node's one backing id (registered on first open,
   * refcounted) serves the kernel's I/O and the handle needs no fd of its own; otherwise the
   * handle keeps a real fd opened with the caller's flags for READ/WRITE.
   */
  private openNode(n: Node, flags: number, createdFd: number): Opened {
    const pt = this.passthrough;
    // A passthrough write to a set-id file would keep its set-id bits (the kernel writes the
    // backing file with the daemon's credentials and, under HANDLE_KILLPRIV_V2, leaves clearing
    // them to us, who never see the write): such a file opened for writing is served here,
    // direct I/O, and each WRITE says whether its writer may keep them (root may: CAP_FSETID;
    // a descriptor root opened and handed to a user may not). One statx per writable open.
    const setId = createdFd < 0 && n.type === S.IFREG && (flags & O.ACCMODE) !== O.RDONLY && isSetId(libc.fstat(n.fd).mode);
    if (pt && n.type === S.IFREG && !setId) {
      try {
        if (!n.backing) {
          const bfd = createdFd >= 0 ? createdFd : this.reopenForBacking(n, flags);
          try {
            n.backing = { fd: bfd, id: pt.open(bfd), refs: 0 };
            this.nodeLog?.backing(n.id, n.backing.id, true);
          } catch (e) {
            libc.close(bfd);
            throw e;
          }
        } else if (createdFd >= 0) {
          libc.close(createdFd);
        }
        if (n.backing.refs++ === 0) this.idleBackings.delete(n.id);
        // FOPEN_NOFLUSH spares every close(2) a synchronous round trip: data never passes
        // through the daemon and locks are the kernel's. prov mode records the close at
        // RELEASE instead (once per open file, when its last descriptor goes, for the opener).
        const handle = this.nodes.openHandle({ node: n.id, flags, fd: -1, passthrough: true, noflush: true });
        return { handle, backingId: n.backing.id, direct: false };
      } catch (e) {
        // The backing file cannot be registered (e.g. a stacked backing file system): serve
        // this file's I/O in the daemon instead.
        if (!(e instanceof libc.Errno)) throw e;
        createdFd = -1;
        if (flags & O.TRUNC) flags &= ~O.TRUNC;
      }
    }
    const fd = createdFd >= 0 ? createdFd : libc.reopen(n.fd, flags & ~O.TRUNC);
    const handle = this.nodes.openHandle({ node: n.id, flags, fd, passthrough: false });
    return { handle, backingId: 0, direct: setId };
  }

  private reopenForBacking(n: Node, flags: number): number {
    // The kernel opens its own backing file per open with the caller's flags from this file's
    // path, so the registered fd only names the file: read-only is enough and always allowed to root.
    try {
      return libc.reopen(n.fd, O.RDONLY);
    } catch {
      return libc.reopen(n.fd, flags & ~(O.TRUNC | O.APPEND));
    }
  }

  /** READ (only when passthrough is off for this handle). */
  read(fh: number, off: bigint, size: number, out: Buffer): number {
    const h = this.nodes.handle(fh);
    if (h.fd < 0) throw new libc.Errno(E.EIO, 'read on a passthrough handle');
    return libc.pread(h.fd, out, Math.min(size, out.length), off);
  }

  /**
   * WRITE (only when passthrough is off for this handle). `killSuid`: the writer lacks
   * CAP_FSETID (FUSE_WRITE_KILL_SUIDGID), so the write clears set-id bits as write(2) would.
   */
  write(fh: number, off: bigint, data: Buffer, killSuid = false): number {
    const h = this.nodes.handle(fh);
    if (h.fd < 0) throw new libc.Errno(E.EIO, 'write on a passthrough handle');
    const n = libc.pwrite(h.fd, data, data.length, off);
    if (killSuid && n > 0) killSuidgid(h.fd, libc.fstat(h.fd));
    return n;
  }

  /**
   * FLUSH: once per close(2) of a descriptor, with the closing thread's id — for handles given
   * out without FOPEN_NOFLUSH (the daemon serves their I/O, or an earlier build opened them;
   * passthrough handles are closed at {@link release}). `id` is the node of the request (used
   * when the handle was given out by a daemon that crashed).
   */
  flush(ctx: Ctx, fh: number, id = 0): void {
    const h = this.nodes.findHandle(fh);
    const n = h ? this.nodes.find(h.node) : this.nodes.find(id);
    if (n) this.recorder?.close(ctx, n, fh);
  }

  /**
   * RELEASE: the last reference to the open file went (pid is 0 here). A handle given out
   * without FLUSH has its close recorded now, for the thread that opened it.
   */
  release(ctx: Ctx | null, fh: number): void {
    const h = this.nodes.findHandle(fh);
    if (!h) return; // given out before a crash: its passthrough I/O never needed us
    const n = this.nodes.find(h.node);
    if (this.recorder && h.noflush && n) {
      this.recorder.close({ uid: ctx?.uid ?? 0, gid: ctx?.gid ?? 0, pid: h.opener ?? 0 }, n, fh, true);
    }
    if (h.passthrough && n?.backing) {
      if (--n.backing.refs === 0) {
        this.idleBackings.add(n.id);
        if (this.idleBackings.size > IDLE_BACKINGS) {
          const oldest = this.idleBackings.values().next().value as number;
          this.idleBackings.delete(oldest);
          // By id: after a handover the table holds new node records.
          const on = this.nodes.find(oldest);
          if (on?.backing && on.backing.refs === 0) this.unregisterBacking(on);
        }
      }
    }
    this.nodes.closeHandle(fh);
  }

  /**
   * An fd of its own for an FSYNC done on another thread (kernel/slowops), which closes it: a
   * duplicate of the handle's or the backing fd, or, when neither is open (a daemon recovered
   * after a crash has no backing fd for a passthrough file opened before it), the file opened
   * again. The table's own fds are not handed over: the loop may close an idle backing fd while
   * the sync runs. -1 when none can be had here ({@link fsync} then reports why).
   */
  fsyncFd(fh: number, id = 0): number {
    const h = this.nodes.findHandle(fh);
    const n = this.nodes.find(h ? h.node : id);
    if (!n) return -1;
    const fd = h && h.fd >= 0 ? h.fd : n.backing && n.backing.fd >= 0 ? n.backing.fd : -1;
    try {
      return fd >= 0 ? libc.dupCloexec(fd) : n.fd >= 0 ? libc.reopen(n.fd, O.RDONLY) : -1;
    } catch {
      return -1;
    }
  }

  fsync(_ctx: Ctx | null, fh: number, dataOnly: boolean, id = 0): void {
    const h = this.nodes.findHandle(fh);
    const n = this.nodes.get(h ? h.node : id);
    const fd = h && h.fd >= 0 ? h.fd : n.backing && n.backing.fd >= 0 ? n.backing.fd : -1;
    if (fd >= 0) return libc.fsync(fd, dataOnly);
    const tmp = libc.reopen(n.fd, O.RDONLY);
    try { libc.fsync(tmp, dataOnly); } finally { libc.close(tmp); }
  }

  fallocate(fh: number, mode: number, off: bigint, len: bigint): void {
    const h = this.nodes.handle(fh);
    const n = this.nodes.get(h.node);
    if (h.fd >= 0) return libc.fallocate(h.fd, mode, off, len);
    const fd = libc.reopen(n.fd, O.WRONLY);
    try { libc.fallocate(fd, mode, off, len); } finally { libc.close(fd); }
  }

  lseek(fh: number, off: bigint, whence: number): bigint {
    const h = this.nodes.handle(fh);
    const n = this.nodes.get(h.node);
    const fd = h.fd >= 0 ? h.fd : n.backing?.fd ?? -1;
    if (fd < 0) throw new libc.Errno(E.EBADF, 'lseek');
    return libc.lseek(fd, off, whence);
  }

  // ---- directories ----

  opendir(_ctx: Ctx | null, id: number): Handle {
    const n = this.nodes.get(id);
    const fd = libc.reopen(n.fd, O.RDONLY | O.DIRECTORY);
    return this.nodes.openHandle({ node: id, flags: O.RDONLY, fd, passthrough: false, dir: { pos: 0n, pending: [], eof: false } });
  }

  /**
   * READDIR / READDIRPLUS: hand entries from `off` to `emit` until it returns false (the reply
   * is full); the entry that did not fit is kept for the next call.
   */
  readdir(fh: number, off: bigint, emit: (e: DirEntry) => boolean): void {
    const h = this.nodes.handle(fh);
    const d = h.dir;
    if (!d) throw new libc.Errno(E.ENOTDIR, 'readdir');
    if (off !== d.pos) {
      libc.lseek(h.fd, off, 0);
      d.pos = off;
      d.pending = [];
      d.eof = false;
    }
    for (;;) {
      if (d.pending.length === 0) {
        if (d.eof) return;
        this.fillDir(h);
        if (d.pending.length === 0) { d.eof = true; return; }
      }
      const e = d.pending[0]!;
      if (!emit(e)) return;
      d.pending.shift();
      d.pos = e.off;
    }
  }

  private fillDir(h: Handle): void {
    const b = this.direntBuf;
    const n = libc.getdents64(h.fd, b);
    const out: DirEntry[] = [];
    for (let i = 0; i < n;) {
      const reclen = b.readUInt16LE(i + 16);
      let end = i + 19;
      while (b[end] !== 0) end++;
      out.push({
        ino: b.readBigUInt64LE(i), off: b.readBigInt64LE(i + 8), type: b[i + 18]!,
        name: Buffer.from(b.subarray(i + 19, end)),
      });
      i += reclen;
    }
    h.dir!.pending = out;
  }

  releasedir(_ctx: Ctx | null, fh: number): void {
    this.nodes.closeHandle(fh);
  }

  fsyncdir(_ctx: Ctx | null, fh: number, dataOnly: boolean): void {
    libc.fsync(this.nodes.handle(fh).fd, dataOnly);
  }

  statfs(_ctx: Ctx | null, id: number): libc.StatFs {
    return libc.fstatfs(this.nodes.get(id).fd);
  }

  // ---- extended attributes ----

  setxattr(_ctx: Ctx | null, id: number, name: Buffer, value: Buffer, flags: number): void {
    libc.setxattrPath(this.xattrPath(id), name, value, flags, this.isLink(id));
  }

  /** GETXATTR: with size 0 returns the size needed (value null), else the value. */
  getxattr(_ctx: Ctx | null, id: number, name: Buffer, size: number): { size: number; value: Buffer | null } {
    const p = this.xattrPath(id), l = this.isLink(id);
    if (size === 0) return { size: libc.getxattrPath(p, name, null, 0, l), value: null };
    const buf = Buffer.allocUnsafe(size);
    const len = libc.getxattrPath(p, name, buf, size, l);
    return { size: len, value: buf.subarray(0, len) };
  }

  listxattr(_ctx: Ctx | null, id: number, size: number): { size: number; value: Buffer | null } {
    const p = this.xattrPath(id), l = this.isLink(id);
    if (size === 0) return { size: libc.listxattrPath(p, null, 0, l), value: null };
    const buf = Buffer.allocUnsafe(size);
    const len = libc.listxattrPath(p, buf, size, l);
    return { size: len, value: buf.subarray(0, len) };
  }

  removexattr(_ctx: Ctx | null, id: number, name: Buffer): void {
    libc.removexattrPath(this.xattrPath(id), name, this.isLink(id));
  }

  private isLink(id: number): boolean {
    return this.nodes.get(id).type === S.IFLNK;
  }

  /**
   * Path for the xattr calls: the /proc link of the node's O_PATH fd, or for a symlink (whose
   * /proc link would name the link in procfs) its last known name under its parent's /proc link,
   * used with the l*xattr calls that do not follow it.
   */
  private xattrPath(id: number): Buffer {
    const n = this.nodes.get(id);
    if (n.type !== S.IFLNK) return libc.procPath(n.fd);
    const p = this.nodes.get(n.parent);
    return libc.cstr(Buffer.concat([Buffer.from(`/proc/self/fd/${p.fd}/`), n.name]));
  }

  /** ACCESS: permissions are checked by the kernel (default_permissions); existence only here. */
  access(_ctx: Ctx | null, id: number, _mask: number): void {
    libc.fstat(this.nodes.get(id).fd);
  }

  // ---- live upgrade ----

  /**
   * Log new nodes' file handles, gone nodes and backing ids to `log` (crash survival). When the
   * backing file system gives no file handles, new nodes stop being logged and `noHandles` hears why.
   */
  useNodeLog(log: NodeLog, noHandles: (e: Error) => void = () => undefined): void {
    this.nodeLog = log;
    this.nodes.onGone = (id) => log.gone(id);
    this.nodes.onNew = (n) => {
      try {
        log.node(n.id, libc.handleOf(n.fd));
      } catch (e) {
        noHandles(e as Error);
        this.nodes.onNew = null;
      }
    };
  }

  /** The transfer state a successor needs (node table, handles, backing ids, mode). */
  updatePrepare(): ProvFsState {
    return {
      version: 1,
      mode: this.recorder ? 'prov' : 'plain',
      passthrough: this.passthrough !== null,
      table: this.nodes.toState(),
    };
  }

  /** Make a successor from a predecessor's state (fds already valid in this process or remapped). */
  static updateTransfer(state: ProvFsState, recorder: Recorder | null, fdMap?: (fd: number) => number): ProvFs {
    if (state.version !== 1) throw new libc.Errno(E.EPROTO, `provfs state version ${String(state.version)} is not 1`);
    const table = NodeTable.fromState(state.table, fdMap);
    return new ProvFs(-1, recorder, table);
  }

  // ---- helpers ----

  /**
   * A file the daemon just made as root: give it to the caller (uid, and gid unless the parent
   * directory is set-group-id, where the kernel already gave it the directory's group), then
   * look it up.
   */
  private ownNew(ctx: Ctx, parent: Node, name: Buffer, mode: number): Entry {
    const fd = libc.openat(parent.fd, name, O.PATH | O.NOFOLLOW);
    try {
      let st = libc.fstat(fd);
      // In a set-group-id directory the new file already has the directory's group.
      const gid = st.gid !== ctx.gid && !(libc.fstat(parent.fd).mode & S.ISGID) ? ctx.gid : -1;
      if (st.uid !== ctx.uid || gid !== -1) {
        libc.chownFd(fd, ctx.uid, gid);
        // chown clears set-user/group-id bits of non-directories: put back what the caller asked.
        if (mode & (S.ISUID | S.ISGID) && (mode & S.IFMT) !== S.IFDIR && (mode & S.IFMT) !== S.IFLNK) {
          libc.chmodFd(fd, mode & 0o7777);
        }
        st = libc.fstat(fd);
      }
      return { node: this.nodes.adopt(fd, st, parent.id, name), stat: st };
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }
}
