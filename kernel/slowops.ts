/**
 * @module kernel/slowops
 * A helper thread of the request loop for operations that block on the disk (FSYNC): the loop
 * hands it the request's unique id and an fd of the file for this thread alone (kernel/ops
 * fsyncFd) and reads on; this thread syncs, closes that fd and writes the one reply itself (any
 * thread may answer on /dev/fuse). Ten applications fsync'ing no longer wait for each other in
 * the loop, nor here (the syncs run in libuv's thread pool, several at once), and a quiescing
 * loop need not wait for the disk: a predecessor keeps this thread until every fsync it
 * accepted is answered.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { fdatasync, fsync } from 'node:fs';
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
  if (count.length > 1) Atomics.store(count, 1, libc.gettid()); // the loop raises this thread with its own (kernel/loop boost)
  const reply = Buffer.alloc(16);
  parentPort.on('message', (op: SlowOp | SlowControl) => {
    if ('devFd' in op) { devFd = op.devFd; return; }
    if ('warm' in op) {
      for (let i = 0; i < 3; i++) { try { libc.fsync(op.warm, i === 1); } catch { /* scratch */ } }
      libc.close(op.warm);
      return;
    }
    // In libuv's thread pool (4 threads: node starts it while loading ES modules, so a
    // UV_THREADPOOL_SIZE set by provfsd itself would come too late): fsyncs of different files
    // run at once, as the applications issued them (Figure 5 (b): 81–91 operations per 5 ms,
    // 68–70 with one fsync at a time here).
    (op.dataOnly ? fdatasync : fsync)(op.fd, (e) => {
      libc.close(op.fd);
      const err = e ? (libc.E as Record<string, number>)[e.code ?? ''] ?? libc.E.EIO : 0;
      reply.writeUInt32LE(16, 0);
      reply.writeInt32LE(-err, 4);
      reply.set(op.unique, 8);
      try { libc.write(devFd, reply); } catch { /* interrupted or unmounted: nobody waits */ }
      Atomics.sub(count, 0, 1);
      Atomics.notify(count, 0);
    });
  });
}
