/**
 * @module collector/rebuild/quick.test
 * The no-op shortcut holds only while the store's fingerprint and every file's status are as
 * recorded: a changed, appeared or vanished file, another store state or another target each
 * make it miss.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quickCheck, quickOf, quickPath, writeQuick } from './quick.js';

describe('rebuild no-op shortcut', () => {
  it('misses on any change of the store, a file, or the target', (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'prov-quick-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const [a, b, gone] = ['a.c', 'a.o', 'tmp.s'].map((n) => join(dir, n));
    writeFileSync(a!, 'int a;\n');
    writeFileSync(b!, 'obj');
    const statOf = (p: string) => { try { return statSync(p, { bigint: true }); } catch { return null; } };
    const target = join(dir, 'app');
    const q = quickOf(target, 'fp1', [{ inputs: [{ path: a! }, { path: gone! }], outputs: [{ path: b! }] }], statOf, ['hazard (network): x']);
    const path = quickPath(dir, target);
    writeQuick(path, q);
    assert.deepEqual(quickCheck(path, target, 'fp1')?.hazards, ['hazard (network): x']);
    assert.equal(quickCheck(path, target, 'fp1')?.commands, 1);
    assert.equal(quickCheck(path, target, 'fp2'), null, 'another store state');
    assert.equal(quickCheck(path, join(dir, 'other'), 'fp1'), null, 'another target');
    writeFileSync(gone!, 'now here');
    assert.equal(quickCheck(path, target, 'fp1'), null, 'a file missing then appeared');
    unlinkSync(gone!);
    assert.ok(quickCheck(path, target, 'fp1'));
    appendFileSync(a!, 'int b;\n');
    assert.equal(quickCheck(path, target, 'fp1'), null, 'an input changed');
    writeQuick(path, quickOf(target, 'fp1', [{ inputs: [{ path: a! }], outputs: [{ path: b! }] }], statOf, []));
    assert.ok(quickCheck(path, target, 'fp1'));
    unlinkSync(b!);
    assert.equal(quickCheck(path, target, 'fp1'), null, 'an output deleted');
    writeFileSync(path, '{not json');
    assert.equal(quickCheck(path, target, 'fp1'), null, 'unreadable');
  });
});
