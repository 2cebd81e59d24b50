/**
 * The sync prefilter against the eBPF decoder on REAL records: a journal captured while a shell
 * works in SRC (relative names, "./", "..", "//", symlinks, hard links, renames in and out, a
 * descriptor kept open across a fork) and next to it (a sibling whose name extends SRC's, and
 * another tree) is folded twice, every record decoded and with the prefilter; the plans, the
 * relevant counts and the positions must be the same, and no record passed over may name a
 * path under SRC in an operation sync uses. Needs root (eBPF): fails saying so without it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { ebpfDecoders } from '../../ebpf/capture.js';
import { openJournalReader } from '../journal/reader.js';
import type { JournalRecord } from '../journal/api.js';
import { startCaptureChild, stopCaptureChild } from './capture-child.js';
import { ChangeTracker } from './changes.js';
import { SyncPrefilter } from './prefilter.js';
import { relativeTo } from './paths.js';

process.env.PROV_LOG ??= 'warn';
const run = promisify(execFile);

const SCRIPT = `
set -e
cd src
mkdir d d2
echo a > d/f
echo b > ./g
mv d/f ../src/h
chmod 600 g
touch -d @1600000000 h
ln -s g s
ln g hl
rm hl
cd d
echo c > ../..//src/k
echo c2 > ../d2/./k2
mv ../d2 ../d3
cd ..
rmdir d
exec 3>w
echo 1 >&3
( echo 2 >&3 )
exec 3>&-
cd ..
echo x > srcx/a
mv srcx/a srcx/b
mv srcx/b src/from-sibling
mv src/g other/moved-out
mkdir other/d
echo y > other//d/../e
cd other/d
echo z > ../../src/via-other
rm ../../srcx/keep
`;

/** Paths an operation sync folds names (exec, sockets and the like name none it uses). */
function syncPaths(r: JournalRecord): string[] {
  const ev = r.event as unknown as { op: string; flags?: number; created?: boolean; file?: { path?: string }; from?: { path?: string }; overwritten?: { path?: string } };
  const write = ev.op === 'open' && (((ev.flags ?? 0) & 3) !== 0 || ((ev.flags ?? 0) & 0o1000) !== 0 || ev.created === true);
  if (ev.op === 'open' && !write) return [];
  if (!['open', 'create', 'mkdir', 'symlink', 'link', 'unlink', 'rmdir', 'rename', 'setattr'].includes(ev.op)) return [];
  return [ev.file?.path, ev.from?.path, ev.overwritten?.path].filter((p): p is string => p !== undefined);
}

describe('sync prefilter', () => {
  it('passes over only records that cannot concern SRC (checked against the decoder on real eBPF records)', async () => {
    if (process.getuid?.() !== 0) assert.fail('the prefilter test needs root (eBPF capture); run the tests as root');
    const base = fs.mkdtempSync('/tmp/ppf-');
    const src = `${base}/src`, journal = `${base}/journal`;
    for (const d of ['src', 'srcx', 'other']) fs.mkdirSync(`${base}/${d}`);
    fs.writeFileSync(`${base}/srcx/keep`, 'k');
    const pinDir = `/sys/fs/bpf/prov-sync-prefilter-${process.pid}`;
    let cap: ChildProcess | null = null;
    try {
      cap = await startCaptureChild(journal, pinDir);
      await run('sh', ['-c', SCRIPT], { cwd: base });
      await stopCaptureChild(cap); // drains and closes the journal
      cap = null;
      const dev = fs.statSync(src).dev;

      const all: JournalRecord[] = [];
      const a = new ChangeTracker(src, dev, {}, [], 'ebpf');
      const ra = openJournalReader(journal, { decoders: ebpfDecoders });
      for await (const r of ra.records()) { all.push(r); a.add(r); }
      ra.close();

      const b = new ChangeTracker(src, dev, {}, [], 'ebpf');
      const pre = new SyncPrefilter(src, 'ebpf');
      const delivered = new Set<string>();
      const rb = openJournalReader(journal, { decoders: ebpfDecoders, prefilter: pre.keep });
      for await (const r of rb.records()) { delivered.add(r.pos); b.add(r); }
      b.passOver(rb.passedOver());
      rb.close();

      assert.ok(a.relevant > 10, `the shell's operations under SRC were captured (${a.relevant} relevant records)`);
      assert.ok(pre.passed > 0, 'some records were passed over');
      assert.equal(JSON.stringify(b.overlay.plan()), JSON.stringify(a.overlay.plan()), 'same plan with and without the prefilter');
      assert.equal(b.relevant, a.relevant, 'same number of relevant records');
      assert.deepEqual(b.positions, a.positions, 'read to the same positions');
      assert.equal(b.records, a.records, 'every record counted');
      for (const r of all) {
        if (delivered.has(r.pos)) continue;
        for (const p of syncPaths(r)) {
          assert.equal(relativeTo(src, p), null, `${r.pos} (${r.event.op} ${p}) was passed over but names a path under SRC`);
        }
      }
    } finally {
      if (cap) await stopCaptureChild(cap);
      fs.rmSync(base, { recursive: true, force: true });
    }
  });
});
