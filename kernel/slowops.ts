/**
 * @module kernel/slowops
 * A helper thread of the request loop for operations that block on the disk (FSYNC): the loop
 * hands it the request's unique id and an fd of the file for this thread alone (kernel/ops
 * fsyncFd) and reads on; this thread syncs, closes that fd and writes the one reply itself (any
 * thread may answer on /dev/fuse). Ten applications fsync'ing no longer wait for each other in
 * the loop, and a quiescing loop need not wait for the disk: a predecessor keeps this thread
 * until every fsync it accepted is answered.
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as libc from './libc.js';

/** A deferred FSYNC. */
export interface SlowOp {
  unique: Uint8Array;
  /** This thread's to close once synced. */
  fd: number;
  dataOnly: boolean;
}

/**
 * Control messages: `devFd` — the connection to answer on (a successor's thread starts before it
 * has one); `warm` — fsync this scratch fd and close it, answering nobody (compiles the path).
 */
export type SlowControl = { devFd: number } | { warm: number };

if (parentPort && workerData?.provfsSlowOps) {
  const { inflight } = workerData.provfsSlowOps as { devFd: number; inflight: SharedArrayBuffer };
  let { devFd } = workerData.provfsSlowOps as { devFd: number };
  const count = new Int32Array(inflight);
  const reply = Buffer.alloc(16);
  parentPort.on('message', (op: SlowOp | SlowControl) => {
    if ('devFd' in op) { devFd = op.devFd; return; }
    if ('warm' in op) {
      for (let i = 0; i < 3; i++) { try { libc.fsync(op.warm, i === 1); } catch { /* scratch */ } }
      libc.close(op.warm);
      return;
    }
    let err = 0;
    try { libc.fsync(op.fd, op.dataOnly); } catch (e) { err = e instanceof libc.Errno ? e.errno : libc.E.EIO; }
    libc.close(op.fd);
    reply.writeUInt32LE(16, 0);
    reply.writeInt32LE(-err, 4);
    reply.set(op.unique, 8);
    try { libc.write(devFd, reply); } catch { /* interrupted or unmounted: nobody waits */ }
    Atomics.sub(count, 0, 1);
    Atomics.notify(count, 0);
  });
}
