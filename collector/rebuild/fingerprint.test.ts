import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FRESH_MS, sqlitePath, storeFingerprint } from './fingerprint.js';

describe('rebuild store fingerprint (the no-op path\'s stand-in for the checkpoint)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'prov-fp-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'graph.db');
  const url = `sqlite:${db}`;
  const age = (f: string, s = 60) => { const t = new Date(Date.now() - s * 1000); utimesSync(f, t, t); };

  it('names the SQLite file of sqlite: URLs and bare paths, nothing for other stores', () => {
    assert.equal(sqlitePath(url), db);
    assert.equal(sqlitePath('/x/graph.db'), '/x/graph.db');
    assert.equal(sqlitePath('bolt://localhost:7687'), null);
    assert.equal(storeFingerprint('bolt://localhost:7687'), null);
  });

  it('is null for a missing database and for files changed within FRESH_MS', () => {
    assert.equal(storeFingerprint(url), null);
    writeFileSync(db, 'x');
    assert.equal(storeFingerprint(url), null, 'just written: a second write in the same clock tick could keep size and time');
    assert.ok(FRESH_MS >= 100);
  });

  it('stays the same while nothing changes; an empty WAL counts as none', () => {
    age(db);
    const a = storeFingerprint(url);
    assert.ok(a);
    assert.equal(storeFingerprint(url), a);
    writeFileSync(`${db}-wal`, '');
    assert.equal(storeFingerprint(url), a, 'opening the store creates an empty WAL: not a change');
  });

  it('changes when the WAL gains content or the database file is rewritten', () => {
    const a = storeFingerprint(url)!;
    appendFileSync(`${db}-wal`, 'frame');
    age(`${db}-wal`);
    const b = storeFingerprint(url);
    assert.ok(b && b !== a, 'WAL appended');
    truncateSync(`${db}-wal`, 0);
    appendFileSync(db, 'page');
    age(db, 30);
    const c = storeFingerprint(url);
    assert.ok(c && c !== a && c !== b, 'database written');
  });
});
