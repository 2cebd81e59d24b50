/**
 * Early plans (engine.ts: what the barrier has read is applied while it waits for the probe)
 * split at many points: a feed that reveals its records a few at a time, as a journal's group
 * commits do, makes every sync apply several plans, each running while the next records are
 * read. DST must equal SRC wherever the splits fall, and after SRC changed during syncs, once
 * a sync ran with SRC quiet.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import type { JournalRecord } from '../journal/api.js';
import { MemoryFeed } from './feed.js';
import { syncOnce, type SyncOptions } from './engine.js';
import { Workload } from './workload.js';
import { treeDiff, treeHash } from './treehash.js';
import { RESERVED_PREFIX } from './paths.js';

process.env.PROV_LOG ??= 'warn';
const base = fs.mkdtempSync(`${tmpdir()}/prov-sync-early-`);
after(() => fs.rmSync(base, { recursive: true, force: true }));
const HASH = { mtimes: true, dirMtimes: true };

/** A small deterministic generator (the split points of one seed are the same each run). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return s / 0x100000000; };
}

/**
 * Records become visible a few at a time (each `heads()` or read reveals up to `chunk` more), and
 * reading yields to the event loop now and then, so an early plan's file-system calls overlap it.
 * Once all are visible, the barrier's probe directory is recorded as capture would record it.
 */
class TricklingFeed extends MemoryFeed {
  private visible = 0;
  constructor(private readonly src: string, private readonly r: () => number, private readonly chunk: number) { super(); }

  reset(): void { this.visible = this.records.length; }

  private reveal(): void {
    if (this.visible >= this.records.length) this.recordProbe();
    this.visible = Math.min(this.records.length, this.visible + 1 + Math.floor(this.r() * this.chunk));
  }

  /** Probe names seen by inotify (the probe lives for a moment only: sync removes it at once). */
  private readonly probes: string[] = [];
  private watcher: fs.FSWatcher | null = null;

  watchProbes(): void {
    this.watcher = fs.watch(this.src, (_kind, name) => {
      if (typeof name === 'string' && name.startsWith(`${RESERVED_PREFIX}probe-`) && !this.probes.includes(name)) this.probes.push(name);
    });
  }

  close(): Promise<void> { this.watcher?.close(); return Promise.resolve(); }

  private recordProbe(): void {
    const dev = fs.statSync(this.src).dev;
    while (this.probes.length > 0) {
      const path = `${this.src}/${this.probes.shift()!}`;
      this.append({ v: 1, src: 'ebpf', seq: 0, ts: Number(process.hrtime.bigint()), host: 'h', pid: 1, tid: 1, op: 'mkdir', file: { dev, ino: 1, path }, mode: 0o755 });
    }
  }

  override async heads(): Promise<Record<string, number>> {
    this.reveal();
    return { [this.stream]: this.visible };
  }

  /** Changes SRC while a sync reads (a workload step, recorded like the others). */
  during: (() => void) | null = null;

  override async *read(from: Record<string, number>): AsyncIterable<JournalRecord> {
    this.reveal();
    if (this.during && this.r() < 0.5) for (let k = 0; k < 3; k++) this.during();
    const after = from[this.stream] ?? 0;
    for (const rec of this.records) {
      if (rec.seq <= after) continue;
      if (rec.seq > this.visible) return;
      if (this.r() < 0.2) await new Promise((res) => setImmediate(res));
      yield rec;
    }
  }
}

/** A populated SRC, its feed and workload, and sync options; the first (full) sync done. Close the feed after. */
async function start(name: string, seed: number, chunk: number): Promise<{ src: string; dst: string; feed: TricklingFeed; w: Workload; opts: SyncOptions }> {
  const d = `${base}/${name}`;
  const src = `${d}/src`, dst = `${d}/dst`, state = `${d}/state`;
  fs.mkdirSync(src, { recursive: true });
  const feed = new TricklingFeed(src, rng(seed * 7919), chunk);
  const w = new Workload(src, seed, (ev) => { feed.append(ev); });
  w.populate(12, 150);
  const opts: SyncOptions = { src, dst, delete: true, feed, stateDir: state, barrierTimeoutMs: 2000 };
  feed.reset();
  feed.watchProbes();
  try {
    assert.equal((await syncOnce(opts)).mode, 'full');
  } catch (e) {
    await feed.close();
    throw e;
  }
  return { src, dst, feed, w, opts };
}

describe('early plans split anywhere', () => {
  // Seeds 14 and 16 (chunk 12) once lost a file placed from a staging slot DST never filled;
  // seed 131 (chunk 3) a directory dropped with what it held, then only updated.
  const cases: Array<[number, number]> = [[11, 12], [12, 12], [13, 12], [14, 12], [15, 12], [16, 12], [17, 12], [18, 12], [131, 3], [132, 3]];
  for (const [seed, chunk] of cases) {
    it(`random workload, seed ${seed}: DST equals SRC with records revealed up to ${chunk} at a time`, async () => {
      const { src, dst, feed, w, opts } = await start(String(seed), seed, chunk);
      try {
        for (let round = 0; round < 4; round++) {
          for (let i = 0; i < 250; i++) w.step();
          const r = await syncOnce(opts);
          assert.equal(r.mode, 'incremental', `round ${round}: ${r.reason}`);
          assert.equal(treeHash(dst, HASH), treeHash(src, HASH), `seed ${seed} round ${round}: DST differs from SRC:\n${treeDiff(src, dst, HASH).join('\n')}`);
        }
      } finally {
        await feed.close();
      }
    });
  }

  // Seed 21 once kept a directory SRC made and removed right after a whole-directory copy.
  for (const seed of [21, 22]) {
    it(`random workload, seed ${seed}: SRC changed while each sync reads; the next quiet sync ends equal`, async () => {
      const { src, dst, feed, w, opts } = await start(`during-${seed}`, seed, 12);
      try {
        for (let round = 0; round < 5; round++) {
          // Rounds 0-3: SRC changes while the sync runs (DST may lag); round 4 is quiet.
          feed.during = round < 4 ? () => w.step() : null;
          for (let i = 0; i < 250; i++) w.step();
          const r = await syncOnce(opts);
          assert.equal(r.mode, 'incremental', `round ${round}: ${r.reason}`);
        }
        assert.equal(treeHash(dst, HASH), treeHash(src, HASH), `seed ${seed}: DST differs from SRC after the quiet sync:\n${treeDiff(src, dst, HASH).join('\n')}`);
      } finally {
        await feed.close();
      }
    });
  }
});
