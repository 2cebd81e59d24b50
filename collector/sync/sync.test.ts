/**
 * Core of `prov sync` on real trees with event sequences written by the test (the events a
 * capture source would write for each operation the workload performs): random workloads,
 * collapse rules, gaps forcing the full comparison, path-escape attempts.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { MemoryFeed } from './feed.js';
import { syncOnce, watch, type SyncOptions } from './engine.js';
import { Workload } from './workload.js';
import { treeDiff, treeHash } from './treehash.js';
import { Overlay } from './overlay.js';
import { SafeTree } from './safefs.js';

process.env.PROV_LOG ??= 'warn';
const base = fs.mkdtempSync(`${tmpdir()}/prov-sync-test-`);
after(() => fs.rmSync(base, { recursive: true, force: true }));
let n = 0;
function dirs(): { src: string; dst: string; state: string; outside: string } {
  const d = `${base}/${++n}`;
  const r = { src: `${d}/src`, dst: `${d}/dst`, state: `${d}/state`, outside: `${d}/outside` };
  for (const p of Object.values(r)) fs.mkdirSync(p, { recursive: true });
  return r;
}
const HASH = { mtimes: true, dirMtimes: true };
function assertSame(src: string, dst: string, what: string): void {
  assert.equal(treeHash(dst, HASH), treeHash(src, HASH), `${what}: DST differs from SRC:\n${treeDiff(src, dst, HASH).join('\n')}`);
}

describe('sync from events (synthetic records)', () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`random workload, seed ${seed}: DST equals SRC after each incremental sync`, async () => {
      const d = dirs();
      const feed = new MemoryFeed();
      const w = new Workload(d.src, seed, (ev) => { feed.append(ev); });
      w.populate(15, 150);
      const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
      // Events of the initial build are not in the feed (emit was not called), and there is
      // no checkpoint yet: the first sync is a full comparison.
      const first = await syncOnce(opts);
      assert.equal(first.mode, 'full');
      assertSame(d.src, d.dst, 'after the first (full) sync');
      let renames = 0;
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 250; i++) w.step();
        const r = await syncOnce(opts);
        assert.equal(r.mode, 'incremental', `round ${round}: ${r.reason}`);
        assertSame(d.src, d.dst, `seed ${seed} round ${round}`);
        renames += r.counts.renames;
      }
      assert.ok(renames > 0, 'renames were applied as renames');
    });
  }

  it('a renamed directory is one rename; its files are not copied', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 7, (ev) => { feed.append(ev); });
    fs.mkdirSync(`${d.src}/a/b`, { recursive: true });
    for (let i = 0; i < 50; i++) fs.writeFileSync(`${d.src}/a/b/f${i}`, `x${i}`);
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    w.rename('a', 'z');
    w.writeFile('z/b/f3', Buffer.from('changed'), true);
    const r = await syncOnce(opts);
    assert.equal(r.mode, 'incremental');
    assert.equal(r.counts.renames, 1);
    assert.equal(r.counts.files, 1, 'only the file modified after the rename is copied');
    assertSame(d.src, d.dst, 'dir rename');
  });

  it('collapses temp files, rename chains and rename-then-modify', () => {
    const o = new Overlay();
    o.create('tmp1'); o.modify('tmp1'); o.rename('tmp1', 'tmp2'); o.remove('tmp2');
    let p = o.plan();
    assert.deepEqual(p.finalOps, [], 'create+write+rename+delete of a temp leaves nothing to copy');
    assert.ok(p.originOps.every((x) => x.op === 'delete' && x.replaced), 'only no-op replacement checks remain');
    const o2 = new Overlay();
    o2.rename('a', 'b'); o2.rename('b', 'c'); o2.rename('c', 'd');
    p = o2.plan();
    assert.deepEqual(p.finalOps, [{ op: 'move', origin: 'a', path: 'd', dirty: false }], 'a file renamed in place needs no staging');
    assert.ok(p.originOps.every((x) => x.op === 'delete' && x.replaced), 'only no-op replacement checks on the origin side');
    const o3 = new Overlay();
    o3.rename('dir', 'new'); o3.modify('new/f'); o3.rename('new/f', 'g');
    p = o3.plan();
    assert.deepEqual(p.finalOps.map((x) => x.op === 'place' ? `${x.origin}>${x.path}${x.dirty ? '*' : ''}` : x.op).sort(), ['dir/f>g*', 'dir>new']);
    const o4 = new Overlay();
    o4.rename('a', 'b'); o4.rename('b', 'a');
    assert.deepEqual(o4.plan().finalOps, [], 'a rename undone is nothing');
  });

  it('clears the paths the records leave empty that no step of the plan empties', () => {
    const clears = (f: (o: Overlay) => void): string[] => { const o = new Overlay(); f(o); return o.plan().clears.sort(); };
    assert.deepEqual(clears((o) => o.remove('a')), [], 'a checkpoint file deleted in place: its delete empties the path');
    assert.deepEqual(clears((o) => o.rename('a', 'b')), [], 'renamed away: its move empties the path');
    assert.deepEqual(clears((o) => { o.create('t'); o.remove('t'); }), ['t'], 'made and removed: nothing else would remove a copy made ahead');
    assert.deepEqual(clears((o) => { o.create('t'); o.rename('t', 'u'); }), ['t'], 'made, then renamed: the old name');
    assert.deepEqual(clears((o) => { o.create('n'); o.create('n/x'); o.remove('n/x'); }), ['n/x'], 'inside a directory made since');
    assert.deepEqual(clears((o) => { o.create('n'); o.create('n/x'); o.remove('n/x'); o.remove('n'); }), ['n'], 'under a path that goes itself: only that path');
    assert.deepEqual(clears((o) => { o.rename('d', 'e'); o.create('e/t'); o.remove('e/t'); }), ['e/t'], 'inside a moved directory, where it is now');
  });

  it('finds where an object named as of the overlay start is now (marks for a plan applied meanwhile)', () => {
    const o = new Overlay();
    o.rename('d', 'e'); o.rename('a', 'x/b'); o.remove('gone'); o.create('new');
    assert.equal(o.currentPathOf('d/f'), 'e/f', 'moved with its directory');
    assert.equal(o.currentPathOf('a'), 'x/b', 'moved itself');
    assert.equal(o.currentPathOf('gone'), null, 'deleted');
    assert.equal(o.currentPathOf('d'), 'e');
    assert.equal(o.currentPathOf('untouched/f'), 'untouched/f');
    assert.equal(o.currentPathOf('new'), null, 'the object at this path now is another one');
    o.rename('e', 'z');
    assert.equal(o.currentPathOf('d/f'), 'z/f', 'moved twice');
  });

  it('a lost record forces the full comparison, which still ends equal', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 11, (ev) => { feed.append(ev); });
    w.populate(10, 80);
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    for (let i = 0; i < 100; i++) w.step();
    feed.lose(3, 'ring buffer full');
    // Changes the record does not have at all: only the full comparison can find them.
    fs.writeFileSync(`${d.src}/unrecorded`, 'not in the journal');
    const r = await syncOnce(opts);
    assert.equal(r.mode, 'full');
    assert.match(r.reason ?? '', /lost/);
    assertSame(d.src, d.dst, 'after the gap');
    for (let i = 0; i < 100; i++) w.step();
    const r2 = await syncOnce(opts);
    assert.equal(r2.mode, 'incremental', 'the checkpoint after a full sync is good again');
    assertSame(d.src, d.dst, 'after the sync following the gap');
  });

  it('a seq gap, a lost checkpoint and a path-less event on SRC each force the full comparison', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 12, (ev) => { feed.append(ev); });
    w.populate(5, 30);
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    w.createFile('a1');
    feed.records.push({ ...feed.records.at(-1)!, seq: feed.records.length + 2 }); // seq jumps
    let r = await syncOnce(opts);
    assert.equal(r.mode, 'full');
    assert.match(r.reason ?? '', /seq/);
    assertSame(d.src, d.dst, 'seq gap');

    const feed2 = new MemoryFeed();
    const w2 = new Workload(d.src, 13, (ev) => { feed2.append(ev); });
    fs.rmSync(d.state, { recursive: true });
    r = await syncOnce({ ...opts, feed: feed2 });
    assert.equal(r.mode, 'full');
    assert.match(r.reason ?? '', /checkpoint/);
    const st = fs.statSync(d.src);
    w2.createFile('a2');
    feed2.append({ v: 1, src: 'ebpf', seq: 0, ts: 1, host: 'h', pid: 1, tid: 1, op: 'unlink', file: { dev: st.dev, ino: 5 }, deleted: true });
    r = await syncOnce({ ...opts, feed: feed2 });
    assert.equal(r.mode, 'full');
    assert.match(r.reason ?? '', /without a path/);
    assertSame(d.src, d.dst, 'path-less event');
  });

  it('records that contradict the tree force the full comparison', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 14, (ev) => { feed.append(ev); });
    w.populate(3, 10);
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    w.createFile('x');
    w.unlink('x');
    const st = fs.statSync(d.src);
    // A rename of the file the record just said is gone: the record is not consistent.
    feed.append({ v: 1, src: 'ebpf', seq: 0, ts: 1, host: 'h', pid: 1, tid: 1, op: 'rename', file: { dev: st.dev, ino: 9, path: `${d.src}/y` }, from: { path: `${d.src}/x` }, flags: 0 });
    const r = await syncOnce(opts);
    assert.equal(r.mode, 'full');
    assertSame(d.src, d.dst, 'contradiction');
  });
});

describe('writes that span syncs', () => {
  it('a file kept open for writing across a sync is copied again at its close (also through a dup)', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    fs.writeFileSync(`${d.src}/log`, 'v0');
    await syncOnce(opts);
    const st = fs.statSync(`${d.src}/log`);
    const file = { dev: st.dev, ino: st.ino, path: `${d.src}/log` };
    const ev = { v: 1 as const, src: 'ebpf' as const, seq: 0, ts: 1, host: 'h', pid: process.pid, tid: process.pid }; // a live pid: handles of dead processes are dropped
    feed.append({ ...ev, op: 'open', file, flags: 1 /* O_WRONLY */, fd: 7 });
    feed.append({ ...ev, op: 'dup', oldfd: 7, newfd: 9 });
    feed.append({ ...ev, op: 'close', fd: 7 });
    fs.writeFileSync(`${d.src}/log`, 'v1');
    let r = await syncOnce(opts);
    assert.equal(r.mode, 'incremental');
    assert.equal(fs.readFileSync(`${d.dst}/log`, 'utf8'), 'v1');
    // Written again through fd 9 (no event for a write), then closed: the close names only the fd.
    fs.writeFileSync(`${d.src}/log`, 'v2 longer');
    feed.append({ ...ev, op: 'close', fd: 9 });
    r = await syncOnce(opts);
    assert.equal(r.mode, 'incremental');
    assert.equal(fs.readFileSync(`${d.dst}/log`, 'utf8'), 'v2 longer', 'the close after the checkpoint is recognised');
    assertSame(d.src, d.dst, 'open writer');
  });
});

describe('changes made while a sync runs', () => {
  it('a file SRC lost between the records and its copy (its directory moved on) is copied again when the move is read', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 51, (ev) => { feed.append(ev); });
    fs.mkdirSync(`${d.src}/a`);
    fs.writeFileSync(`${d.src}/a/f`, 'old');
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    w.writeFile('a/f', Buffer.from('new contents'), false); // recorded
    // The directory moves after the records were read and before the copy: its record comes later.
    const st = fs.statSync(`${d.src}/a`);
    fs.renameSync(`${d.src}/a`, `${d.src}/b`);
    let r = await syncOnce(opts);
    assert.equal(r.mode, 'incremental');
    assert.equal(fs.readFileSync(`${d.dst}/a/f`, 'utf8'), 'old', 'SRC had no a/f to copy');
    feed.append({ v: 1, src: 'ebpf', seq: 0, ts: 2, host: 'h', pid: 1, tid: 1, op: 'rename', file: { dev: st.dev, ino: st.ino, path: `${d.src}/b` }, from: { path: `${d.src}/a` }, flags: 0 });
    r = await syncOnce(opts);
    assert.equal(r.mode, 'incremental');
    assert.equal(fs.readFileSync(`${d.dst}/b/f`, 'utf8'), 'new contents', 'the stale copy moved with its directory and was copied again');
    assertSame(d.src, d.dst, 'after the move was read');
  });
});

describe('comparisons that read SRC ahead of the records', () => {
  for (const to of ['local', 'plan only'] as const) it(`what SRC made after the records a full comparison read, and removed before the next sync, leaves DST (${to})`, async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    let held: Parameters<MemoryFeed['append']>[0][] | null = null;
    const w = new Workload(d.src, 61, (ev) => { if (held) held.push(ev); else feed.append(ev); });
    w.populate(3, 20);
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    feed.lose(1, 'ring buffer full');
    // Made after the records the next sync reads: their records come after it.
    held = [];
    w.mkdir('late');
    w.createFile('late/x');
    w.createFile('tmp1');
    w.rename('tmp1', 'tmp2');
    const r = await syncOnce(opts);
    assert.equal(r.mode, 'full');
    assert.ok(fs.existsSync(`${d.dst}/late/x`) && fs.existsSync(`${d.dst}/tmp2`), 'the comparison copied what SRC had then');
    w.unlink('tmp2');
    w.removeTree('late');
    for (const ev of held) feed.append(ev);
    held = null;
    if (to === 'plan only') {
      // Their creation and removal cancel out: only the clears say that DST must not keep them.
      const plan = await dryPlan(opts);
      assert.deepEqual(plan.sort(), ['delete late', 'delete tmp2']);
    }
    const r2 = await syncOnce(opts);
    assert.equal(r2.mode, 'incremental');
    assertSame(d.src, d.dst, 'after the records of what the comparison copied ahead');
  });
});

/** The actions a dry run of the next sync would take. */
async function dryPlan(opts: SyncOptions): Promise<string[]> {
  return (await syncOnce({ ...opts, dryRun: true })).actions ?? [];
}

describe('--watch', () => {
  it('follows the record and keeps DST equal, within a few rounds', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 41, (ev) => { feed.append(ev); });
    w.populate(5, 40);
    const results: string[] = [];
    const ac = new AbortController();
    const done = watch({ src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false }, (r) => results.push(r.mode), ac.signal, 30);
    const until = async (cond: () => boolean): Promise<void> => {
      for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
    };
    try {
      await until(() => results.length > 0);
      assert.equal(results[0], 'full', 'the first round has no checkpoint');
      for (let i = 0; i < 100; i++) w.step();
      const want = treeHash(d.src, HASH);
      await until(() => treeHash(d.dst, HASH) === want);
      assertSame(d.src, d.dst, 'watch');
      assert.ok(results.slice(1).every((m) => m === 'incremental'), `rounds after the first: ${results.join(',')}`);
    } finally {
      ac.abort();
      await done;
    }
  });
});

describe('SafeTree on the thread pool', () => {
  it('renameAsync and removeAsync read a missing parent on either side as "not there", never throw it', async () => {
    const d = dirs();
    fs.writeFileSync(`${d.dst}/x`, 'x');
    const t = new SafeTree(fs.realpathSync(d.dst));
    assert.equal(await t.renameAsync('x', 'no/such/y'), false, 'missing parent of the destination');
    assert.equal(await t.renameAsync('no/such/x', 'y'), false, 'missing parent of the source');
    assert.equal(await t.renameAsync('gone', 'y'), false, 'missing source');
    assert.equal(await t.removeAsync('no/such/x'), false);
    assert.equal(fs.readFileSync(`${d.dst}/x`, 'utf8'), 'x', 'nothing moved');
    assert.equal(await t.renameAsync('x', 'y'), true);
    assert.equal(await t.removeAsync('y'), true);
    assert.deepEqual(fs.readdirSync(d.dst), []);
  });
});

describe('paths are untrusted: nothing outside DST is written', () => {
  it('names with "..", absolute escapes and symlinks in DST pointing out', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 21, (ev) => { feed.append(ev); });
    fs.mkdirSync(`${d.src}/sub`);
    fs.writeFileSync(`${d.src}/sub/keep`, 'k');
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    const before = treeHash(d.outside, HASH);
    // 1. Records naming paths that climb out of SRC (as a hostile or buggy source might).
    const st = fs.statSync(d.src);
    const ev = (op: 'create' | 'unlink', path: string): void => {
      if (op === 'create') feed.append({ v: 1, src: 'ebpf', seq: 0, ts: 1, host: 'h', pid: 1, tid: 1, op, file: { dev: st.dev, ino: 1, path }, mode: 0o644 });
      else feed.append({ v: 1, src: 'ebpf', seq: 0, ts: 1, host: 'h', pid: 1, tid: 1, op, file: { dev: st.dev, ino: 1, path }, deleted: true });
    };
    ev('create', `${d.src}/../outside/pwned`);
    ev('create', `${d.src}/sub/../../outside/pwned2`);
    ev('unlink', `${d.src}/../outside`);
    feed.append({ v: 1, src: 'ebpf', seq: 0, ts: 1, host: 'h', pid: 1, tid: 1, op: 'rename', file: { dev: st.dev, ino: 2, path: `${d.src}/../../../tmp/escape` }, from: { path: `${d.src}/sub/keep` }, flags: 0 });
    fs.renameSync(`${d.src}/sub/keep`, `${d.outside}/moved-out-of-src`); // what that rename did in SRC
    // 2. A symlink planted in DST where SRC has a directory, then a file created under it.
    fs.rmSync(`${d.dst}/sub`, { recursive: true });
    fs.symlinkSync(d.outside, `${d.dst}/sub`);
    w.createFile('sub/new', Buffer.from('must land in DST'));
    const beforeOutside = fs.readdirSync(d.outside).sort();
    const r = await syncOnce(opts);
    assert.deepEqual(fs.readdirSync(d.outside).sort(), beforeOutside, 'nothing new outside DST');
    assert.ok(!fs.existsSync(`${d.outside}/new`));
    assert.ok(!fs.lstatSync(`${d.dst}/sub`).isSymbolicLink(), 'the planted symlink was replaced, not followed');
    assert.equal(r.mode, 'full', 'DST not matching the checkpoint is noticed');
    assertSame(d.src, d.dst, 'after escapes');
    void before;
  });

  it('a symlink in SRC is copied as a symlink, never followed', async () => {
    const d = dirs();
    const feed = new MemoryFeed();
    const w = new Workload(d.src, 22, (ev) => { feed.append(ev); });
    const opts: SyncOptions = { src: d.src, dst: d.dst, delete: true, feed, stateDir: d.state, barrier: false };
    await syncOnce(opts);
    fs.writeFileSync(`${d.outside}/secret`, 's');
    w.symlink('link', d.outside);
    // A record that claims a file under the symlink (SRC/link/secret) was created.
    feed.append({ v: 1, src: 'ebpf', seq: 0, ts: 1, host: 'h', pid: 1, tid: 1, op: 'create', file: { dev: 1, ino: 1, path: `${d.src}/link/secret` }, mode: 0o644 });
    const r = await syncOnce(opts);
    assert.ok(fs.lstatSync(`${d.dst}/link`).isSymbolicLink());
    assert.equal(fs.readlinkSync(`${d.dst}/link`), d.outside);
    assert.ok(r.mode === 'full' || r.mode === 'incremental');
    assertSame(d.src, d.dst, 'symlink');
  });
});
