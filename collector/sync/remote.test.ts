/**
 * DST as host:path, over a loopback "remote shell": a wrapper that drops the host name and runs
 * the command on this machine, given to sync (and to rsync) as the rsh. No network is used.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { MemoryFeed } from './feed.js';
import { syncOnce, type SyncOptions } from './engine.js';
import { Workload } from './workload.js';
import { treeDiff, treeHash } from './treehash.js';
import { parseRemote } from './remote.js';

process.env.PROV_LOG ??= 'warn';
const base = fs.mkdtempSync(`${tmpdir()}/prov-sync-remote-`);
after(() => fs.rmSync(base, { recursive: true, force: true }));

// ssh-like: options, then the host, then the command words joined by spaces for a shell.
const RSH = `${base}/loopback-rsh`;
fs.writeFileSync(RSH, `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -l|-p|-o) shift 2;; --) shift; break;; -*) shift;; *) break;; esac; done
shift
exec /bin/sh -c "$*"
`, { mode: 0o755 });

// rsync copies a symlink's mtime only to the second: symlink times are left out here.
const HASH = { mtimes: true, linkMtimes: false };

describe('sync to host:path (rsync transport, loopback rsh)', () => {
  it('parses host:path and refuses option-like hosts', () => {
    assert.deepEqual(parseRemote('box:/srv/x'), { host: 'box', path: '/srv/x' });
    assert.deepEqual(parseRemote('u@box:'), { host: 'u@box', path: '.' });
    assert.equal(parseRemote('/local/a:b'), null);
    assert.equal(parseRemote('./a:b'), null);
    assert.throws(() => parseRemote('-oProxyCommand=x:y'));
  });

  for (const seed of [31, 32]) {
    it(`random workload, seed ${seed}: renames and deletes run remotely, contents go by rsync`, async () => {
      const src = `${base}/${seed}/src`, dst = `${base}/${seed}/dst`, state = `${base}/${seed}/state`;
      fs.mkdirSync(src, { recursive: true });
      fs.mkdirSync(dst, { recursive: true });
      const feed = new MemoryFeed();
      const w = new Workload(src, seed, (ev) => { feed.append(ev); });
      w.populate(10, 100);
      // Names a shell would love to interpret: they must arrive as names.
      for (const name of ['a b', "it's", '$(touch pwned)', '-rf', 'semi;colon', 'new\nline']) fs.writeFileSync(`${src}/${name}`, name);
      const opts: SyncOptions = { src, dst: `loopback:${dst}`, delete: true, feed, stateDir: state, barrier: false, remote: { rsh: [RSH] } };
      const first = await syncOnce(opts);
      assert.equal(first.mode, 'full');
      assert.equal(treeHash(dst, HASH), treeHash(src, HASH), treeDiff(src, dst, HASH).join('\n'));
      w.rename("it's", '$(touch pwned2)');
      w.rename('semi;colon', 'new\nline');
      let renames = 0;
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 150; i++) w.step();
        const r = await syncOnce(opts);
        assert.equal(r.mode, 'incremental', r.reason);
        renames += r.counts.renames;
        assert.equal(treeHash(dst, HASH), treeHash(src, HASH), `round ${round}:\n${treeDiff(src, dst, HASH).join('\n')}`);
      }
      assert.ok(renames > 0, 'renames ran on the remote side');
      assert.ok(!fs.existsSync('pwned') && !fs.existsSync(`${dst}/pwned`) && !fs.existsSync(`${base}/pwned`), 'no file name reached a shell');
    });
  }

  it('an object SRC moved on while the sync ran is copied again by the next sync (not left out)', async () => {
    const src = `${base}/moved/src`, dst = `${base}/moved/dst`, state = `${base}/moved/state`;
    fs.mkdirSync(`${src}/a`, { recursive: true });
    fs.mkdirSync(dst, { recursive: true });
    fs.writeFileSync(`${src}/a/f`, 'contents');
    const feed = new MemoryFeed();
    const w = new Workload(src, 33, (ev) => { feed.append(ev); });
    const opts: SyncOptions = { src, dst: `loopback:${dst}`, delete: true, feed, stateDir: state, barrier: false, remote: { rsh: [RSH] } };
    await syncOnce(opts);
    w.rename('a/f', 'a/g'); // recorded
    // The directory moves after the records were read and before the rename is applied: its record comes later.
    const st = fs.statSync(`${src}/a`);
    fs.renameSync(`${src}/a`, `${src}/b`);
    let r = await syncOnce(opts);
    assert.equal(r.mode, 'incremental', r.reason);
    assert.ok(!fs.existsSync(`${dst}/a/g`) && !fs.existsSync(`${dst}/a/f`), 'SRC had no a/g to place: the staged object went');
    feed.append({ v: 1, src: 'ebpf', seq: 0, ts: 2, host: 'h', pid: 1, tid: 1, op: 'rename', file: { dev: st.dev, ino: st.ino, path: `${src}/b` }, from: { path: `${src}/a` }, flags: 0 });
    r = await syncOnce(opts);
    assert.equal(r.mode, 'incremental', r.reason);
    assert.equal(fs.readFileSync(`${dst}/b/g`, 'utf8'), 'contents', 'copied again where the move took it');
    assert.equal(treeHash(dst, HASH), treeHash(src, HASH), treeDiff(src, dst, HASH).join('\n'));
  });

  it('what SRC made after the records a full comparison read, and removed before the next sync, leaves DST', async () => {
    const src = `${base}/ahead/src`, dst = `${base}/ahead/dst`, state = `${base}/ahead/state`;
    fs.mkdirSync(src, { recursive: true });
    fs.mkdirSync(dst, { recursive: true });
    const feed = new MemoryFeed();
    let held: Parameters<MemoryFeed['append']>[0][] | null = null;
    const w = new Workload(src, 34, (ev) => { if (held) held.push(ev); else feed.append(ev); });
    w.populate(3, 20);
    const opts: SyncOptions = { src, dst: `loopback:${dst}`, delete: true, feed, stateDir: state, barrier: false, remote: { rsh: [RSH] } };
    await syncOnce(opts);
    feed.lose(1, 'ring buffer full');
    held = []; // made after the records the next sync reads: their records come after it
    w.mkdir('late');
    w.createFile('late/x');
    const r = await syncOnce(opts);
    assert.equal(r.mode, 'full');
    assert.ok(fs.existsSync(`${dst}/late/x`), 'rsync copied what SRC had then');
    w.removeTree('late');
    for (const ev of held) feed.append(ev);
    held = null;
    const r2 = await syncOnce(opts);
    assert.equal(r2.mode, 'incremental', r2.reason);
    assert.equal(treeHash(dst, HASH), treeHash(src, HASH), treeDiff(src, dst, HASH).join('\n'));
  });
});
