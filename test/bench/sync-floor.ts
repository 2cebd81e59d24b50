/**
 * @module test/bench/sync-floor
 * The floor of an incremental sync: the kernel work that any tool which already knows the net
 * change set must do, and nothing else. A small C program (compiled by the bench with cc) reads
 * the net operations on stdin and applies them to a DST that equals SRC's previous state:
 * renames (one rename(2) each), deletes (one unlink), changed files copied atomically (open the
 * source, O_CREAT|O_EXCL temp, copy_file_range, futimens, rename over), then the mtime of every
 * directory whose mtime changed (lstat SRC's, utimensat DST's). One thread, relative to the
 * trees' root descriptors, no checks beyond the kernel's: nothing a real tool could skip.
 *
 * The net change set is computed by the bench, untimed, from two snapshots of SRC taken before
 * and after the workload (by inode number: same inode at another path = renamed; gone =
 * deleted; other size or mtime = changed). It works for the bench's mix (appends, renames and
 * deletes of files); the floor's DST is verified against SRC like every other tool's.
 */
import * as fs from 'node:fs';
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { joinRel } from '../../collector/sync/paths.js';

const exec = promisify(execFile);

const SOURCE = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
static char *buf; static size_t len, pos;
static char *next(void) { if (pos >= len) return NULL; char *s = buf + pos; pos += strlen(s) + 1; return s; }
static void die(const char *what, const char *p) { fprintf(stderr, "sync-floor: %s %s: %m\n", what, p); exit(1); }
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  int src = open(argv[1], O_RDONLY | O_DIRECTORY), dst = open(argv[2], O_RDONLY | O_DIRECTORY);
  if (src < 0 || dst < 0) die("open", "root");
  size_t cap = 1 << 20; buf = malloc(cap);
  for (ssize_t n; (n = read(0, buf + len, cap - len)) > 0;) { len += n; if (len == cap) buf = realloc(buf, cap *= 2); }
  umask(0);
  char tmp[4200]; unsigned counter = 0;
  for (char *op; (op = next());) {
    char *a = next();
    if (*op == 'R') { char *b = next(); if (renameat(dst, a, dst, b)) die("rename", a); }
    else if (*op == 'D') { if (unlinkat(dst, a, 0)) die("unlink", a); }
    else if (*op == 'C') {
      int in = openat(src, a, O_RDONLY | O_NOFOLLOW); struct stat st;
      if (in < 0 || fstat(in, &st)) die("open", a);
      const char *slash = strrchr(a, '/');
      snprintf(tmp, sizeof tmp, "%.*s.prov-sync-floor-%u", slash ? (int)(slash - a + 1) : 0, a, ++counter);
      int out = openat(dst, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, st.st_mode & 07777);
      if (out < 0) die("create", tmp);
      for (off_t left = st.st_size; left > 0;) { ssize_t n = copy_file_range(in, NULL, out, NULL, left, 0); if (n <= 0) die("copy", a); left -= n; }
      struct timespec ts[2] = { { 0, UTIME_OMIT }, st.st_mtim };
      if (futimens(out, ts)) die("futimens", a);
      close(in); close(out);
      if (renameat(dst, tmp, dst, a)) die("rename", tmp);
    } else if (*op == 'T') {
      struct stat st; const char *p = *a ? a : ".";
      if (fstatat(src, p, &st, AT_SYMLINK_NOFOLLOW)) die("lstat", p);
      struct timespec ts[2] = { { 0, UTIME_OMIT }, st.st_mtim };
      if (utimensat(dst, p, ts, AT_SYMLINK_NOFOLLOW)) die("utimensat", p);
    } else { fprintf(stderr, "sync-floor: bad op %s\n", op); return 2; }
  }
  return 0;
}
`;

/** Compile the floor program into `dir`; returns its path. */
export async function buildFloor(dir: string): Promise<string> {
  fs.writeFileSync(`${dir}/sync-floor.c`, SOURCE);
  await exec('cc', ['-O2', '-o', `${dir}/sync-floor`, `${dir}/sync-floor.c`]);
  return `${dir}/sync-floor`;
}

interface Entry { path: string; size: bigint; mtimeNs: bigint; dir: boolean }
/** inode → what SRC had there (files and directories; SRC's root is ''). */
export type Snapshot = Map<bigint, Entry>;

/** Walk `root` (untimed) and note every file's and directory's inode, size and mtime. */
export function snapshot(root: string): Snapshot {
  const out: Snapshot = new Map();
  const walk = (rel: string): void => {
    const st = fs.lstatSync(rel ? `${root}/${rel}` : root, { bigint: true });
    out.set(st.ino, { path: rel, size: st.size, mtimeNs: st.mtimeNs, dir: st.isDirectory() });
    if (!st.isDirectory()) return;
    for (const name of fs.readdirSync(rel ? `${root}/${rel}` : root)) {
      if (name.startsWith('.prov-sync-')) continue;
      walk(joinRel(rel, name));
    }
  };
  walk('');
  return out;
}

/**
 * The net operations from `before` to `after` as the floor program reads them (NUL-separated):
 * renames, deletes, copies, then directory times. Throws on what the bench's mix never makes
 * (a new file, a moved directory), which the floor does not handle.
 */
export function netOps(before: Snapshot, after: Snapshot): { input: Buffer; counts: { renames: number; deletes: number; copies: number; dirs: number } } {
  const renames: string[] = [], deletes: string[] = [], copies: string[] = [], dirs: string[] = [];
  for (const [ino, b] of before) {
    const a = after.get(ino);
    if (b.dir) {
      if (!a || a.path !== b.path) throw new Error(`sync-floor: directory ${b.path} moved or went (not in the bench's mix)`);
      if (a.mtimeNs !== b.mtimeNs) dirs.push(b.path);
      continue;
    }
    if (!a || a.dir) { deletes.push(b.path); continue; }
    if (a.path !== b.path) renames.push(b.path, a.path);
    if (a.size !== b.size || a.mtimeNs !== b.mtimeNs) copies.push(a.path);
  }
  for (const [ino, a] of after) if (!before.has(ino)) throw new Error(`sync-floor: ${a.path} is new (not in the bench's mix)`);
  // Directory times come last: after every change of an entry in them.
  const parts: string[] = [];
  for (let i = 0; i < renames.length; i += 2) parts.push('R', renames[i]!, renames[i + 1]!);
  for (const d of deletes) parts.push('D', d);
  for (const c of copies) parts.push('C', c);
  for (const d of dirs) parts.push('T', d);
  return { input: Buffer.from(parts.map((p) => p + '\0').join('')), counts: { renames: renames.length / 2, deletes: deletes.length, copies: copies.length, dirs: dirs.length } };
}

/** Run the floor program on `input` (from {@link netOps}). */
export function runFloor(bin: string, src: string, dst: string, input: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, [src, dst], { stdio: ['pipe', 'ignore', 'pipe'] });
    let err = '';
    c.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
    c.on('error', reject);
    c.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`sync-floor exited with ${code}: ${err.trim()}`))));
    c.stdin!.end(input);
  });
}
