/**
 * @module kernel/warmup
 * Warm a successor's request path before a live upgrade's stall: a fresh Node isolate parses
 * and compiles each function on its first call, so the first requests after a handover would
 * pay for it inside the stall. This drives a scratch Dispatcher (own ProvFs over a private temp
 * directory, own Recorder whose records are encoded and dropped, replies discarded) through
 * the common requests — lookup, getattr, create, write, flush, release, unlink, mkdir, opendir,
 * readdirplus, releasedir, rmdir, rename, statfs, forget — a few times; in prov mode its records
 * go through a scratch {@link EventRing} as the loop's do. Nothing touches the real connection
 * or table.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';
import * as v8 from 'node:v8';
import { ProvFs } from './ops.js';
import { NodeTable, type NodeTableDelta } from './nodes.js';
import { Dispatcher, type Timeouts } from './dispatch.js';
import { Recorder, type RecordWriter } from './recorder.js';
import { EventRing } from './eventring.js';
import { NodeLog } from './nodelog.js';
import { OP, SIZE, FUSE_ROOT_ID } from './protocol.js';

/**
 * The successor's side of a version-2 handover (a delta through v8, applied to a table copied
 * from a snapshot) on a scratch table: every record changed, new, counted and gone, a few times.
 */
function warmTableTransfer(table: NodeTable): void {
  const snap = table.toState();
  for (let r = 0; r < 10; r++) {
    // Open handles too (files and a listed directory, as the caller holds them open): half already
    // in the copy, half new in the delta (their fds fetched), the directory's offset set.
    const copy = NodeTable.fromState({ ...snap, handles: snap.handles.filter((_, i) => i % 2 === 0) }, (fd) => libc.dup(fd), true);
    const maxId = Math.max(...snap.nodes.map((n) => n.id));
    const fresh = snap.nodes.filter((n) => n.id !== FUSE_ROOT_ID).map((n, i) => ({ ...n, id: maxId + 1 + i }));
    const delta: NodeTableDelta = {
      nextId: maxId + 1 + fresh.length, nextFh: snap.nextFh,
      nodes: [...snap.nodes.filter((n) => n.id !== FUSE_ROOT_ID), ...fresh],
      counts: Float64Array.from(snap.nodes.flatMap((n) => [n.id, n.nlookup])),
      gone: [maxId + 1000], handles: snap.handles,
    };
    const back = v8.deserialize(v8.serialize({ version: 2, table: delta })) as { table: NodeTableDelta };
    copy.applyDelta(back.table, (fd) => libc.dup(fd));
    for (const fd of copy.fds()) if (fd !== snap.nodes.find((n) => n.id === FUSE_ROOT_ID)?.fd) libc.close(fd);
  }
}

/** Run the warm-up `rounds` times; returns how many requests were handled. */
export function warmRequestPath(o: { timeouts: Timeouts; prov: boolean; maxWrite: number; rounds?: number }): number {
  const dir = mkdtempSync(join(tmpdir(), 'provfs-warm-'));
  const rootFd = libc.open(dir, libc.O.PATH | libc.O.DIRECTORY);
  let handled = 0;
  let nodeLogOf: NodeLog | null = null;
  try {
    const fs = new ProvFs(rootFd, null);
    // A scratch node log wired as the loop wires the real one (new nodes' file handles appended,
    // gone ones batched), so a successor's first CREATE does not compile that path inside a stall.
    fs.useNodeLog(nodeLogOf = new NodeLog(join(dir, 'warm.nodelog'), true));
    // Records go through a scratch ring like the loop's own (encoded, pushed), drained and dropped.
    const ring = EventRing.create(1 << 20);
    const push = (json: string): void => { if (!ring.pushString(json)) ring.drain(); };
    // `sinkJson` as the loop passes it where the Recorder takes one (records built as JSON text);
    // spread, so a Recorder without that option is warmed through `sink` alone.
    // The records the loop writes as bytes in its ring (kernel/recorder RecordWriter) are written here too.
    const writer: RecordWriter = {
      begin: (max) => ring.begin(max) || (ring.drain(), ring.begin(max)),
      bytes: (b) => ring.putBytes(b),
      header: (op, bits, tid, ts, mode, flags, fh) => ring.putProvfsHeader(op, bits, tid, ts, mode, flags, fh),
      file: (dev, ino, parent, type, name, prefix, host) => ring.putProvfsFile(dev, ino, parent, type, name, prefix, host),
      end: () => ring.endRecord(false),
    };
    if (o.prov) fs.recorder = new Recorder({ dev: 0, mountpoint: dir, nodes: fs.nodes, sink: (ev) => push(JSON.stringify(ev)), ...({ sinkJson: push, writer } as object), stage: { begin() { /* records go straight to push */ }, end() { /* nothing held */ } } });
    let last: Buffer = Buffer.alloc(0);
    const d = new Dispatcher(fs, { timeouts: o.timeouts, passthrough: false, devFd: -1, maxWrite: Math.min(o.maxWrite, 1 << 17) }, (b, n) => { last = b.subarray(0, n); });
    let unique = 0n;
    const req = (opcode: number, nodeid: number, ...body: Buffer[]): Buffer => {
      const h = Buffer.alloc(SIZE.in_header);
      const b = Buffer.concat([h, ...body]);
      b.writeUInt32LE(b.length, 0);
      b.writeUInt32LE(opcode, 4);
      b.writeBigUInt64LE(++unique, 8);
      b.writeBigUInt64LE(BigInt(nodeid), 16);
      b.writeUInt32LE(process.getuid?.() ?? 0, 24);
      b.writeUInt32LE(process.getgid?.() ?? 0, 28);
      b.writeUInt32LE(process.pid, 32);
      last = Buffer.alloc(0);
      d.handle(b, b.length);
      handled++;
      return last;
    };
    const name = (s: string): Buffer => Buffer.from(`${s}\0`);
    const u32s = (...xs: number[]): Buffer => { const b = Buffer.alloc(4 * xs.length); xs.forEach((x, i) => b.writeUInt32LE(x >>> 0, 4 * i)); return b; };
    const fhBody = (fh: bigint, size: number): Buffer => { const b = Buffer.alloc(size); b.writeBigUInt64LE(fh, 0); return b; };
    const readIn = (fh: bigint, bytes: number): Buffer => { const b = fhBody(fh, SIZE.read_in); b.writeUInt32LE(bytes, 16); return b; };
    const init = Buffer.alloc(SIZE.init_in);
    init.writeUInt32LE(7, 0); init.writeUInt32LE(45, 4); init.writeUInt32LE(131072, 8);
    req(OP.INIT, 0, init);
    const data = Buffer.alloc(4096, 1);
    for (let r = 0; r < (o.rounds ?? 30); r++) {
      const f = `f${r}`, g = `g${r}`, sub = `d${r}`;
      const c = req(OP.CREATE, FUSE_ROOT_ID, u32s(libc.O.WRONLY | libc.O.CREAT, 0o100644, 0o022, 0), name(f));
      if (c.length < SIZE.out_header + SIZE.entry_out + SIZE.open_out) continue;
      const node = Number(c.readBigUInt64LE(SIZE.out_header));
      const fh = c.readBigUInt64LE(SIZE.out_header + SIZE.entry_out);
      const w = Buffer.alloc(SIZE.write_in);
      w.writeBigUInt64LE(fh, 0); w.writeUInt32LE(data.length, 16);
      req(OP.WRITE, node, w, data);
      req(OP.GETATTR, node, Buffer.alloc(SIZE.getattr_in));
      req(OP.FLUSH, node, fhBody(fh, SIZE.flush_in));
      req(OP.RELEASE, node, fhBody(fh, SIZE.release_in));
      req(OP.LOOKUP, FUSE_ROOT_ID, name(f));
      const o2 = req(OP.OPEN, node, u32s(libc.O.RDONLY, 0));
      if (o2.length >= SIZE.out_header + SIZE.open_out) {
        const fh2 = o2.readBigUInt64LE(SIZE.out_header);
        req(OP.READ, node, readIn(fh2, 4096));
        req(OP.FLUSH, node, fhBody(fh2, SIZE.flush_in));
        req(OP.RELEASE, node, fhBody(fh2, SIZE.release_in));
      }
      const rn = Buffer.alloc(SIZE.rename_in); rn.writeBigUInt64LE(BigInt(FUSE_ROOT_ID), 0);
      req(OP.RENAME, FUSE_ROOT_ID, rn, name(f), name(g));
      req(OP.LOOKUP, FUSE_ROOT_ID, name('absent'));
      req(OP.MKDIR, FUSE_ROOT_ID, u32s(0o755, 0o022), name(sub));
      const od = req(OP.OPENDIR, FUSE_ROOT_ID, u32s(libc.O.RDONLY, 0));
      if (od.length >= SIZE.out_header + SIZE.open_out) {
        const dfh = od.readBigUInt64LE(SIZE.out_header);
        req(OP.READDIRPLUS, FUSE_ROOT_ID, readIn(dfh, 65536));
        req(OP.RELEASEDIR, FUSE_ROOT_ID, fhBody(dfh, SIZE.release_in));
      }
      req(OP.RMDIR, FUSE_ROOT_ID, name(sub));
      req(OP.UNLINK, FUSE_ROOT_ID, name(g));
      req(OP.STATFS, FUSE_ROOT_ID);
      const fg = Buffer.alloc(SIZE.forget_in); fg.writeBigUInt64LE(2n, 0);
      req(OP.FORGET, node, fg);
      ring.drain();
    }
    // Handles held open across the transfer (a handover under load has some), then released.
    const held: Array<[number, bigint, number]> = [];
    for (let i = 0; i < 4; i++) {
      const c = req(OP.CREATE, FUSE_ROOT_ID, u32s(libc.O.WRONLY | libc.O.CREAT, 0o100644, 0o022, 0), name(`held${i}`));
      if (c.length >= SIZE.out_header + SIZE.entry_out + SIZE.open_out) held.push([Number(c.readBigUInt64LE(SIZE.out_header)), c.readBigUInt64LE(SIZE.out_header + SIZE.entry_out), OP.RELEASE]);
    }
    const hd = req(OP.OPENDIR, FUSE_ROOT_ID, u32s(libc.O.RDONLY, 0));
    if (hd.length >= SIZE.out_header + SIZE.open_out) {
      const dfh = hd.readBigUInt64LE(SIZE.out_header);
      req(OP.READDIRPLUS, FUSE_ROOT_ID, readIn(dfh, 4096));
      held.push([FUSE_ROOT_ID, dfh, OP.RELEASEDIR]);
    }
    warmTableTransfer(fs.nodes);
    for (const [node, fh, op] of held) req(op, node, fhBody(fh, SIZE.release_in));
    for (let i = 0; i < 4; i++) req(OP.UNLINK, FUSE_ROOT_ID, name(`held${i}`));
    for (const fd of fs.nodes.fds()) if (fd !== rootFd) { try { libc.close(fd); } catch { /* closed */ } }
  } finally {
    nodeLogOf?.close();
    libc.close(rootFd);
    rmSync(dir, { recursive: true, force: true });
  }
  return handled;
}
