/**
 * @module kernel/nodelog
 * The node log: what a restarted daemon needs to answer for node ids the kernel still holds
 * after the previous daemon crashed. Each new node's id and its backing file handle, and each
 * passthrough backing id registered on the connection (and closed), is appended — before the
 * kernel learns the id from the reply — to `/run/prov/provfs/<stream>.nodes` (0600). Recovery
 * reopens every node by handle; lookup counts are not kept (recovered nodes are never dropped,
 * a bounded leak until unmount) and open handles are unknown (their passthrough I/O never needed
 * the daemon; RELEASE/FLUSH of an unknown handle are answered from the node id).
 */
import { openSync, writeSync, closeSync, readFileSync, constants as C } from 'node:fs';
import type { FileHandle } from './libc.js';

const KIND_NODE = 1, KIND_BACKING = 2, KIND_BACKING_CLOSE = 3, KIND_INIT = 4;

export interface NodeLogEntry {
  id: number;
  handle?: FileHandle;
  backingId?: number;
}

/** What recovery learns from a node log. */
export interface NodeLogContents {
  nodes: Map<number, FileHandle>;
  /** Backing ids still registered on the connection, per node id. */
  backings: Map<number, number>;
  maxId: number;
  /** What INIT negotiated (JSON written by the daemon that answered INIT). */
  init?: unknown;
}

export class NodeLog {
  private readonly fd: number;
  private readonly rec = Buffer.alloc(16 + 128);

  /** Open for appending; `fresh` empties it (a new mount). */
  constructor(readonly path: string, fresh: boolean) {
    this.fd = openSync(path, C.O_WRONLY | C.O_CREAT | C.O_APPEND | (fresh ? C.O_TRUNC : 0), 0o600);
  }

  node(id: number, h: FileHandle): void {
    const b = this.rec;
    b.writeUInt8(KIND_NODE, 0);
    b.writeUInt8(h.bytes.length, 1);
    b.writeInt16LE(0, 2);
    b.writeInt32LE(h.type, 4);
    b.writeDoubleLE(id, 8);
    h.bytes.copy(b, 16);
    writeSync(this.fd, b, 0, 16 + h.bytes.length);
  }

  backing(id: number, backingId: number, open: boolean): void {
    const b = this.rec;
    b.writeUInt8(open ? KIND_BACKING : KIND_BACKING_CLOSE, 0);
    b.writeUInt8(0, 1);
    b.writeInt16LE(0, 2);
    b.writeInt32LE(backingId, 4);
    b.writeDoubleLE(id, 8);
    writeSync(this.fd, b, 0, 16);
  }

  /** What INIT negotiated on this connection (a restarted daemon never sees INIT). */
  init(negotiated: object): void {
    const json = Buffer.from(JSON.stringify(negotiated));
    if (json.length > 255) throw new Error('INIT record too long');
    const b = Buffer.alloc(16 + json.length);
    b.writeUInt8(KIND_INIT, 0);
    b.writeUInt8(json.length, 1);
    json.copy(b, 16);
    writeSync(this.fd, b);
  }

  close(): void {
    closeSync(this.fd);
  }

  static read(path: string): NodeLogContents {
    const b = readFileSync(path);
    const out: NodeLogContents = { nodes: new Map(), backings: new Map(), maxId: 1 };
    for (let i = 0; i + 16 <= b.length;) {
      const kind = b[i]!, n = b[i + 1]!, id = b.readDoubleLE(i + 8);
      if (i + 16 + n > b.length) break; // torn tail of a crash
      if (kind === KIND_NODE) out.nodes.set(id, { type: b.readInt32LE(i + 4), bytes: Buffer.from(b.subarray(i + 16, i + 16 + n)) });
      else if (kind === KIND_BACKING) out.backings.set(id, b.readInt32LE(i + 4));
      else if (kind === KIND_BACKING_CLOSE) out.backings.delete(id);
      else if (kind === KIND_INIT) { out.init = JSON.parse(b.subarray(i + 16, i + 16 + n).toString()); i += 16 + n; continue; }
      else break;
      out.maxId = Math.max(out.maxId, id);
      i += 16 + n;
    }
    return out;
  }
}
