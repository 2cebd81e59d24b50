/**
 * @module kernel/loop
 * The FUSE request loop, run in a worker thread off the main event loop: read one request from
 * /dev/fuse (blocking), dispatch it, write the one reply — all synchronous, so no request waits
 * behind the libuv thread pool. The loop ends when the kernel says the file system is gone
 * (ENODEV after umount) or when the main thread asks it to stop taking requests (quiesce, for
 * a live upgrade): it then reports the state a successor needs.
 *
 * Provenance records go through a shared {@link EventRing} to the main thread, which appends
 * them to the journal; the loop itself never waits on the journal.
 */
import { parentPort, workerData, receiveMessageOnPort, Worker } from 'node:worker_threads';
import * as libc from './libc.js';
import { E } from './libc.js';
import { ProvFs, type ProvFsState } from './ops.js';
import { Dispatcher, passthroughDevice, type Timeouts, type Negotiated } from './dispatch.js';
import { Recorder } from './recorder.js';
import { EventRing } from './eventring.js';
import { NodeLog, type NodeLogContents } from './nodelog.js';
import { NodeTable } from './nodes.js';
import { SIZE, NOTIFY } from './protocol.js';
import { logger } from '../collector/log.js';
import type { ProvEvent } from '../collector/events.js';

const log = logger('provfs');

/** Everything a successor's loop needs from its predecessor (JSON-able). */
export type TransferState = ProvFsState & { negotiated: Negotiated; devFd: number };

/** What the main thread hands the worker. */
export interface LoopConfig {
  devFd: number;
  rootFd: number;
  mode: 'plain' | 'prov';
  passthrough: boolean;
  timeouts: Timeouts;
  maxWrite: number;
  /** st_dev of the mount (for records). */
  dev: number;
  mountpoint: string;
  ring: SharedArrayBuffer;
  /**
   * Int32 control words: [0] = 1 asks the loop to quiesce (finish the request in hand, take no
   * new one, report its state); [1] = 1 releases a warm successor waiting for its transfer.
   */
  control: SharedArrayBuffer;
  /** Resume from a predecessor's state (same process, e.g. after a rejected upgrade). */
  state?: TransferState;
  /** Start warm and wait (Atomics) for a {@link TransferMessage} before serving. */
  awaitTransfer?: boolean;
  /** Crash survival: append new nodes to this node log (`fresh`: a new mount empties it). */
  nodeLog?: { path: string; fresh: boolean };
  /** Restart after a crash: rebuild the table from the node log and have the kernel resend. */
  recover?: boolean;
}

/** Sent to a warm successor's loop: the state, with fd numbers valid in this process. */
export interface TransferMessage {
  state: TransferState;
  /** Predecessor fd number → fd number here. */
  fdMap: Array<[number, number]>;
}

/** Messages from the worker. */
export type LoopMessage =
  | { type: 'warm' }
  | { type: 'ready'; passthrough: boolean; minor: number; /** CLOCK_MONOTONIC ns when the loop began to read. */ at: number }
  | { type: 'events'; events: ProvEvent[] }
  | { type: 'stopped'; reason: string; counts: Record<string, number> }
  | { type: 'quiesced'; state: TransferState };

export function runLoop(cfg: LoopConfig, post: (m: LoopMessage) => void, receive: () => unknown = () => undefined): void {
  const ring = new EventRing(cfg.ring);
  const control = new Int32Array(cfg.control);
  const enc = new TextEncoder();
  const sink = (ev: ProvEvent): void => {
    if (!ring.push(enc.encode(JSON.stringify(ev)))) post({ type: 'events', events: [ev] });
  };
  let state = cfg.state;
  let fdMap: ((fd: number) => number) | undefined;
  if (cfg.awaitTransfer) {
    post({ type: 'warm' });
    while (Atomics.load(control, 1) === 0) Atomics.wait(control, 1, 0);
    const t = receive() as TransferMessage | undefined;
    if (!t) throw new Error('released without a transfer message');
    state = t.state;
    const map = new Map(t.fdMap);
    fdMap = (fd) => {
      const m = map.get(fd);
      if (m === undefined) throw new Error(`transfer state names fd ${fd}, which was not handed over`);
      return m;
    };
  }
  let recovered: NodeLogContents | null = null;
  let fs: ProvFs;
  if (cfg.recover) {
    if (!cfg.nodeLog) throw new Error('recovery needs the node log');
    recovered = NodeLog.read(cfg.nodeLog.path);
    if (!recovered.init) throw new Error(`node log ${cfg.nodeLog.path} has no INIT record: cannot resume this connection`);
    const r = NodeTable.recover(cfg.rootFd, recovered);
    if (r.lost) log.warn(`recovery: ${r.lost} nodes no longer exist in the backing directory`);
    fs = new ProvFs(cfg.rootFd, null, r.table);
  } else {
    fs = state ? ProvFs.updateTransfer(state, null, fdMap) : new ProvFs(cfg.rootFd, null);
  }
  let nodeLog: NodeLog | null = null;
  if (cfg.nodeLog) {
    const nl = new NodeLog(cfg.nodeLog.path, cfg.nodeLog.fresh && !state && !cfg.recover);
    nodeLog = nl;
    fs.nodeLog = nl;
    fs.nodes.onNew = (n) => {
      try {
        nl.node(n.id, libc.handleOf(n.fd));
      } catch (e) {
        log.warn(`crash survival off: the backing file system gives no file handles (${(e as Error).message})`);
        fs.nodes.onNew = null;
      }
    };
  }
  if (cfg.mode === 'prov') {
    fs.recorder = new Recorder({ dev: cfg.dev, mountpoint: cfg.mountpoint, nodes: fs.nodes, sink });
  }
  const devFd = state && fdMap ? fdMap(state.devFd) : cfg.devFd;
  const send = (buf: Buffer, len: number): void => {
    try {
      libc.write(devFd, buf, len);
    } catch (e) {
      // ENOENT: the request was interrupted and is gone; nothing else to do.
      if (!(e instanceof libc.Errno && e.errno === E.ENOENT)) throw e;
    }
  };
  // FSYNC goes to a helper thread that answers it; `inflight` counts what it still owes.
  const inflight = new Int32Array(new SharedArrayBuffer(4));
  const slow = new Worker(new URL('./slowops.js', import.meta.url), { workerData: { provfsSlowOps: { devFd, inflight: inflight.buffer } } });
  const offloadFsync = (unique: Uint8Array, fd: number, dataOnly: boolean): void => {
    Atomics.add(inflight, 0, 1);
    slow.postMessage({ unique, fd, dataOnly });
  };
  const d = new Dispatcher(fs, { timeouts: cfg.timeouts, passthrough: cfg.passthrough, devFd, maxWrite: cfg.maxWrite, offloadFsync }, send);
  if (recovered) {
    d.negotiated = recovered.init as Negotiated;
    if (d.negotiated.passthrough) fs.passthrough = passthroughDevice(devFd);
    // Requests the crashed daemon read but never answered: have the kernel queue them again.
    const notify = Buffer.alloc(SIZE.out_header);
    notify.writeUInt32LE(SIZE.out_header, 0);
    notify.writeInt32LE(NOTIFY.RESEND, 4);
    try { libc.write(devFd, notify); } catch (e) { log.warn(`FUSE_NOTIFY_RESEND: ${(e as Error).message}`); }
    post({ type: 'ready', passthrough: d.negotiated.passthrough, minor: d.negotiated.minor, at: Number(process.hrtime.bigint()) });
  } else if (state) {
    d.negotiated = state.negotiated;
    // Re-arm passthrough on the same connection: backing ids belong to it and survive.
    if (state.passthrough) fs.passthrough = passthroughDevice(devFd);
    post({ type: 'ready', passthrough: state.passthrough, minor: state.negotiated.minor, at: Number(process.hrtime.bigint()) });
  }
  const buf = Buffer.alloc(cfg.maxWrite + 4096 + 4096);
  let reason = 'unmounted';
  for (;;) {
    if (Atomics.load(control, 0) === 1) {
      // Nothing is in flight: every request read has been answered (the loop is synchronous).
      post({ type: 'quiesced', state: { ...fs.updatePrepare(), negotiated: d.negotiated!, devFd } });
      reason = 'quiesced';
      break;
    }
    let n: number;
    try {
      n = libc.read(devFd, buf);
    } catch (e) {
      if (e instanceof libc.Errno) {
        if (e.errno === E.EINTR || e.errno === E.ENOENT || e.errno === E.EAGAIN) continue;
        if (e.errno === E.ENODEV) break;
      }
      reason = `read /dev/fuse: ${e instanceof Error ? e.message : String(e)}`;
      log.error(reason);
      break;
    }
    d.handle(buf, n);
    if (!state && !recovered && d.negotiated && buf.readUInt32LE(4) === 26) {
      nodeLog?.init(d.negotiated);
      post({ type: 'ready', passthrough: d.negotiated.passthrough, minor: d.negotiated.minor, at: Number(process.hrtime.bigint()) });
    }
  }
  // Every fsync accepted is answered before this thread (and its fds) go.
  for (let v; (v = Atomics.load(inflight, 0)) > 0;) Atomics.wait(inflight, 0, v, 1000);
  void slow.terminate();
  nodeLog?.close();
  if (reason !== 'quiesced') {
    // The connection is gone: release the table's fds (the root fd belongs to the main thread).
    const root = fs.nodes.get(1).fd;
    for (const fd of fs.nodes.fds()) if (fd !== root) libc.close(fd);
  }
  const counts: Record<string, number> = {};
  for (const [op, c] of d.counts) counts[op] = c;
  post({ type: 'stopped', reason, counts });
}

if (parentPort && workerData?.provfsLoop) {
  const port = parentPort;
  runLoop(workerData.provfsLoop as LoopConfig, (m) => port.postMessage(m), () => receiveMessageOnPort(port)?.message);
}
