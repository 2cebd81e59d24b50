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
import { writeDecimal } from './eventring.js';

/** Distributive Omit, so each event variant keeps its own fields. */
type Body<T> = T extends unknown ? Omit<T, 'v' | 'src' | 'seq' | 'ts' | 'host' | 'pid' | 'tid'> : never;
export type EventBody = Body<ProvEvent>;

/**
 * Where a record can be written as bytes, in place (the loop's event ring): the records of
 * open, close, create and unlink — three per file an application creates and removes — are
 * written from per-node cached bytes and numbers, with no string built, encoded or collected.
 * Measured on a create+unlink loop (prov vs plain, both mounted at once, interleaved): the
 * strings cost about a tenth of prov mode's throughput.
 */
export interface RecordWriter {
  /** Start a record of at most `max` bytes; false: write it as a string instead (no room, or a case the writer leaves to strings). */
  begin(max: number): boolean;
  bytes(b: Uint8Array): void;
  uint(n: number): void;
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

/** The constant pieces of the records written as bytes (see {@link RecordWriter}). */
const B = {
  create: Buffer.from('{"op":"create","file":'),
  open: Buffer.from('{"op":"open","file":'),
  closeOp: Buffer.from('{"op":"close","file":'),
  unlink: Buffer.from('{"op":"unlink","file":'),
  // Each field with the comma before it: fewer pieces to copy.
  mode: Buffer.from(',"mode":'),
  flags: Buffer.from(',"flags":'),
  fh: Buffer.from(',"fh":'),
  release: Buffer.from(',"release":true'),
  deleted: Buffer.from(',"deleted":true'),
  notDeleted: Buffer.from(',"deleted":false'),
  tid: Buffer.from(',"tid":'),
  close: Buffer.from('}'),
};

/** Pieces of a FileRef's JSON between its values ({@link Recorder.fileRefBytes}), in JSON.stringify's key order. */
const F = {
  parent: Buffer.from(',"parent":'),
  name: Buffer.from(',"name":"'),
  path: Buffer.from('","path":"'),
  type: Buffer.from('","type":'),
};

/** Printable ASCII but `"` and `\`: bytes that decodeNameBytes and JSON.stringify both keep as they are. */
function printableAscii(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}

function put(out: Uint8Array, at: number, b: Uint8Array): number {
  out.set(b, at);
  return at + b.length;
}

export class Recorder {
  private readonly host = hostname();
  /** `{"dev":<dev>,"ino":`: how every FileRef of this mount starts. */
  private readonly devHead: Uint8Array;
  /** Where {@link fileRefBytes} writes before copying out. */
  private scratch = Buffer.alloc(1024);
  /** The fields every record ends with but ts and tid, as JSON. */
  private readonly tailJson = `"v":${SCHEMA_VERSION},"src":"provfs","seq":0,"host":${JSON.stringify(hostname())},"pid":0`;
  /** The same as bytes, after a comma and with the key of `ts` after it (see {@link RecordWriter}). */
  private readonly tailTs = Buffer.from(`,${this.tailJson},"ts":`);

  constructor(private readonly o: RecorderOptions) {
    this.devHead = Buffer.from(`{"dev":${o.dev},"ino":`);
  }

  /**
   * Record an operation before carrying it out, for those whose record cannot be rebuilt after a
   * crash (a removal: afterwards the name and its file are gone). `record` runs first and its
   * record is staged; `act` carries the operation out; the record is published when `act`
   * returns and dropped when it throws. A daemon killed in between leaves the staged record in
   * its ring for its successor (kernel/resent). Without staging: `act`, then `record`.
   */
  ahead(record: () => void, act: () => void): void {
    const stage = this.o.stage;
    if (!stage) { act(); record(); return; }
    stage.begin();
    let ok = false;
    try {
      record();
      act();
      ok = true;
    } finally {
      stage.end(ok);
    }
  }

  /** A node's FileRef as JSON, cached on the node until a rename anywhere (the table's generation). */
  private fileJson(n: Node): string {
    this.fresh(n);
    return (n.fileJson ??= JSON.stringify(this.fileOfNode(n)));
  }

  /** {@link fileJson} as UTF-8, cached beside it; built as bytes where it can be ({@link fileRefBytes}). */
  private fileBytes(n: Node): Uint8Array {
    this.fresh(n);
    return (n.fileBytes ??= this.fileRefBytes(n) ?? Buffer.from(this.fileJson(n)));
  }

  /** Drop a node's cached FileRef made before the last rename anywhere. */
  private fresh(n: Node): void {
    const gen = this.o.nodes.generation;
    if (n.fileJsonGen === gen) return;
    n.fileJson = undefined;
    n.fileBytes = undefined;
    n.fileJsonGen = gen;
  }

  /**
   * The bytes JSON.stringify(fileOfNode(n)) would give, written directly from the parent's
   * cached path bytes, the name's bytes and the numbers: no FileRef, no string, no decoding. For
   * a node with a printable ASCII name (decodeNameBytes and JSON keep it as it is) under a
   * directory in the table whose path is known — every file an application makes. Undefined
   * otherwise (the caller stringifies). Building this JSON with JSON.stringify was the largest
   * part of what a record cost the request loop (perf, create+unlink loop). Against the
   * previous build, both mounted at once, four alternating runs: the loop's CPU per file made
   * and removed −4.9, +1.0, −0.2 and −1.9 µs, files a second +12, −4, +2 and +4 % (a noisy
   * machine; the longest run, 24 rounds, is the last pair).
   */
  private fileRefBytes(n: Node): Uint8Array | undefined {
    const name = n.name;
    if (n.id === FUSE_ROOT_ID || name.length === 0 || !printableAscii(name)) return undefined;
    const p = this.o.nodes.find(n.parent);
    const ino = Number(n.ino);
    if (!p || ino > Number.MAX_SAFE_INTEGER || Number(p.ino) > Number.MAX_SAFE_INTEGER) return undefined;
    const prefix = this.childPrefix(p);
    if (!prefix) return undefined;
    // The name goes in twice; the fixed pieces and the three numbers take under 160 bytes.
    const need = prefix.length + 2 * name.length + 160;
    if (this.scratch.length < need) this.scratch = Buffer.alloc(2 * need);
    const out = this.scratch;
    let at = put(out, 0, this.devHead);
    at = writeDecimal(out, at, ino);
    at = put(out, at, F.parent);
    at = writeDecimal(out, at, Number(p.ino));
    at = put(out, at, F.name);
    at = put(out, at, name);
    at = put(out, at, F.path);
    at = put(out, at, prefix);
    at = put(out, at, name);
    at = put(out, at, F.type);
    at = writeDecimal(out, at, n.type);
    out[at++] = 0x7d; // }
    return Buffer.from(out.subarray(0, at));
  }

  /** `p`'s path as JSON string content and a `/` (none after a path ending in one), cached until a rename; undefined when its path is unknown. */
  private childPrefix(p: Node): Uint8Array | undefined {
    const gen = this.o.nodes.generation;
    if (p.childPrefixGen === gen && p.childPrefix) return p.childPrefix;
    const path = this.o.nodes.path(p.id, this.o.mountpoint);
    if (path === undefined) return undefined;
    const quoted = JSON.stringify(path.endsWith('/') ? path : path + '/');
    p.childPrefix = Buffer.from(quoted.slice(1, -1));
    p.childPrefixGen = gen;
    return p.childPrefix;
  }

  /**
   * Start `{"op":…,"file":…` in the writer, leaving room for `restMax` more bytes of the
   * record's own fields (each number counted at 24, the longest String() of a number), and 64
   * for ts, tid and the end; false when it is to be a string.
   */
  private beginBytes(op: Uint8Array, n: Node, restMax: number): boolean {
    const w = this.o.writer;
    if (!w) return false;
    const file = this.fileBytes(n);
    if (!w.begin(op.length + file.length + restMax + this.tailTs.length + 64)) return false;
    w.bytes(op);
    w.bytes(file);
    return true;
  }

  /** End the record begun: the common fields, ts and tid. */
  private endBytes(ctx: Ctx): void {
    const w = this.o.writer!;
    w.bytes(this.tailTs);
    w.uint(Number(process.hrtime.bigint()));
    w.bytes(B.tid);
    w.uint(ctx.pid);
    w.bytes(B.close);
    w.end();
  }

  /** Emit `{"op":…,"file":…,<rest>}` as a string (see {@link RecorderOptions.sinkJson}). */
  private emitJson(ctx: Ctx, op: string, n: Node, rest: string): void {
    this.o.sinkJson!(`{"op":"${op}","file":${this.fileJson(n)},${rest}${this.tailJson},"ts":${Number(process.hrtime.bigint())},"tid":${ctx.pid}}`);
  }

  private emit(ctx: Ctx, body: EventBody): void {
    const ev = body as unknown as ProvEvent;
    ev.v = SCHEMA_VERSION;
    ev.src = 'provfs';
    ev.seq = 0;
    ev.ts = Number(process.hrtime.bigint());
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
  private fileAt(parent: number, name: Buffer, st: Stat): FileRef {
    return {
      dev: this.o.dev, ino: Number(st.ino), parent: this.parentIno(parent), name: decodeNameBytes(name),
      path: this.childPath(parent, name), type: st.mode & S.IFMT,
    };
  }

  create(ctx: Ctx, e: Entry, mode: number, flags: number | undefined, fh: number | undefined): void {
    if (this.o.sinkJson && (e.stat.mode & S.IFMT) === e.node.type) {
      if (this.beginBytes(B.create, e.node, 100)) {
        const w = this.o.writer!;
        w.bytes(B.mode); w.uint(mode & 0o7777);
        if (flags !== undefined) { w.bytes(B.flags); w.uint(flags); }
        if (fh !== undefined) { w.bytes(B.fh); w.uint(fh); }
        return this.endBytes(ctx);
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
  unlink(ctx: Ctx, parent: number, name: Buffer, before: Stat, node?: Node): void {
    if (this.o.sinkJson && node && node.parent === parent && node.type === (before.mode & S.IFMT) && node.name.equals(name)) {
      if (this.beginBytes(B.unlink, node, 20)) {
        this.o.writer!.bytes(before.nlink <= 1 ? B.deleted : B.notDeleted);
        return this.endBytes(ctx);
      }
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
      if (this.beginBytes(B.open, n, 70)) {
        const w = this.o.writer!;
        w.bytes(B.flags); w.uint(flags);
        w.bytes(B.fh); w.uint(fh);
        return this.endBytes(ctx);
      }
      return this.emitJson(ctx, 'open', n, `"flags":${flags},"fh":${fh},`);
    }
    this.emit(ctx, { op: 'open', file: this.fileOfNode(n), flags, fh });
  }

  /** A close(2) (FLUSH), or with `release` the last close of a handle given out without FLUSH. */
  close(ctx: Ctx, n: Node, fh: number, release = false): void {
    if (this.o.sinkJson) {
      if (this.beginBytes(B.closeOp, n, 60)) {
        const w = this.o.writer!;
        w.bytes(B.fh); w.uint(fh);
        if (release) w.bytes(B.release);
        return this.endBytes(ctx);
      }
      return this.emitJson(ctx, 'close', n, `"fh":${fh},${release ? '"release":true,' : ''}`);
    }
    this.emit(ctx, release ? { op: 'close', file: this.fileOfNode(n), fh, release } : { op: 'close', file: this.fileOfNode(n), fh });
  }

  setattr(ctx: Ctx, n: Node, a: SetattrIn, st: Stat): void {
    if (this.o.sinkJson && (st.mode & S.IFMT) === n.type) {
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

/**
 * The mount's own provenance log as a read-only file `.lin` at the mount root (prov mode), as
 * Bento-prov offered: the records this daemon produced, one JSON object per line (journal `seq`
 * not yet assigned: 0), the most recent {@link LinLog.cap} bytes of them. Each open takes a
 * snapshot, so a reader sees a consistent log; a live upgrade starts a new one. The lines are
 * bytes in one circular buffer, copied from where each record was written in the event ring
 * (most records are never strings: see {@link RecordWriter}).
 */
export class LinLog {
  private readonly buf: Uint8Array;
  /** Where the next byte goes. */
  private end = 0;
  /** Whether the buffer has been filled once (older lines are being overwritten). */
  private wrapped = false;

  constructor(readonly cap = 8 << 20) {
    this.buf = new Uint8Array(cap);
  }

  /** One record's UTF-8 bytes, as a line. */
  append(bytes: Uint8Array): void {
    if (bytes.length + 1 > this.cap) return; // a record larger than the whole log: not kept
    const room = this.cap - this.end;
    if (bytes.length < room) {
      this.buf.set(bytes, this.end);
    } else {
      this.buf.set(bytes.subarray(0, room), this.end);
      this.buf.set(bytes.subarray(room), 0);
      this.wrapped = true;
    }
    this.end = (this.end + bytes.length) % this.cap;
    this.buf[this.end] = 0x0a;
    this.end = (this.end + 1) % this.cap;
    if (this.end === 0) this.wrapped = true;
  }

  /** A record as a string (those that do not go through the event ring). */
  appendString(json: string): void {
    this.append(Buffer.from(json));
  }

  snapshot(): Buffer {
    if (!this.wrapped) return Buffer.from(this.buf.subarray(0, this.end));
    // Oldest first; the line cut by the last overwrite is dropped.
    const all = Buffer.concat([this.buf.subarray(this.end), this.buf.subarray(0, this.end)]);
    const nl = all.indexOf(0x0a);
    return nl < 0 ? Buffer.alloc(0) : all.subarray(nl + 1);
  }
}
