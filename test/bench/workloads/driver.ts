/**
 * @module test/bench/workloads/driver
 * The measuring side of the file-system workloads (Bento §5 style): one small C program, built
 * here with the system compiler, that times only the file-system work itself, so the same
 * driver costs the same on every target (ext4, provfs, ext4 under eBPF capture). Each mode
 * prints `<elapsed ns> <operations>` on stdout.
 *
 * Modes (DIR is the target directory, T the number of threads):
 *   prepare DIR BYTES T          seq-<t> files of BYTES/T each and one rand file of BYTES (untimed)
 *   seqwrite DIR BS BYTES T      each thread rewrites its seq-<t> in BS blocks, then fsync
 *   seqread DIR BS BYTES T       each thread reads its seq-<t> in BS blocks (BYTES in total, wrapping)
 *   randwrite DIR BS BYTES T     BYTES/BS pwrites at BS-aligned random offsets of rand, then fdatasync
 *   randread DIR BS BYTES T      same with pread
 *   create DIR N T               N files created (open O_CREAT|O_EXCL + close) in c-<t>/ directories
 *   delete DIR N T               the same N files created untimed, then unlinked (timed)
 *   populate DIR N BYTES         N files of BYTES in 20 directories d00..d19 (untimed, for the mixes)
 *   varmail DIR N T MS           mail server: delete, create+append+fsync, read+append+fsync, read
 *   fileserver DIR N T MS        file server: create+write 128 KiB, append, read whole, stat, delete
 *   webserver DIR N T MS         web server: 10 whole-file reads, then a 16 KiB append to a log
 * The mixes run for MS milliseconds and count one operation per file-system call that touches a
 * file (open, read, write, fsync, stat, unlink), as Filebench counts flow operations.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const DRIVER_C = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static long long now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1000000000LL + t.tv_nsec; }
static void die(const char *what, const char *path) { fprintf(stderr, "driver: %s %s: %s\n", what, path, strerror(errno)); exit(1); }

static const char *dir, *mode; static long bs, bytes, nthreads, nfiles, durms; static long long t_end;
static long ops[64];
static unsigned rnd(unsigned *s) { *s = *s * 1103515245u + 12345u; return *s >> 4; }

static void fill(int fd, long size, const char *path) {
  static char blk[1 << 20]; memset(blk, 'p', sizeof blk);
  for (long off = 0; off < size;) { long n = size - off < (long)sizeof blk ? size - off : (long)sizeof blk; if (write(fd, blk, n) != n) die("write", path); off += n; }
}

static void *io_thread(void *arg) {
  long t = (long)arg; char path[4096]; char *buf = aligned_alloc(4096, bs); memset(buf, 'q', bs);
  long share = bytes / nthreads, n = share / bs; unsigned s = 7919u * (unsigned)t + 1;
  if (!strncmp(mode, "seq", 3)) {
    snprintf(path, sizeof path, "%s/seq-%ld", dir, t);
    int w = mode[3] == 'w';
    int fd = open(path, w ? O_WRONLY : O_RDONLY); if (fd < 0) die("open", path);
    struct stat st; fstat(fd, &st); long fsize = st.st_size, off = 0;
    for (long i = 0; i < n; i++) {
      if (off + bs > fsize) off = 0;
      if ((w ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off)) != bs) die("io", path);
      off += bs;
    }
    if (w && fsync(fd)) die("fsync", path);
    close(fd);
  } else {
    snprintf(path, sizeof path, "%s/rand", dir);
    int w = mode[4] == 'w';
    int fd = open(path, w ? O_WRONLY : O_RDONLY); if (fd < 0) die("open", path);
    struct stat st; fstat(fd, &st); long blocks = st.st_size / bs; if (blocks < 1) blocks = 1;
    for (long i = 0; i < n; i++) {
      off_t off = (off_t)(rnd(&s) % blocks) * bs;
      if ((w ? pwrite(fd, buf, bs, off) : pread(fd, buf, bs, off)) != bs) die("io", path);
    }
    if (w && fdatasync(fd)) die("fdatasync", path);
    close(fd);
  }
  ops[t] = n; free(buf); return 0;
}

static void *meta_thread(void *arg) {
  long t = (long)arg; char path[4096]; long n = nfiles / nthreads;
  for (long i = 0; i < n; i++) {
    snprintf(path, sizeof path, "%s/c-%ld/f%ld", dir, t, i);
    if (!strcmp(mode, "create")) { int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644); if (fd < 0) die("create", path); close(fd); }
    else if (unlink(path)) die("unlink", path);
  }
  ops[t] = n; return 0;
}

static char blk16[16384], blk128[131072], rbuf[1 << 20];
static void fpath(char *p, size_t sz, long i) { snprintf(p, sz, "%s/d%02ld/f%ld", dir, i % 20, i); }
static long readwhole(const char *p) {
  int fd = open(p, O_RDONLY); if (fd < 0) die("open", p);
  long got; while ((got = read(fd, rbuf, sizeof rbuf)) > 0) {}
  if (got < 0) die("read", p); close(fd); return 2;
}
static long append(const char *p, int sync) {
  int fd = open(p, O_WRONLY | O_APPEND | O_CREAT, 0644); if (fd < 0) die("open", p);
  if (write(fd, blk16, sizeof blk16) != (long)sizeof blk16) die("append", p);
  if (sync && fsync(fd)) die("fsync", p); close(fd); return sync ? 3 : 2;
}
/* Thread t owns the files whose index is t modulo T, so no two threads race on one file. */
static long pick(unsigned *s, long t) { long per = nfiles / nthreads; return (long)(rnd(s) % per) * nthreads + t; }

static void *mix_thread(void *arg) {
  long t = (long)arg, n = 0, k = 0; unsigned s = 104729u * (unsigned)t + 3; char p[4096], q[4096];
  while (now() < t_end) {
    if (!strcmp(mode, "varmail")) {
      long i = pick(&s, t); fpath(p, sizeof p, i);
      if (unlink(p)) die("unlink", p);
      int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0644); if (fd < 0) die("create", p);
      if (write(fd, blk16, sizeof blk16) != (long)sizeof blk16 || fsync(fd)) die("write+fsync", p); close(fd);
      fpath(q, sizeof q, pick(&s, t)); n += 5 + readwhole(q) + append(q, 1);
      fpath(q, sizeof q, pick(&s, t)); n += readwhole(q);
    } else if (!strcmp(mode, "fileserver")) {
      snprintf(p, sizeof p, "%s/d%02ld/new-%ld-%ld", dir, (t + k) % 20, t, k); k++;
      int fd = open(p, O_CREAT | O_EXCL | O_WRONLY, 0644); if (fd < 0) die("create", p);
      if (write(fd, blk128, sizeof blk128) != (long)sizeof blk128) die("write", p); close(fd);
      fpath(q, sizeof q, pick(&s, t)); n += 3 + append(q, 0);
      fpath(q, sizeof q, pick(&s, t)); n += readwhole(q);
      struct stat st; fpath(q, sizeof q, pick(&s, t)); if (stat(q, &st)) die("stat", q);
      if (unlink(p)) die("unlink", p); n += 2;
    } else {
      for (int j = 0; j < 10; j++) { fpath(q, sizeof q, pick(&s, t)); n += readwhole(q); }
      snprintf(p, sizeof p, "%s/log-%ld", dir, t); n += append(p, 0);
    }
  }
  ops[t] = n; return 0;
}

int main(int argc, char **argv) {
  if (argc < 4) { fprintf(stderr, "usage: driver MODE DIR ARGS...\n"); return 2; }
  mode = argv[1]; dir = argv[2]; char path[4096];
  memset(blk16, 'm', sizeof blk16); memset(blk128, 'f', sizeof blk128);
  if (!strcmp(mode, "prepare")) {
    bytes = atol(argv[3]); nthreads = atol(argv[4]);
    for (long t = 0; t < nthreads; t++) {
      snprintf(path, sizeof path, "%s/seq-%ld", dir, t);
      int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644); if (fd < 0) die("open", path); fill(fd, bytes / nthreads, path); close(fd);
    }
    snprintf(path, sizeof path, "%s/rand", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644); if (fd < 0) die("open", path); fill(fd, bytes, path); fsync(fd); close(fd);
    return 0;
  }
  if (!strcmp(mode, "populate")) {
    nfiles = atol(argv[3]); long size = atol(argv[4]);
    for (long d = 0; d < 20; d++) { snprintf(path, sizeof path, "%s/d%02ld", dir, d); if (mkdir(path, 0755) && errno != EEXIST) die("mkdir", path); }
    for (long i = 0; i < nfiles; i++) {
      fpath(path, sizeof path, i);
      int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0644); if (fd < 0) die("open", path); fill(fd, size, path); close(fd);
    }
    return 0;
  }
  pthread_t th[64]; void *(*fn)(void *); long long t0, t1;
  if (!strcmp(mode, "create") || !strcmp(mode, "delete")) {
    nfiles = atol(argv[3]); nthreads = atol(argv[4]); fn = meta_thread;
    for (long t = 0; t < nthreads; t++) { snprintf(path, sizeof path, "%s/c-%ld", dir, t); if (mkdir(path, 0755) && errno != EEXIST) die("mkdir", path); }
    if (!strcmp(mode, "delete")) { mode = "create"; for (long t = 0; t < nthreads; t++) meta_thread((void *)t); mode = "delete"; }
  } else if (!strcmp(mode, "varmail") || !strcmp(mode, "fileserver") || !strcmp(mode, "webserver")) {
    nfiles = atol(argv[3]); nthreads = atol(argv[4]); durms = atol(argv[5]); fn = mix_thread;
    t_end = now() + durms * 1000000LL;
  } else {
    bs = atol(argv[3]); bytes = atol(argv[4]); nthreads = atol(argv[5]); fn = io_thread;
  }
  if (nthreads < 1 || nthreads > 64) { fprintf(stderr, "driver: threads must be 1..64\n"); return 2; }
  t0 = now();
  for (long t = 0; t < nthreads; t++) pthread_create(&th[t], 0, fn, (void *)t);
  for (long t = 0; t < nthreads; t++) pthread_join(th[t], 0);
  t1 = now();
  long total = 0; for (long t = 0; t < nthreads; t++) total += ops[t];
  printf("%lld %ld\n", t1 - t0, total);
  return 0;
}
`;

/** Compile the driver into `dir`; returns the executable's path. */
export function buildDriver(dir: string): string {
  const src = join(dir, 'fs-driver.c'), exe = join(dir, 'fs-driver');
  writeFileSync(src, DRIVER_C);
  execFileSync('cc', ['-O2', '-pthread', '-o', exe, src], { stdio: ['ignore', 'ignore', 'pipe'] });
  return exe;
}
