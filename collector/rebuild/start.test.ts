/**
 * @module collector/rebuild/start.test
 * The start file the native client's fast start reads: which commands go in (nothing planned
 * before them, runnable as this user, every input stamped), latest first, and how inputs are
 * written (a temporary as four "-", an input too large to hash with "-" for its hash).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeStart, startPathOf } from './start.js';
import type { Command, Plan, RecordedFile } from './plan.js';
import type { StampFile } from './stamp.js';

const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
const file = (path: string, extra: Partial<RecordedFile> = {}): RecordedFile => ({ id: path, path, dev: 1, ino: 1, version: 1, ts: 0, ...extra });

function cmd(name: string, o: { deps?: string[]; inputs?: RecordedFile[]; outputs?: string[]; uid?: number } = {}): Command {
  return {
    key: `k-${name}`, run: `run-${name}`, argv: ['cc', '-c', `${name}.c`], exe: '/usr/bin/cc', cwd: '/src', env: ['PATH=/usr/bin', 'A=b c'],
    uid: o.uid ?? me.uid, gid: me.gid, start: 0, images: 1, sockets: [],
    inputs: o.inputs ?? [file(`/src/${name}.c`)], outputs: (o.outputs ?? [`/src/${name}.o`]).map((p) => file(p)), deps: o.deps ?? [],
  };
}

const stampOf = (c: Command, hash: string | null = 'ab'): StampFile['commands'][string] => ({
  run: c.run, files: Object.fromEntries(c.inputs.filter((i) => !i.deleted).map((i) => [i.path, { ino: 7, size: 3, mtime: '9', hash: hash ?? undefined }])),
});

describe('the start file', () => {
  it('lists the independent commands latest first, with their inputs\' stamps', () => {
    const a = cmd('a', { inputs: [file('/src/a.c'), file('/tmp/cc1.s', { deleted: true })] });
    const b = cmd('b');
    const link = cmd('link', { deps: [a.run, b.run], inputs: [file('/src/a.o'), file('/src/b.o')], outputs: ['/src/app'] });
    const plan: Plan = { target: '/src/app', targetVersion: 'v', commands: [a, b, link], sources: 2 };
    const stamps: StampFile = { version: 1, plans: {}, commands: { [a.key]: stampOf(a), [b.key]: stampOf(b, null), [link.key]: stampOf(link) } };
    const f = encodeStart('/src/app', 'fp', plan, stamps)!.toString().split('\0');
    assert.equal(f.pop(), '');
    assert.deepEqual(f.slice(0, 4), ['PS1', '/src/app', 'fp', '2']);
    // b first (latest), its input stamped but not hashed ("-"); then a with its temporary.
    const bFields = ['run-b', '/usr/bin/cc', '/src', 'cc -c b.c', '3', 'cc', '-c', 'b.c', '2', 'PATH=/usr/bin', 'A=b c', '1', '/src/b.c', '7', '3', '9', '-'];
    const aFields = ['run-a', '/usr/bin/cc', '/src', 'cc -c a.c', '3', 'cc', '-c', 'a.c', '2', 'PATH=/usr/bin', 'A=b c', '2', '/src/a.c', '7', '3', '9', 'ab', '/tmp/cc1.s', '-', '-', '-', '-'];
    assert.deepEqual(f.slice(4), [...bFields, ...aFields]);
  });

  it('leaves out what the client may not start: reads a planned output, another user, no stamp; nothing left gives none', () => {
    const gen = cmd('gen', { outputs: ['/src/gen.h'] });
    const reader = cmd('reader', { inputs: [file('/src/reader.c'), file('/src/gen.h')] });
    const other = cmd('other', { uid: me.uid + 1 });
    const unstamped = cmd('unstamped');
    const plan: Plan = { target: '/t', targetVersion: 'v', commands: [gen, reader, other, unstamped], sources: 0 };
    const stamps: StampFile = { version: 1, plans: {}, commands: { [gen.key]: stampOf(gen), [reader.key]: stampOf(reader), [other.key]: stampOf(other) } };
    const f = encodeStart('/t', 'fp', plan, stamps)!.toString().split('\0');
    assert.equal(f[3], '1');
    assert.equal(f[4], 'run-gen');
    assert.equal(encodeStart('/t', 'fp', { ...plan, commands: [unstamped] }, stamps), null);
    assert.equal(startPathOf('/h/rebuild/quick/0123abcd.json'), '/h/rebuild/quick/0123abcd.s');
  });
});
