/**
 * @module test/up.test
 * Host level, through the real `prov` binary: a provfs mount in plain mode and a running
 * workload are put into provenance mode with `prov up` (probes attached, the mount live-upgraded
 * to prov mode, the collector started — nothing remounted or restarted), a file is written
 * through the mount, `prov down` reverses everything, and the store answers the lineage with
 * both witnesses joined. Cleans up the mount, the probes and the collector also on failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PROV = join(import.meta.dirname, '..', 'cli', 'main.js');

function prov(home: string, ...args: string[]): { code: number; out: string; err: string } {
  // A private provfs runtime directory: `prov up` upgrades every mount listed there, and must
  // not touch mounts of anything else running on this host.
  const env = { ...process.env, PROV_RUNTIME_DIR: join(home, 'run') };
  const r = spawnSync(process.execPath, [PROV, '--home', home, ...args], { encoding: 'utf8', timeout: 120_000, env });
  return { code: r.status ?? -1, out: r.stdout, err: r.stderr };
}

test('prov up / down: provenance mode on a running host without remounting', async (t) => {
  assert.ok(existsSync('/dev/fuse'), 'this test needs /dev/fuse (FUSE) and root');
  assert.ok(existsSync('/sys/kernel/btf/vmlinux'), 'this test needs kernel BTF for eBPF capture');
  const home = mkdtempSync(join(tmpdir(), 'prov-up-'));
  const backing = join(home, 'data');
  const mnt = join(home, 'mnt');
  mkdirSync(backing);
  mkdirSync(mnt);
  writeFileSync(join(backing, 'input.txt'), 'b\na\nc\n');
  let mounted = false;
  let upDone = false;
  t.after(() => {
    if (upDone) prov(home, 'down');
    if (mounted) prov(home, 'umount', mnt) ;
    spawnSync('umount', ['-l', mnt]);
    rmSync(home, { recursive: true, force: true });
  });

  let r = prov(home, 'mount', backing, mnt, '--mode', 'plain');
  assert.equal(r.code, 0, r.out + r.err);
  mounted = true;

  r = prov(home, 'up', '--json');
  upDone = r.code === 0;
  assert.equal(r.code, 0, r.out + r.err);
  const up = JSON.parse(r.out.trim().split('\n').pop()!);
  assert.ok(up.provfsOk, 'the mount was upgraded to prov mode');
  assert.ok(up.collectorPid > 0);

  const sorted = spawnSync('sh', ['-c', 'sort input.txt > sorted.txt'], { cwd: mnt });
  assert.equal(sorted.status, 0);

  r = prov(home, 'down', '--json');
  upDone = false;
  assert.equal(r.code, 0, r.out + r.err);

  r = prov(home, 'ingest', '--json');
  assert.equal(r.code, 0, r.out + r.err);
  r = prov(home, 'lineage', join(mnt, 'sorted.txt'), '--json');
  assert.equal(r.code, 0, r.out + r.err);
  const g = JSON.parse(r.out);
  const procs = g.nodes.filter((n: { kind: string }) => n.kind === 'process');
  assert.ok(procs.some((p: { attrs: { argv?: string[] } }) => p.attrs.argv?.[0] === 'sort'), `sort wrote sorted.txt; processes: ${JSON.stringify(procs.map((p: { label: string }) => p.label))}`);
  assert.ok(g.nodes.some((n: { kind: string; attrs: { path?: string } }) => n.kind === 'file' && n.attrs.path === join(mnt, 'input.txt')),
    'input.txt is an ancestor of sorted.txt');
});
