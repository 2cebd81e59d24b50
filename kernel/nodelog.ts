/**
 * @module kernel/nodelog
 * The node log: what a restarted daemon needs to answer for node ids the kernel still holds
 * after the previous daemon crashed. Each new node's id and its backing file handle, and each
 * passthrough backing id registered on the connection (and closed), is appended — before the
 * kernel learns the id from the reply — to `/run/prov/provfs/<stream>.nodes` (0600). A node the
 * daemon drops (the kernel forgot it) gets a `gone` record, so the log's live set is the
 * daemon's table and a follower (the fd keeper's warm standby, kernel/nodefollow) holds no more
 * than that. Gone records are not urgent (a lost one only leaves a node the kernel never asks
 * for): they wait in memory and go out with the next node record, in the same write(2).
 *
 * Recovery reopens every live node by handle; lookup counts are not kept (recovered nodes are
 * never dropped, a bounded leak until unmount) and open handles are unknown (their passthrough
 * I/O never needed the daemon; RELEASE/FLUSH of an unknown handle are answered from the node id).
 *
 * Compaction: a long-lived mount makes and forgets nodes without end, and a log that only grows
 * would make every recovery (and every new standby) read all of it. Once the log is 8 MiB and
 * four times what its live nodes need, the daemon writes a new one beside it — INIT, then one
 * record per live node and registered backing id, a slice at a time between requests
 * ({@link NodeLog.step}) — while every new record goes to both files, then renames it over the
 * old one. A reader of the old file finds it complete up to the switch (kernel/nodefollow reads
 * the old file to its end, then the new one from its start); a crash at any moment leaves one
 * complete log under the name. A daemon that took over an existing log first learns its live set
 * by reading it, in slices too.
 *
 * Record layout (16-byte header, little-endian): u8 kind, u8 payload length, i16 0, i32 (handle
 * type | backing id), f64 node id; then the payload (handle bytes, or INIT JSON).
 */
import { openSync, writeSync, closeSync, readFileSync, readSync, fstatSync, statSync, renameSync, rmSync, constants as C } from 'node:fs';
import * as libc from './libc.js';
import type { FileHandle } from './libc.js';
import { logger } from '../collector/log.js';

const log = logger('provfs');

export const KIND_NODE = 1, KIND_BACKING = 2, KIND_BACKING_CLOSE = 3, KIND_INIT = 4, KIND_GONE = 5;
const HEAD = 16;
/** Gone records held back at most (then written on their own). */
const GONE_BATCH = 64;

export interface NodeLogEntry {
  id: number;
  handle?: FileHandle;
  backingId?: number;
}

/** What recovery learns from a node log. */
export interface NodeLogContents {
  /** Live nodes (made and not gone), in the order they were made. */
  nodes: Map<number, FileHandle>;
  /** Backing ids still registered on the connection, per node id. */
  backings: Map<number, number>;
  maxId: number;
  /** What INIT negotiated (JSON written by the daemon that answered INIT). */
  init?: unknown;
}

/** One record as {@link parseNodeLog} hands it over (`bytes` is a view into the buffer parsed). */
export interface NodeLogRecord {
  kind: number;
  id: number;
  /** Handle type (KIND_NODE) or backing id (KIND_BACKING*). */
  word: number;
  payload: Buffer;
}

/** Write one record's 16-byte header at `at` of `b`; returns where its payload goes. */
export function writeRecordHeader(b: Buffer, at: number, kind: number, payloadLength: number, word: number, id: number): number {
  b.writeUInt8(kind, at);
  b.writeUInt8(payloadLength, at + 1);
  b.writeInt16LE(0, at + 2);
  b.writeInt32LE(word, at + 4);
  b.writeDoubleLE(id, at + 8);
  return at + HEAD;
}

/** A whole INIT record: what INIT negotiated, as JSON. */
function initRecord(negotiated: unknown): Buffer {
  const json = Buffer.from(JSON.stringify(negotiated));
  if (json.length > 255) throw new Error('INIT record too long');
  const b = Buffer.alloc(HEAD + json.length);
  json.copy(b, writeRecordHeader(b, 0, KIND_INIT, json.length, 0, 0));
  return b;
}

/**
 * Visit every whole record of `b` from `at`; returns the offset after the last whole one (a torn
 * tail of a crash, or a record still being appended, is left for later). An unknown kind ends
 * the parse there too (a foreign or damaged file: what came before is used).
 */
export function parseNodeLog(b: Buffer, at: number, visit: (r: NodeLogRecord) => void): { end: number; bad: boolean } {
  let i = at;
  while (i + HEAD <= b.length) {
    const kind = b[i]!, n = b[i + 1]!;
    if (kind < KIND_NODE || kind > KIND_GONE) return { end: i, bad: true };
    if (i + HEAD + n > b.length) break;
    visit({ kind, id: b.readDoubleLE(i + 8), word: b.readInt32LE(i + 4), payload: b.subarray(i + HEAD, i + HEAD + n) });
    i += HEAD + n;
  }
  return { end: i, bad: false };
}

/** Bytes of node records kept in memory at most while the log cannot be written. */
const NODELOG_HOLD_BYTES = 16 << 20;
/**
 * Room the log takes ahead of its end (fallocate with FALLOC_FL_KEEP_SIZE: its size, and so what
 * readers see, is unchanged), renewed once half of it is used: on a runtime directory that fills
 * up, the log goes on writing into what is left of it (a node record is about 36 bytes: some
 * 15,000–29,000 nodes) instead of keeping them in memory, where a daemon killed meanwhile would
 * take them along and its successor would answer ESTALE for their files.
 */
export const NODELOG_RESERVE_BYTES = 1 << 20;
const FALLOC_FL_KEEP_SIZE = 1;
/** When to compact: the log at least this big … */
const COMPACT_MIN = 8 << 20;
/** … and this many times what its live records need. */
const COMPACT_RATIO = 4;

export interface NodeLogOptions {
  /** Compact from this size on (default 8 MiB; tests use less). */
  compactMin?: number;
}

export class NodeLog {
  private fd: number;
  private readonly rec = Buffer.alloc(HEAD * (GONE_BATCH + 1) + 128);
  /** Gone records waiting for the next write (their bytes sit at the start of `rec`). */
  private gones = 0;
  /** Bytes in the file (what was there at open, plus what this writer appended). */
  private bytes = 0;
  /** What the log says is live: null until learnt (a log taken over is read in slices first). */
  private live: NodeLogContents | null = null;
  /** Reading a log taken over: where the reader is, what it learnt so far, its fd and buffer (kept across slices). */
  private loadAt = 0;
  private loading: { out: NodeLogContents; fd: number; buf: Buffer } | null = null;
  /** A compaction under way: the new file, its writer's position in the live nodes and backings. */
  private compact: { fd: number; path: string; nodes: Iterator<[number, FileHandle]>; backings: Iterator<[number, number]> | null; buf: Buffer } | null = null;
  private readonly compactMin: number;
  /** After a failed compaction: not again before the log is this big. */
  private retryAt = 0;
  /** Compactions done (for tests and the log). */
  compactions = 0;
  /** The log's room taken ahead reaches this offset; a new reservation is due from {@link reserveAt}. */
  private reservedTo = 0;
  private reserveAt = 0;

  /** Open for appending; `fresh` empties it (a new mount). */
  constructor(readonly path: string, fresh: boolean, o: NodeLogOptions = {}) {
    this.fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_APPEND | (fresh ? C.O_TRUNC : 0), 0o600);
    this.bytes = fresh ? 0 : fstatSync(this.fd).size;
    if (fresh || this.bytes === 0) this.live = { nodes: new Map(), backings: new Map(), maxId: 1 };
    this.compactMin = o.compactMin ?? COMPACT_MIN;
    this.reserve();
  }

  /**
   * Take {@link NODELOG_RESERVE_BYTES} past the end of the log (see there). Without room for it,
   * or on a file system without fallocate, the log goes on without (what room was taken before
   * is still used), and tries again 64 KiB of records later.
   */
  private reserve(): void {
    try {
      libc.fallocate(this.fd, FALLOC_FL_KEEP_SIZE, BigInt(this.bytes), BigInt(NODELOG_RESERVE_BYTES));
      this.reservedTo = this.bytes + NODELOG_RESERVE_BYTES;
      this.reserveAt = this.bytes + NODELOG_RESERVE_BYTES / 2;
    } catch {
      this.reserveAt = this.bytes + (64 << 10);
    }
  }

  /** How far the log's room taken ahead reaches past its end (bytes; for tests). */
  get reservedAhead(): number {
    return Math.max(0, this.reservedTo - this.bytes);
  }

  /**
   * The log was replaced under this writer (a predecessor compacted it after this one opened
   * it: an upgrade's successor, a standby): append to the one under the name from now on.
   */
  reopenIfReplaced(): void {
    let now: number;
    try { now = statSync(this.path).ino; } catch { return; }
    if (now === fstatSync(this.fd).ino) return;
    this.flush();
    closeSync(this.fd);
    this.fd = openSync(this.path, C.O_WRONLY | C.O_APPEND);
    this.bytes = fstatSync(this.fd).size;
    this.reservedTo = 0;
    this.reserve();
    this.live = this.bytes === 0 ? { nodes: new Map(), backings: new Map(), maxId: 1 } : null;
    this.stopLoading();
    this.loadAt = 0;
  }

  /**
   * Why the log cannot be written now (its disk is full), or null. Records made meanwhile wait in
   * memory, in order, and go to the log ahead of the next ones once it takes them: crash survival
   * is back then. The file system serves on either way, rather than failing the requests whose
   * nodes could not be logged.
   */
  stalled: Error | null = null;
  /** Past {@link NODELOG_HOLD_BYTES} waiting, the log gives up until the mount is remounted. */
  broken = false;
  private held: Buffer[] = [];
  private heldBytes = 0;

  /** Append `n` bytes of `b` to the log (and to the compacted one being written). */
  private put(b: Buffer, n: number): void {
    if (this.broken) return;
    if (this.stalled && !this.writeHeld()) { this.hold(b.subarray(0, n)); return; }
    const wrote = this.write(b, n);
    if (wrote < n) { this.hold(b.subarray(wrote, n)); return; }
    if (this.compact) {
      try {
        writeSync(this.compact.fd, b, 0, n);
      } catch {
        this.abortCompaction(); // the old log is complete
        this.retryAt = this.bytes + this.compactMin;
      }
    }
  }

  /** Write `b[0, n)` to the log; how much went (all of it, or less with {@link stalled} set). */
  private write(b: Buffer, n: number): number {
    let wrote = 0;
    try {
      wrote = writeSync(this.fd, b, 0, n);
      if (wrote < n) throw new Error(`short write (${wrote} of ${n} bytes)`);
    } catch (e) {
      if (!this.stalled) {
        this.abortCompaction();
        log.error(`node log ${this.path} cannot be written (${(e as Error).message}): crash survival waits until it can (a daemon killed meanwhile has a successor that does not know the nodes made since); the mount serves on`);
      }
      this.stalled = e as Error;
    }
    this.bytes += wrote;
    if (this.bytes >= this.reserveAt && !this.stalled) this.reserve();
    return wrote;
  }

  /** Keep bytes the log could not take (a copy: the record buffer is reused). */
  private hold(bytes: Buffer): void {
    this.held.push(Buffer.from(bytes));
    this.heldBytes += bytes.length;
    if (this.heldBytes > NODELOG_HOLD_BYTES) {
      this.broken = true;
      this.held = [];
      this.heldBytes = 0;
      log.error(`node log ${this.path}: ${NODELOG_HOLD_BYTES >> 20} MiB of records waited for room; crash survival is off until the mount is remounted`);
    }
  }

  /** Write what waits, in order; true once all of it is in the log (crash survival is back). */
  private writeHeld(): boolean {
    while (this.held.length > 0) {
      const h = this.held[0]!;
      const wrote = this.write(h, h.length);
      this.heldBytes -= wrote;
      if (wrote < h.length) { this.held[0] = h.subarray(wrote); return false; }
      this.held.shift();
    }
    log.warn(`node log ${this.path} written again: crash survival is back`);
    this.stalled = null;
    return true;
  }

  node(id: number, h: FileHandle): void {
    const b = this.rec, at = this.gones * HEAD;
    h.bytes.copy(b, writeRecordHeader(b, at, KIND_NODE, h.bytes.length, h.type, id));
    this.gones = 0;
    this.put(b, at + HEAD + h.bytes.length);
    this.live?.nodes.set(id, { type: h.type, bytes: Buffer.from(h.bytes) });
  }

  /** The daemon dropped node `id` (written with the next node record, or once 64 wait). */
  gone(id: number): void {
    writeRecordHeader(this.rec, this.gones * HEAD, KIND_GONE, 0, 0, id);
    if (this.live) { this.live.nodes.delete(id); this.live.backings.delete(id); }
    if (++this.gones === GONE_BATCH) this.flush();
  }

  /** Write the gone records held back. */
  flush(): void {
    if (this.gones === 0) return;
    const n = this.gones * HEAD;
    this.gones = 0;
    this.put(this.rec, n);
  }

  backing(id: number, backingId: number, open: boolean): void {
    this.flush();
    writeRecordHeader(this.rec, 0, open ? KIND_BACKING : KIND_BACKING_CLOSE, 0, backingId, id);
    this.put(this.rec, HEAD);
    if (this.live) { if (open) this.live.backings.set(id, backingId); else this.live.backings.delete(id); }
  }

  /** What INIT negotiated on this connection (a restarted daemon never sees INIT). */
  init(negotiated: object): void {
    this.flush();
    const b = initRecord(negotiated);
    this.put(b, b.length);
    if (this.live) this.live.init = negotiated;
  }

  /** Whether {@link step} has work: a compaction under way or due (or, to tell, the log taken over to learn). */
  get due(): boolean {
    if (this.broken || this.stalled) return false;
    if (this.compact) return true;
    if (this.bytes < this.compactMin || this.bytes < this.retryAt) return false;
    return this.live === null || this.bytes >= COMPACT_RATIO * this.liveBytes();
  }

  /** About what the live records need in a compacted log. */
  private liveBytes(): number {
    return this.live!.nodes.size * (HEAD + 32) + this.live!.backings.size * HEAD + 512;
  }

  /**
   * Work for about `budgetMs` between requests: read on in a log taken over, start a compaction
   * when one is due, write the compacted log on and switch to it. True when nothing is left.
   */
  step(budgetMs: number): boolean {
    if (this.broken || this.stalled) return true;
    const until = performance.now() + budgetMs;
    if (!this.live) {
      if (this.bytes < this.compactMin) return true;
      this.flush(); // the reader must find every record this writer made
      return this.loadSome(until);
    }
    if (!this.compact) {
      if (this.bytes < this.compactMin || this.bytes < COMPACT_RATIO * this.liveBytes()) return true;
      this.startCompaction();
    }
    try {
      return this.writeSome(until);
    } catch (e) {
      // The old log is complete: give this compaction up; the next one once the log has grown.
      this.abortCompaction();
      this.retryAt = this.bytes + this.compactMin;
      throw e;
    }
  }

  /** Read the log taken over on, up to `until`; the live set is known once it reaches the end. */
  private loadSome(until: number): boolean {
    const l = this.loading ??= { out: { nodes: new Map(), backings: new Map(), maxId: 1 }, fd: openSync(this.path, C.O_RDONLY), buf: Buffer.allocUnsafe(256 << 10) };
    do {
      const got = readSync(l.fd, l.buf, 0, l.buf.length, this.loadAt);
      if (got === 0) {
        this.learnt(l.out);
        return false; // a compaction may be due now
      }
      const { end, bad } = parseNodeLog(l.buf.subarray(0, got), 0, (r) => applyRecord(l.out, r));
      if (bad || end === 0) { this.learnt(l.out); return true; } // damaged: use what came before (no compaction would keep what follows)
      this.loadAt += end;
    } while (performance.now() < until);
    return false;
  }

  /** The log taken over is read: its live set is known, the reader's fd goes. */
  private learnt(out: NodeLogContents): void {
    this.live = out;
    this.stopLoading();
  }

  private stopLoading(): void {
    if (!this.loading) return;
    closeSync(this.loading.fd);
    this.loading = null;
  }

  private startCompaction(): void {
    const path = compactPath(this.path);
    const fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_TRUNC | C.O_APPEND, 0o600);
    this.compact = { fd, path, nodes: this.live!.nodes[Symbol.iterator](), backings: null, buf: Buffer.allocUnsafe(64 << 10) };
    if (this.live!.init !== undefined) writeSync(fd, initRecord(this.live!.init));
  }

  /**
   * Write live records to the compacted log up to `until`. The iterators are live: a node made
   * meanwhile is written twice (harmless), one gone meanwhile not at all (its gone record went
   * to both files). Then the switch.
   */
  private writeSome(until: number): boolean {
    const c = this.compact!;
    let at = 0, k = 0;
    const out = (): void => { if (at > 0) writeSync(c.fd, c.buf, 0, at); at = 0; };
    for (;;) {
      if (at + HEAD + 128 > c.buf.length) { out(); if (performance.now() >= until) return false; }
      if (!c.backings) {
        const n = c.nodes.next();
        if (n.done) { c.backings = this.live!.backings[Symbol.iterator](); continue; }
        const [id, h] = n.value;
        at = writeRecordHeader(c.buf, at, KIND_NODE, h.bytes.length, h.type, id);
        at += h.bytes.copy(c.buf, at);
      } else {
        const n = c.backings.next();
        if (n.done) break;
        const [id, bid] = n.value;
        at = writeRecordHeader(c.buf, at, KIND_BACKING, 0, bid, id);
      }
      if ((++k & 63) === 0 && performance.now() >= until) { out(); return false; }
    }
    out();
    // Held-back gone records go to both files first; then the new log takes the name.
    this.flush();
    renameSync(c.path, this.path);
    closeSync(this.fd);
    this.fd = c.fd;
    this.bytes = fstatSync(c.fd).size;
    this.reservedTo = 0;
    this.reserve();
    this.compact = null;
    this.compactions++;
    return true;
  }

  /** Give up a compaction under way (the daemon hands the log over): the old log is complete. */
  private abortCompaction(): void {
    if (!this.compact) return;
    closeSync(this.compact.fd);
    rmSync(this.compact.path, { force: true });
    this.compact = null;
  }

  close(): void {
    try { this.flush(); } finally { this.abortCompaction(); this.stopLoading(); closeSync(this.fd); }
  }

  static read(path: string): NodeLogContents {
    const out: NodeLogContents = { nodes: new Map(), backings: new Map(), maxId: 1 };
    parseNodeLog(readFileSync(path), 0, (r) => applyRecord(out, r));
    return out;
  }
}

/** Where a compaction writes the new log before it takes the name. */
export function compactPath(path: string): string {
  return `${path}.compact`;
}

/** Where {@link applyRecord} puts live nodes: a Map, or a follower's table (kernel/nodefollow). */
export interface NodeSet {
  set(id: number, h: FileHandle): unknown;
  delete(id: number): unknown;
}

/** What a reader of a node log learns, record by record (see {@link applyRecord}). */
export interface NodeLogFold {
  nodes: NodeSet;
  backings: Map<number, number>;
  maxId: number;
  init?: unknown;
}

/**
 * Fold one record into what a reader knows: recovery reading a whole log ({@link NodeLog.read},
 * a log taken over) and the standby following one (kernel/nodefollow).
 */
export function applyRecord(out: NodeLogFold, r: NodeLogRecord): void {
  switch (r.kind) {
    case KIND_NODE: out.nodes.set(r.id, { type: r.word, bytes: Buffer.from(r.payload) }); break;
    case KIND_GONE: out.nodes.delete(r.id); out.backings.delete(r.id); break;
    case KIND_BACKING: out.backings.set(r.id, r.word); break;
    case KIND_BACKING_CLOSE: out.backings.delete(r.id); break;
    case KIND_INIT: out.init = JSON.parse(r.payload.toString()); return;
  }
  if (r.id > out.maxId) out.maxId = r.id;
}
