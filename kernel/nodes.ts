/**
 * @module kernel/nodes
 * The node table: FUSE node ids → backing files, keyed by the backing file's identity
 * (st_dev, st_ino), each held by an O_PATH fd, with the kernel's lookup count. Keying by identity
 * (not by path) is what keeps hard links, renames of open files and unlinked-but-open files
 * right; the O_PATH fd also pins the inode so its number cannot be reused while the kernel
 * still knows the node. The table and the open handles serialize to plain data for a live
 * upgrade (fds are numbers valid in the successor once handed over).
 */
import * as libc from './libc.js';
import { FUSE_ROOT_ID } from './protocol.js';
import { decodeNameBytes } from '../collector/events.js';
import { sameBytes } from '../collector/copy-bytes.js';

/** A shared passthrough backing file of one inode: one id per inode, refcounted by open handles. */
export interface Backing {
  fd: number;
  id: number;
  refs: number;
}

export interface Node {
  /** FUSE node id (1 is the root). */
  id: number;
  /** O_PATH fd on the backing file. */
  fd: number;
  dev: number;
  ino: bigint;
  /** st_mode & S_IFMT when the node was made. */
  type: number;
  /** How many lookups the kernel holds (decremented by FORGET). */
  nlookup: number;
  /** Last known parent node id and name (for paths in provenance records). */
  parent: number;
  name: Buffer;
  backing: Backing | null;
  /** Open file handles on this node. */
  opens: number;
  /** When it was last used (the table's tick), for pruning the least recently used. */
  used?: number;
  /** Cached decoded name and path (valid while `pathGen` equals the table's generation). */
  nameStr?: string;
  path?: string;
  pathGen?: number;
  /** Cached FileRef JSON for records (valid while `fileJsonGen` equals the table's generation). */
  fileJson?: string;
  fileJsonGen?: number;
  /**
   * What the node's binary records (collector/provfs-record) say of it beyond its own fields,
   * valid with `fileJson` (same generation): its name as written (null: its records are JSON),
   * its parent's path prefix (the parent's `childPrefix`, shared) and its parent's inode.
   */
  fileName?: Uint8Array | null;
  filePrefix?: Uint8Array;
  fileParentIno?: number;
  /** `ino` as a number, for its records (set with `fileName`; converting the bigint per record showed in profiles). */
  fileIno?: number;
  /** A directory's path as UTF-8 with a `/` after it: its children's paths start so (kernel/recorder). */
  childPrefix?: Uint8Array;
  childPrefixGen?: number;
}

/**
 * A node with every field of {@link Node} present from the start, in one order: the caches the
 * recorder and the path code fill in later then change no node's shape, so every property
 * access on the request path sees one shape (nodes that grew their caches one property at a
 * time made those accesses polymorphic in prov mode).
 */
export function makeNode(id: number, fd: number, dev: number, ino: bigint, type: number, nlookup: number, parent: number, name: Buffer, backing: Backing | null, opens: number, used = 0): Node {
  return {
    id, fd, dev, ino, type, nlookup, parent, name, backing, opens, used,
    nameStr: undefined, path: undefined, pathGen: -1,
    fileJson: undefined, fileJsonGen: -1, fileName: undefined, filePrefix: undefined, fileParentIno: 0, fileIno: 0,
    childPrefix: undefined, childPrefixGen: -1,
  };
}

/** An open file or directory (the FUSE `fh`). */
export interface Handle {
  fh: number;
  node: number;
  flags: number;
  /** A real fd for the daemon's own I/O (directories, fallback I/O); -1 with passthrough. */
  fd: number;
  /** True when the kernel does the data I/O through the node's backing file. */
  passthrough: boolean;
  /**
   * Given out with FOPEN_NOFLUSH: no FLUSH per close(2); in prov mode its close is recorded at
   * RELEASE, for the opener ({@link opener}).
   */
  noflush?: boolean;
  /** Thread id of the opener (RELEASE carries none). */
  opener?: number;
  /**
   * uid of a caller other than root holding this passthrough handle open for writing: its
   * writes run with the daemon's credentials, so the file must not become set-id for another
   * owner while it is open.
   */
  userWriter?: number;
  dir?: DirState;
}

export interface DirState {
  /** Offset the directory fd is at (the d_off of the last entry consumed). */
  pos: bigint;
  /** Entries read from getdents64 but not yet returned. */
  pending: DirEntry[];
  eof: boolean;
}

export interface DirEntry {
  ino: bigint;
  off: bigint;
  type: number;
  name: Buffer;
}

/**
 * Serializable form of the table for updatePrepare/updateTransfer: plain data for the structured
 * clone / v8 serializer (bigint inode numbers, byte names), not JSON.
 */
export interface NodeTableState {
  nextId: number;
  nextFh: number;
  nodes: Array<{
    id: number; fd: number; dev: number; ino: bigint; type: number; nlookup: number;
    parent: number; name: Uint8Array; backing: Backing | null; opens: number;
  }>;
  handles: Array<{ fh: number; node: number; flags: number; fd: number; passthrough: boolean; dirPos?: string; noflush?: boolean; opener?: number; userWriter?: number }>;
}

/**
 * What changed in a table since {@link NodeTable.startTracking} (a live upgrade's last word): the
 * current record of every node touched since (or its id in `gone`), and every open handle. A
 * successor that copied a snapshot taken after tracking began gets the table at quiesce by
 * applying it ({@link NodeTable.applyDelta}). Node ids and handle numbers are never reused, so a
 * node or handle present in both keeps the fd copied with the snapshot.
 */
export interface NodeTableDelta {
  nextId: number;
  nextFh: number;
  nodes: NodeTableState['nodes'];
  /** Nodes whose lookup count alone changed (LOOKUP, READDIRPLUS, FORGET): id, nlookup pairs. */
  counts: Float64Array;
  gone: number[];
  handles: NodeTableState['handles'];
}

/** {@link NodeTable.renewMaps} leaves tables bigger than this alone. */
export const RENEW_MAX = 4096;
/** The request loop renews the node table's maps this often (requests; a power of two). */
export const RENEW_EVERY = 1 << 16;

export class NodeTable {
  private byId = new Map<number, Node>();
  private byKey = new Map<number | string, Node>();
  private handles = new Map<number, Handle>();
  private nextId = FUSE_ROOT_ID + 1;
  private nextFh = 1;
  /** Bumped whenever a known node changes name or parent: cached paths below it are stale. */
  private gen = 0;
  /** Called for every new node before the kernel learns its id (the node log). */
  onNew: ((n: Node) => void) | null = null;
  /** Called when a node that still has a registered backing file is dropped (unregister it). */
  onDropBacking: ((n: Node) => void) | null = null;
  /** Called for every node dropped (the node log's gone record). */
  onGone: ((id: number) => void) | null = null;
  /** Ids of nodes changed since tracking began (null: not tracking). */
  private dirty: Set<number> | null = null;
  /** Ids of nodes whose lookup count alone changed since tracking began. */
  private counted: Set<number> | null = null;

  /** Note every node change from now on, for {@link delta}. */
  startTracking(): void {
    this.dirty = new Set();
    this.counted = new Set();
  }

  stopTracking(): void {
    this.dirty = null;
    this.counted = null;
  }

  get tracking(): boolean {
    return this.dirty !== null;
  }

  /** Make the table with the root directory held by `rootFd` (an O_PATH fd, never forgotten). */
  constructor(rootFd: number) {
    const st = libc.fstat(rootFd);
    const root = makeNode(FUSE_ROOT_ID, rootFd, st.dev, st.ino, st.mode & libc.S.IFMT, 2 ** 30, FUSE_ROOT_ID, Buffer.alloc(0), null, 0);
    this.byId.set(root.id, root);
    this.byKey.set(key(root.dev, root.ino), root);
  }

  private tick = 0;

  get(id: number): Node {
    const n = this.byId.get(id) ?? (this.lazy ? this.openLazy(id) : undefined);
    if (!n) throw new libc.Errno(libc.E.ESTALE, `node ${id}`);
    n.used = ++this.tick;
    return n;
  }

  /**
   * Up to `count` nodes the kernel could forget (nothing open, no backing file, not the root),
   * least recently used first: candidates for FUSE_NOTIFY_PRUNE when fds run short.
   */
  leastRecentlyUsed(count: number): number[] {
    const idle: Node[] = [];
    for (const n of this.byId.values()) if (n.id !== FUSE_ROOT_ID && n.opens === 0 && (!n.backing || n.backing.refs === 0)) idle.push(n);
    idle.sort((a, b) => (a.used ?? 0) - (b.used ?? 0));
    return idle.slice(0, count).map((n) => n.id);
  }

  /**
   * Give the table's maps fresh hash tables, in V8's young generation (a no-op for a table of more
   * than {@link RENEW_MAX} nodes or handles, whose copy would hold up a request). A map rehashes
   * every few dozen insertions under create-and-remove churn, and V8 allocates the new table
   * where the old one lives: once a full collection has moved the tables to the old generation,
   * every rehash leaves its predecessor there as garbage. In a prov daemon, whose loop isolate
   * often ran a full collection while starting, a create+unlink loop then grew the old
   * generation by half a megabyte a scavenge, until a full collection every three seconds, and
   * the scavenges took 2.5 times as long (3 launches in 8; none after a renewal). The loop calls
   * this every {@link RENEW_EVERY} requests. Not while changes are tracked for a handover: its
   * snapshot may be walking the maps between requests.
   */
  renewMaps(): void {
    if (this.dirty || this.byId.size > RENEW_MAX || this.handles.size > RENEW_MAX) return;
    this.byId = new Map(this.byId);
    this.byKey = new Map(this.byKey);
    this.handles = new Map(this.handles);
  }

  find(id: number): Node | undefined {
    return this.byId.get(id) ?? (this.lazy ? this.openLazy(id) : undefined);
  }

  /** The node of a backing file, when the kernel knows it. */
  findByIdentity(dev: number, ino: bigint): Node | undefined {
    return this.byKey.get(key(dev, ino));
  }

  /** {@link findByIdentity} of the file of the last raw statx (libc.fstatRaw, libc.fstatatRawIfExists). */
  findByStatx(): Node | undefined {
    return this.byKey.get(keyOfStatx());
  }

  get size(): number {
    return this.byId.size;
  }

  /**
   * Account one kernel lookup of the file behind `fd` (an O_PATH fd the caller owns): reuse the
   * node with the same identity (closing `fd`; -1 when the caller knows the node exists) or adopt
   * `fd` into a new node.
   */
  adopt(fd: number, st: libc.Stat, parent: number, name: Buffer): Node {
    const k = key(st.dev, st.ino);
    const known = this.byKey.get(k);
    if (known) {
      if (fd >= 0) libc.close(fd);
      return this.lookedUp(known, parent, name);
    }
    const n = makeNode(this.nextId++, fd, st.dev, st.ino, st.mode & libc.S.IFMT, 1, parent, Buffer.from(name), null, 0, ++this.tick);
    this.byId.set(n.id, n);
    this.byKey.set(k, n);
    this.dirty?.add(n.id);
    this.onNew?.(n);
    return n;
  }

  /** One more kernel lookup of a node the table holds, found as `name` in `parent`. */
  lookedUp(known: Node, parent: number, name: Buffer): Node {
    known.nlookup++;
    known.used = ++this.tick;
    this.counted?.add(known.id);
    if (known.parent !== parent || !sameBytes(known.name, name)) this.rename(known, parent, name);
    return known;
  }

  /**
   * A node known from the node log after a crash (see kernel/nodefollow): `fd` an O_PATH fd
   * opened by its file handle. Its lookup count is unknown, so it is kept until unmount; a
   * backing id still registered on the connection is kept with it (refs unknown: never closed).
   * A second node of the same file keeps the first one's identity slot.
   */
  addRecovered(id: number, fd: number, st: libc.Stat, backingId?: number): void {
    const n = makeNode(id, fd, st.dev, st.ino, st.mode & libc.S.IFMT, 2 ** 30, FUSE_ROOT_ID, Buffer.alloc(0),
      backingId !== undefined ? { fd: -1, id: backingId, refs: 2 ** 30 } : null, 0);
    this.byId.set(id, n);
    if (!this.byKey.has(key(n.dev, n.ino))) this.byKey.set(key(n.dev, n.ino), n);
  }

  /**
   * Nodes known from the node log after a crash but not opened yet (kernel/nodefollow): each is
   * opened by its file handle on first use, so a takeover makes no per-node system call — and
   * none that waits for a file the dead daemon's exit is still releasing. Not in the identity
   * index until opened.
   */
  private lazy: Map<number, { h: libc.FileHandle; backingId?: number }> | null = null;
  /** A real fd on the backing file system, for open_by_handle_at of lazy nodes. */
  private lazyMountFd = -1;

  /** A node of the node log, opened on first use (see {@link lazy}) with `mountFd` (this table keeps it). */
  addLazy(id: number, h: libc.FileHandle, mountFd: number): void {
    (this.lazy ??= new Map()).set(id, { h });
    this.lazyMountFd = mountFd;
  }

  /** A backing id still registered on the connection for recovered node `id` (opened or not). */
  setRecoveredBacking(id: number, backingId: number): void {
    const n = this.byId.get(id);
    if (n) n.backing = { fd: -1, id: backingId, refs: 2 ** 30 };
    else { const l = this.lazy?.get(id); if (l) l.backingId = backingId; }
  }

  /** Nodes not opened yet. */
  get lazyCount(): number {
    return this.lazy?.size ?? 0;
  }

  /** Open up to `max` nodes not opened yet (between requests; all of them before a handover). Returns how many are left. */
  openLazy(id: number): Node | undefined;
  openLazy(id?: undefined, max?: number): number;
  openLazy(id?: number, max = 64): Node | undefined | number {
    const lazy = this.lazy;
    if (id !== undefined) {
      const l = lazy?.get(id);
      if (!l) return undefined;
      lazy!.delete(id);
      let fd: number;
      try { fd = libc.openByHandle(this.lazyMountFd, l.h, libc.O.PATH); } catch { return undefined; } // gone: ESTALE
      let st: libc.Stat;
      try { st = libc.fstat(fd); } catch { libc.close(fd); return undefined; }
      this.addRecovered(id, fd, st, l.backingId);
      return this.byId.get(id);
    }
    if (!lazy) return 0;
    let k = 0;
    for (const lid of lazy.keys()) { if (k++ >= max) break; this.openLazy(lid); }
    return lazy.size;
  }

  /** Close a recovered node again (the node log says its daemon dropped it): no hooks, no tracking. */
  removeRecovered(id: number): void {
    if (this.lazy?.delete(id)) return;
    const n = this.byId.get(id);
    if (!n || id === FUSE_ROOT_ID) return;
    this.byId.delete(id);
    if (this.byKey.get(key(n.dev, n.ino)) === n) this.byKey.delete(key(n.dev, n.ino));
    libc.close(n.fd);
  }

  /** After a crash: node ids continue above `maxId`, handle numbers above any the dead daemon could have given out. */
  resumeAfter(maxId: number): void {
    this.nextId = maxId + 1;
    this.nextFh = Date.now() * 1000;
  }

  /** The kernel dropped `count` lookups; the node goes when none remain and nothing is open. */
  forget(id: number, count: number): void {
    const n = this.byId.get(id);
    if (!n || id === FUSE_ROOT_ID) return;
    n.nlookup -= count;
    this.counted?.add(id);
    if (n.nlookup <= 0 && n.opens === 0) this.drop(n);
  }

  private drop(n: Node): void {
    this.dirty?.add(n.id);
    this.byId.delete(n.id);
    const k = key(n.dev, n.ino);
    if (this.byKey.get(k) === n) this.byKey.delete(k);
    // A backing file kept registered after its last handle (see ProvFs.release) goes with the node.
    if (n.backing) this.onDropBacking?.(n);
    if (n.backing && n.backing.fd >= 0) libc.close(n.backing.fd);
    libc.close(n.fd);
    this.onGone?.(n.id);
  }

  /** A node got a new name or parent (rename, another hard link looked up). */
  rename(n: Node, parent: number, name: Buffer): void {
    this.dirty?.add(n.id);
    n.parent = parent;
    n.name = Buffer.from(name);
    n.nameStr = undefined;
    this.gen++;
  }

  /** The node's last name, decoded once. */
  nameOf(n: Node): string {
    return (n.nameStr ??= decodeNameBytes(n.name));
  }

  /** Absolute path of a node below `root` from the last names seen (undefined when unknown). */
  path(id: number, root: string, depth = 0): string | undefined {
    const n = this.byId.get(id);
    if (!n || depth > 4096) return undefined;
    if (n.pathGen === this.gen && n.path !== undefined) return n.path;
    let p: string | undefined;
    if (n.id === FUSE_ROOT_ID) p = (root.endsWith('/') ? root.slice(0, -1) : root) || '/';
    else {
      const base = this.path(n.parent, root, depth + 1);
      if (base === undefined) return undefined;
      p = (base.endsWith('/') ? base : base + '/') + this.nameOf(n);
    }
    n.path = p;
    n.pathGen = this.gen;
    return p;
  }

  openHandle(h: Omit<Handle, 'fh'>): Handle {
    // Every field present, in one order (see makeNode): one shape for every handle.
    const handle: Handle = {
      fh: this.nextFh++, node: h.node, flags: h.flags, fd: h.fd, passthrough: h.passthrough,
      noflush: h.noflush, opener: h.opener, userWriter: h.userWriter, dir: h.dir,
    };
    this.handles.set(handle.fh, handle);
    this.get(h.node).opens++;
    // A backing file is registered or dropped only with a handle: this covers it too.
    this.dirty?.add(h.node);
    return handle;
  }

  /** True when some open handle on node `id` satisfies `test` (a scan: for rare checks only). */
  anyHandle(id: number, test: (h: Handle) => boolean): boolean {
    for (const h of this.handles.values()) if (h.node === id && test(h)) return true;
    return false;
  }

  /** The handle, or undefined when this daemon never gave it out (opened before a crash). */
  findHandle(fh: number): Handle | undefined {
    return this.handles.get(fh);
  }

  handle(fh: number): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new libc.Errno(libc.E.EBADF, `fh ${fh}`);
    return h;
  }

  closeHandle(fh: number): Handle | undefined {
    const h = this.handles.get(fh);
    if (!h) return undefined;
    this.handles.delete(fh);
    if (h.fd >= 0) libc.close(h.fd);
    const n = this.byId.get(h.node);
    this.dirty?.add(h.node);
    if (n) {
      n.opens--;
      if (n.nlookup <= 0 && n.opens === 0) this.drop(n);
    }
    return h;
  }

  /** Bumped whenever a node changes name or parent (what cached paths depend on). */
  get generation(): number {
    return this.gen;
  }

  /** Note a change to `n` made outside the table (its backing file), for {@link delta}. */
  changed(n: Node): void {
    this.dirty?.add(n.id);
  }

  /** Nodes with a registered backing file but no open handle on it. */
  withIdleBacking(): Node[] {
    const out: Node[] = [];
    for (const n of this.byId.values()) if (n.backing && n.backing.refs === 0) out.push(n);
    return out;
  }

  /** Every fd the table holds (for handing them to a successor). */
  fds(): number[] {
    const out: number[] = [];
    for (const n of this.byId.values()) {
      out.push(n.fd);
      if (n.backing && n.backing.fd >= 0) out.push(n.backing.fd);
    }
    for (const h of this.handles.values()) if (h.fd >= 0) out.push(h.fd);
    return out;
  }

  /**
   * The node records of {@link toState} one at a time, each as its node is when reached: a live
   * iterator over the table (nodes made meanwhile come too, nodes dropped meanwhile do not). A
   * snapshot written in slices reads it between requests instead of copying the whole table at
   * once (kernel/snapshot); what changes meanwhile is tracked for the delta.
   */
  *liveRecords(): Generator<NodeTableState['nodes'][number]> {
    for (const n of this.byId.values()) yield nodeRecord(n);
  }

  /** The open handles' records, now; and the id and handle counters. */
  handleRecords(): NodeTableState['handles'] {
    return [...this.handles.values()].map(handleRecord);
  }

  get counters(): { nextId: number; nextFh: number } {
    return { nextId: this.nextId, nextFh: this.nextFh };
  }

  toState(): NodeTableState {
    return {
      nextId: this.nextId,
      nextFh: this.nextFh,
      nodes: [...this.byId.values()].map(nodeRecord),
      handles: [...this.handles.values()].map(handleRecord),
    };
  }

  /** The changes since {@link startTracking} (see {@link NodeTableDelta}). */
  delta(): NodeTableDelta {
    const nodes: NodeTableState['nodes'] = [];
    const gone: number[] = [];
    const dirty = this.dirty ?? new Set<number>();
    for (const id of dirty) {
      const n = this.byId.get(id);
      if (n) nodes.push(nodeRecord(n)); else gone.push(id);
    }
    const counts = new Float64Array(2 * (this.counted?.size ?? 0));
    let k = 0;
    for (const id of this.counted ?? []) {
      if (dirty.has(id)) continue;
      const n = this.byId.get(id);
      if (n) { counts[k++] = id; counts[k++] = n.nlookup; } else gone.push(id);
    }
    return { nextId: this.nextId, nextFh: this.nextFh, nodes, counts: counts.subarray(0, k), gone, handles: [...this.handles.values()].map(handleRecord) };
  }

  /**
   * Bring a table made from a snapshot (fds copied then, through `fetch`) to the state of a
   * {@link delta}: nodes gone are closed, nodes changed or new take their record (their backing
   * fd copied again: it may have been closed and reopened since), new handles are copied, and
   * directory handles are set to their offsets. Every fd still unknown (-1) afterwards is an error.
   */
  applyDelta(d: NodeTableDelta, fetch: (fd: number) => number): void {
    const closeNode = (n: Node): void => {
      if (this.byKey.get(key(n.dev, n.ino)) === n) this.byKey.delete(key(n.dev, n.ino));
      this.byId.delete(n.id);
      if (n.fd >= 0) libc.close(n.fd);
      if (n.backing && n.backing.fd >= 0) libc.close(n.backing.fd);
    };
    for (const id of d.gone) {
      const n = this.byId.get(id);
      if (n) closeNode(n);
    }
    for (let i = 0; i < d.counts.length; i += 2) {
      const n = this.byId.get(d.counts[i]!);
      // A node new since the snapshot has its whole record in `nodes`, never here.
      if (!n) throw new Error(`node ${d.counts[i]} changed its lookup count but is not in the snapshot`);
      n.nlookup = d.counts[i + 1]!;
    }
    for (const r of d.nodes) {
      const had = this.byId.get(r.id);
      let fd: number;
      if (had) {
        if (had.backing && had.backing.fd >= 0) libc.close(had.backing.fd);
        had.backing = null;
        fd = had.fd >= 0 ? had.fd : fetch(r.fd);
        if (this.byKey.get(key(had.dev, had.ino)) === had) this.byKey.delete(key(had.dev, had.ino));
      } else {
        fd = fetch(r.fd);
      }
      const n = makeNode(r.id, fd, r.dev, BigInt(r.ino), r.type, r.nlookup, r.parent, Buffer.from(r.name.buffer, r.name.byteOffset, r.name.byteLength),
        r.backing ? { ...r.backing, fd: r.backing.fd >= 0 ? fetch(r.backing.fd) : -1 } : null, r.opens);
      this.byId.set(n.id, n);
      this.byKey.set(key(n.dev, n.ino), n);
    }
    const before = this.handles;
    const after = new Map<number, Handle>();
    for (const r of d.handles) {
      const old = before.get(r.fh);
      const fd = old && old.fd >= 0 ? old.fd : r.fd >= 0 ? fetch(r.fd) : -1;
      before.delete(r.fh);
      const h: Handle = { fh: r.fh, node: r.node, flags: r.flags, fd, passthrough: r.passthrough, noflush: r.noflush, opener: r.opener, userWriter: r.userWriter, dir: undefined };
      if (r.dirPos !== undefined) {
        h.dir = { pos: BigInt(r.dirPos), pending: [], eof: false };
        libc.lseek(h.fd, h.dir.pos, 0);
      }
      after.set(h.fh, h);
    }
    for (const h of before.values()) if (h.fd >= 0) libc.close(h.fd);
    (this as unknown as { handles: Map<number, Handle> }).handles = after;
    this.nextId = d.nextId;
    this.nextFh = d.nextFh;
    this.gen++;
    for (const n of this.byId.values()) {
      if (n.fd < 0) throw new Error(`node ${n.id}: its fd was not handed over (snapshot and changes disagree)`);
    }
  }

  /**
   * Rebuild a table from {@link toState}; fd numbers are remapped through `fdMap` when given.
   * `lazyDirs`: leave directory offsets alone (a snapshot copied while the predecessor still
   * serves shares their file offsets: {@link applyDelta} sets them).
   */
  static fromState(s: NodeTableState, fdMap: (fd: number) => number = (fd) => fd, lazyDirs = false): NodeTable {
    const t = Object.create(NodeTable.prototype) as NodeTable;
    (t as unknown as { byId: Map<number, Node> }).byId = new Map();
    (t as unknown as { byKey: Map<number | string, Node> }).byKey = new Map();
    (t as unknown as { handles: Map<number, Handle> }).handles = new Map();
    t.nextId = s.nextId;
    t.nextFh = s.nextFh;
    t.tick = 0;
    t.gen = 0;
    t.onNew = null;
    t.onDropBacking = null;
    t.onGone = null;
    t.lazy = null;
    t.lazyMountFd = -1;
    for (const r of s.nodes) {
      const n = makeNode(r.id, fdMap(r.fd), r.dev, BigInt(r.ino), r.type, r.nlookup, r.parent, Buffer.from(r.name.buffer, r.name.byteOffset, r.name.byteLength),
        r.backing ? { ...r.backing, fd: r.backing.fd >= 0 ? fdMap(r.backing.fd) : -1 } : null, r.opens);
      t.byId.set(n.id, n);
      t.byKey.set(key(n.dev, n.ino), n);
    }
    t.dirty = null;
    for (const r of s.handles) {
      const h: Handle = {
        fh: r.fh, node: r.node, flags: r.flags, fd: r.fd >= 0 ? fdMap(r.fd) : -1,
        passthrough: r.passthrough, noflush: r.noflush, opener: r.opener, userWriter: r.userWriter, dir: undefined,
      };
      if (r.dirPos !== undefined) {
        h.dir = { pos: BigInt(r.dirPos), pending: [], eof: false };
        if (!lazyDirs) libc.lseek(h.fd, h.dir.pos, 0);
      }
      t.handles.set(h.fh, h);
    }
    return t;
  }
}

function nodeRecord(n: Node): NodeTableState['nodes'][number] {
  return {
    id: n.id, fd: n.fd, dev: n.dev, ino: n.ino, type: n.type, nlookup: n.nlookup,
    parent: n.parent, name: n.name, backing: n.backing ? { ...n.backing } : null, opens: n.opens,
  };
}

function handleRecord(h: Handle): NodeTableState['handles'][number] {
  return {
    fh: h.fh, node: h.node, flags: h.flags, fd: h.fd, passthrough: h.passthrough, noflush: h.noflush, opener: h.opener, userWriter: h.userWriter,
    dirPos: h.dir ? h.dir.pos.toString() : undefined,
  };
}

/**
 * The st_dev of the first identity keyed in this process (nearly every node of a table lives on
 * its backing root's file system): identities on it are keyed by the inode number alone, a number
 * (no string built and hashed per LOOKUP); any other, or an inode number of 2^53 or more, by a
 * "dev:ino" string. Fixed once set, so a key stays a function of (dev, ino) alone.
 */
let commonDev = -1;
const INO_EXACT = 2n ** 53n;

/** The identity-map key of a backing file (see {@link commonDev}). */
function key(dev: number, ino: bigint): number | string {
  if (commonDev < 0) commonDev = dev;
  return dev === commonDev && ino < INO_EXACT ? Number(ino) : `${dev}:${ino}`;
}

/**
 * {@link key} of the file of the last raw statx (libc.statxWords), without a BigInt: words 8 and
 * 9 hold st_ino, 34 and 35 st_dev's major and minor.
 */
function keyOfStatx(): number | string {
  const w = libc.statxWords;
  const dev = libc.makedev(w[34]!, w[35]!);
  if (commonDev < 0) commonDev = dev;
  const hi = w[9]!;
  return dev === commonDev && hi < 0x200000 ? w[8]! + hi * 0x100000000 : `${dev}:${libc.statxIno()}`;
}
