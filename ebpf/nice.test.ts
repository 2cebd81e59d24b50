/**
 * @module ebpf/nice.test
 * `prov capture start --nice 19`: the collector daemon's drain threads and its session's
 * autogroup run at nice 19 while the ring is calm, and every record still reaches the journal.
 * Needs root and bpffs: without them the test fails and says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openJournalReader } from '../collector/journal/reader.js';
import { statFields } from '../collector/proc.js';
import { getPriority, setPriority } from 'node:os';
import { captureToJournal, ebpfDecoders, startCapture, stopCapture } from './capture.js';
import { CALM_MAX_WAIT_MS } from './drain.js';

test('a collector started at nice 19 runs there (threads and autogroup) and journals every record', async (t) => {
  if (process.getuid?.() !== 0) assert.fail('eBPF capture needs root (CAP_BPF, CAP_SYS_ADMIN); run the tests as root');
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-nice-')));
  const stateDir = join(dir, 'state'), journalDir = join(dir, 'journal'), work = join(dir, 'work');
  const pinDir = `/sys/fs/bpf/prov-nice-test-${process.pid}`;
  let started = false;
  t.after(async () => {
    if (started) await stopCapture({ pinDir, stateDir }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const s = await startCapture({ journalDir, pinDir, stateDir, calmNice: 19 });
  started = true;

  const nices = readdirSync(`/proc/${s.daemonPid}/task`).map((tid) => ({ tid: Number(tid), nice: Number(statFields(Number(tid))?.[19 - 3]) }));
  // The main thread (pid) and the drain worker were made or started after the setting.
  assert.equal(nices.find((x) => x.tid === s.daemonPid)?.nice, 19, `main thread: ${JSON.stringify(nices)}`);
  assert.ok(nices.filter((x) => x.nice === 19).length >= 2, `the drain worker at 19 too: ${JSON.stringify(nices)}`);
  assert.match(readFileSync(`/proc/${s.daemonPid}/autogroup`, 'utf8'), /nice 19\b/);

  const n = 200;
  const r = spawnSync('sh', ['-c', `mkdir -p "$1" && cd "$1" && i=0; while [ $i -lt ${n} ]; do : > f$i; i=$((i+1)); done`, 'sh', work]);
  assert.equal(r.status, 0, r.stderr?.toString());
  const stopped = await stopCapture({ pinDir, stateDir });
  started = false;
  assert.equal(stopped.lost, 0, 'nothing lost');

  const reader = openJournalReader(journalDir, { decoders: ebpfDecoders });
  const created = new Set<string>();
  for (const rec of reader.readBatch(Number.MAX_SAFE_INTEGER)) {
    const ev = rec.event as { op: string; file?: { path?: string } };
    const path = ev.file?.path;
    if (ev.op === 'open' && path?.startsWith(`${work}/f`)) created.add(path);
  }
  reader.close();
  assert.equal(created.size, n, `opens of the ${n} files journaled: got ${created.size}`);
});

test('records that wait in the ring of a yielding drain raise it; a drain at its own nice is not raised for waiting', async (t) => {
  if (process.getuid?.() !== 0) assert.fail('eBPF capture needs root (CAP_BPF, CAP_SYS_ADMIN); run the tests as root');
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'prov-nicewait-')));
  const myNice = getPriority(0);
  t.after(() => { setPriority(0, myNice); rmSync(dir, { recursive: true, force: true }); });
  // This thread owns the drain: while spawnSync blocks it, batches are not taken, the worker's
  // credits run out and the workload's records wait in the ring well past CALM_MAX_WAIT_MS.
  const busyMs = 3 * CALM_MAX_WAIT_MS + 300;
  const boostsWith = async (calmNice: number | undefined, name: string): Promise<number> => {
    const cap = await captureToJournal({ journalDir: join(dir, `j-${name}`), pinDir: `/sys/fs/bpf/prov-nicewait-${name}-${process.pid}`, calmNice });
    try {
      const r = spawnSync('sh', ['-c', `end=$(($(date +%s%N) + ${busyMs}000000)); while [ $(date +%s%N) -lt $end ]; do : > "$1/f"; done`, 'sh', dir]);
      assert.equal(r.status, 0, r.stderr?.toString());
      await new Promise((res) => setTimeout(res, 50)); // take the worker's messages
    } finally {
      const st = await cap.stop();
      assert.equal(st.lost, 0, 'nothing lost');
    }
    return cap.drainer.stats.boosts ?? 0;
  };
  assert.equal(await boostsWith(undefined, 'own'), 0, 'the ring never filled a quarter: no boost without a calm nice');
  assert.ok(await boostsWith(19, 'calm') >= 1, `a yielding drain whose records waited over ${CALM_MAX_WAIT_MS} ms is raised`);
});
