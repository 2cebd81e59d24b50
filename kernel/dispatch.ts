/**
 * @module kernel/dispatch
 * One handler table keyed by FUSE opcode: decode the request, call the file operation in
 * kernel/ops, encode the reply. Exactly one reply per request (an error is a reply with a
 * negative errno and no body); FORGET, BATCH_FORGET and INTERRUPT get none.
 */
import { logger } from '../collector/log.js';
import * as libc from './libc.js';
import { E, O } from './libc.js';
import { FUSE_UNIQUE_RESEND,
  OP, OP_NAME, INIT, DEV_IOC, FOPEN, SIZE, ATTR, FUSE_KERNEL_VERSION, FUSE_KERNEL_MINOR_VERSION,
  FUSE_ROOT_ID, FUSE_MIN_MINOR_VERSION, RELEASE_FLUSH, OPEN_KILL_SUIDGID, WRITE_KILL_SUIDGID, FSYNC_FDATASYNC, DIRENT_NAME_OFFSET, recAlign,
  readInHeaderInto, readUnique, type InHeader,
} from './protocol.js';
import type { ProvFs, Ctx, Entry, Opened, SetattrIn, PassthroughDevice } from './ops.js';
import type { LinSnapshot } from './linlog.js';

const log = logger('provfs');

/** Cache timeouts in seconds (fractions allowed). */
export interface Timeouts {
  /** How long the kernel may trust a name → node mapping. */
  entry: number;
  /** How long the kernel may trust attributes. */
  attr: number;
  /** How long the kernel may remember that a name does not exist (0: not at all). */
  negative: number;
}

export interface DispatchOptions {
  timeouts: Timeouts;
  /** Ask for FUSE_PASSTHROUGH at INIT (the kernel may still refuse). */
  passthrough: boolean;
  /** /dev/fuse fd, for registering passthrough backing files; -1 in-process. */
  devFd: number;
  /** Largest WRITE the kernel may send (and READ reply we serve), in bytes. */
  maxWrite: number;
  /** Hand an FSYNC to a helper thread that syncs `fd`, closes it and replies itself (see kernel/slowops). */
  offloadFsync?: (unique: Uint8Array, fd: number, dataOnly: boolean) => void;
}

/** What INIT negotiated. */
export interface Negotiated {
  minor: number;
  /** INIT flags as a number (bits 0..42 are defined, all below 2^53). */
  flags: number;
  passthrough: boolean;
  maxWrite: number;
}

type Handler = (d: Dispatcher, h: InHeader, body: Buffer) => void;

/** Node id of the `.lin` log view at the mount root (prov mode); table ids never get this high. */
export const LIN_NODE = 2 ** 52;
const LIN_NAME = Buffer.from('.lin');
const NO_BODY = Buffer.alloc(SIZE.getattr_in);

/** NUL-terminated name at `off` in `b`, and where the next field starts. */
function cname(b: Buffer, off = 0): [Buffer, number] {
  let end = b.indexOf(0, off);
  if (end < 0) end = b.length;
  return [b.subarray(off, end), end + 1];
}

/**
 * Whether a LOOKUP's body names `.lin` (the name and its NUL), compared in JS: every LOOKUP at
 * the mount root asks, and cname's indexOf and Buffer.equals are two calls into C++ apiece.
 */
function isLinName(body: Buffer): boolean {
  return body.length >= 5 && body[4] === 0 && body[0] === LIN_NAME[0] && body[1] === LIN_NAME[1] && body[2] === LIN_NAME[2] && body[3] === LIN_NAME[3];
}

const ctxOf = (h: InHeader): Ctx => ({ uid: h.uid, gid: h.gid, pid: h.pid });
const id = (h: InHeader): number => Number(h.nodeid);

function splitTimeout(t: number): [bigint, number] {
  const s = Math.floor(t);
  return [BigInt(s), Math.round((t - s) * 1e9)];
}

export class Dispatcher {
  /** Reply buffer, reused for every reply (the loop is synchronous). */
  readonly out: Buffer;
  /** `out` as 64-bit words (fields at 8-byte aligned offsets are stored through it). */
  private readonly out64: BigUint64Array;
  negotiated: Negotiated | null = null;
  /** READDIRPLUS stops making nodes above this many (entries go out without attributes). */
  nodeCap = Infinity;
  /** Requests served per opcode, indexed by opcode (a typed array: no Map update per request). */
  private readonly perOp = new Float64Array(128);
  /** Count of requests served per opcode (for tests and benches: READ/WRITE must stay 0 with passthrough). */
  get counts(): Map<number, number> {
    const m = new Map<number, number>();
    this.perOp.forEach((c, op) => { if (c > 0) m.set(op, c); });
    return m;
  }
  private readonly entryT: [bigint, number];
  private readonly attrT: [bigint, number];
  private readonly negT: [bigint, number];
  /** The header of the request being served (one object, filled in place per request). */
  private readonly hdr: InHeader = { len: 0, opcode: 0, unique: 0n, nodeid: 0, uid: 0, gid: 0, pid: 0, totalExtlen: 0 };
  /** The request being answered (its unique id is copied into the reply). */
  private req: Buffer = Buffer.alloc(SIZE.in_header);
  /** `req`'s first 16 bytes as 32-bit words, when it is 4-byte aligned (the loop reuses one buffer). */
  private req32: Uint32Array | null = null;
  /** `out` as 32-bit words (little-endian machine: the header fields are stored through it). */
  private readonly out32: Uint32Array;
  /** All of `out` as 32-bit words (aligned 32-bit fields are stored through it). */
  private readonly all32: Uint32Array;
  /** `out` as 32-bit words up to an attr_out (for {@link attrFromStatx}). */
  private readonly outWords: Uint32Array;
  /** attr and entry timeout seconds as two 32-bit words each (low, high). */
  private readonly attrT32: Uint32Array;
  private readonly entryT32: Uint32Array;

  constructor(
    readonly fs: ProvFs,
    readonly opts: DispatchOptions,
    private readonly send: (buf: Buffer, len: number) => void,
  ) {
    // Its own ArrayBuffer at offset 0 (Buffer.alloc), so 8-byte aligned offsets map onto out64.
    this.out = Buffer.alloc(opts.maxWrite + 4096);
    this.out64 = new BigUint64Array(this.out.buffer, this.out.byteOffset, this.out.length >> 3);
    this.out32 = new Uint32Array(this.out.buffer, this.out.byteOffset, 4);
    this.all32 = new Uint32Array(this.out.buffer, this.out.byteOffset, this.out.length >> 2);
    this.outWords = new Uint32Array(this.out.buffer, this.out.byteOffset, (SIZE.out_header + SIZE.entry_out) >> 2);
    this.entryT = splitTimeout(opts.timeouts.entry);
    this.attrT = splitTimeout(opts.timeouts.attr);
    this.negT = splitTimeout(opts.timeouts.negative);
    this.attrT32 = new Uint32Array(new BigUint64Array([this.attrT[0]]).buffer);
    this.entryT32 = new Uint32Array(new BigUint64Array([this.entryT[0]]).buffer);
  }

  /** prov mode: the log behind the read-only `.lin` file at the mount root. */
  lin: { snapshot(): LinSnapshot } | null = null;
  /** Open `.lin` handles: their snapshots, by fh. */
  private readonly linHandles = new Map<number, LinSnapshot>();
  private linFh = 0;

  /** Serve one request read from /dev/fuse (`len` bytes of `req`). */
  handle(req: Buffer, len: number): void {
    const h = this.hdr;
    if (req !== this.req) {
      this.req = req;
      this.req32 = (req.byteOffset & 3) === 0 && req.length >= SIZE.in_header ? new Uint32Array(req.buffer, req.byteOffset, SIZE.in_header >> 2) : null;
    }
    const w = this.req32;
    if (w) {
      // The header as words (Node 20's Buffer.readUInt32LE validates its offset through a
      // wrapper call each time: seven of them per request showed in profiles).
      h.len = w[0]!; h.opcode = w[1]!; h.nodeid = w[4]! + w[5]! * 0x100000000;
      h.uid = w[6]!; h.gid = w[7]!; h.pid = w[8]!; h.totalExtlen = w[9]! & 0xffff;
    } else {
      readInHeaderInto(req, h);
    }
    this.perOp[h.opcode & 127]++;
    const handler = HANDLERS[h.opcode];
    // GETATTR reads nothing of its body: no view made for it (the commonest request uncached).
    const body = h.opcode === OP.GETATTR ? NO_BODY : req.subarray(SIZE.in_header, len);
    if (this.lin && (h.nodeid === LIN_NODE || (h.opcode === OP.LOOKUP && h.nodeid === FUSE_ROOT_ID && isLinName(body)))) {
      return this.linRequest(h, body);
    }
    if (!handler) return this.error(E.ENOSYS);
    try {
      handler(this, h, body);
    } catch (e) {
      if (e instanceof libc.Errno) {
        if (h.opcode === OP.FORGET || h.opcode === OP.BATCH_FORGET || h.opcode === OP.INTERRUPT) return;
        if ((readUnique(req) & FUSE_UNIQUE_RESEND) !== 0n && this.finishResent(h, body, e.errno)) return;
        return this.error(e.errno);
      }
      log.error(`${OP_NAME[h.opcode] ?? h.opcode}: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      this.error(E.EIO);
    }
  }

  /** Attributes of `.lin`: a read-only file of no fixed size (read it to the end). */
  private linStat(): libc.Stat {
    const t = BigInt(Math.floor(Date.now() / 1000));
    return {
      dev: 0, ino: BigInt(LIN_NODE), mode: libc.S.IFREG | 0o444, nlink: 1, uid: 0, gid: 0, rdev: 0,
      size: 0n, blocks: 0n, blksize: 4096, atime: t, atimeNs: 0, mtime: t, mtimeNs: 0, ctime: t, ctimeNs: 0,
    };
  }

  /** Every request on `.lin` (and its LOOKUP): read-only, no record of its own. */
  private linRequest(h: InHeader, body: Buffer): void {
    const fh = (): number => Number(body.readBigUInt64LE(0));
    switch (h.opcode) {
      case OP.FORGET: return;
      case OP.LOOKUP: return this.entry({ node: { id: LIN_NODE } as Entry['node'], stat: this.linStat() });
      case OP.GETATTR: return this.attr(this.linStat());
      case OP.ACCESS: return body.readUInt32LE(0) & 2 ? this.error(E.EACCES) : this.ok(0);
      case OP.OPEN: {
        const flags = body.readUInt32LE(0);
        if ((flags & O.ACCMODE) !== O.RDONLY || flags & O.TRUNC) return this.error(E.EACCES);
        const n = 2 ** 52 + ++this.linFh;
        this.linHandles.set(n, this.lin!.snapshot());
        const b = this.out, o = SIZE.out_header;
        this.u64(o, BigInt(n));
        b.writeUInt32LE(FOPEN.DIRECT_IO, o + 8);
        b.writeInt32LE(0, o + 12);
        return this.ok(SIZE.open_out);
      }
      case OP.READ: {
        const snap = this.linHandles.get(fh());
        if (!snap) return this.error(E.EBADF);
        const off = Number(body.readBigUInt64LE(8)), size = Math.min(body.readUInt32LE(16), this.out.length - SIZE.out_header);
        return this.ok(snap.read(off, size, this.out, SIZE.out_header));
      }
      case OP.FLUSH: return this.ok(0);
      case OP.RELEASE: this.linHandles.delete(fh()); return this.ok(0);
      case OP.GETXATTR: return this.error(E.ENODATA);
      case OP.LISTXATTR:
        if (body.readUInt32LE(0) === 0) { this.out.writeUInt32LE(0, SIZE.out_header); this.out.writeUInt32LE(0, SIZE.out_header + 4); return this.ok(SIZE.getxattr_out); }
        return this.ok(0);
      default: return this.error(E.EPERM);
    }
  }

  /**
   * A request the kernel resent after a crash (FUSE_NOTIFY_RESEND) may already have been carried
   * out by the dead daemon, which died before replying: its caller never saw an answer. Its
   * natural error then means "already done" (EEXIST for what creates a name, ENOENT for what
   * removes one), so answer as the first attempt would have, instead of failing an application.
   * Returns true when it replied.
   */
  private finishResent(h: InHeader, body: Buffer, errno: number): boolean {
    const rule = RESENT_DONE[h.opcode];
    if (!rule || rule.errno !== errno) return false;
    if (rule.retryWithout !== undefined) {
      // CREATE with O_EXCL: the file is the caller's own; open it.
      const flags = body.readUInt32LE(0);
      if (!(flags & rule.retryWithout)) return false;
      body.writeUInt32LE(flags & ~rule.retryWithout, 0);
      HANDLERS[h.opcode]!(this, h, body);
    } else if (rule.nameAt === undefined) {
      this.ok(0);
    } else {
      const e = this.fs.lookup(ctxOf(h), id(h), cname(body, rule.nameAt)[0]);
      this.recordMadeByDead(h, body, e);
      this.entry(e);
    }
    return true;
  }

  /**
   * The record of a resent creation found done. The kernel holds the parent directory locked
   * from its negative lookup until the reply, so through the mount only this request can have
   * made the name: the dead daemon did, and may have died before recording it. If it did record
   * it, the loop drops this one as a duplicate (kernel/resent).
   */
  private recordMadeByDead(h: InHeader, body: Buffer, e: Entry): void {
    const rec = this.fs.recorder;
    if (!rec) return;
    const ctx = ctxOf(h);
    switch (h.opcode) {
      case OP.MKDIR: return rec.mkdir(ctx, e, body.readUInt32LE(0) & ~body.readUInt32LE(4));
      case OP.MKNOD: return rec.create(ctx, e, body.readUInt32LE(0) & ~body.readUInt32LE(8), undefined, undefined);
      case OP.SYMLINK: return rec.symlink(ctx, e, cname(body, cname(body)[1])[0]);
      case OP.LINK: return rec.link(ctx, e);
    }
  }

  // ---- reply encoders ----

  error(errno: number): void {
    this.header(SIZE.out_header, -errno);
    this.send(this.out, SIZE.out_header);
  }

  /** Reply with `n` body bytes already written at out[16..]. */
  ok(n: number): void {
    this.header(SIZE.out_header + n, 0);
    this.send(this.out, SIZE.out_header + n);
  }

  /** A copy of the unique id of the request being served (for a reply from another thread). */
  uniqueBytes(): Uint8Array {
    return Uint8Array.prototype.slice.call(this.req, 8, 16);
  }

  private header(len: number, error: number): void {
    const o = this.out32;
    o[0] = len;
    o[1] = error;
    // unique, word for word (keeps the resend bit); a Buffer.copy is a native call per reply.
    const r = this.req32;
    if (r) { o[2] = r[2]!; o[3] = r[3]!; } else this.req.copy(this.out, 8, 8, 16);
  }

  /** Store a 64-bit field (two's complement for negative values) at `off`. */
  private u64(off: number, v: bigint): void {
    if ((off & 7) === 0) this.out64[off >> 3] = v; // ToBigUint64: wraps negative times
    else this.out.writeBigUInt64LE(BigInt.asUintN(64, v), off);
  }

  writeAttr(off: number, st: libc.Stat): void {
    this.u64(off + ATTR.ino, st.ino);
    this.u64(off + ATTR.size, st.size);
    this.u64(off + ATTR.blocks, st.blocks);
    this.u64(off + ATTR.atime, st.atime);
    this.u64(off + ATTR.mtime, st.mtime);
    this.u64(off + ATTR.ctime, st.ctime);
    this.u32(off + ATTR.atimensec, st.atimeNs);
    this.u32(off + ATTR.mtimensec, st.mtimeNs);
    this.u32(off + ATTR.ctimensec, st.ctimeNs);
    this.u32(off + ATTR.mode, st.mode);
    this.u32(off + ATTR.nlink, st.nlink);
    this.u32(off + ATTR.uid, st.uid);
    this.u32(off + ATTR.gid, st.gid);
    this.u32(off + ATTR.rdev, st.rdev);
    this.u32(off + ATTR.blksize, st.blksize);
    this.u32(off + ATTR.flags, 0);
  }

  /** Store a 32-bit field at `off` (a word store when aligned: no checked Buffer write). */
  private u32(off: number, v: number): void {
    if ((off & 3) === 0) this.all32[off >> 2] = v;
    else this.out.writeUInt32LE(v >>> 0, off);
  }

  /** fuse_entry_out at `off` (nodeid 0 with a timeout: a cached negative entry). */
  writeEntry(off: number, e: Entry | null): void {
    const b = this.out;
    if (!e) {
      if ((off & 3) === 0) this.all32.fill(0, off >> 2, (off + SIZE.entry_out) >> 2);
      else b.fill(0, off, off + SIZE.entry_out);
      this.u64(off + 16, this.negT[0]);
      this.u32(off + 32, this.negT[1]);
      return;
    }
    const id = e.node.id;
    this.u32(off, id % 0x100000000); this.u32(off + 4, Math.floor(id / 0x100000000)); // nodeid
    this.u64(off + 8, 0n);
    this.u64(off + 16, this.entryT[0]);
    this.u64(off + 24, this.attrT[0]);
    this.u32(off + 32, this.entryT[1]);
    this.u32(off + 36, this.attrT[1]);
    this.writeAttr(off + 40, e.stat);
  }

  entry(e: Entry): void {
    this.writeEntry(SIZE.out_header, e);
    this.ok(SIZE.entry_out);
  }

  attr(st: libc.Stat): void {
    const b = this.out, o = SIZE.out_header;
    this.u64(o, this.attrT[0]);
    b.writeUInt32LE(this.attrT[1], o + 8);
    b.writeUInt32LE(0, o + 12);
    this.writeAttr(o + 16, st);
    this.ok(SIZE.attr_out);
  }

  /**
   * attr_out straight from the statx words of the last {@link libc.fstatRaw} (same fields as
   * {@link writeAttr} of its Stat, copied as 32-bit words: no BigInt, no object per GETATTR).
   */
  attrFromStatx(): void {
    const o32 = this.outWords;
    const b = (SIZE.out_header >> 2); // attr_out in words
    o32[b] = this.attrT32[0]!; o32[b + 1] = this.attrT32[1]!; // attr_valid (seconds, 64-bit)
    o32[b + 2] = this.attrT[1]; o32[b + 3] = 0; // attr_valid_nsec, dummy
    this.attrWords(b + 4);
    this.ok(SIZE.attr_out);
  }

  /** entry_out for node `id` from the statx words of the last raw statx (see {@link attrFromStatx}). */
  entryFromStatx(id: number): void {
    const o32 = this.outWords;
    const b = (SIZE.out_header >> 2); // entry_out in words
    o32[b] = id % 0x100000000; o32[b + 1] = Math.floor(id / 0x100000000); // nodeid
    o32[b + 2] = 0; o32[b + 3] = 0; // generation
    o32[b + 4] = this.entryT32[0]!; o32[b + 5] = this.entryT32[1]!; // entry_valid
    o32[b + 6] = this.attrT32[0]!; o32[b + 7] = this.attrT32[1]!; // attr_valid
    o32[b + 8] = this.entryT[1]; o32[b + 9] = this.attrT[1]; // their nanoseconds
    this.attrWords(b + 10);
    this.ok(SIZE.entry_out);
  }

  /** fuse_attr at word `a` of the reply from {@link libc.statxWords}. */
  private attrWords(a: number): void {
    const o32 = this.outWords, x = libc.statxWords;
    o32[a] = x[8]!; o32[a + 1] = x[9]!; // ino
    o32[a + 2] = x[10]!; o32[a + 3] = x[11]!; // size
    o32[a + 4] = x[12]!; o32[a + 5] = x[13]!; // blocks
    o32[a + 6] = x[16]!; o32[a + 7] = x[17]!; // atime
    o32[a + 8] = x[28]!; o32[a + 9] = x[29]!; // mtime
    o32[a + 10] = x[24]!; o32[a + 11] = x[25]!; // ctime
    o32[a + 12] = x[18]!; o32[a + 13] = x[30]!; o32[a + 14] = x[26]!; // atime, mtime, ctime nsec
    o32[a + 15] = x[7]! & 0xffff; // mode (u16 in statx)
    o32[a + 16] = x[4]!; o32[a + 17] = x[5]!; o32[a + 18] = x[6]!; // nlink, uid, gid
    o32[a + 19] = libc.makedev(x[32]!, x[33]!); // rdev
    o32[a + 20] = x[1]!; o32[a + 21] = 0; // blksize, flags
  }

  writeOpen(off: number, o: Opened): void {
    const fh = o.handle.fh;
    this.u32(off, fh % 0x100000000); this.u32(off + 4, Math.floor(fh / 0x100000000));
    this.u32(off + 8, (o.backingId ? FOPEN.PASSTHROUGH : 0) | (o.direct ? FOPEN.DIRECT_IO : 0) | (o.handle.noflush ? FOPEN.NOFLUSH : 0));
    this.u32(off + 12, o.backingId);
  }

  data(buf: Buffer): void {
    buf.copy(this.out, SIZE.out_header);
    this.ok(buf.length);
  }

  /** Reply to INIT: take the kernel's version down to ours, agree the flags. */
  init(body: Buffer): void {
    const major = body.readUInt32LE(0), minor = body.readUInt32LE(4), maxReadahead = body.readUInt32LE(8);
    const b = this.out, o = SIZE.out_header;
    b.fill(0, o, o + SIZE.init_out);
    if (major > FUSE_KERNEL_VERSION) {
      // The kernel retries INIT with our major version.
      b.writeUInt32LE(FUSE_KERNEL_VERSION, o);
      b.writeUInt32LE(FUSE_KERNEL_MINOR_VERSION, o + 4);
      return this.ok(8);
    }
    if (major < FUSE_KERNEL_VERSION || minor < FUSE_MIN_MINOR_VERSION) {
      log.error(`kernel speaks FUSE ${major}.${minor}; provfs needs ${FUSE_KERNEL_VERSION}.${FUSE_MIN_MINOR_VERSION} or later`);
      return this.error(E.EPROTO);
    }
    let kflags = BigInt(body.readUInt32LE(12));
    if (kflags & INIT.INIT_EXT) kflags |= BigInt(body.readUInt32LE(16)) << 32n;
    // HANDLE_KILLPRIV_V2: the daemon clears set-user/group-id bits itself (SETATTR, OPEN and
    // CREATE with truncation, WRITE; see ops); in return the kernel marks the super block
    // SB_NOSEC and stops asking GETXATTR security.capability before every write(2).
    let want = INIT.ASYNC_READ | INIT.BIG_WRITES | INIT.MAX_PAGES | INIT.DO_READDIRPLUS |
      INIT.READDIRPLUS_AUTO | INIT.PARALLEL_DIROPS | INIT.CACHE_SYMLINKS | INIT.AUTO_INVAL_DATA |
      INIT.ASYNC_DIO | INIT.INIT_EXT | INIT.HANDLE_KILLPRIV_V2;
    if (this.opts.passthrough) want |= INIT.PASSTHROUGH;
    const flags = want & kflags;
    const negMinor = Math.min(minor, FUSE_KERNEL_MINOR_VERSION);
    const passthrough = (flags & INIT.PASSTHROUGH) !== 0n;
    const maxPages = Math.min(256, Math.floor(this.opts.maxWrite / 4096));
    b.writeUInt32LE(FUSE_KERNEL_VERSION, o);
    b.writeUInt32LE(negMinor, o + 4);
    b.writeUInt32LE(maxReadahead, o + 8);
    b.writeUInt32LE(Number(flags & 0xffffffffn), o + 12);
    b.writeUInt16LE(64, o + 16); // max_background
    b.writeUInt16LE(48, o + 18); // congestion_threshold
    b.writeUInt32LE(maxPages * 4096, o + 20); // max_write
    b.writeUInt32LE(1, o + 24); // time_gran: nanoseconds
    b.writeUInt16LE(maxPages, o + 28);
    b.writeUInt32LE(Number(flags >> 32n), o + 32);
    b.writeUInt32LE(passthrough ? 1 : 0, o + 36); // max_stack_depth: backing files on non-stacked file systems
    this.negotiated = { minor: negMinor, flags: Number(flags), passthrough, maxWrite: maxPages * 4096 };
    if (passthrough && this.opts.devFd >= 0) this.fs.passthrough = passthroughDevice(this.opts.devFd);
    this.ok(minor < 23 ? 24 : SIZE.init_out);
  }

  /** READDIR and READDIRPLUS replies. */
  readdir(h: InHeader, body: Buffer, plus: boolean): void {
    const fh = Number(body.readBigUInt64LE(0));
    const off = body.readBigUInt64LE(8);
    const size = Math.min(body.readUInt32LE(16), this.out.length - SIZE.out_header);
    const b = this.out;
    let pos = SIZE.out_header;
    const end = SIZE.out_header + size;
    const parent = this.fs.nodes.handle(fh).node;
    this.fs.readdir(fh, BigInt.asIntN(64, off), (e) => {
      const nameOff = plus ? SIZE.entry_out + DIRENT_NAME_OFFSET : DIRENT_NAME_OFFSET;
      const reclen = recAlign(nameOff + e.name.length);
      if (pos + reclen > end) return false;
      let ino = e.ino;
      if (plus) {
        const dot = e.name.length <= 2 && e.name[0] === 0x2e && (e.name.length === 1 || e.name[1] === 0x2e);
        let entry: Entry | null = null;
        if (!dot && this.fs.nodes.size < this.nodeCap) {
          try { entry = this.fs.lookup(ctxOf(h), parent, e.name); } catch { entry = null; }
        }
        if (entry) {
          this.writeEntry(pos, entry);
          ino = entry.stat.ino;
        } else {
          b.fill(0, pos, pos + SIZE.entry_out);
        }
      }
      const d = pos + (plus ? SIZE.entry_out : 0);
      b.writeBigUInt64LE(ino, d);
      b.writeBigInt64LE(e.off, d + 8);
      b.writeUInt32LE(e.name.length, d + 16);
      b.writeUInt32LE(e.type, d + 20);
      e.name.copy(b, d + 24);
      b.fill(0, d + 24 + e.name.length, pos + reclen);
      pos += reclen;
      return true;
    });
    this.ok(pos - SIZE.out_header);
  }
}

/** Kernel passthrough on connection `devFd`: register and drop backing files by ioctl. */
export function passthroughDevice(devFd: number): PassthroughDevice {
  const map = Buffer.alloc(SIZE.backing_map);
  const idBuf = Buffer.alloc(4);
  return {
    open(fd: number): number {
      map.writeInt32LE(fd, 0);
      return libc.ioctl(devFd, DEV_IOC.BACKING_OPEN, map);
    },
    close(backingId: number): void {
      idBuf.writeUInt32LE(backingId, 0);
      try { libc.ioctl(devFd, DEV_IOC.BACKING_CLOSE, idBuf); } catch { /* gone with the connection */ }
    },
  };
}

function setattrIn(b: Buffer): SetattrIn {
  return {
    valid: b.readUInt32LE(0), fh: Number(b.readBigUInt64LE(8)), size: b.readBigUInt64LE(16),
    atime: b.readBigInt64LE(32), mtime: b.readBigInt64LE(40),
    atimeNs: b.readUInt32LE(56), mtimeNs: b.readUInt32LE(60), mode: b.readUInt32LE(68),
    uid: b.readUInt32LE(76), gid: b.readUInt32LE(80),
  };
}

function xattrReply(d: Dispatcher, want: number, r: { size: number; value: Buffer | null }): void {
  if (want === 0) {
    d.out.writeUInt32LE(r.size, SIZE.out_header);
    d.out.writeUInt32LE(0, SIZE.out_header + 4);
    return d.ok(SIZE.getxattr_out);
  }
  d.data(r.value!);
}

/** The handler table, keyed by opcode. */
/** What a resent request's error means when the dead daemon already did it (see finishResent). */
const RESENT_DONE: Partial<Record<number, { errno: number; nameAt?: number; retryWithout?: number }>> = {
  [OP.CREATE]: { errno: E.EEXIST, retryWithout: O.EXCL },
  [OP.MKDIR]: { errno: E.EEXIST, nameAt: SIZE.mkdir_in },
  [OP.MKNOD]: { errno: E.EEXIST, nameAt: SIZE.mknod_in },
  [OP.SYMLINK]: { errno: E.EEXIST, nameAt: 0 },
  [OP.LINK]: { errno: E.EEXIST, nameAt: SIZE.link_in },
  [OP.UNLINK]: { errno: E.ENOENT },
  [OP.RMDIR]: { errno: E.ENOENT },
};

export const HANDLERS: Record<number, Handler> = {
  [OP.INIT]: (d, _h, b) => d.init(b),
  [OP.DESTROY]: (d) => d.ok(0),
  [OP.LOOKUP]: (d, h, b) => {
    let end = b.indexOf(0);
    if (end < 0) end = b.length;
    const name = b.subarray(0, end);
    // A file the table holds (every repeated lookup): attributes copied as words, no Stat. The
    // name goes to statx with the NUL the request ends it with (the body is exactly that).
    const known = d.fs.lookupKnownRaw(id(h), name, end === b.length - 1 ? b : undefined);
    if (known) return d.entryFromStatx(known.id);
    if (known === undefined) return d.entry(d.fs.lookupNew(id(h), name));
    if (d.opts.timeouts.negative <= 0) return d.error(E.ENOENT);
    d.writeEntry(SIZE.out_header, null);
    d.ok(SIZE.entry_out);
  },
  [OP.FORGET]: (d, h, b) => d.fs.forget(id(h), Number(b.readBigUInt64LE(0))),
  [OP.BATCH_FORGET]: (d, _h, b) => {
    const count = b.readUInt32LE(0);
    for (let i = 0; i < count; i++) {
      const o = SIZE.batch_forget_in + i * SIZE.forget_one;
      d.fs.forget(Number(b.readBigUInt64LE(o)), Number(b.readBigUInt64LE(o + 8)));
    }
  },
  [OP.INTERRUPT]: () => { /* requests are answered synchronously; nothing to interrupt */ },
  [OP.GETATTR]: (d, h) => { d.fs.getattrRaw(id(h)); d.attrFromStatx(); },
  [OP.SETATTR]: (d, h, b) => d.attr(d.fs.setattr(ctxOf(h), id(h), setattrIn(b))),
  [OP.READLINK]: (d, h) => d.data(d.fs.readlink(ctxOf(h), id(h))),
  [OP.SYMLINK]: (d, h, b) => {
    const [name, next] = cname(b);
    const [target] = cname(b, next);
    d.entry(d.fs.symlink(ctxOf(h), id(h), name, target));
  },
  [OP.MKNOD]: (d, h, b) => {
    const [name] = cname(b, SIZE.mknod_in);
    d.entry(d.fs.mknod(ctxOf(h), id(h), name, b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8)));
  },
  [OP.MKDIR]: (d, h, b) => {
    const [name] = cname(b, SIZE.mkdir_in);
    d.entry(d.fs.mkdir(ctxOf(h), id(h), name, b.readUInt32LE(0), b.readUInt32LE(4)));
  },
  [OP.UNLINK]: (d, h, b) => {
    const [name, next] = cname(b);
    // The body is the name and its NUL (next within it): the system calls take it as it lies.
    d.fs.unlink(ctxOf(h), id(h), name, next <= b.length ? b : undefined);
    d.ok(0);
  },
  [OP.RMDIR]: (d, h, b) => { d.fs.rmdir(ctxOf(h), id(h), cname(b)[0]); d.ok(0); },
  [OP.RENAME]: (d, h, b) => {
    const [from, next] = cname(b, SIZE.rename_in);
    const [to] = cname(b, next);
    d.fs.rename(ctxOf(h), id(h), from, Number(b.readBigUInt64LE(0)), to, 0);
    d.ok(0);
  },
  [OP.RENAME2]: (d, h, b) => {
    const [from, next] = cname(b, SIZE.rename2_in);
    const [to] = cname(b, next);
    d.fs.rename(ctxOf(h), id(h), from, Number(b.readBigUInt64LE(0)), to, b.readUInt32LE(8));
    d.ok(0);
  },
  [OP.LINK]: (d, h, b) => {
    const [name] = cname(b, SIZE.link_in);
    d.entry(d.fs.link(ctxOf(h), Number(b.readBigUInt64LE(0)), id(h), name));
  },
  [OP.OPEN]: (d, h, b) => {
    const o = d.fs.open(ctxOf(h), id(h), b.readUInt32LE(0), (b.readUInt32LE(4) & OPEN_KILL_SUIDGID) !== 0);
    d.writeOpen(SIZE.out_header, o);
    d.ok(SIZE.open_out);
  },
  [OP.CREATE]: (d, h, b) => {
    const [name] = cname(b, SIZE.create_in);
    const { entry, opened } = d.fs.create(ctxOf(h), id(h), name, b.readUInt32LE(4), b.readUInt32LE(0), b.readUInt32LE(8), (b.readUInt32LE(12) & OPEN_KILL_SUIDGID) !== 0);
    d.writeEntry(SIZE.out_header, entry);
    d.writeOpen(SIZE.out_header + SIZE.entry_out, opened);
    d.ok(SIZE.entry_out + SIZE.open_out);
  },
  [OP.READ]: (d, _h, b) => {
    const n = d.fs.read(Number(b.readBigUInt64LE(0)), b.readBigUInt64LE(8), b.readUInt32LE(16), d.out.subarray(SIZE.out_header));
    d.ok(n);
  },
  [OP.WRITE]: (d, _h, b) => {
    const size = b.readUInt32LE(16);
    const n = d.fs.write(Number(b.readBigUInt64LE(0)), b.readBigUInt64LE(8), b.subarray(SIZE.write_in, SIZE.write_in + size), (b.readUInt32LE(20) & WRITE_KILL_SUIDGID) !== 0);
    d.out.writeUInt32LE(n, SIZE.out_header);
    d.out.writeUInt32LE(0, SIZE.out_header + 4);
    d.ok(SIZE.write_out);
  },
  [OP.STATFS]: (d, h) => {
    const s = d.fs.statfs(ctxOf(h), id(h));
    const b = d.out, o = SIZE.out_header;
    b.fill(0, o, o + SIZE.statfs_out);
    b.writeBigUInt64LE(s.blocks, o);
    b.writeBigUInt64LE(s.bfree, o + 8);
    b.writeBigUInt64LE(s.bavail, o + 16);
    b.writeBigUInt64LE(s.files, o + 24);
    b.writeBigUInt64LE(s.ffree, o + 32);
    b.writeUInt32LE(Number(s.bsize), o + 40);
    b.writeUInt32LE(Number(s.namelen), o + 44);
    b.writeUInt32LE(Number(s.frsize), o + 48);
    d.ok(SIZE.statfs_out);
  },
  [OP.FLUSH]: (d, h, b) => { d.fs.flush(ctxOf(h), Number(b.readBigUInt64LE(0)), id(h)); d.ok(0); },
  [OP.RELEASE]: (d, h, b) => {
    void RELEASE_FLUSH;
    d.fs.release(ctxOf(h), Number(b.readBigUInt64LE(0)));
    d.ok(0);
  },
  [OP.FSYNC]: (d, h, b) => {
    const fh = Number(b.readBigUInt64LE(0)), dataOnly = (b.readUInt32LE(8) & FSYNC_FDATASYNC) !== 0;
    // Synced on the helper thread, which closes its fd. An FSYNC of a file with no fd open used
    // to be synced here, stopping the loop (and a quiescing upgrade) for the whole disk wait.
    const fd = d.opts.offloadFsync ? d.fs.fsyncFd(fh, id(h)) : -1;
    if (fd >= 0) return d.opts.offloadFsync!(d.uniqueBytes(), fd, dataOnly);
    d.fs.fsync(ctxOf(h), fh, dataOnly, id(h));
    d.ok(0);
  },
  [OP.OPENDIR]: (d, h) => {
    const handle = d.fs.opendir(ctxOf(h), id(h));
    d.writeOpen(SIZE.out_header, { handle, backingId: 0, direct: false });
    d.ok(SIZE.open_out);
  },
  [OP.READDIR]: (d, h, b) => d.readdir(h, b, false),
  [OP.READDIRPLUS]: (d, h, b) => d.readdir(h, b, true),
  [OP.RELEASEDIR]: (d, h, b) => { d.fs.releasedir(ctxOf(h), Number(b.readBigUInt64LE(0))); d.ok(0); },
  [OP.FSYNCDIR]: (d, h, b) => {
    d.fs.fsyncdir(ctxOf(h), Number(b.readBigUInt64LE(0)), (b.readUInt32LE(8) & FSYNC_FDATASYNC) !== 0);
    d.ok(0);
  },
  [OP.SETXATTR]: (d, h, b) => {
    // Without FUSE_SETXATTR_EXT the kernel sends the 8-byte compat header {size, flags}.
    const size = b.readUInt32LE(0), flags = b.readUInt32LE(4);
    const [name, next] = cname(b, 8);
    d.fs.setxattr(ctxOf(h), id(h), name, b.subarray(next, next + size), flags);
    d.ok(0);
  },
  [OP.GETXATTR]: (d, h, b) => {
    const want = b.readUInt32LE(0);
    const [name] = cname(b, SIZE.getxattr_in);
    xattrReply(d, want, d.fs.getxattr(ctxOf(h), id(h), name, want));
  },
  [OP.LISTXATTR]: (d, h, b) => {
    const want = b.readUInt32LE(0);
    xattrReply(d, want, d.fs.listxattr(ctxOf(h), id(h), want));
  },
  [OP.REMOVEXATTR]: (d, h, b) => { d.fs.removexattr(ctxOf(h), id(h), cname(b)[0]); d.ok(0); },
  [OP.ACCESS]: (d, h, b) => { d.fs.access(ctxOf(h), id(h), b.readUInt32LE(0)); d.ok(0); },
  [OP.FALLOCATE]: (d, _h, b) => {
    d.fs.fallocate(Number(b.readBigUInt64LE(0)), b.readUInt32LE(24), b.readBigUInt64LE(8), b.readBigUInt64LE(16));
    d.ok(0);
  },
  [OP.LSEEK]: (d, _h, b) => {
    const r = d.fs.lseek(Number(b.readBigUInt64LE(0)), b.readBigUInt64LE(8), b.readUInt32LE(16));
    d.out.writeBigUInt64LE(r, SIZE.out_header);
    d.ok(SIZE.lseek_out);
  },
};

