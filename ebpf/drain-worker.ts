/**
 * @module ebpf/drain-worker
 * The ring-buffer consumer thread: maps the pinned ring, copies committed records out in
 * batches and hands each batch (transferred, not copied) to the owning thread. It never waits
 * on the journal: the owner grants credits (batches in flight) through a shared counter, and
 * while credits are exhausted the kernel's ring absorbs the backlog.
 *
 * Shared Int32 slots: [0] stop flag, [1] credits left, [2] wake-up counter.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { RingReader } from './ring.js';

interface Init { ringPath: string; shared: SharedArrayBuffer; pollMs: number; maxBatchBytes: number }
const { ringPath, shared, pollMs, maxBatchBytes } = workerData as Init;
const ctl = new Int32Array(shared);
const STOP = 0, CREDITS = 1, WAKE = 2;

function main(): void {
  let ring: RingReader;
  try {
    ring = RingReader.open(ringPath);
  } catch (err) {
    parentPort!.postMessage({ type: 'error', message: (err as Error).message });
    return;
  }
  parentPort!.postMessage({ type: 'ready', size: ring.size });
  try {
    for (;;) {
      const stopping = Atomics.load(ctl, STOP) !== 0;
      if (Atomics.load(ctl, CREDITS) <= 0) {
        if (stopping) break;
        Atomics.wait(ctl, WAKE, Atomics.load(ctl, WAKE), pollMs);
        continue;
      }
      const batch = ring.read(maxBatchBytes);
      if (batch) {
        Atomics.sub(ctl, CREDITS, 1);
        parentPort!.postMessage({ type: 'batch', bytes: batch.bytes, offsets: batch.offsets, count: batch.count },
          [batch.bytes.buffer as ArrayBuffer, batch.offsets.buffer as ArrayBuffer]);
        continue;
      }
      if (stopping) break; // drained to empty after stop was asked
      Atomics.wait(ctl, WAKE, Atomics.load(ctl, WAKE), pollMs);
    }
  } catch (err) {
    parentPort!.postMessage({ type: 'error', message: (err as Error).message });
  } finally {
    ring.close();
    parentPort!.postMessage({ type: 'done' });
  }
}

main();
