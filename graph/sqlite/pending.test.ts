/**
 * @module graph/sqlite/pending.test
 * The pending-ingest marker: opening the store waits while a live process holds it, not when
 * its holder is gone (orphaned) or when this process holds it; claims are exclusive.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimPending, handOverPending, holderOf, pendingPath, pendingState, releasePending } from './pending.js';
import { openSqliteStore } from './store.js';

describe('graph/sqlite pending-ingest marker', () => {
  it('opening waits while a live holder has it and goes on when it is released', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'prov-pending-'));
    const sleeper = spawn('sleep', ['30'], { stdio: 'ignore' });
    t.after(() => { sleeper.kill(); rmSync(dir, { recursive: true, force: true }); });
    const db = join(dir, 'graph.db');
    await (await openSqliteStore(db)).close();
    const holder = holderOf(sleeper.pid!, 'test holder')!;
    assert.ok(claimPending(db, holder));
    assert.equal(claimPending(db, holderOf(process.pid, 'second')!), false, 'a second claim fails');
    assert.equal(pendingState(db).state, 'held');
    let opened = false;
    const opening = openSqliteStore(db).then((s) => { opened = true; return s; });
    await new Promise((r) => setTimeout(r, 150));
    assert.equal(opened, false, 'opened while the marker was held');
    releasePending(db, sleeper.pid!);
    const store = await opening;
    await store.close();
    assert.equal(existsSync(pendingPath(db)), false);
  });

  it('an orphaned marker (holder gone) does not block; the holder itself is not blocked', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'prov-pending-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'graph.db');
    await (await openSqliteStore(db)).close();
    const dead = spawnSync('true').pid;
    assert.ok(claimPending(db, { pid: dead, start: '1', what: 'gone' }));
    assert.equal(pendingState(db).state, 'orphaned');
    await (await openSqliteStore(db)).close();
    handOverPending(db, holderOf(process.pid, 'me')!);
    assert.equal(pendingState(db).state, 'held');
    await (await openSqliteStore(db, { waitPendingIngest: true })).close(); // held by this process: no wait
    releasePending(db, process.pid);
    assert.equal(pendingState(db).state, 'none');
  });

  it('a store that has caught up with the journal drops an orphaned marker, never a held one', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'prov-pending-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const db = join(dir, 'graph.db');
    const store = await openSqliteStore(db);
    t.after(() => store.close());
    assert.ok(claimPending(db, holderOf(process.pid, 'me')!));
    await store.caughtUp();
    assert.equal(pendingState(db).state, 'held');
    releasePending(db, process.pid);
    assert.ok(claimPending(db, { pid: spawnSync('true').pid!, start: '1', what: 'gone' }));
    await store.caughtUp();
    assert.equal(pendingState(db).state, 'none');
  });
});
