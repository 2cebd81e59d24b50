/**
 * @module kernel/prov.test
 * prov mode on a real mount: a child process (python3, single-threaded so its thread id is its
 * pid) performs known operations; every record provfs logged is checked against what the child
 * did and what it saw (pids, inode numbers, device, flags, names, overwritten/deleted), and the
 * records reach the journal on disk. An idle daemon stops polling its record ring and the next
 * record wakes it.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, statSync, existsSync, realpathSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { mountProvfs, journalStreamName, type ProvfsMount } from './daemon.js';
import { unmount } from './mount.js';
import { DRAIN_MS, IDLE_TICKS } from './serving.js';
import { openJournalReader } from '../collector/journal/reader.js';
import type { ProvEvent } from '../collector/events.js';

const base = mkdtempSync(join(tmpdir(), 'provfs-prov-'));
let mount: ProvfsMount | null = null;
after(async () => {
  if (mount) { try { await mount.stop(); } catch { try { unmount(mount.mountpoint, true); } catch { /* gone */ } } }
  rmSync(base, { recursive: true, force: true });
});

const CHILD = String.raw`
import os, sys, json, ctypes
d = sys.argv[1]
P = lambda *x: os.path.join(d, *x)
out = {'pid': os.getpid(), 'dev': os.stat(d).st_dev}
fd = os.open(P('a'), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o640); os.write(fd, b'hello'); os.close(fd)
out['a'] = os.stat(P('a')).st_ino
fd = os.open(P('a'), os.O_RDONLY); os.read(fd, 5); os.close(fd)
fd = os.open(P('a'), os.O_WRONLY | os.O_APPEND); os.write(fd, b'!'); fd2 = os.dup(fd); os.close(fd); os.close(fd2)
os.mkdir(P('d'), 0o750); out['d'] = os.stat(P('d')).st_ino
os.rename(P('a'), P('d', 'b'))
fd = os.open(P('c'), os.O_CREAT | os.O_WRONLY, 0o600); os.close(fd); out['c'] = os.stat(P('c')).st_ino
os.rename(P('c'), P('d', 'b'))
os.link(P('d', 'b'), P('l'))
os.unlink(P('l'))
os.unlink(P('d', 'b'))
os.symlink('some/target', P('s')); out['s'] = os.lstat(P('s')).st_ino
os.rmdir(P('d'))
for n in ('x', 'y'):
    fd = os.open(P(n), os.O_CREAT | os.O_WRONLY, 0o644); os.close(fd)
out['x'] = os.stat(P('x')).st_ino; out['y'] = os.stat(P('y')).st_ino
libc = ctypes.CDLL(None, use_errno=True)
r = libc.renameat2(-100, P('x').encode(), -100, P('y').encode(), 2)
assert r == 0, os.strerror(ctypes.get_errno())
os.chmod(P('y'), 0o600)
os.truncate(P('y'), 3)
print(json.dumps(out))
`;

test('prov mode logs each operation with the caller, inode, flags and names', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const backing = join(base, 'backing'), mnt = join(base, 'mnt'), journalDir = join(base, 'journal');
  mkdirSync(backing); mkdirSync(mnt);
  const events: ProvEvent[] = [];
  mount = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir, onEvent: (e) => events.push(e) });
  const r = spawnSync('python3', ['-c', CHILD, mnt], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const seen = JSON.parse(r.stdout) as Record<string, number>;
  const info = await mount.stop();
  mount = null;
  assert.equal(info.reason, 'unmounted');

  const mine = events.filter((e) => e.tid === seen.pid!);
  assert.ok(mine.length > 0, 'no records carry the child pid as tid');
  for (const e of mine) {
    assert.equal(e.src, 'provfs');
    assert.equal(e.pid, 0, 'FUSE knows only the thread id: pid must be 0');
  }
  const ops = mine.map((e) => e.op);
  const rootIno = statSync(backing).ino;
  const find = (op: string, pred: (e: ProvEvent) => boolean = () => true): ProvEvent => {
    const e = mine.find((x) => x.op === op && pred(x));
    assert.ok(e, `no ${op} record (ops: ${ops.join(',')})`);
    return e;
  };
  const file = (e: ProvEvent): { dev: number; ino: number; name?: string; parent?: number; path?: string } =>
    (e as unknown as { file: { dev: number; ino: number; name?: string; parent?: number; path?: string } }).file;

  const create = find('create', (e) => file(e).name === 'a');
  assert.equal(file(create).ino, seen.a);
  assert.equal(file(create).dev, seen.dev, 'records carry the mount st_dev');
  assert.equal(file(create).parent, rootIno);
  assert.equal(file(create).path, join(mnt, 'a'));
  assert.equal((create as { mode: number }).mode, 0o640);
  const cflags = (create as { flags: number }).flags;
  assert.equal(cflags & 3, 1, 'O_WRONLY');
  assert.ok(cflags & 0o200, 'O_EXCL recorded');

  // Inode numbers are reused once a file is gone (a is overwritten by the second rename):
  // look at a's opens and closes before that.
  const beforeOverwrite = mine.slice(0, mine.findIndex((e) => e.op === 'rename' && (e as { overwritten?: unknown }).overwritten !== undefined));
  const opens = beforeOverwrite.filter((e) => e.op === 'open' && file(e).ino === seen.a);
  assert.equal(opens.length, 2, 'two opens of a');
  assert.equal((opens[0] as { flags: number }).flags & 3, 0, 'first open O_RDONLY');
  assert.equal((opens[1] as { flags: number }).flags & 3, 1, 'second open O_WRONLY');
  assert.ok((opens[1] as { flags: number }).flags & 0o2000, 'O_APPEND recorded');
  const closesA = beforeOverwrite.filter((e) => e.op === 'close' && file(e).ino === seen.a);
  // Passthrough handles go out with FOPEN_NOFLUSH (no FLUSH round trip per close(2)): each
  // open file's close is recorded once, at RELEASE, for the opener — create, read, and append
  // (whose dup was closed too: still one).
  assert.equal(closesA.length, 3, 'one close per open file of a');
  for (const [i, o] of opens.entries()) {
    const mine = closesA.filter((e) => (e as { fh: number }).fh === (o as { fh: number }).fh);
    assert.equal(mine.length, 1, `one close of open ${i}`);
    assert.equal((mine[0] as { release?: boolean }).release, true, 'recorded at RELEASE');
    assert.ok(mine[0]!.ts > o.ts, 'after its open');
  }
  assert.equal(info.counts['25'] ?? 0, 0, 'no FLUSH reached the daemon');

  const mk = find('mkdir');
  assert.equal(file(mk).ino, seen.d);
  assert.equal((mk as { mode: number }).mode, 0o750);

  const renames = mine.filter((e) => e.op === 'rename') as Extract<ProvEvent, { op: 'rename' }>[];
  assert.equal(renames.length, 3);
  assert.deepEqual([renames[0]!.file.ino, renames[0]!.file.name, renames[0]!.file.parent, renames[0]!.from.name, renames[0]!.from.parent],
    [seen.a, 'b', seen.d, 'a', rootIno]);
  assert.equal(renames[0]!.overwritten, undefined);
  assert.equal(renames[1]!.file.ino, seen.c);
  assert.equal(renames[1]!.overwritten?.ino, seen.a, 'what the rename overwrote');
  assert.equal(renames[1]!.overwrittenDeleted, true, 'a lost its last link');
  assert.equal(renames[2]!.flags, 2, 'RENAME_EXCHANGE');
  assert.equal(renames[2]!.file.ino, seen.x);
  assert.equal(renames[2]!.overwritten?.ino, seen.y);
  assert.equal(renames[2]!.overwrittenDeleted, false);

  const link = find('link');
  assert.equal(file(link).ino, seen.c);
  assert.equal(file(link).name, 'l');
  const unlinks = mine.filter((e) => e.op === 'unlink') as Extract<ProvEvent, { op: 'unlink' }>[];
  assert.deepEqual(unlinks.map((u) => [u.file.ino, u.file.name, u.deleted]), [[seen.c, 'l', false], [seen.c, 'b', true]]);
  const sym = find('symlink') as Extract<ProvEvent, { op: 'symlink' }>;
  assert.equal(sym.file.ino, seen.s);
  assert.equal(sym.target, 'some/target');
  assert.equal(file(find('rmdir')).ino, seen.d);
  const sets = mine.filter((e) => e.op === 'setattr') as Extract<ProvEvent, { op: 'setattr' }>[];
  assert.ok(sets.some((s) => s.mode === 0o600 && s.file.ino === seen.x), 'chmod of y (now inode x after the exchange)');
  assert.ok(sets.some((s) => s.size === 3), 'truncate');

  // Records are in the order the operations happened.
  for (let i = 1; i < mine.length; i++) assert.ok(mine[i]!.ts >= mine[i - 1]!.ts, 'timestamps are monotonic');

  // The same records went to the journal stream of this mount point, valid and in order.
  const stream = journalStreamName(realpathSync(mnt));
  const reader = openJournalReader(journalDir);
  const fromJournal = reader.readBatch(100_000, [stream]);
  assert.equal(reader.stats.rejected, 0, 'journal rejected provfs records');
  reader.close();
  assert.equal(fromJournal.length, events.length, 'every record reached the journal');
  assert.deepEqual(fromJournal.map((r) => r.seq), events.map((_, i) => i + 1), 'seq 1..n without gaps');
  assert.deepEqual(fromJournal.map((r) => ({ ...r.event, seq: 0 })), events.map((e) => ({ ...e, seq: 0 })));
});

test('an idle prov daemon stops polling its record ring, and the next operation wakes it: the record arrives at once', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const dir = join(base, 'idle'), backing = join(dir, 'backing'), mnt = join(dir, 'mnt');
  mkdirSync(backing, { recursive: true }); mkdirSync(mnt);
  const events: ProvEvent[] = [];
  const m = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir: join(dir, 'journal'), onEvent: (e) => events.push(e) });
  try {
    const until = async (what: string, ok: () => boolean, ms: number): Promise<number> => {
      const t0 = performance.now();
      while (!ok()) {
        if (performance.now() - t0 > ms) assert.fail(`${what}: not within ${ms} ms`);
        await new Promise((r) => setTimeout(r, 2));
      }
      return performance.now() - t0;
    };
    // Polling from the mount on is not checked: it stops after IDLE_TICKS quiet ticks, which on a
    // loaded machine can pass before this test looks (each record below checks the wake-up).
    await until('the drain asleep when nothing happens', () => !m.draining, (IDLE_TICKS + 20) * DRAIN_MS * 4);
    for (const name of ['one', 'two']) {
      writeFileSync(join(mnt, name), name);
      await until(`the create of ${name} journaled`, () => events.some((e) => e.op === 'create' && (e as { file: { name?: string } }).file.name === name), 1000);
      assert.equal(m.draining, true, 'woken by the record');
      await until('asleep again', () => !m.draining, (IDLE_TICKS + 20) * DRAIN_MS * 4);
    }
  } finally {
    await m.stop();
  }
});

test('prov mode: the log reads back as the read-only file .lin at the mount root; plain mode has none', async () => {
  if (process.getuid?.() !== 0 || !existsSync('/dev/fuse')) assert.fail('needs root and /dev/fuse');
  const { writeFileSync, readFileSync, readdirSync, openSync, chmodSync, unlinkSync } = await import('node:fs');
  const backing = join(base, 'lin-b'), mnt = join(base, 'lin-m');
  mkdirSync(backing); mkdirSync(mnt);
  mount = await mountProvfs({ backing, mountpoint: mnt, mode: 'prov', journalDir: join(base, 'lin-j') });
  writeFileSync(join(mnt, 'one'), '1');
  writeFileSync(join(mnt, 'two'), '2');
  unlinkSync(join(mnt, 'one'));
  const lines = readFileSync(join(mnt, '.lin'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ProvEvent);
  const named = (op: string, name: string): boolean => lines.some((e) => e.op === op && (e as { file?: { name?: string } }).file?.name === name);
  assert.ok(named('create', 'one') && named('create', 'two') && named('unlink', 'one'), `the log names what was done: ${lines.map((e) => e.op).join(',')}`);
  assert.ok(lines.every((e) => e.src === 'provfs' && (e.op !== 'open' || (e as { file: { name: string } }).file.name !== '.lin')), 'reading .lin records nothing about .lin');
  assert.equal(statSync(join(mnt, '.lin')).mode & 0o7777, 0o444);
  assert.throws(() => openSync(join(mnt, '.lin'), 'w'), /EACCES/);
  assert.throws(() => chmodSync(join(mnt, '.lin'), 0o666), /EPERM/);
  assert.ok(!readdirSync(mnt).includes('.lin'), 'not listed');
  await mount.stop();
  mount = null;
  const plain = await mountProvfs({ backing, mountpoint: mnt, mode: 'plain' });
  try {
    assert.throws(() => statSync(join(mnt, '.lin')), /ENOENT/);
  } finally {
    await plain.stop();
  }
});
