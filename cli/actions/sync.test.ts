/**
 * The `prov sync` action end to end on a journal directory: dry run changes nothing and prints
 * the plan, a real run makes DST equal SRC and says why it compared in full, bad input gives
 * exit code 2 with a one-line message.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import sync from './sync.js';
import { treeHash } from '../../collector/sync/treehash.js';
import { Workload } from '../../collector/sync/workload.js';

process.env.PROV_LOG ??= 'warn';
const base = fs.mkdtempSync(`${tmpdir()}/prov-sync-cli-`);
after(() => fs.rmSync(base, { recursive: true, force: true }));

/** Run the action with stdout captured. */
async function capture(f: () => Promise<number>): Promise<{ code: number; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  // The action writes strings; the test runner's own messages (bytes) pass through.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: unknown[]): boolean => {
    if (typeof chunk !== 'string') return (write as (c: Uint8Array, ...r: unknown[]) => boolean)(chunk, ...rest);
    out += chunk;
    return true;
  }) as typeof process.stdout.write;
  try { return { code: await f(), out }; } finally { process.stdout.write = write; }
}

describe('prov sync (CLI action)', () => {
  it('dry run, then a real run with --json; no capture running means a full comparison, said so', async () => {
    const src = `${base}/src`, dst = `${base}/dst`;
    fs.mkdirSync(src);
    new Workload(src, 3).populate(4, 30);
    const opts = { journal: `${base}/journal`, state: `${base}/state`, delete: true };
    const dry = await capture(() => sync(src, dst, { ...opts, dryRun: true }));
    assert.equal(dry.code, 0);
    assert.match(dry.out, /would sync: 30 files/);
    assert.match(dry.out, /FULL COMPARISON: no checkpoint/);
    assert.ok(!fs.existsSync(dst) || fs.readdirSync(dst).length === 0, 'a dry run writes nothing');
    const real = await capture(() => sync(src, dst, { ...opts, json: true }));
    assert.equal(real.code, 0);
    const r = JSON.parse(real.out) as { mode: string; reason: string; counts: { files: number } };
    assert.equal(r.mode, 'full');
    assert.equal(r.counts.files, 30);
    assert.equal(treeHash(dst, { mtimes: true, dirMtimes: true }), treeHash(src, { mtimes: true, dirMtimes: true }));
    // Checkpoint now exists, but no capture records SRC: the probe is not seen, so full again.
    const again = await capture(() => sync(src, dst, { ...opts, json: true }));
    assert.match((JSON.parse(again.out) as { reason: string }).reason, /probe/);
    const st = fs.statSync(`${base}/state`);
    assert.equal(st.mode & 0o777, 0o700, 'state directory is 0700');
    for (const f of fs.readdirSync(`${base}/state`)) assert.equal(fs.statSync(`${base}/state/${f}`).mode & 0o777, 0o600, 'state file is 0600');
  });

  it('bad input: exit code 2 and one line', async () => {
    const r = await capture(() => sync(`${base}/does-not-exist`, `${base}/x`, { json: true, journal: `${base}/j2`, state: `${base}/s2` }));
    assert.equal(r.code, 2);
    assert.match(r.out, /"error":"SRC: source .* does not exist"/);
  });
});
