/**
 * @module test/spine.test
 * The spine end to end through the real `prov` binary: events in a real journal → `prov
 * ingest` → SQLite → `prov lineage/export/stats/verify`, including resume after a restart,
 * idempotent replay, tampering caught, and exit codes for bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, readdirSync, readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJournalWriter } from '../collector/journal/index.js';
import { Scenario, file, O_RDONLY, WRITE_NEW } from '../collector/join/testkit.js';
import { EXIT } from '../graph/errors.js';

const PROV = join(import.meta.dirname, '..', 'cli', 'main.js');

function prov(home: string, ...args: string[]): { code: number; out: string; err: string } {
  const r = spawnSync(process.execPath, [PROV, '--home', home, ...args], { encoding: 'utf8', env: { ...process.env, PROV_LOG: 'warn' } });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

/** A two-file C build and a link, as eBPF would report it. */
function build(): Scenario {
  const s = new Scenario();
  const [ac, bc, hh, ao, bo, app] = [
    file(11, '/w/a.c'), file(12, '/w/b.c'), file(13, '/w/util.h'), file(21, '/w/a.o'), file(22, '/w/b.o'), file(31, '/w/app'),
  ];
  s.exec(100, ['make']);
  s.fork(100, 101); s.exec(101, ['cc', '-c', 'a.c', '-o', 'a.o']);
  s.open(101, 3, ac, O_RDONLY); s.open(101, 4, hh, O_RDONLY); s.open(101, 5, ao, WRITE_NEW, true);
  s.close(101, 3); s.close(101, 4); s.close(101, 5); s.exit(101);
  s.fork(100, 102); s.exec(102, ['cc', '-c', 'b.c', '-o', 'b.o']);
  s.open(102, 3, bc, O_RDONLY); s.open(102, 4, bo, WRITE_NEW, true);
  s.close(102, 3); s.close(102, 4); s.exit(102);
  s.fork(100, 103); s.exec(103, ['cc', '-o', 'app', 'a.o', 'b.o']);
  s.open(103, 3, ao, O_RDONLY); s.open(103, 4, bo, O_RDONLY); s.open(103, 5, app, WRITE_NEW, true);
  s.close(103, 3); s.close(103, 4); s.close(103, 5); s.exit(103);
  s.exit(100);
  return s;
}

async function writeJournal(dir: string, s: Scenario, from = 0): Promise<void> {
  const w = openJournalWriter({ dir, stream: 'ebpf' });
  for (const r of s.records.slice(from)) w.append(r.event);
  await w.close();
}

test('spine: journal → ingest → lineage, export, stats, verify', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'prov-spine-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const journal = join(home, 'journal');
  const s = build();
  await writeJournal(journal, s);

  let r = prov(home, 'ingest', '--json');
  assert.equal(r.code, 0, r.err);
  const first = JSON.parse(r.out);
  assert.equal(first.records, s.records.length);
  assert.equal(first.resumedFrom, 'start');
  assert.equal(first.rejectedByReader + first.rejectedByJoin, 0);

  r = prov(home, 'lineage', '/w/app', '--json');
  assert.equal(r.code, 0, r.err);
  const up = JSON.parse(r.out);
  const labels = new Set(up.nodes.map((n: { kind: string; attrs: { path?: string; argv?: string[] } }) =>
    n.kind === 'file' ? n.attrs.path : n.kind === 'process' ? (n.attrs.argv ?? []).join(' ') : n.kind));
  for (const want of ['/w/app', '/w/a.o', '/w/b.o', '/w/a.c', '/w/b.c', '/w/util.h', 'cc -o app a.o b.o', 'cc -c a.c -o a.o', 'cc -c b.c -o b.o']) {
    assert.ok(labels.has(want), `ancestors of /w/app include ${want}; got ${[...labels].join(', ')}`);
  }

  r = prov(home, 'lineage', '/w/util.h', '--down');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /\/w\/util\.h/);
  assert.match(r.out, /read by: cc -c a\.c -o a\.o/);
  assert.match(r.out, /\/w\/app/);
  assert.doesNotMatch(r.out, /b\.c/, 'b.c is not downstream of util.h');

  r = prov(home, 'export', '/w/app', '--format', 'dot');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^digraph/m);
  r = prov(home, 'export', '/w/app', '--format', 'prov-json');
  assert.equal(r.code, 0, r.err);
  const doc = JSON.parse(r.out);
  assert.ok(Object.keys(doc.activity).length >= 3 && Object.keys(doc.wasGeneratedBy).length >= 3);

  r = prov(home, 'stats', '--json');
  assert.equal(r.code, 0, r.err);
  const stats = JSON.parse(r.out);
  assert.equal(stats.checkpoint.ebpf, s.records.length);

  // Replay without the join snapshot: exactly once in effect (no doubled edges).
  for (const f of readdirSync(join(home, 'collector'))) unlinkSync(join(home, 'collector', f));
  r = prov(home, 'ingest', '--json');
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).resumedFrom, 'start');
  const again = JSON.parse(prov(home, 'stats', '--json').out);
  assert.deepEqual(again.edges, stats.edges);
  assert.deepEqual(again.nodes, stats.nodes);

  r = prov(home, 'verify');
  assert.equal(r.code, 0, r.out + r.err);
});

test('spine: resume from the snapshot picks up only new records', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'prov-spine-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const journal = join(home, 'journal');
  const s = build();
  const cut = s.records.findIndex((r) => r.event.op === 'fork' && (r.event as { child: number }).child === 103);
  const w = openJournalWriter({ dir: journal, stream: 'ebpf' });
  for (const rec of s.records.slice(0, cut)) w.append(rec.event);
  await w.close();
  let r = prov(home, 'ingest', '--json');
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).records, cut);
  assert.equal(prov(home, 'lineage', '/w/app').code, EXIT.notFound, 'app does not exist yet');

  await writeJournal(journal, s, cut);
  r = prov(home, 'ingest', '--json');
  assert.equal(r.code, 0, r.err);
  const second = JSON.parse(r.out);
  assert.equal(second.resumedFrom, 'snapshot');
  assert.equal(second.records, s.records.length - cut);
  r = prov(home, 'lineage', '/w/app');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /cc -c a\.c -o a\.o/, 'lineage across the restart is whole');
});

test('spine: tampering is caught by verify; bad input gets exit 2 and one line', async (t) => {
  const home = mkdtempSync(join(tmpdir(), 'prov-spine-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  const journal = join(home, 'journal');
  await writeJournal(journal, build());
  const seg = readdirSync(join(journal, 'ebpf')).filter((f) => f.endsWith('.seg'))[0]!;
  const path = join(journal, 'ebpf', seg);
  const bytes = readFileSync(path);
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01;
  writeFileSync(path, bytes);
  let r = prov(home, 'verify');
  assert.equal(r.code, EXIT.integrity, r.out + r.err);
  assert.match(r.out + r.err, /NOT clean: \w+ record in stream ebpf segment \S+ offset \d+ seq \d+/);

  r = prov(home, 'lineage', '/w/app', '--depth', 'x');
  assert.equal(r.code, EXIT.input);
  assert.match(r.err, /--depth must be a whole number/);
  r = prov(home, 'lineage', '/w/app', '--since', 'yesterday-ish');
  assert.equal(r.code, EXIT.input);
  assert.equal(r.err.trim().split('\n').length, 1, 'one line, no stack trace');
  assert.match(r.err, /--since: "yesterday-ish" is not a time/);
  r = prov(home, '--store', 'mysql://x', 'stats');
  assert.equal(r.code, EXIT.input);
  assert.match(r.err, /unknown store "mysql:"/);
});
