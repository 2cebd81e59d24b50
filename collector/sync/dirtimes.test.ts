/**
 * @module collector/sync/dirtimes.test
 * An early plan (applied while sync waits for its probe) runs ahead of the records: a directory
 * it must give SRC's times to may have moved in SRC since, by a record the next plan brings.
 * The applier notices (DST has it, SRC not at that path) and the sync ends with a pass over
 * SRC's directories, so DST's directory times equal SRC's after the final plan.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { Applier } from './apply.js';
import { SafeTree } from './safefs.js';

test('directory times placed where a moved directory ends up', async () => {
  const base = fs.mkdtempSync(join(tmpdir(), 'sync-dirtimes-'));
  try {
    const src = join(base, 'src'), dst = join(base, 'dst');
    for (const root of [src, dst]) fs.mkdirSync(join(root, 'a', 'd'), { recursive: true });
    // SRC: a file made in a/d (the early plan's record), then a moved to m (a later record).
    fs.writeFileSync(join(src, 'a', 'd', 'f'), 'x');
    fs.utimesSync(join(src, 'a', 'd'), 1_000_000, 1_000_000);
    fs.renameSync(join(src, 'a'), join(src, 'm'));
    const applier = new Applier(new SafeTree(src), new SafeTree(dst), { delete: true, dryRun: false });
    // Early plan: the record of a/d/f; a/d's times from SRC, where a/d no longer is.
    await applier.applyPlan({ originOps: [], finalOps: [{ op: 'create', path: 'a/d/f', subtree: false }], metaDirs: ['a/d', 'a'], clears: [] });
    assert.equal(applier.dirTimesUncertain, true, 'the applier did not notice a directory SRC no longer has');
    // Final plan: the rename; it names the parents only, not m/d.
    fs.renameSync(join(dst, 'a'), join(dst, 'm'));
    await applier.applyPlan({ originOps: [], finalOps: [], metaDirs: [''], clears: [] });
    assert.notEqual(fs.statSync(join(dst, 'm', 'd')).mtimeMs, 1_000_000_000, 'the test did not set up the stale time');
    applier.repairDirTimes();
    assert.equal(fs.statSync(join(dst, 'm', 'd')).mtimeMs, 1_000_000_000);
    assert.equal(fs.statSync(join(dst, 'm')).mtimeMs, fs.statSync(join(src, 'm')).mtimeMs);
    assert.equal(applier.dirTimesUncertain, false);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
