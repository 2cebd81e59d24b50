/**
 * @module kernel/recorder
 * prov mode: turns provfs operations into collector/events records. Files are named the way the
 * kernel names them on the mount — the mount's st_dev and the inode number the daemon reports,
 * which is the backing inode number — so eBPF and provfs records of one operation match.
 * FUSE gives the caller's thread id only: records carry `pid: 0` and `tid` (the join maps tid
 * to tgid). Records go to a sink that buffers them; the journal append happens off the request
 * loop (see kernel/loop).
 */
import { hostname } from 'node:os';
import { SCHEMA_VERSION, decodeNameBytes, type FileRef, type ProvEvent } from '../collector/events.js';
import type { Ctx, Entry, SetattrIn } from './ops.js';
import type { Node, NodeTable } from './nodes.js';
import type { Stat } from './libc.js';
import { S } from './libc.js';
import { FATTR, FUSE_ROOT_ID } from './protocol.js';
import { PROVFS_BIT, PROVFS_HEADER_BYTES, PROVFS_OP, PROVFS_SETATTR_BIT, PROVFS_SETATTR_TAIL_BYTES, provfsFileBytes } from '../collector/provfs-record.js';
import { sameBytes } from '../collector/copy-bytes.js';
import { monotonicNs } from '../collector/clock.js';

/** Distributive Omit, so each event variant keeps its own fields. */
type Body<T> = T extends unknown ? Omit<T, 'v' | 'src' | 'seq' | 'ts' | 'host' | 'pid' | 'tid'> : never;
export type EventBody = Body<ProvEvent>;

/**
 * Where a record can be written as bytes, in place (the loop's event ring): the records of
 * open, close, create and unlink — three per file an application creates and removes — are
 * written in binary (collector/provfs-record) from a fixed header and what the node table holds
 * (name, the parent's cached path), with no string built, encoded or collected, and nothing
 * allocated. Measured on a create+unlink loop (prov vs plain,
 * interleaved): JSON strings cost about a tenth of prov mode's throughput; JSON written as bytes
 * from cached pieces cost the loop about 1.1 µs of CPU per file more than binary.
 */
export interface RecordWriter {
  /** Start a record of `max` bytes; false: write it as a string instead (no room, or a case the writer leaves to strings). */
  begin(max: number): boolean;
  /** The binary record's header (collector/provfs-record's writeProvfsHeader). */
  header(op: number, bits: number, tid: number, ts: number, mode: number, flags: number, fh: number): void;
  /** The file's part, after the header (collector/provfs-record's writeProvfsFile). */
  file(dev: number, ino: number, parent: number, type: number, name: Uint8Array, prefix: Uint8Array, host: Uint8Array): void;
  bytes(b: Uint8Array): void;
  /** The record is complete. */
  end(): void;
}

export interface RecorderOptions {
  /** st_dev of the mount (userspace encoding). */
  dev: number;
  /** Where the mount is, for absolute paths. */
  mountpoint: string;
  nodes: NodeTable;
  sink: (ev: ProvEvent) => void;
  /**
   * Takes records already serialized as JSON (what `sink` would serialize them to). When set,
   * the records of every open, close, create and setattr — most of what an application's I/O
   * produces — are written as strings from per-node cached parts instead of objects for
   * JSON.stringify.
   */
  sinkJson?: (json: string) => void;
  /** Writes records as bytes in place where it can; the rest go to `sinkJson` (needs it). */
  writer?: RecordWriter;
  /**
   * Records made ahead of their operation ({@link Recorder.ahead}): between `begin` and
   * `end`, what the recorder emits is held back (staged in the ring), then published when
   * `end(true)` says the operation took effect, or dropped with `end(false)`.
   */
  stage?: { begin(): void; end(ok: boolean): void };
}

/** Printable ASCII: bytes that decodeNameBytes keeps as they are (so the name needs no decoding for its record). */
function printableAscii(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

export class Recorder {
  private readonly host = hostname();
  private readonly hostBytes = Buffer.from(this.host);
  /** The fields every record ends with but ts and tid, as JSON. */
  private readonly tailJson = `"v":${SCHEMA_VERSION},"src":"provfs","seq":0,"host":${JSON.stringify(this.host)},"pid":0`;

  constructor(private readonly o: RecorderOptions) {}

  /**
   * Record an operation before carrying it out, for those whose record cannot be rebuilt after a
   * crash (a removal: afterwards the name and its file are gone). `record` runs first and its
   * record is staged; `act` carries the operation out; the record is published when `act`
   * returns and dropped when it throws. A daemon killed in between leaves the staged record in
   * its ring for its successor (kernel/resent). Without staging: `act`, then `record`.
   */
  ahead(record: () => void, act: () => void): void {
    if (!this.aheadBegin()) { act(); record(); return; }
    let ok = false;
    try {
      record();
      act();
      ok = true;
    } finally {
      this.aheadEnd(ok);
    }
  }

  /**
   * {@link ahead} in two halves, for a caller on the request path that records and acts
   * between them without making two closures per call: true when records are staged from now
   * until {@link aheadEnd} (then record first, act, and end with whether the act succeeded);
   * false when nothing is staged (act first, then record).
   */
  aheadBegin(): boolean {
    const stage = this.o.stage;
    if (!stage) return false;
    stage.begin();
    return true;
  }

  /** End what {@link aheadBegin} began: `ok`, the operation took effect (its record is published). */
  aheadEnd(ok: boolean): void {
    this.o.stage!.end(ok);
  }

  /** A node's FileRef as JSON, cached on the node until a rename anywhere (the table's generation). */
  private fileJson(n: Node): string {
    this.fresh(n);
    return (n.fileJson ??= JSON.stringify(this.fileOfNode(n)));
  }

  /** Drop a node's cached FileRef made before the last rename anywhere. */
  private fresh(n: Node): void {
    const gen = this.o.nodes.generation;
    if (n.fileJsonGen === gen) return;
    n.fileJson = undefined;
    n.fileName = undefined;
    n.fileJsonGen = gen;
  }

  /**
   * Whether the node can have binary records (collector/provfs-record), and if so its parts of
   * them on the node, cached until a rename anywhere: `fileName` (the name as records show it),
   * `filePrefix` (the parent's path and a `/`, shared with its other children) and
   * `fileParentIno`. Not for a node whose parent or path is not known, or whose numbers or
   * strings the format cannot hold (its records are written as JSON).
   */
  private filePart(n: Node): boolean {
    this.fresh(n);
    if (n.fileName !== undefined) return n.fileName !== null;
    n.fileName = null;
    if (n.id === FUSE_ROOT_ID || n.name.length === 0) return false;
    const p = this.o.nodes.find(n.parent);
    if (!p || Number(n.ino) > Number.MAX_SAFE_INTEGER || Number(p.ino) > Number.MAX_SAFE_INTEGER) return false;
    const prefix = this.childPrefix(p);
    if (!prefix) return false;
    const name = printableAscii(n.name) ? n.name : Buffer.from(this.o.nodes.nameOf(n));
    if (provfsFileBytes(name, prefix, this.hostBytes) < 0) return false;
    n.filePrefix = prefix;
    n.fileParentIno = Number(p.ino);
    n.fileIno = Number(n.ino);
    n.fileName = name;
    return true;
  }

  /** `p`'s path as UTF-8 and a `/` (none after a path ending in one), cached until a rename; undefined when its path is unknown. */
  private childPrefix(p: Node): Uint8Array | undefined {
    const gen = this.o.nodes.generation;
    if (p.childPrefixGen === gen && p.childPrefix) return p.childPrefix;
    const path = this.o.nodes.path(p.id, this.o.mountpoint);
    if (path === undefined) return undefined;
    p.childPrefix = Buffer.from(path.endsWith('/') ? path : path + '/');
    p.childPrefixGen = gen;
    return p.childPrefix;
  }

  /**
   * Write a binary record of `n` in place, `tail` after its strings (setattr's numbers); false
   * when it is to be JSON (no writer, no room, a node without a binary part).
   */
  private binary(op: number, bits: number, n: Node, ctx: Ctx, mode: number, flags: number, fh: number, tail?: Uint8Array): boolean {
    const w = this.o.writer;
    if (!w || !this.filePart(n)) return false;
    const name = n.fileName!, prefix = n.filePrefix!;
    if (!w.begin(PROVFS_HEADER_BYTES + provfsFileBytes(name, prefix, this.hostBytes) + (tail?.length ?? 0))) return false;
    w.header(op, bits, ctx.pid, monotonicNs(), mode, flags, fh);
    w.file(this.o.dev, n.fileIno!, n.fileParentIno!, n.type, name, prefix, this.hostBytes);
    if (tail) w.bytes(tail);
    w.end();
    return true;
  }

  /** setattr's numbers after its strings (collector/provfs-record), reused. */
  private readonly setattrTail = Buffer.alloc(PROVFS_SETATTR_TAIL_BYTES);

  /** A setattr record in binary (see {@link binary}); false when it is to be JSON. */
  private binarySetattr(ctx: Ctx, n: Node, a: SetattrIn, st: Stat): boolean {
    const B = PROVFS_SETATTR_BIT;
    const bits = (a.valid & FATTR.MODE ? B.mode : 0) | (a.valid & FATTR.UID ? B.uid : 0) | (a.valid & FATTR.GID ? B.gid : 0) |
      (a.valid & FATTR.SIZE ? B.size : 0) | (a.valid & (FATTR.MTIME | FATTR.MTIME_NOW) ? B.mtime : 0);
    const tail = this.setattrTail;
    tail.writeUInt32LE(st.gid, 0);
    tail.writeDoubleLE(Number(st.size), 8);
    tail.writeDoubleLE(Number(st.mtime) * 1e9 + st.mtimeNs, 16);
    return this.binary(PROVFS_OP.setattr, bits, n, ctx, st.mode & 0o7777, st.uid, 0, tail);
  }

  /** Emit `{"op":…,"file":…,<rest>}` as a string (see {@link RecorderOptions.sinkJson}). */
  private emitJson(ctx: Ctx, op: string, n: Node, rest: string): void {
    this.o.sinkJson!(`{"op":"${op}","file":${this.fileJson(n)},${rest}${this.tailJson},"ts":${monotonicNs()},"tid":${ctx.pid}}`);
  }

  private emit(ctx: Ctx, body: EventBody): void {
    const ev = body as unknown as ProvEvent;
    ev.v = SCHEMA_VERSION;
    ev.src = 'provfs';
    ev.seq = 0;
    ev.ts = monotonicNs();
    ev.host = this.host;
    ev.pid = 0;
    ev.tid = ctx.pid;
    this.o.sink(ev);
  }

  private parentIno(id: number): number | undefined {
    const p = this.o.nodes.find(id);
    return p ? Number(p.ino) : undefined;
  }

  private childPath(parent: number, name: Buffer): string | undefined {
    const base = this.o.nodes.path(parent, this.o.mountpoint);
    if (base === undefined) return undefined;
    return (base.endsWith('/') ? base : base + '/') + decodeNameBytes(name);
  }

  /** FileRef of a node under its last known name. */
  fileOfNode(n: Node, st?: Stat): FileRef {
    return {
      dev: this.o.dev, ino: Number(n.ino), parent: this.parentIno(n.parent), name: this.o.nodes.nameOf(n),
      path: this.o.nodes.path(n.id, this.o.mountpoint), type: st ? st.mode & S.IFMT : n.type,
    };
  }

  /** FileRef of a stat result found as `name` in `parent`. */
  private fileAt(parent: number, name: Buffer, st: Pick<Stat, 'ino' | 'mode'>): FileRef {
    return {
      dev: this.o.dev, ino: Number(st.ino), parent: this.parentIno(parent), name: decodeNameBytes(name),
      path: this.childPath(parent, name), type: st.mode & S.IFMT,
    };
  }

  create(ctx: Ctx, e: Entry, mode: number, flags: number | undefined, fh: number | undefined): void {
    if (this.o.sinkJson && (e.stat.mode & S.IFMT) === e.node.type) {
      const bits = (flags !== undefined ? PROVFS_BIT.flags : 0) | (fh !== undefined ? PROVFS_BIT.fh : 0);
      if (flags === undefined || flags <= 0xffffffff) {
        if (this.binary(PROVFS_OP.create, bits, e.node, ctx, mode & 0o7777, flags ?? 0, fh ?? 0)) return;
      }
      return this.emitJson(ctx, 'create', e.node, `"mode":${mode & 0o7777},${flags !== undefined ? `"flags":${flags},` : ''}${fh !== undefined ? `"fh":${fh},` : ''}`);
    }
    const body: EventBody = { op: 'create', file: this.fileOfNode(e.node, e.stat), mode: mode & 0o7777 };
    if (flags !== undefined) body.flags = flags;
    if (fh !== undefined) body.fh = fh;
    this.emit(ctx, body);
  }

  mkdir(ctx: Ctx, e: Entry, mode: number): void {
    this.emit(ctx, { op: 'mkdir', file: this.fileOfNode(e.node, e.stat), mode: mode & 0o7777 });
  }

  symlink(ctx: Ctx, e: Entry, target: Buffer): void {
    this.emit(ctx, { op: 'symlink', file: this.fileOfNode(e.node, e.stat), target: decodeNameBytes(target) });
  }

  link(ctx: Ctx, e: Entry): void {
    this.emit(ctx, { op: 'link', file: this.fileOfNode(e.node, e.stat) });
  }

  /** `node`: the table's node of the unlinked file, when it has one (its cached JSON is reused). */
  unlink(ctx: Ctx, parent: number, name: Buffer, before: Pick<Stat, 'mode' | 'nlink' | 'ino'>, node?: Node): void {
    if (this.o.sinkJson && node && node.parent === parent && node.type === (before.mode & S.IFMT) && sameBytes(node.name, name)) {
      if (this.binary(PROVFS_OP.unlink, before.nlink <= 1 ? PROVFS_BIT.deleted : 0, node, ctx, 0, 0, 0)) return;
      return this.emitJson(ctx, 'unlink', node, `"deleted":${before.nlink <= 1},`);
    }
    this.emit(ctx, { op: 'unlink', file: this.fileAt(parent, name, before), deleted: before.nlink <= 1 });
  }

  rmdir(ctx: Ctx, parent: number, name: Buffer, before: Stat): void {
    this.emit(ctx, { op: 'rmdir', file: this.fileAt(parent, name, before) });
  }

  rename(ctx: Ctx, parent: number, name: Buffer, newparent: number, newname: Buffer, moved: Stat, over: Stat | null, flags: number): void {
    const body: EventBody = {
      op: 'rename', file: this.fileAt(newparent, newname, moved),
      from: { parent: this.parentIno(parent), name: decodeNameBytes(name), path: this.childPath(parent, name) },
      flags,
    };
    if (over) {
      const exchange = (flags & 2) !== 0;
      body.overwritten = exchange ? this.fileAt(parent, name, over) : this.fileAt(newparent, newname, over);
      body.overwrittenDeleted = !exchange && ((over.mode & S.IFMT) === S.IFDIR || over.nlink <= 1);
    }
    this.emit(ctx, body);
  }

  open(ctx: Ctx, n: Node, flags: number, fh: number): void {
    if (this.o.sinkJson) {
      if (flags <= 0xffffffff && this.binary(PROVFS_OP.open, PROVFS_BIT.flags | PROVFS_BIT.fh, n, ctx, 0, flags, fh)) return;
      return this.emitJson(ctx, 'open', n, `"flags":${flags},"fh":${fh},`);
    }
    this.emit(ctx, { op: 'open', file: this.fileOfNode(n), flags, fh });
  }

  /** A close(2) (FLUSH), or with `release` the last close of a handle given out without FLUSH. */
  close(ctx: Ctx, n: Node, fh: number, release = false): void {
    if (this.o.sinkJson) {
      if (this.binary(PROVFS_OP.close, PROVFS_BIT.fh | (release ? PROVFS_BIT.release : 0), n, ctx, 0, 0, fh)) return;
      return this.emitJson(ctx, 'close', n, `"fh":${fh},${release ? '"release":true,' : ''}`);
    }
    this.emit(ctx, release ? { op: 'close', file: this.fileOfNode(n), fh, release } : { op: 'close', file: this.fileOfNode(n), fh });
  }

  setattr(ctx: Ctx, n: Node, a: SetattrIn, st: Stat): void {
    if (this.o.sinkJson && (st.mode & S.IFMT) === n.type) {
      if (this.binarySetattr(ctx, n, a, st)) return;
      let rest = '';
      if (a.valid & FATTR.MODE) rest += `"mode":${st.mode & 0o7777},`;
      if (a.valid & FATTR.UID) rest += `"uid":${st.uid},`;
      if (a.valid & FATTR.GID) rest += `"gid":${st.gid},`;
      if (a.valid & FATTR.SIZE) rest += `"size":${Number(st.size)},`;
      if (a.valid & (FATTR.MTIME | FATTR.MTIME_NOW)) rest += `"mtime":${Number(st.mtime) * 1e9 + st.mtimeNs},`;
      return this.emitJson(ctx, 'setattr', n, rest);
    }
    const body: EventBody = { op: 'setattr', file: this.fileOfNode(n, st) };
    if (a.valid & FATTR.MODE) body.mode = st.mode & 0o7777;
    if (a.valid & FATTR.UID) body.uid = st.uid;
    if (a.valid & FATTR.GID) body.gid = st.gid;
    if (a.valid & FATTR.SIZE) body.size = Number(st.size);
    if (a.valid & (FATTR.MTIME | FATTR.MTIME_NOW)) body.mtime = Number(st.mtime) * 1e9 + st.mtimeNs;
    this.emit(ctx, body);
  }
}
