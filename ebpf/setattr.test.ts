/**
 * @module ebpf/setattr.test
 * Attribute changes captured live: chmod/chown/touch/truncate commands and every f*, *at and
 * legacy variant (ebpf/testdata/setattr-workload.py), each one `setattr` event with the target's
 * dev+ino as stat sees them, its absolute path and exactly the attributes the call set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SetattrEvent } from '../collector/events.js';
import { JoinEngine } from '../collector/join/engine.js';
import { runCaptured, treePids } from './run-captured.js';

const workload = fileURLToPath(new URL('../../ebpf/testdata/setattr-workload.py', import.meta.url));

type Attr = 'mode' | 'uid' | 'gid' | 'size' | 'mtime';
interface Step { step: string; path: string; expect: Attr[]; stat: Record<Attr | 'dev' | 'ino', number> }

test('chmod, chown, utimes and truncate in all their variants become setattr events', async (t) => {
  if (process.getuid?.() !== 0) assert.fail('eBPF capture needs root (CAP_BPF, CAP_PERFMON)');
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-sa-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const run = await runCaptured(['/usr/bin/python3', workload, dir]);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(run.rejected, []);
  const w = JSON.parse(run.stdout) as { pid: number; steps: Step[] };
  const tree = treePids(run.events, run.pid);
  const got = run.events.filter((e): e is SetattrEvent => e.op === 'setattr' && tree.has(e.pid));
  const show = (e: SetattrEvent): string => JSON.stringify({ comm: e.comm, file: e.file, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size, mtime: e.mtime });
  assert.equal(got.length, w.steps.length, `one setattr per call: ${w.steps.length} calls, events:\n${got.map(show).join('\n')}`);
  for (const [i, s] of w.steps.entries()) {
    const e = got[i]!;
    const what = `${s.step}: ${show(e)}`;
    assert.equal(e.src, 'ebpf');
    assert.equal(e.file.path, s.path, what);
    assert.equal(e.file.dev, s.stat.dev, `${what}: dev as stat's`);
    assert.equal(e.file.ino, s.stat.ino, `${what}: ino as stat's`);
    // truncate also moves the mtime (POSIX), and says so
    const want = new Set<Attr>(s.expect.includes('size') ? [...s.expect, 'mtime'] : s.expect);
    for (const a of ['mode', 'uid', 'gid', 'size', 'mtime'] as const) {
      if (!want.has(a)) { assert.equal(e[a], undefined, `${what}: ${a} not changed, not reported`); continue; }
      assert.notEqual(e[a], undefined, `${what}: ${a} reported`);
      // ns in a double: within its rounding (a few hundred ns at today's epoch)
      if (a === 'mtime') assert.ok(Math.abs(e.mtime! - s.stat.mtime) <= 512, `${what}: mtime ${e.mtime} vs stat ${s.stat.mtime}`);
      else assert.equal(e[a], s.stat[a], `${what}: ${a}`);
    }
  }
  // the join takes them all: the truncates made versions of f.txt, the rest did not
  const engine = new JoinEngine();
  for (const rec of run.records) engine.apply(rec);
  assert.deepEqual(engine.stats().rejected, {}, 'the join rejected no record');
  const ino = w.steps[0]!.stat.ino, dev = w.steps[0]!.stat.dev;
  const versions = engine.takeBatch().nodes.filter((n) => n.id.startsWith(`file:`) && n.id.includes(`:${dev}:${ino}:`)).map((n) => n.id).sort();
  const sizeSteps = w.steps.filter((s) => s.expect.includes('size')).length;
  // version 0 is the file as created, then one per truncate; chmod/chown/utimes add none
  assert.equal(versions.length, sizeSteps + 1, `a version per truncate (${sizeSteps}): ${versions.join(' ')}`);
  // the same capture with a path prefix elsewhere keeps none of them (filter applies to setattr)
  const other = realpathSync(mkdtempSync(join(tmpdir(), 'prov-sa-other-')));
  t.after(() => rmSync(other, { recursive: true, force: true }));
  const dir2 = realpathSync(mkdtempSync(join(tmpdir(), 'prov-sa-')));
  t.after(() => rmSync(dir2, { recursive: true, force: true }));
  const filtered = await runCaptured(['/usr/bin/python3', workload, dir2], { pathPrefix: other });
  assert.equal(filtered.code, 0, filtered.stderr);
  const leaked = filtered.events.filter((e) => e.op === 'setattr');
  assert.deepEqual(leaked, [], 'no setattr outside the path prefix');
});
