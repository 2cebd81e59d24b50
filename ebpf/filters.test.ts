/**
 * @module ebpf/filters.test
 * The in-kernel filters set before load: path prefix (file events only under it) and cgroup
 * (only tasks of one cgroup v2). The pid-tree filter is what every other live test uses.
 *
 * Assertions look only at this test's own processes (the tree under the command's pid, built
 * from the captured forks) and its own markers (file names, argv tags), never at counts of
 * whatever else runs on the host meanwhile.
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
import type { ProvEvent } from '../collector/events.js';

/** The tgids of root and its descendants, from the captured forks. */
function treeOf(root: number, events: ProvEvent[]): Set<number> {
  const tree = new Set([root]);
  for (let grew = true; grew;) {
    grew = false;
    for (const e of events) if (e.op === 'fork' && tree.has(e.pid) && !tree.has(e.child)) { tree.add(e.child); grew = true; }
  }
  return tree;
}

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
  const mine = treeOf(run.pid, run.events);
  const events = run.events.filter((e) => mine.has(e.pid));
  const opens = events.flatMap((e) => (e.op === 'open' ? [e.file.path ?? ''] : []));
  assert.ok(opens.includes(join(dir, 'in', 'a.txt')) && opens.includes(join(dir, 'in', 'b.txt')), `opens: ${opens.join(' ')}`);
  for (const p of opens) assert.ok(p.startsWith(join(dir, 'in') + '/'), `open outside the prefix captured: ${p}`);
  const renames = events.flatMap((e) => (e.op === 'rename' ? [e.file.path] : []));
  assert.deepEqual(renames, [join(dir, 'in', 'e.txt')]);
  // process events are not filtered by the prefix: the cat and mv of out/ are there too
  const execs = events.flatMap((e) => (e.op === 'exec' && (e.argv[0] === 'cat' || e.argv[0] === 'mv') ? [e.argv.join(' ')] : []));
  assert.deepEqual(execs, ['cat in/a.txt', 'cat out/c.txt', 'mv out/c.txt out/d.txt', 'mv in/b.txt in/e.txt']);
});

test('cgroup: only tasks in the chosen cgroup v2 are captured', async (t) => {
  const root = '/sys/fs/cgroup/unified';
  const v2 = existsSync(join(root, 'cgroup.procs')) ? root : '/sys/fs/cgroup';
  assert.ok(existsSync(join(v2, 'cgroup.procs')), 'no cgroup v2 hierarchy mounted (at /sys/fs/cgroup or /sys/fs/cgroup/unified)');
  const cg = join(v2, `prov-test-${process.pid}`);
  mkdirSync(cg);
  const journalDir = mkdtempSync(join(tmpdir(), 'prov-cg-'));
  const tag = `cg-inside-${process.pid}`;
  const inside = spawn('bash', ['-c', `echo $$ > ${cg}/cgroup.procs && echo joined && read -r _ && /bin/true ${tag}`], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => {
    inside.kill('SIGKILL');
    rmSync(journalDir, { recursive: true, force: true });
    try { rmdirSync(cg); } catch { /* already gone, or still busy: reported by the assertion below */ }
  });
  // attach once it is in the cgroup (it says so), however long that takes under load
  await new Promise<void>((resolve, reject) => {
    inside.stdout!.setEncoding('utf8').on('data', (d: string) => { if (d.includes('joined')) resolve(); });
    inside.on('close', (code) => reject(new Error(`the shell meant to join ${cg} exited (${code})`)));
  });
  const h = await captureToJournal({ journalDir, pinDir: `/sys/fs/bpf/prov-test-cg-${process.pid}`, cgroupId: statSync(cg).ino, ringBytes: 1 << 20 });
  try {
    const outside = spawn('/bin/true', [`cg-outside-${process.pid}`]);
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
  const tags = events.flatMap((e) => (e.op === 'exec' && e.filename === '/bin/true' && e.argv[1]?.endsWith(`-${process.pid}`) ? [e.argv[1]] : []));
  assert.deepEqual(tags, [tag]);
  // every event is of a task in the cgroup: the shell, or what it forked (the cgroup is ours alone)
  const tree = treeOf(inside.pid!, events);
  const strays = events.filter((e) => !tree.has(e.pid) && e.op !== 'lost');
  assert.deepEqual(strays.map((e) => `${e.op} pid ${e.pid} ${e.comm}`), [], 'events from outside the cgroup were captured');
});
