/**
 * @module kernel/snapshot
 * The node-table snapshot of state version 3, in a compact binary form written in chunks: the
 * old loop reads its table through a live iterator and encodes and writes the records a slice
 * at a time between requests, so the snapshot never pauses serving for more than a fraction of
 * a millisecond — not for the whole table at once (v8.serialize of it took 6 ms per 8,000 nodes;
 * even a first `toState` copy took 15–50 ms per 100,000 nodes here). Each record is its node
 * as it is when its slice is written; nodes changed since tracking began (before the first
 * slice) are in the delta the successor applies afterwards, which overrides them.
 *
 * File layout (little-endian): magic `PVS3`, u32 header length, header JSON (everything but the
 * table's records; written last, in a space reserved and padded with blanks, since the number of
 * nodes is known only then), then `nodes` node records, then u32 length + the handle records as JSON
 * (open handles are few; JSON carries whatever fields they gain):
 * - node: f64 id, i32 fd, f64 dev, u64 ino, u32 type, f64 nlookup, f64 parent, u32 opens,
 *   u32 name length, name bytes, u32 backing length + backing JSON (0: none), and — only when
 *   the table's records carry fields beyond these (header `extra`) — u32 length + JSON of them.
 */
import { openSync, closeSync, writeSync, readFileSync, constants as C } from 'node:fs';
import type { NodeTableState } from './nodes.js';

/** Where a snapshot's records come from: a copy of the table, or the live table read as the slices go. */
export type SnapshotSource = NodeTableState | {
  nextId: number; nextFh: number;
  records: Iterator<NodeTableState['nodes'][number]>;
  /** The open handles, asked for once every node is written. */
  handles: () => NodeTableState['handles'];
};
/** Room for the header JSON (it holds the negotiated INIT and a few counters). */
const HEADER_SPACE = 4096;
import type { ProvFsState } from './ops.js';
import type { Negotiated } from './dispatch.js';

const MAGIC = 0x33535650; // 'PVS3'
const CHUNK = 64 << 10;
/** The node record fields encoded in binary; any other goes in the record's JSON extra. */
const NODE_FIELDS = new Set(['id', 'fd', 'dev', 'ino', 'type', 'nlookup', 'parent', 'name', 'backing', 'opens']);

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

  /** Records carry fields beyond {@link NODE_FIELDS} (all records come from one function: the first tells). */
  private extra = false;
  private readonly records: Iterator<NodeRec>;
  private readonly handles: () => HandleRec[];
  private readonly counters: { nextId: number; nextFh: number };
  /** The next record, taken from the iterator but not yet written. */
  private pending: NodeRec | null = null;

  constructor(readonly path: string, private readonly head: SnapshotHead, source: SnapshotSource) {
    this.fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    if ('records' in source) {
      this.records = source.records;
      this.handles = source.handles;
    } else {
      this.records = source.nodes[Symbol.iterator]();
      this.handles = () => source.handles;
    }
    this.counters = { nextId: source.nextId, nextFh: source.nextFh };
    this.buf.writeUInt32LE(MAGIC, 0);
    this.buf.writeUInt32LE(HEADER_SPACE, 4);
    this.buf.fill(0x20, 8, 8 + HEADER_SPACE); // the header goes here once the records are written
    this.at = 8 + HEADER_SPACE;
  }

  /** Encode and write for about `budgetMs`; true once the whole snapshot is written and closed. */
  step(budgetMs: number): boolean {
    if (this.closed) return true;
    const until = performance.now() + budgetMs;
    let k = 0;
    for (;;) {
      let r = this.pending;
      if (!r) {
        const it = this.records.next();
        if (it.done) break;
        r = it.value;
        if (this.node === 0) this.extra = Object.keys(r).some((key) => !NODE_FIELDS.has(key));
      }
      this.pending = r;
      const backing = r.backing ? Buffer.from(JSON.stringify(r.backing)) : null;
      const extra = this.extra ? Buffer.from(JSON.stringify(extraFields(r))) : null;
      const need = 64 + r.name.byteLength + (backing?.length ?? 0) + (extra?.length ?? 0);
      if (this.at + need > CHUNK) { this.flush(); if (performance.now() >= until) return false; }
      if (need > CHUNK) throw new Error(`node ${r.id}: record too long for a snapshot chunk`);
      this.at = encodeNode(this.buf, this.at, r, backing, extra);
      this.pending = null;
      this.node++;
      // Look at the clock every 32 records only (it costs more than a record).
      if ((++k & 31) === 0 && performance.now() >= until) { this.flush(); return false; }
    }
    this.flush();
    const hs = Buffer.from(JSON.stringify(this.handles()));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(hs.length, 0);
    writeSync(this.fd, len);
    for (let off = 0; off < hs.length;) off += writeSync(this.fd, hs, off, hs.length - off);
    const json = Buffer.from(JSON.stringify({ ...this.head, version: 1, ...this.counters, nodes: this.node, extra: this.extra }));
    if (json.length > HEADER_SPACE) throw new Error(`snapshot header too long (${json.length} bytes)`);
    writeSync(this.fd, json, 0, json.length, 8);
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

function extraFields(r: NodeRec): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) if (!NODE_FIELDS.has(k)) out[k] = typeof v === 'bigint' ? { bigint: v.toString() } : v;
  return out;
}

function encodeNode(b: Buffer, at: number, r: NodeRec, backing: Buffer | null, extra: Buffer | null): number {
  b.writeDoubleLE(r.id, at); at += 8;
  b.writeInt32LE(r.fd, at); at += 4;
  b.writeDoubleLE(r.dev, at); at += 8;
  b.writeBigUInt64LE(BigInt(r.ino), at); at += 8;
  b.writeUInt32LE(r.type, at); at += 4;
  b.writeDoubleLE(r.nlookup, at); at += 8;
  b.writeDoubleLE(r.parent, at); at += 8;
  b.writeUInt32LE(r.opens, at); at += 4;
  b.writeUInt32LE(r.name.byteLength, at); at += 4;
  b.set(r.name, at); at += r.name.byteLength;
  b.writeUInt32LE(backing?.length ?? 0, at); at += 4;
  if (backing) { backing.copy(b, at); at += backing.length; }
  if (extra) {
    b.writeUInt32LE(extra.length, at); at += 4;
    extra.copy(b, at); at += extra.length;
  }
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
  const h = JSON.parse(b.subarray(8, 8 + hl).toString()) as SnapshotHead & { version: 1; nextId: number; nextFh: number; nodes: number; extra: boolean };
  let at = 8 + hl;
  const need = (n: number, what: string): void => {
    if (at + n > b.length) throw new Error(`${path}: truncated in ${what} at offset ${at}`);
  };
  const nodes: NodeRec[] = new Array(h.nodes);
  const json = (what: string): unknown => {
    need(4, `${what} length`);
    const n = b.readUInt32LE(at); at += 4;
    if (n === 0) return null;
    need(n, what);
    const v = JSON.parse(b.subarray(at, at + n).toString()) as unknown;
    at += n;
    return v;
  };
  for (let i = 0; i < h.nodes; i++) {
    need(56, `node ${i}`);
    const id = b.readDoubleLE(at), fd = b.readInt32LE(at + 8), dev = b.readDoubleLE(at + 12), ino = b.readBigUInt64LE(at + 20);
    const type = b.readUInt32LE(at + 28), nlookup = b.readDoubleLE(at + 32), parent = b.readDoubleLE(at + 40), opens = b.readUInt32LE(at + 48);
    const nl = b.readUInt32LE(at + 52);
    at += 56;
    need(nl, `node ${i} name`);
    const name = b.subarray(at, at + nl); at += nl; // a view: the table copies what it keeps
    const backing = json(`node ${i} backing`) as NodeRec['backing'];
    const r: NodeRec = { id, fd, dev, ino, type, nlookup, parent, name, backing, opens };
    if (h.extra) {
      const x = json(`node ${i} extra fields`) as Record<string, unknown> | null;
      for (const [k, v] of Object.entries(x ?? {})) {
        (r as unknown as Record<string, unknown>)[k] = v !== null && typeof v === 'object' && 'bigint' in v ? BigInt((v as { bigint: string }).bigint) : v;
      }
    }
    nodes[i] = r;
  }
  const handles = json('handles') as HandleRec[] | null;
  if (!Array.isArray(handles)) throw new Error(`${path}: the handle list at offset ${at} is not a list`);
  if (at !== b.length) throw new Error(`${path}: ${b.length - at} bytes after the last record`);
  return {
    version: 1, mode: h.mode, passthrough: h.passthrough, negotiated: h.negotiated, devFd: h.devFd,
    table: { nextId: h.nextId, nextFh: h.nextFh, nodes, handles },
  };
}
