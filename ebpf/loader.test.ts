/**
 * @module ebpf/loader.test
 * Loader lifecycle on the real kernel: attach pins every link and map, detach leaves nothing,
 * and every failing step (bad settings, open, attach half-way, pin dir taken) cleans up too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import {
  attachCapture, detachCapture, attachedPrograms, isAttached, readCounters, excludePid, LoaderError, defaultRingBytes,
} from './loader.js';
import { InputError } from '../graph/errors.js';

const pinDir = `/sys/fs/bpf/prov-test-loader-${process.pid}`;
const failObject = fileURLToPath(new URL('../../ebpf/build/fail_attach.bpf.o', import.meta.url));
const optionalObject = fileURLToPath(new URL('../../ebpf/build/optional.bpf.o', import.meta.url));

/** Program ids the kernel has loaded whose name starts with one of ours. */
function loadedProgIds(names: string[]): number[] {
  const out = execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' });
  const progs = JSON.parse(out) as { id: number; name?: string }[];
  const short = new Set(names.map((n) => n.slice(0, 15)));
  return progs.filter((p) => p.name && short.has(p.name)).map((p) => p.id);
}

/** ids of the programs behind the links pinned under dir (ours only, whatever else runs on the host). */
function pinnedProgIds(dir: string): number[] {
  return readdirSync(dir).filter((n) => n.startsWith('link_')).map((n) => {
    const info = JSON.parse(execFileSync('bpftool', ['-j', 'link', 'show', 'pinned', join(dir, n)], { encoding: 'utf8' })) as { prog_id: number };
    return info.prog_id;
  });
}
function loadedIds(): Set<number> {
  return new Set((JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as { id: number }[]).map((p) => p.id));
}

test('attach pins links and maps; detach leaves nothing attached or pinned', (t) => {
  t.after(() => detachCapture(pinDir));
  const r = attachCapture({ pinDir, ringBytes: 1 << 20 });
  assert.ok(r.programs.length >= 60, `only ${r.programs.length} programs attached`);
  assert.deepEqual(r.skipped, [], 'this kernel has every tracepoint prov uses');
  for (const p of ['on_fork', 'on_exec', 'on_exit', 'exit_openat', 'enter_close', 'exit_renameat2', 'exit_unlinkat', 'exit_sendmsg', 'exit_recvmsg', 'on_ctime_xchg']) {
    assert.ok(r.programs.includes(p), `program ${p} not attached`);
  }
  assert.ok(isAttached(pinDir));
  assert.deepEqual(attachedPrograms(pinDir), [...r.programs].sort());
  const pinned = readdirSync(pinDir).sort();
  for (const m of ['events', 'stats', 'excluded', 'tracked']) assert.ok(pinned.includes(m), `map ${m} not pinned`);
  const ours = pinnedProgIds(pinDir);
  assert.equal(ours.length, r.programs.length);
  const loaded = loadedIds();
  for (const id of ours) assert.ok(loaded.has(id), `program ${id} not loaded in the kernel`);

  // Attached for real: this host's activity shows in the counters (a child process makes some).
  execFileSync('/bin/true');
  const c = readCounters(pinDir);
  assert.ok(c.emitted > 0, 'no event emitted while attached');
  excludePid(12345, pinDir);

  const d = detachCapture(pinDir);
  assert.equal(d.programs, r.programs.length);
  assert.equal(existsSync(pinDir), false, 'pin directory left behind');
  assert.equal(isAttached(pinDir), false);
  // The kernel frees a detached program after an RCU grace period: give it a moment.
  const deadline = Date.now() + 5000;
  let left = ours.filter((id) => loadedIds().has(id));
  while (left.length && Date.now() < deadline) {
    execFileSync('sleep', ['0.05']);
    left = ours.filter((id) => loadedIds().has(id));
  }
  assert.deepEqual(left, [], 'programs still loaded 5 s after detach');
});

test('a half-failed attach detaches what it attached and unpins everything', () => {
  assert.ok(existsSync(failObject), `${failObject} missing: run ebpf/build.sh`);
  assert.throws(() => attachCapture({ pinDir, objectPath: failObject, ringBytes: 1 << 16 }), (e: unknown) => {
    assert.ok(e instanceof LoaderError);
    assert.match((e as Error).message, /^attach: program b_fails: /);
    return true;
  });
  assert.equal(existsSync(pinDir), false);
  const deadline = Date.now() + 5000;
  while (loadedProgIds(['a_attaches', 'b_fails']).length && Date.now() < deadline) execFileSync('sleep', ['0.05']);
  assert.deepEqual(loadedProgIds(['a_attaches', 'b_fails']), [], 'a program of the failed attach is still loaded after 5 s');
});

test('programs whose tracepoint this kernel lacks are left out, the rest attach', (t) => {
  t.after(() => detachCapture(pinDir));
  const r = attachCapture({ pinDir, objectPath: optionalObject, ringBytes: 1 << 16 });
  assert.deepEqual(r.programs, ['present']);
  assert.deepEqual(r.skipped.sort(), ['missing_btf', 'missing_tp']);
  assert.deepEqual(attachedPrograms(pinDir), ['present']);
  detachCapture(pinDir);
  assert.equal(existsSync(pinDir), false);
});

test('each step fails with its own line and leaves nothing pinned', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'prov-loader-'));
  t.after(() => { rmSync(dir, { recursive: true, force: true }); detachCapture(pinDir); });
  const junk = join(dir, 'junk.bpf.o');
  writeFileSync(junk, 'not an ELF file');
  assert.throws(() => attachCapture({ pinDir, objectPath: junk }), /^LoaderError: open: .*junk\.bpf\.o: /);
  assert.equal(existsSync(pinDir), false);
  assert.throws(() => attachCapture({ pinDir, ringBytes: 5000 }), /settings: ring size 5000 is not a power of two/);
  assert.throws(() => attachCapture({ pinDir, pathPrefix: 'relative/path' }), (e: unknown) => e instanceof InputError);
  assert.equal(existsSync(pinDir), false);

  // A second attach on a taken pin dir is refused and leaves the first one intact.
  attachCapture({ pinDir, ringBytes: 1 << 16 });
  assert.throws(() => attachCapture({ pinDir, ringBytes: 1 << 16 }), /^LoaderError: pin: .* already exists/);
  assert.ok(isAttached(pinDir));
  detachCapture(pinDir);
  assert.equal(existsSync(pinDir), false);
});

test('without CAP_BPF, prov capture start says so in one line and exits 4', () => {
  const cli = fileURLToPath(new URL('../cli/actions/capture.js', import.meta.url));
  const scratch = mkdtempSync(join(tmpdir(), 'prov-nocap-'));
  const code = `import(${JSON.stringify(cli)}).then(async (m) => { process.exitCode = await m.default('start', { journal: ${JSON.stringify(join(scratch, 'journal'))}, pinDir: ${JSON.stringify(pinDir)}, stateDir: ${JSON.stringify(join(scratch, 'state'))} }); })`;
  let status = 0, stderr = '';
  try {
    // Root with every capability gone (bounding set emptied): no CAP_BPF, yet the checkout
    // stays readable wherever it is (an unprivileged uid may not enter it).
    execFileSync('setpriv', ['--bounding-set=-all', '--inh-caps=-all', process.execPath, '-e', code], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const err = e as { status: number; stderr: string };
    status = err.status;
    stderr = err.stderr;
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  assert.equal(status, 4, `exit status ${status}, stderr: ${stderr}`);
  const lines = stderr.trim().split('\n');
  assert.equal(lines.length, 1, stderr);
  assert.match(lines[0]!, /^prov capture start: eBPF capture needs CAP_BPF and CAP_PERFMON/);
  assert.equal(existsSync(pinDir), false);
});

test('default ring: 1/64 of RAM as a power of two, between 16 and 256 MiB', () => {
  const GiB = 2 ** 30, MiB = 2 ** 20;
  assert.equal(defaultRingBytes(24 * GiB), 256 * MiB);
  assert.equal(defaultRingBytes(8 * GiB), 128 * MiB);
  assert.equal(defaultRingBytes(4 * GiB), 64 * MiB);
  assert.equal(defaultRingBytes(512 * MiB), 16 * MiB);
  assert.equal(defaultRingBytes(1024 * GiB), 256 * MiB);
});
