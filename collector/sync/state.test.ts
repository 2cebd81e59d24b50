/**
 * The sync state file: what one sync leaves for the next (checkpoint, paths to copy again,
 * directories to compare again) comes back as saved, and a malformed one is refused with why.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { StateFile } from './state.js';

const dir = fs.mkdtempSync(`${tmpdir()}/prov-sync-state-`);
after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('changed paths and directories to compare again come back as saved (the newest copy time kept)', () => {
  const f = new StateFile('/src', '/dst', dir);
  f.save({ s: 7 }, [], undefined, ['a/f'], [{ path: 'b', at: 100 }, { path: 'c/d', at: 250 }]);
  const { state } = f.load();
  assert.ok(state);
  assert.deepEqual(state.checkpoint, { s: 7 });
  assert.deepEqual(state.changed, ['a/f']);
  assert.deepEqual(state.recheck, ['b', 'c/d']);
  assert.equal(state.recheckAt, 250);
  f.save({ s: 8 }, []);
  const plain = f.load().state!;
  assert.equal(plain.recheck, undefined, 'nothing to compare again: no field');
  assert.equal(plain.recheckAt, undefined);
});

test('a malformed list or time is refused, saying which field', () => {
  const f = new StateFile('/src', '/dst2', dir);
  f.save({ s: 1 }, [], undefined, [], [{ path: 'b', at: 5 }]);
  const path = f.path;
  const good = JSON.parse(fs.readFileSync(path, 'utf8')) as Record<string, unknown>;
  for (const [key, bad] of [['recheck', 'b'], ['recheck', [1]], ['changed', [null]], ['recheckAt', 'soon']] as const) {
    fs.writeFileSync(path, JSON.stringify({ ...good, [key]: bad }));
    const r = f.load();
    assert.equal(r.state, null, `${key}: ${JSON.stringify(bad)}`);
    assert.match(r.why ?? '', new RegExp(`"${key}"`));
  }
});
