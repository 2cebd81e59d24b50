/**
 * @module kernel/slowops.test
 * The FSYNC helper thread on its own: many syncs handed over at once are each answered once on
 * the connection, with the request's unique id and its own result (an fsync that fails keeps its
 * errno), every fd handed over is closed, and the in-flight count returns to 0.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { mkdtempSync, rmSync, writeFileSync, existsSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';
import type { SlowOp } from './slowops.js';

const dir = mkdtempSync(join(tmpdir(), 'provfs-slowops-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('syncs handed over at once are each answered once, with their own errno, and their fds closed', async () => {
  // The "connection": a FIFO whose read end this test holds (replies are 16 bytes: atomic).
  const fifo = join(dir, 'conn');
  libc.mknodat(libc.AT.FDCWD, libc.cstr(fifo), 0o010600, 0); // S_IFIFO
  const readEnd = libc.open(fifo, libc.O.RDWR | libc.O.NONBLOCK);
  const devFd = libc.open(fifo, libc.O.WRONLY);
  const inflight = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL('./slowops.js', import.meta.url), { workerData: { provfsSlowOps: { devFd, inflight: inflight.buffer } } });
  try {
    const ops: Array<{ unique: bigint; fd: number; want: number }> = [];
    for (let i = 0; i < 12; i++) {
      const f = join(dir, `f${i}`);
      writeFileSync(f, `data ${i}`);
      ops.push({ unique: BigInt(1000 + i), fd: libc.open(f, libc.O.RDWR), want: 0 });
    }
    // fsync of a FIFO fails with EINVAL: the reply must say so.
    ops.push({ unique: 2000n, fd: libc.open(fifo, libc.O.RDWR | libc.O.NONBLOCK), want: -libc.E.EINVAL });
    const targets = ops.map((o) => readlinkSync(`/proc/self/fd/${o.fd}`));
    Atomics.add(inflight, 0, ops.length);
    for (const o of ops) {
      const unique = new Uint8Array(8);
      new DataView(unique.buffer).setBigUint64(0, o.unique, true);
      worker.postMessage({ unique, fd: o.fd, dataOnly: o.unique % 2n === 0n } satisfies SlowOp);
    }
    const deadline = Date.now() + 10_000;
    while (Atomics.load(inflight, 0) > 0) {
      assert.ok(Date.now() < deadline, `${Atomics.load(inflight, 0)} syncs still unanswered after 10 s`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const got = new Map<bigint, number>();
    const buf = Buffer.alloc(16 * 64);
    const n = libc.read(readEnd, buf);
    assert.equal(n, 16 * ops.length, 'one 16-byte reply per sync');
    for (let at = 0; at < n; at += 16) {
      assert.equal(buf.readUInt32LE(at), 16, 'out_header.len');
      const unique = buf.readBigUInt64LE(at + 8);
      assert.ok(!got.has(unique), `unique ${unique} answered twice`);
      got.set(unique, buf.readInt32LE(at + 4));
    }
    for (const o of ops) assert.equal(got.get(o.unique), o.want, `unique ${o.unique}: error ${o.want}`);
    // Every fd handed over was closed by the helper (its number may be reused since: then it names another file).
    ops.forEach((o, i) => {
      const p = `/proc/self/fd/${o.fd}`;
      assert.ok(!existsSync(p) || readlinkSync(p) !== targets[i], `fd ${o.fd} (${targets[i]}) still open`);
    });
  } finally {
    await worker.terminate();
    libc.close(devFd);
    libc.close(readEnd);
  }
});
