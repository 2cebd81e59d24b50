/**
 * @module ebpf/filters.test
 * The in-kernel filters set before load: path prefix (file events only under it) and cgroup
 * (only tasks of one cgroup v2). The pid-tree filter is what every other live test uses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCaptured } from './run-captured.js';
import { captureToJournal } from './capture.js';
import { openJournalReader } from '../collector/journal/reader.js';
import { ebpfDecoders } from './decode.js';

test('path prefix: file events only under the prefix, process events still all there', async (t) => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-prefix-')));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'in'));
  mkdirSync(join(dir, 'out'));
  writeFileSync(join(dir, 'in', 'a.txt'), 'a\n');
  writeFileSync(join(dir, 'out', 'c.txt'), 'c\n');
  const run = await runCaptured(['bash', '-c', 'cat in/a.txt > in/b.txt; cat out/c.txt > /dev/null; mv out/c.txt out/d.txt; mv in/b.txt in/e.txt'], {
    cwd: dir, pathPrefix: join(dir, 'in') + '/',
  });
  assert.equal(run.code, 0, run.stderr);
  const opens = run.events.flatMap((e) => (e.op === 'open' ? [e.file.path ?? ''] : []));
  assert.ok(opens.includes(join(dir, 'in', 'a.txt')) && opens.includes(join(dir, 'in', 'b.txt')), `opens: ${opens.join(' ')}`);
  for (const p of opens) assert.ok(p.startsWith(join(dir, 'in') + '/'), `open outside the prefix captured: ${p}`);
  const renames = run.events.flatMap((e) => (e.op === 'rename' ? [e.file.path] : []));
  assert.deepEqual(renames, [join(dir, 'in', 'e.txt')]);
  const execs = run.events.filter((e) => e.op === 'exec').map((e) => (e.op === 'exec' ? e.argv[0] : ''));
  assert.deepEqual(execs.filter((a) => a === 'cat' || a === 'mv'), ['cat', 'cat', 'mv', 'mv']);
});

test('cgroup: only tasks in the chosen cgroup v2 are captured', async (t) => {
  const root = '/sys/fs/cgroup/unified';
  const v2 = existsSync(join(root, 'cgroup.procs')) ? root : '/sys/fs/cgroup';
  assert.ok(existsSync(join(v2, 'cgroup.procs')), 'no cgroup v2 hierarchy mounted (at /sys/fs/cgroup or /sys/fs/cgroup/unified)');
  const cg = join(v2, `prov-test-${process.pid}`);
  mkdirSync(cg);
  const journalDir = mkdtempSync(join(tmpdir(), 'prov-cg-'));
  const inside = spawn('bash', ['-c', `echo $$ > ${cg}/cgroup.procs && read -r _ && /bin/true cg-inside`], { stdio: ['pipe', 'ignore', 'inherit'] });
  t.after(() => {
    inside.kill('SIGKILL');
    rmSync(journalDir, { recursive: true, force: true });
    try { rmdirSync(cg); } catch { /* already gone, or still busy: reported by the assertion below */ }
  });
  await new Promise((r) => setTimeout(r, 200)); // let it join the cgroup
  const h = await captureToJournal({ journalDir, pinDir: `/sys/fs/bpf/prov-test-cg-${process.pid}`, cgroupId: statSync(cg).ino, ringBytes: 1 << 20 });
  try {
    const outside = spawn('/bin/true', ['cg-outside']);
    await new Promise((r) => outside.on('close', r));
    inside.stdin!.end('\n');
    await new Promise((r) => inside.on('close', r));
  } finally {
    await h.stop();
  }
  for (let i = 0; i < 50 && existsSync(cg); i++) {
    try { rmdirSync(cg); } catch { await new Promise((r) => setTimeout(r, 20)); }
  }
  assert.equal(existsSync(cg), false, `test cgroup ${cg} could not be removed`);
  const reader = openJournalReader(journalDir, { decoders: ebpfDecoders });
  const events = reader.readBatch(100000).map((r) => r.event);
  reader.close();
  const tags = events.flatMap((e) => (e.op === 'exec' && e.filename === '/bin/true' ? [e.argv[1]] : []));
  assert.deepEqual(tags, ['cg-inside']);
  assert.ok(events.every((e) => e.pid === inside.pid || events.some((f) => f.op === 'fork' && f.child === e.pid)),
    'an event from outside the cgroup was captured');
});
