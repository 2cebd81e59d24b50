/**
 * @module test/posix/scenario
 * The POSIX semantics scenario: a fixed list of file-system operations run in one directory,
 * each outcome written down in a form that does not depend on the file system (no inode numbers
 * or device ids, only relations between them; uids as "self" or a number). Run it on ext4 and
 * on a provfs mount and compare the two outputs.
 *
 * Usage: `node dist/test/posix/scenario.js DIR [--big]` prints one JSON object on stdout.
 * It runs as whatever user starts it (the test runs it as root and as nobody).
 */
import * as fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import * as libc from '../../kernel/libc.js';

// Started as root so it can load its modules wherever the checkout is (even in a directory
// only root may enter); it becomes the user under test (`--as UID`) before touching any file.
const asUser = process.argv.indexOf('--as');
if (asUser > 0) {
  const id = Number(process.argv[asUser + 1]);
  process.setgroups!([]);
  process.setgid!(id);
  process.setuid!(id);
}

type Outcome = unknown;
const results: Record<string, Outcome> = {};
const uid = process.getuid!();
const gid = process.getgid!();

function who(id: number, self: number): string | number {
  return id === self ? 'self' : id;
}

/** Run `fn`, record its value or its error code. */
function step(name: string, fn: () => Outcome): void {
  try {
    results[name] = fn() ?? "ok";
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { errno?: number };
    results[name] = { error: err.code ?? (e instanceof libc.Errno ? libc.errnoName(e.errno) : String(e)) };
  }
}

function st(p: string, follow = false): Record<string, unknown> {
  const s = follow ? fs.statSync(p) : fs.lstatSync(p);
  return {
    type: s.isFile() ? 'file' : s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'link' : s.isFIFO() ? 'fifo' : 'other',
    mode: (s.mode & 0o7777).toString(8), nlink: s.nlink, size: s.size, uid: who(s.uid, uid), gid: who(s.gid, gid),
  };
}

const read = (p: string): string => fs.readFileSync(p, 'utf8');
const hash = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex').slice(0, 16);
const RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;
const renameat2 = (a: string, b: string, flags: number): void =>
  libc.renameat2(libc.AT.FDCWD, Buffer.from(a), libc.AT.FDCWD, Buffer.from(b), flags);

/** Run `code` in one node process per word, all at once; returns the shell's exit status. */
function concurrently(code: string, target: string, words: string[]): number | null {
  const script = 'n="$1"; c="$2"; t="$3"; shift 3; for w in "$@"; do "$n" -e "$c" "$t" "$w" & done; wait';
  return spawnSync('/bin/sh', ['-c', script, 'sh', process.execPath, code, target, ...words], { stdio: 'inherit' }).status;
}

function main(): void {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: scenario.js DIR');
  const big = process.argv.includes("--big");
  // A umask the daemon must apply itself (FUSE passes it with CREATE/MKDIR/MKNOD).
  process.umask(0o027);
  const P = (...xs: string[]): string => join(dir, ...xs);

  // ---- create and open flags ----
  step('create.excl', () => {
    const fd = fs.openSync(P('f'), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o640);
    fs.writeSync(fd, 'abc');
    fs.closeSync(fd);
    return st(P('f'));
  });
  step('create.excl.again', () => fs.openSync(P('f'), fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY, 0o640));
  step('open.missing', () => fs.openSync(P('nope'), 'r'));
  step('open.trunc', () => {
    const fd = fs.openSync(P('f'), fs.constants.O_WRONLY | fs.constants.O_TRUNC);
    const size = fs.fstatSync(fd).size;
    fs.writeSync(fd, 'hello');
    fs.closeSync(fd);
    return { sizeAfterOpen: size, content: read(P('f')) };
  });
  step('open.append', () => {
    const fd = fs.openSync(P('f'), fs.constants.O_WRONLY | fs.constants.O_APPEND);
    fs.writeSync(fd, 'XY', 0);
    fs.writeSync(fd, 'Z', 0);
    fs.closeSync(fd);
    return read(P('f'));
  });
  step('open.rdwr.pos', () => {
    const fd = fs.openSync(P('f'), 'r+');
    fs.writeSync(fd, 'J', 1);
    const b = Buffer.alloc(3);
    fs.readSync(fd, b, 0, 3, 4);
    fs.closeSync(fd);
    return { content: read(P('f')), mid: b.toString() };
  });
  step('open.directory.on.file', () => fs.openSync(P('f'), fs.constants.O_RDONLY | fs.constants.O_DIRECTORY));
  step('create.mode.umask0', () => {
    fs.writeFileSync(P('m755'), 'x', { mode: 0o755 });
    return st(P('m755'));
  });

  // ---- directories ----
  step('mkdir', () => { fs.mkdirSync(P('d1'), 0o750); fs.mkdirSync(P('d2')); fs.mkdirSync(P('d3')); return st(P('d1')); });
  step('mkdir.exists', () => fs.mkdirSync(P('d1')));
  step('rmdir.notempty', () => { fs.writeFileSync(P('d3', 'x'), '1'); return fs.rmdirSync(P('d3')); });
  step('rmdir.file', () => fs.rmdirSync(P('f')));
  step('unlink.dir', () => fs.unlinkSync(P('d1')));

  // ---- rename ----
  step('rename.file.over.file', () => {
    fs.writeFileSync(P('r1'), 'one');
    fs.writeFileSync(P('r2'), 'two');
    fs.renameSync(P('r1'), P('r2'));
    return { r2: read(P('r2')), r1: fs.existsSync(P('r1')) };
  });
  step('rename.dir.over.emptydir', () => { fs.renameSync(P('d1'), P('d2')); return [fs.existsSync(P('d1')), st(P('d2'))]; });
  step('rename.dir.over.nonempty', () => fs.renameSync(P('d2'), P('d3')));
  step('rename.file.over.dir', () => fs.renameSync(P('r2'), P('d3')));
  step('rename.dir.over.file', () => fs.renameSync(P('d2'), P('r2')));
  step('rename.into.own.child', () => fs.renameSync(P('d3'), P('d3', 'sub')));
  step('rename.noreplace.exists', () => { fs.writeFileSync(P('n1'), 'n1'); fs.writeFileSync(P('n2'), 'n2'); renameat2(P('n1'), P('n2'), RENAME_NOREPLACE); });
  step('rename.noreplace.new', () => { renameat2(P('n1'), P('n3'), RENAME_NOREPLACE); return [fs.existsSync(P('n1')), read(P('n3'))]; });
  step('rename.exchange', () => { renameat2(P('n2'), P('n3'), RENAME_EXCHANGE); return [read(P('n2')), read(P('n3'))]; });
  step('rename.exchange.file.dir', () => { renameat2(P('n2'), P('d2'), RENAME_EXCHANGE); return [st(P('n2')).type, st(P('d2')).type]; });
  step('rename.exchange.missing', () => renameat2(P('n3'), P('missing'), RENAME_EXCHANGE));
  step('rename.open.file', () => {
    fs.writeFileSync(P('o1'), 'open');
    const fd = fs.openSync(P('o1'), 'r+');
    fs.renameSync(P('o1'), P('o2'));
    fs.writeSync(fd, 'OPEN', 0);
    fs.closeSync(fd);
    return read(P('o2'));
  });

  // ---- hard links ----
  step('link', () => {
    fs.writeFileSync(P('l1'), 'linked');
    fs.linkSync(P('l1'), P('l2'));
    const a = fs.statSync(P('l1')), b = fs.statSync(P('l2'));
    return { sameIno: a.ino === b.ino, nlink: [a.nlink, b.nlink] };
  });
  step('link.write.through.other', () => { fs.appendFileSync(P('l2'), '+'); return read(P('l1')); });
  step('link.unlink.one', () => { fs.unlinkSync(P('l1')); return [fs.statSync(P('l2')).nlink, read(P('l2'))]; });
  step('link.dir', () => fs.linkSync(P('d2'), P('d2link')));
  step('link.exists', () => fs.linkSync(P('l2'), P('f')));

  // ---- unlink of an open file ----
  step('unlink.open', () => {
    fs.writeFileSync(P('u1'), 'data');
    const fd = fs.openSync(P('u1'), 'r+');
    fs.unlinkSync(P('u1'));
    fs.writeSync(fd, 'more', 4);
    const b = Buffer.alloc(8);
    const n = fs.readSync(fd, b, 0, 8, 0);
    const s = fs.fstatSync(fd);
    fs.closeSync(fd);
    return { read: b.subarray(0, n).toString(), nlink: s.nlink, size: s.size, exists: fs.existsSync(P('u1')) };
  });

  // ---- attributes ----
  step('chmod', () => { fs.chmodSync(P('f'), 0o604); return st(P('f')); });
  step('chmod.setgid', () => { fs.chmodSync(P('f'), 0o2755); return st(P('f')); });
  step('chown.self', () => { fs.chownSync(P('f'), uid, gid); return st(P('f')); });
  step('chown.other', () => { fs.chownSync(P('f'), 1234, 1234); return st(P('f')); });
  step('chown.back', () => { fs.chownSync(P('f'), uid, gid); return st(P('f')); });
  step('utimens', () => {
    fs.utimesSync(P('f'), 1000000000.25, 1200000000.5);
    const s = fs.statSync(P('f'));
    return [s.atimeMs, s.mtimeMs];
  });
  step('utimens.ns', () => {
    const fd = libc.open(P('f'), libc.O.PATH);
    try { libc.utimensFd(fd, false, 1300000000n, 123456789, 1400000000n, 987654321); } finally { libc.close(fd); }
    const s = fs.statSync(P('f'), { bigint: true });
    return [s.atimeNs.toString(), s.mtimeNs.toString()];
  });
  step('utimens.now', () => { fs.utimesSync(P('f'), new Date(), new Date()); return Math.abs(fs.statSync(P('f')).mtimeMs - Date.now()) < 60_000; });
  step('truncate.grow', () => { fs.truncateSync(P('f'), 100); const b = fs.readFileSync(P('f')); return [b.length, hash(b)]; });
  step('truncate.shrink', () => { fs.truncateSync(P('f'), 2); return read(P('f')); });
  step('ftruncate', () => { const fd = fs.openSync(P('f'), 'r+'); fs.ftruncateSync(fd, 1); fs.closeSync(fd); return read(P('f')); });

  // ---- set-user/group-id bits cleared by write, truncate and O_TRUNC (as a user without
  // CAP_FSETID; root keeps them). provfs clears them itself (FUSE_HANDLE_KILLPRIV_V2). ----
  const setId = (name: string, mode: number): string => { fs.rmSync(P(name), { force: true }); fs.writeFileSync(P(name), 'abc'); fs.chmodSync(P(name), mode); return P(name); };
  step('setid.write', () => {
    const f = setId('sx', 0o6775);
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, 'W', 1);
    fs.closeSync(fd);
    return [st(f), read(f)];
  });
  step('setid.write.nogx', () => {
    const f = setId('sx', 0o2664);
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, 'V', 0);
    fs.closeSync(fd);
    return [st(f), read(f)];
  });
  step('setid.truncate', () => { const f = setId('sx', 0o6775); fs.truncateSync(f, 1); return [st(f), read(f)]; });
  step('setid.open.trunc', () => { const f = setId('sx', 0o4755); fs.closeSync(fs.openSync(f, fs.constants.O_WRONLY | fs.constants.O_TRUNC)); return st(f); });
  step('setid.open.readonly', () => { const f = setId('sx', 0o6775); fs.readFileSync(f); return st(f); });
  step('setid.chmod.after.open', () => {
    // Opened before it became set-id (the handle uses passthrough), made set-id while open.
    const f = setId('sx', 0o775);
    const fd = fs.openSync(f, 'r+');
    fs.chmodSync(f, 0o4775);
    fs.closeSync(fd);
    return st(f);
  });
  step('setid.cleanup', () => { fs.unlinkSync(P('sx')); return true; });

  // ---- xattrs ----
  const xp = (p: string): Buffer => libc.cstr(p);
  step('xattr.set.get', () => {
    libc.setxattrPath(xp(P('f')), Buffer.from('user.prov'), Buffer.from('value1'), 0, false);
    const b = Buffer.alloc(64);
    const n = libc.getxattrPath(xp(P('f')), Buffer.from('user.prov'), b, 64, false);
    return b.subarray(0, n).toString();
  });
  step('xattr.size', () => libc.getxattrPath(xp(P('f')), Buffer.from('user.prov'), null, 0, false));
  step('xattr.list', () => {
    const b = Buffer.alloc(256);
    const n = libc.listxattrPath(xp(P('f')), b, 256, false);
    return b.subarray(0, n).toString().split('\0').filter((s) => s.startsWith('user.')).sort();
  });
  step('xattr.create.exists', () => libc.setxattrPath(xp(P('f')), Buffer.from('user.prov'), Buffer.from('v'), 1, false));
  step('xattr.replace.missing', () => libc.setxattrPath(xp(P('f')), Buffer.from('user.none'), Buffer.from('v'), 2, false));
  step('xattr.toosmall', () => libc.getxattrPath(xp(P('f')), Buffer.from('user.prov'), Buffer.alloc(2), 2, false));
  step('xattr.remove', () => { libc.removexattrPath(xp(P('f')), Buffer.from('user.prov'), false); return libc.getxattrPath(xp(P('f')), Buffer.from('user.prov'), null, 0, false); });

  // ---- symlinks ----
  step('symlink', () => { fs.symlinkSync('l2', P('s1')); return [st(P('s1')).type, fs.readlinkSync(P('s1')), read(P('s1'))]; });
  step('symlink.dangling', () => { fs.symlinkSync('nowhere', P('s2')); return [fs.readlinkSync(P('s2')), fs.existsSync(P('s2'))]; });
  step('symlink.exists', () => fs.symlinkSync('x', P('s1')));
  step('symlink.lchown', () => { fs.lchownSync(P('s1'), uid, gid); return st(P('s1')); });
  step('symlink.xattr.get', () => libc.getxattrPath(xp(P('s1')), Buffer.from('user.x'), null, 0, true));
  step('symlink.long', () => { const t = 'a/'.repeat(1000) + 'b'; fs.symlinkSync(t, P('s3')); return fs.readlinkSync(P('s3')) === t; });

  // ---- fifos ----
  step('mkfifo', () => {
    libc.mknodat(libc.AT.FDCWD, Buffer.from(P('fifo')), libc.S.IFIFO | 0o640, 0);
    const r = fs.openSync(P('fifo'), fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const w = fs.openSync(P('fifo'), fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    fs.writeSync(w, 'through');
    const b = Buffer.alloc(16);
    const n = fs.readSync(r, b, 0, 16, null);
    fs.closeSync(w); fs.closeSync(r);
    return [st(P('fifo')), b.subarray(0, n).toString()];
  });

  // ---- permissions ----
  step('perm.readonly.file.write', () => { fs.writeFileSync(P('ro'), 'ro', { mode: 0o400 }); return fs.openSync(P('ro'), 'w'); });
  step('perm.readonly.dir.create', () => { fs.mkdirSync(P('rod'), 0o500); return fs.writeFileSync(P('rod', 'x'), 'x'); });
  step('perm.noexec.dir.lookup', () => { fs.mkdirSync(P('nox'), 0o700); fs.writeFileSync(P('nox', 'in'), 'in'); fs.chmodSync(P('nox'), 0o600); return fs.statSync(P('nox', 'in')).size; });
  step('perm.sticky', () => { fs.mkdirSync(P('sticky'), 0o1777); return st(P('sticky')); });
  step('perm.setgid.dir', () => {
    fs.mkdirSync(P('sg'), 0o2775);
    fs.writeFileSync(P('sg', 'f'), 'x');
    fs.mkdirSync(P('sg', 'sub'));
    return [st(P('sg')), st(P('sg', 'f')), st(P('sg', 'sub'))];
  });
  step('perm.cleanup', () => { fs.chmodSync(P('rod'), 0o700); fs.chmodSync(P('nox'), 0o700); return true; });

  // ---- readdir ----
  step('readdir.small', () => fs.readdirSync(dir).sort());
  step('readdir.10000', () => {
    fs.mkdirSync(P('many'));
    for (let i = 0; i < 10000; i++) fs.closeSync(fs.openSync(P('many', `entry-${i}`), 'w'));
    const names = fs.readdirSync(P('many')).sort();
    const ent = fs.readdirSync(P('many'), { withFileTypes: true }).filter((e) => e.isFile()).length;
    const r = { count: names.length, files: ent, hash: hash(names.join('\n')) };
    for (const n of names) fs.unlinkSync(P('many', n));
    fs.rmdirSync(P('many'));
    return r;
  });

  // ---- large sparse file ----
  step('file.over.4GiB', () => {
    const off = 4 * 1024 ** 3 + 4096 * 3 + 7;
    const fd = fs.openSync(P('big'), 'w+');
    fs.writeSync(fd, 'END', off);
    const size = fs.fstatSync(fd).size;
    const b = Buffer.alloc(3);
    fs.readSync(fd, b, 0, 3, off);
    const z = Buffer.alloc(16);
    fs.readSync(fd, z, 0, 16, 2 ** 32);
    fs.ftruncateSync(fd, 5 * 1024 ** 3);
    const size2 = fs.fstatSync(fd).size;
    fs.closeSync(fd);
    fs.unlinkSync(P('big'));
    return { size, tail: b.toString(), zeros: z.every((x) => x === 0), size2 };
  });
  if (big) {
    step('file.over.4GiB.dense.tail', () => {
      const fd = fs.openSync(P('big2'), 'w');
      const chunk = Buffer.alloc(1 << 20, 7);
      fs.writeSync(fd, chunk, 0, chunk.length, 4 * 1024 ** 3 - (1 << 19));
      fs.closeSync(fd);
      const s = fs.statSync(P('big2')).size;
      fs.unlinkSync(P('big2'));
      return s;
    });
  }

  // ---- concurrent writers ----
  step('concurrent.append', () => {
    const target = P('shared');
    fs.writeFileSync(target, '');
    const code = `const fs=require('fs');const fd=fs.openSync(process.argv[1],'a');for(let i=0;i<500;i++)fs.writeSync(fd,process.argv[2]+':'+String(i).padStart(4,'0')+'\\n');fs.closeSync(fd);`;
    const kids = concurrently(code, target, ['A', 'B', 'C', 'D']);
    const lines = read(target).split('\n').filter(Boolean);
    const perWriter: Record<string, number> = {};
    let bad = 0;
    for (const l of lines) {
      if (!/^[A-D]:\d{4}$/.test(l)) bad++;
      perWriter[l[0]!] = (perWriter[l[0]!] ?? 0) + 1;
    }
    return { status: kids, lines: lines.length, bad, perWriter };
  });
  step('concurrent.pwrite.regions', () => {
    const target = P('regions');
    fs.writeFileSync(target, Buffer.alloc(4 * 65536));
    const code = `const fs=require('fs');const fd=fs.openSync(process.argv[1],'r+');const w=Number(process.argv[2]);const b=Buffer.alloc(4096,65+w);for(let i=0;i<16;i++)fs.writeSync(fd,b,0,4096,w*65536+i*4096);fs.closeSync(fd);`;
    const kids = concurrently(code, target, ['0', '1', '2', '3']);
    const b = fs.readFileSync(target);
    return [kids, b.length, hash(b)];
  });

  process.stdout.write(JSON.stringify(results));
}

main();
