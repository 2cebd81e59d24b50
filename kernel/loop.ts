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
import { parentPort, workerData } from 'node:worker_threads';
import * as libc from './libc.js';
import { E } from './libc.js';
import { ProvFs, type ProvFsState } from './ops.js';
import { Dispatcher, passthroughDevice, type Timeouts } from './dispatch.js';
import { Recorder } from './recorder.js';
import { EventRing } from './eventring.js';
import { logger } from '../collector/log.js';
import type { ProvEvent } from '../collector/events.js';

const log = logger('provfs');

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
  /** Int32 control word: 0 run, 1 quiesce (finish the request in hand, then report state). */
  control: SharedArrayBuffer;
  /** A predecessor's state (live upgrade): skip INIT, adopt its nodes and handles. */
  state?: ProvFsState & { negotiated: NonNullable<Dispatcher['negotiated']> };
}

/** Messages from the worker. */
export type LoopMessage =
  | { type: 'ready'; passthrough: boolean; minor: number }
  | { type: 'events'; events: ProvEvent[] }
  | { type: 'stopped'; reason: string; counts: Record<string, number> }
  | { type: 'quiesced'; state: ProvFsState & { negotiated: NonNullable<Dispatcher['negotiated']> } };

export function runLoop(cfg: LoopConfig, post: (m: LoopMessage) => void): void {
  const ring = new EventRing(cfg.ring);
  const control = new Int32Array(cfg.control);
  const enc = new TextEncoder();
  const sink = (ev: ProvEvent): void => {
    if (!ring.push(enc.encode(JSON.stringify(ev)))) post({ type: 'events', events: [ev] });
  };
  const fs = cfg.state ? ProvFs.updateTransfer(cfg.state, null) : new ProvFs(cfg.rootFd, null);
  if (cfg.mode === 'prov') {
    fs.recorder = new Recorder({ dev: cfg.dev, mountpoint: cfg.mountpoint, nodes: fs.nodes, sink });
  }
  const devFd = cfg.devFd;
  const send = (buf: Buffer, len: number): void => {
    try {
      libc.write(devFd, buf, len);
    } catch (e) {
      // ENOENT: the request was interrupted and is gone; nothing else to do.
      if (!(e instanceof libc.Errno && e.errno === E.ENOENT)) throw e;
    }
  };
  const d = new Dispatcher(fs, { timeouts: cfg.timeouts, passthrough: cfg.passthrough, devFd, maxWrite: cfg.maxWrite }, send);
  if (cfg.state) {
    d.negotiated = cfg.state.negotiated;
    // Re-arm passthrough on the same connection: backing ids belong to it and survive.
    if (cfg.state.passthrough) fs.passthrough = passthroughDevice(devFd);
    post({ type: 'ready', passthrough: cfg.state.passthrough, minor: cfg.state.negotiated.minor });
  }
  const buf = Buffer.alloc(cfg.maxWrite + 4096 + 4096);
  let reason = 'unmounted';
  for (;;) {
    if (Atomics.load(control, 0) === 1) {
      const st = fs.updatePrepare();
      post({ type: 'quiesced', state: { ...st, negotiated: d.negotiated! } });
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
    if (!cfg.state && d.negotiated && buf.readUInt32LE(4) === 26) {
      post({ type: 'ready', passthrough: d.negotiated.passthrough, minor: d.negotiated.minor });
    }
  }
  const counts: Record<string, number> = {};
  for (const [op, c] of d.counts) counts[op] = c;
  post({ type: 'stopped', reason, counts });
}

if (parentPort && workerData?.provfsLoop) {
  const port = parentPort;
  runLoop(workerData.provfsLoop as LoopConfig, (m) => port.postMessage(m));
}
