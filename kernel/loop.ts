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
import * as v8 from 'node:v8';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
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
  /** Resume from a state file this process wrote (after a rejected upgrade: same fds). */
  stateFile?: string;
  /** Where to write the state when quiescing. */
  statePath?: string;
  /** Start warm and wait (Atomics) for a {@link TransferMessage} before serving. */
  awaitTransfer?: boolean;
  /** Crash survival: append new nodes to this node log (`fresh`: a new mount empties it). */
  nodeLog?: { path: string; fresh: boolean };
  /** Restart after a crash: rebuild the table from the node log and have the kernel resend. */
  recover?: boolean;
}

/**
 * Sent to a warm successor's loop: where the predecessor's loop wrote its state (v8-serialized,
 * 0600) and the predecessor's pid, whose fds this loop takes with pidfd_getfd. The state goes
 * from loop thread to loop thread through the file: no copy through either main thread.
 */
export interface TransferMessage {
  statePath: string;
  oldPid: number;
}

/** Every fd number a transfer state names (a successor fetches each one). */
export function stateFds(s: TransferState): number[] {
  const fds = new Set<number>([s.devFd]);
  for (const n of s.table.nodes) { fds.add(n.fd); if (n.backing && n.backing.fd >= 0) fds.add(n.backing.fd); }
  for (const h of s.table.handles) if (h.fd >= 0) fds.add(h.fd);
  return [...fds];
}

/** Write a state where a successor (or this process again) can read it. */
function writeState(path: string, st: TransferState): void {
  writeFileSync(path, v8.serialize(st), { mode: 0o600 });
}

function readState(path: string): TransferState {
  return v8.deserialize(readFileSync(path)) as TransferState;
}

/** Messages from the worker. */
export type LoopMessage =
  | { type: 'warm' }
  | { type: 'ready'; passthrough: boolean; minor: number; /** CLOCK_MONOTONIC ns when the loop began to read. */ at: number; devFd: number; rootFd: number }
  | { type: 'rejected'; reason: string }
  | { type: 'events'; events: ProvEvent[] }
  | { type: 'stopped'; reason: string; counts: Record<string, number> }
  | { type: 'quiesced'; statePath: string; fds: number[]; version: number };

export function runLoop(cfg: LoopConfig, post: (m: LoopMessage) => void, receive: () => unknown = () => undefined): void {
  const ring = new EventRing(cfg.ring);
  const control = new Int32Array(cfg.control);
  const sink = (ev: ProvEvent): void => {
    if (!ring.pushString(JSON.stringify(ev))) post({ type: 'events', events: [ev] });
  };
  let state: TransferState | undefined;
  let fdMap: ((fd: number) => number) | undefined;
  if (cfg.stateFile) state = readState(cfg.stateFile);
  if (cfg.awaitTransfer) {
    post({ type: 'warm' });
    while (Atomics.load(control, 1) === 0) Atomics.wait(control, 1, 0);
    const t = receive() as TransferMessage | undefined;
    if (!t) throw new Error('released without a transfer message');
    const fetched = new Map<number, number>();
    const t0 = performance.now();
    log.debug(`transfer at ${(Number(process.hrtime.bigint()) / 1e6).toFixed(1)} ms (monotonic)`);
    try {
      const st = readState(t.statePath);
      log.debug(`state read in ${(performance.now() - t0).toFixed(1)} ms`);
      if (st.version !== 1) throw new Error(`state version ${String(st.version)} is not 1`);
      const pidfd = libc.pidfdOpen(t.oldPid);
      try {
        for (const fd of stateFds(st)) fetched.set(fd, libc.pidfdGetfd(pidfd, fd));
      } finally {
        libc.close(pidfd);
      }
      state = st;
      log.debug(`fds fetched by ${(performance.now() - t0).toFixed(1)} ms`);
    } catch (e) {
      for (const fd of fetched.values()) libc.close(fd);
      post({ type: 'rejected', reason: (e as Error).message });
      return;
    }
    fdMap = (fd) => {
      const m = fetched.get(fd);
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
  log.debug(`table ready at ${(Number(process.hrtime.bigint()) / 1e6).toFixed(1)} ms (monotonic)`);
  const d = new Dispatcher(fs, { timeouts: cfg.timeouts, passthrough: cfg.passthrough, devFd, maxWrite: cfg.maxWrite, offloadFsync }, send);
  if (recovered) {
    d.negotiated = recovered.init as Negotiated;
    if (d.negotiated.passthrough) fs.passthrough = passthroughDevice(devFd);
    // Requests the crashed daemon read but never answered: have the kernel queue them again.
    const notify = Buffer.alloc(SIZE.out_header);
    notify.writeUInt32LE(SIZE.out_header, 0);
    notify.writeInt32LE(NOTIFY.RESEND, 4);
    try { libc.write(devFd, notify); } catch (e) { log.warn(`FUSE_NOTIFY_RESEND: ${(e as Error).message}`); }
    post({ type: 'ready', passthrough: d.negotiated.passthrough, minor: d.negotiated.minor, at: Number(process.hrtime.bigint()), devFd, rootFd: fs.nodes.get(1).fd });
  } else if (state) {
    d.negotiated = state.negotiated;
    // Re-arm passthrough on the same connection: backing ids belong to it and survive.
    if (state.passthrough) fs.passthrough = passthroughDevice(devFd);
    post({ type: 'ready', passthrough: state.passthrough, minor: state.negotiated.minor, at: Number(process.hrtime.bigint()), devFd, rootFd: fs.nodes.get(1).fd });
  }
  const buf = Buffer.alloc(cfg.maxWrite + 4096 + 4096);
  let reason = 'unmounted';
  // Every node holds an fd: when they approach the fd limit, ask the kernel to forget the least
  // recently used idle nodes (FUSE_NOTIFY_PRUNE, 7.45); its FORGETs then close them.
  const fdLimit = libc.nofileLimit();
  const pruneHigh = Math.floor(fdLimit * 0.6), pruneLow = Math.floor(fdLimit * 0.3);
  d.nodeCap = Math.floor(fdLimit * 0.8);
  let lastPrune = 0, sizeAtPrune = 0;
  const prune = (): void => {
    const now = Date.now();
    // Again when the table grew by a quarter of the margin since, or after 20 ms.
    if ((now - lastPrune < 20 && fs.nodes.size - sizeAtPrune < (pruneHigh - pruneLow) / 4) || !d.negotiated || d.negotiated.minor < 45) return;
    lastPrune = now;
    sizeAtPrune = fs.nodes.size;
    const ids = fs.nodes.leastRecentlyUsed(fs.nodes.size - pruneLow);
    for (let i = 0; i < ids.length; i += 256) {
      const batch = ids.slice(i, i + 256);
      const msg = Buffer.alloc(SIZE.out_header + 16 + 8 * batch.length);
      msg.writeUInt32LE(msg.length, 0);
      msg.writeInt32LE(NOTIFY.PRUNE, 4);
      msg.writeUInt32LE(batch.length, SIZE.out_header);
      batch.forEach((id, j) => msg.writeBigUInt64LE(BigInt(id), SIZE.out_header + 16 + 8 * j));
      try { libc.write(devFd, msg); } catch (e) { log.warn(`FUSE_NOTIFY_PRUNE: ${(e as Error).message}`); return; }
    }
  };
  for (;;) {
    if (Atomics.load(control, 0) === 1) {
      // Nothing is in flight: every request read has been answered (the loop is synchronous).
      const st: TransferState = { ...fs.updatePrepare(), negotiated: d.negotiated!, devFd };
      const statePath = cfg.statePath ?? join(tmpdir(), `provfs-state-${process.pid}-${Date.now()}.bin`);
      writeState(statePath, st);
      post({ type: 'quiesced', statePath, fds: stateFds(st), version: st.version });
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
    if (fs.nodes.size > pruneHigh) prune();
    if (!state && !recovered && d.negotiated && buf.readUInt32LE(4) === 26) {
      nodeLog?.init(d.negotiated);
      post({ type: 'ready', passthrough: d.negotiated.passthrough, minor: d.negotiated.minor, at: Number(process.hrtime.bigint()), devFd, rootFd: fs.nodes.get(1).fd });
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
