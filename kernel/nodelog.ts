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
 * Record layout (16-byte header, little-endian): u8 kind, u8 payload length, i16 0, i32 (handle
 * type | backing id), f64 node id; then the payload (handle bytes, or INIT JSON).
 */
import { openSync, writeSync, closeSync, readFileSync, constants as C } from 'node:fs';
import type { FileHandle } from './libc.js';

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

export class NodeLog {
  private readonly fd: number;
  private readonly rec = Buffer.alloc(HEAD * (GONE_BATCH + 1) + 128);
  /** Gone records waiting for the next write (their bytes sit at the start of `rec`). */
  private gones = 0;

  /** Open for appending; `fresh` empties it (a new mount). */
  constructor(readonly path: string, fresh: boolean) {
    this.fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_APPEND | (fresh ? C.O_TRUNC : 0), 0o600);
  }

  node(id: number, h: FileHandle): void {
    const b = this.rec, at = this.gones * HEAD;
    b.writeUInt8(KIND_NODE, at);
    b.writeUInt8(h.bytes.length, at + 1);
    b.writeInt16LE(0, at + 2);
    b.writeInt32LE(h.type, at + 4);
    b.writeDoubleLE(id, at + 8);
    h.bytes.copy(b, at + HEAD);
    this.gones = 0;
    writeSync(this.fd, b, 0, at + HEAD + h.bytes.length);
  }

  /** The daemon dropped node `id` (written with the next node record, or once 64 wait). */
  gone(id: number): void {
    const b = this.rec, at = this.gones * HEAD;
    b.writeUInt8(KIND_GONE, at);
    b.writeUInt8(0, at + 1);
    b.writeInt16LE(0, at + 2);
    b.writeInt32LE(0, at + 4);
    b.writeDoubleLE(id, at + 8);
    if (++this.gones === GONE_BATCH) this.flush();
  }

  /** Write the gone records held back. */
  flush(): void {
    if (this.gones === 0) return;
    const n = this.gones * HEAD;
    this.gones = 0;
    writeSync(this.fd, this.rec, 0, n);
  }

  backing(id: number, backingId: number, open: boolean): void {
    this.flush();
    const b = this.rec;
    b.writeUInt8(open ? KIND_BACKING : KIND_BACKING_CLOSE, 0);
    b.writeUInt8(0, 1);
    b.writeInt16LE(0, 2);
    b.writeInt32LE(backingId, 4);
    b.writeDoubleLE(id, 8);
    writeSync(this.fd, b, 0, HEAD);
  }

  /** What INIT negotiated on this connection (a restarted daemon never sees INIT). */
  init(negotiated: object): void {
    this.flush();
    const json = Buffer.from(JSON.stringify(negotiated));
    if (json.length > 255) throw new Error('INIT record too long');
    const b = Buffer.alloc(HEAD + json.length);
    b.writeUInt8(KIND_INIT, 0);
    b.writeUInt8(json.length, 1);
    json.copy(b, HEAD);
    writeSync(this.fd, b);
  }

  close(): void {
    try { this.flush(); } finally { closeSync(this.fd); }
  }

  static read(path: string): NodeLogContents {
    const out: NodeLogContents = { nodes: new Map(), backings: new Map(), maxId: 1 };
    parseNodeLog(readFileSync(path), 0, (r) => applyRecord(out, r));
    return out;
  }
}

/** Fold one record into what recovery knows. */
export function applyRecord(out: NodeLogContents, r: NodeLogRecord): void {
  switch (r.kind) {
    case KIND_NODE: out.nodes.set(r.id, { type: r.word, bytes: Buffer.from(r.payload) }); break;
    case KIND_GONE: out.nodes.delete(r.id); out.backings.delete(r.id); break;
    case KIND_BACKING: out.backings.set(r.id, r.word); break;
    case KIND_BACKING_CLOSE: out.backings.delete(r.id); break;
    case KIND_INIT: out.init = JSON.parse(r.payload.toString()); return;
  }
  if (r.id > out.maxId) out.maxId = r.id;
}
