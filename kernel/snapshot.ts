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
 * table's records), then `nodes` node records, then u32 length + the handle records as JSON
 * (open handles are few; JSON carries whatever fields they gain):
 * - node: f64 id, i32 fd, f64 dev, u64 ino, u32 type, f64 nlookup, f64 parent, u32 opens,
 *   u32 name length, name bytes, u32 backing length + backing JSON (0: none), and — only when
 *   the table's records carry fields beyond these (header `extra`) — u32 length + JSON of them.
 */
import { openSync, closeSync, writeSync, readFileSync, constants as C } from 'node:fs';
import type { NodeTableState } from './nodes.js';
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
  private readonly extra: boolean;

  constructor(readonly path: string, head: SnapshotHead, private readonly table: NodeTableState) {
    this.fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600);
    const first = table.nodes[0];
    this.extra = first !== undefined && Object.keys(first).some((k) => !NODE_FIELDS.has(k));
    const json = Buffer.from(JSON.stringify({
      ...head, version: 1, nextId: table.nextId, nextFh: table.nextFh, nodes: table.nodes.length, extra: this.extra,
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
      const backing = r.backing ? Buffer.from(JSON.stringify(r.backing)) : null;
      const extra = this.extra ? Buffer.from(JSON.stringify(extraFields(r))) : null;
      const need = 64 + r.name.byteLength + (backing?.length ?? 0) + (extra?.length ?? 0);
      if (this.at + need > CHUNK) { this.flush(); if (performance.now() >= until) return false; }
      if (need > CHUNK) throw new Error(`node ${r.id}: record too long for a snapshot chunk`);
      this.at = encodeNode(this.buf, this.at, r, backing, extra);
      this.node++;
      // Look at the clock every 32 records only (it costs more than a record).
      if ((++k & 31) === 0 && performance.now() >= until) { this.flush(); return false; }
    }
    this.flush();
    const hs = Buffer.from(JSON.stringify(handles));
    const len = Buffer.alloc(4);
    len.writeUInt32LE(hs.length, 0);
    writeSync(this.fd, len);
    for (let off = 0; off < hs.length;) off += writeSync(this.fd, hs, off, hs.length - off);
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
