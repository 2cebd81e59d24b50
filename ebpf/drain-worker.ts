/**
 * @module ebpf/drain-worker
 * The ring-buffer consumer thread: maps the pinned ring, copies committed records out in
 * batches and hands each batch (transferred, not copied) to the owning thread. It never waits
 * on the journal: the owner grants credits (batches in flight) through a shared counter, and
 * while credits are exhausted the kernel's ring absorbs the backlog.
 *
 * The kernel's consumer position advances only to what the owner reports durable (the commit
 * slot), so records copied out but not yet in the journal survive a crash of this process in
 * the pinned ring, for the next consumer.
 *
 * Shared memory: Int32 [0] stop flag, [1] credits left, [2] wake-up counter, [3] the owner gave
 * up on making records durable (journal failed); BigInt64 at byte 16: the durable position, at
 * byte 24: the position appended to the journal (not yet durable).
 *
 * Under pressure (the ring more than half full, e.g. while an fsync takes seconds) appended
 * records are committed before they are durable: a crash could then lose them, a full ring
 * would lose new ones for sure.
 *
 * Priority under pressure: while the ring is more than a quarter full this thread runs at
 * `boostNice` (and tells the owner, which does the same for its thread), back to its own nice
 * once below 5 %. A drain that yields (started at a calm nice) is raised as well once a record
 * has waited `maxWaitMs` in the ring, so a busy host still gets its records within about that. A burst the ring absorbs leaves the workload alone; a backlog that could
 * overrun the ring gets the CPU first, so the workload that produces it slows instead of
 * events being lost.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { getPriority, setPriority } from 'node:os';
import { RingReader } from './ring.js';

interface Init { ringPath: string; shared: SharedArrayBuffer; pollMs: number; maxBatchBytes: number; boostNice: number | null; maxWaitMs: number | null }
const { ringPath, shared, pollMs, maxBatchBytes, boostNice, maxWaitMs } = workerData as Init;
const BOOST_ON = 0.25, BOOST_OFF = 0.05;
/** A yielding drain is also raised once the oldest unread record has waited this long, and lowered when the ring is calm and fresh again. */
const maxWaitNs = maxWaitMs === null ? null : BigInt(Math.round(maxWaitMs * 1e6));
const FIRST_BATCH = Math.min(256 << 10, maxBatchBytes);
const ctl = new Int32Array(shared, 0, 4);
const durable = new BigInt64Array(shared, 16, 1);
const appended = new BigInt64Array(shared, 24, 1);
const STOP = 0, CREDITS = 1, WAKE = 2, ABANDON = 3;
/** Waiting for the owner's last commit when stopping. */
const FINAL_COMMIT_MS = 30000;

function main(): void {
  let ring: RingReader;
  try {
    ring = RingReader.open(ringPath);
  } catch (err) {
    parentPort!.postMessage({ type: 'error', message: (err as Error).message });
    return;
  }
  parentPort!.postMessage({ type: 'ready', size: ring.size });
  const ownNice = getPriority(0);
  let boosted = false, boostFailed = boostNice === null;
  /** Raise or drop this thread's priority with the ring's fill; tell the owner. */
  const pressure = () => {
    if (boostFailed) return;
    const fill = ring.pending() / ring.size;
    const oldest = maxWaitNs === null ? null : ring.oldestUnread();
    const waited = oldest === null ? 0n : process.hrtime.bigint() - oldest;
    const late = maxWaitNs !== null && waited > maxWaitNs;
    const fresh = maxWaitNs === null || waited < maxWaitNs / 4n;
    if (boosted ? fill >= BOOST_OFF || !fresh : fill <= BOOST_ON && !late) return;
    try {
      setPriority(0, boosted ? ownNice : boostNice!);
    } catch (e) {
      boostFailed = true;
      parentPort!.postMessage({ type: 'boost', on: false, fill, message: (e as Error).message });
      return;
    }
    boosted = !boosted;
    parentPort!.postMessage({ type: 'boost', on: boosted, fill });
  };
  try {
    const applyCommit = () => {
      const safe = Number(Atomics.load(durable, 0));
      ring.commit(ring.pending() > ring.size / 2 ? Math.max(safe, Number(Atomics.load(appended, 0))) : safe);
    };
    let batchBytes = FIRST_BATCH;
    for (;;) {
      applyCommit();
      pressure();
      const stopping = Atomics.load(ctl, STOP) !== 0;
      if (Atomics.load(ctl, CREDITS) <= 0) {
        if (stopping) break;
        Atomics.wait(ctl, WAKE, Atomics.load(ctl, WAKE), pollMs);
        continue;
      }
      // Small batches first (the owner starts appending sooner, while this code is still cold),
      // doubling up to maxBatchBytes; back to small once the ring is empty.
      const batch = ring.readSpans(batchBytes);
      if (batch) {
        batchBytes = Math.min(batchBytes * 2, maxBatchBytes);
        Atomics.sub(ctl, CREDITS, 1);
        parentPort!.postMessage({ type: 'batch', bytes: batch.bytes, starts: batch.starts, ends: batch.ends, count: batch.count, payloadBytes: batch.payloadBytes, end: batch.end },
          [batch.bytes.buffer as ArrayBuffer, batch.starts.buffer as ArrayBuffer, batch.ends.buffer as ArrayBuffer]);
        continue;
      }
      batchBytes = FIRST_BATCH;
      if (stopping) break; // drained to empty after stop was asked
      Atomics.wait(ctl, WAKE, Atomics.load(ctl, WAKE), pollMs);
    }
    // Everything read was posted; commit once the owner says it is durable.
    const end = ring.position;
    parentPort!.postMessage({ type: 'drained', end });
    const deadline = Date.now() + FINAL_COMMIT_MS;
    while (Number(Atomics.load(durable, 0)) < end && Date.now() < deadline && Atomics.load(ctl, ABANDON) === 0) {
      Atomics.wait(ctl, WAKE, Atomics.load(ctl, WAKE), 50);
    }
    applyCommit();
  } catch (err) {
    parentPort!.postMessage({ type: 'error', message: (err as Error).message });
  } finally {
    ring.close();
    parentPort!.postMessage({ type: 'done' });
  }
}

main();
