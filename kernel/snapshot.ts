/**
 * @module kernel/snapshot
 * The node-table snapshot of state version 3, in a compact binary form written in chunks: the
 * old loop takes the table's records at one instant (`toState`, cheap) and then encodes and
 * writes them a slice at a time between requests, so the snapshot never pauses serving for more
 * than a fraction of a millisecond (v8.serialize of the whole table took 6 ms per 8,000 nodes,
 * in one piece). Records are copies taken at that instant; nodes changed while the chunks are
 * written are in the delta the successor applies afterwards (tracking began before `toState`).
 *
 * File layout (little-endian): magic `PVS3`, u32 header length, header JSON (everything but the
 * table's records), then `nodes` node records and `handles` handle records:
 * - node: f64 id, i32 fd, f64 dev, u64 ino, u32 type, f64 nlookup, f64 parent, u32 opens,
 *   u8 hasBacking [i32 fd, i32 id, u32 refs], u32 name length, name bytes;
 * - handle: f64 fh, f64 node, u32 flags, i32 fd, u8 passthrough, u8 hasDir [i64 dirPos].
 */
import { openSync, closeSync, writeSync, readFileSync, constants as C } from 'node:fs';
import type { NodeTableState } from './nodes.js';
import type { ProvFsState } from './ops.js';
import type { Negotiated } from './dispatch.js';

const MAGIC = 0x33535650; // 'PVS3'
const CHUNK = 64 << 10;

/** What a v3 snapshot carries besides the table records. */
export interface SnapshotHead {
  mode: ProvFsState['mode'];
  passthrough: boolean;
  negotiated: Negotiated;
  devFd: number;
}

type NodeRec = NodeTableState['nodes'][number];
type HandleRec = NodeTableState['handles'][number];

/** Writes one snapshot in slices; {@link step} until it returns true. */
export class SnapshotWriter {
  private readonly fd: number;
  private readonly buf = Buffer.allocUnsafe(CHUNK);
  private at = 0;
  private node = 0;
  private handle = 0;
  private closed = false;
  /** Slices written so far (for the log). */
  slices = 0;

  constructor(readonly path: string, head: SnapshotHead, private readonly table: NodeTableState) {
    this.fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    const json = Buffer.from(JSON.stringify({
      ...head, version: 1, nextId: table.nextId, nextFh: table.nextFh, nodes: table.nodes.length, handles: table.handles.length,
    }));
    this.buf.writeUInt32LE(MAGIC, 0);
    this.buf.writeUInt32LE(json.length, 4);
    if (8 + json.length > CHUNK) throw new Error('snapshot header too long');
    json.copy(this.buf, 8);
    this.at = 8 + json.length;
  }

  /** Encode and write for about `budgetMs`; true once the whole snapshot is written and closed. */
  step(budgetMs: number): boolean {
    if (this.closed) return true;
    const until = performance.now() + budgetMs;
    const { nodes, handles } = this.table;
    let k = 0;
    while (this.node < nodes.length) {
      const r = nodes[this.node]!;
      const need = 64 + r.name.byteLength;
      if (this.at + need > CHUNK) { this.flush(); if (performance.now() >= until) return false; }
      if (need > CHUNK) throw new Error(`node ${r.id}: name too long for a snapshot chunk`);
      this.at = encodeNode(this.buf, this.at, r);
      this.node++;
      // Look at the clock every 32 records only (it costs more than a record).
      if ((++k & 31) === 0 && performance.now() >= until) { this.flush(); return false; }
    }
    while (this.handle < handles.length) {
      if (this.at + 48 > CHUNK) this.flush();
      this.at = encodeHandle(this.buf, this.at, handles[this.handle]!);
      this.handle++;
    }
    this.flush();
    closeSync(this.fd);
    this.closed = true;
    return true;
  }

  /** Give up (an abandoned upgrade): close the file. */
  abort(): void {
    if (!this.closed) closeSync(this.fd);
    this.closed = true;
  }

  private flush(): void {
    for (let off = 0; off < this.at;) off += writeSync(this.fd, this.buf, off, this.at - off);
    this.at = 0;
    this.slices++;
  }
}

function encodeNode(b: Buffer, at: number, r: NodeRec): number {
  b.writeDoubleLE(r.id, at); at += 8;
  b.writeInt32LE(r.fd, at); at += 4;
  b.writeDoubleLE(r.dev, at); at += 8;
  b.writeBigUInt64LE(BigInt(r.ino), at); at += 8;
  b.writeUInt32LE(r.type, at); at += 4;
  b.writeDoubleLE(r.nlookup, at); at += 8;
  b.writeDoubleLE(r.parent, at); at += 8;
  b.writeUInt32LE(r.opens, at); at += 4;
  if (r.backing) {
    b[at++] = 1;
    b.writeInt32LE(r.backing.fd, at); at += 4;
    b.writeInt32LE(r.backing.id, at); at += 4;
    b.writeUInt32LE(r.backing.refs, at); at += 4;
  } else b[at++] = 0;
  b.writeUInt32LE(r.name.byteLength, at); at += 4;
  b.set(r.name, at);
  return at + r.name.byteLength;
}

function encodeHandle(b: Buffer, at: number, h: HandleRec): number {
  b.writeDoubleLE(h.fh, at); at += 8;
  b.writeDoubleLE(h.node, at); at += 8;
  b.writeUInt32LE(h.flags, at); at += 4;
  b.writeInt32LE(h.fd, at); at += 4;
  b[at++] = h.passthrough ? 1 : 0;
  if (h.dirPos !== undefined) {
    b[at++] = 1;
    b.writeBigInt64LE(BigInt(h.dirPos), at); at += 8;
  } else b[at++] = 0;
  return at;
}

/** A decoded v3 snapshot: the provfs state plus what the connection negotiated. */
export type DecodedSnapshot = ProvFsState & { negotiated: Negotiated; devFd: number };

/** Read a snapshot written by {@link SnapshotWriter}; a short or foreign file is an error saying where. */
export function readSnapshot(path: string): DecodedSnapshot {
  const b = readFileSync(path);
  if (b.length < 8 || b.readUInt32LE(0) !== MAGIC) throw new Error(`${path}: not a version-3 provfs snapshot`);
  const hl = b.readUInt32LE(4);
  if (8 + hl > b.length) throw new Error(`${path}: header runs past the end (${hl} bytes at offset 8)`);
  const h = JSON.parse(b.subarray(8, 8 + hl).toString()) as SnapshotHead & { version: 1; nextId: number; nextFh: number; nodes: number; handles: number };
  let at = 8 + hl;
  const need = (n: number, what: string): void => {
    if (at + n > b.length) throw new Error(`${path}: truncated in ${what} at offset ${at}`);
  };
  const nodes: NodeRec[] = new Array(h.nodes);
  for (let i = 0; i < h.nodes; i++) {
    need(53, `node ${i}`);
    const id = b.readDoubleLE(at), fd = b.readInt32LE(at + 8), dev = b.readDoubleLE(at + 12), ino = b.readBigUInt64LE(at + 20);
    const type = b.readUInt32LE(at + 28), nlookup = b.readDoubleLE(at + 32), parent = b.readDoubleLE(at + 40), opens = b.readUInt32LE(at + 48);
    at += 52;
    let backing: NodeRec['backing'] = null;
    if (b[at++] === 1) {
      need(12, `node ${i} backing`);
      backing = { fd: b.readInt32LE(at), id: b.readInt32LE(at + 4), refs: b.readUInt32LE(at + 8) };
      at += 12;
    }
    need(4, `node ${i} name length`);
    const nl = b.readUInt32LE(at); at += 4;
    need(nl, `node ${i} name`);
    const name = b.subarray(at, at + nl); at += nl; // a view: the table copies what it keeps
    nodes[i] = { id, fd, dev, ino, type, nlookup, parent, name, backing, opens };
  }
  const handles: HandleRec[] = new Array(h.handles);
  for (let i = 0; i < h.handles; i++) {
    need(26, `handle ${i}`);
    const r: HandleRec = { fh: b.readDoubleLE(at), node: b.readDoubleLE(at + 8), flags: b.readUInt32LE(at + 16), fd: b.readInt32LE(at + 20), passthrough: b[at + 24] === 1 };
    const dir = b[at + 25] === 1;
    at += 26;
    if (dir) { need(8, `handle ${i} offset`); r.dirPos = b.readBigInt64LE(at).toString(); at += 8; }
    handles[i] = r;
  }
  if (at !== b.length) throw new Error(`${path}: ${b.length - at} bytes after the last record`);
  return {
    version: 1, mode: h.mode, passthrough: h.passthrough, negotiated: h.negotiated, devFd: h.devFd,
    table: { nextId: h.nextId, nextFh: h.nextFh, nodes, handles },
  };
}
