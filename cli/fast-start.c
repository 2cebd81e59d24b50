/* cli/fast-start.c — see fast-start.h. Start file: collector/rebuild/start; token: ebpf/warm. */
#define _GNU_SOURCE
#include "fast-start.h"
#include "client-run.h"
#include "client-util.h"
#include "sha256.h"
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

void tmark(const char *name);

#define BPF_MAP_UPDATE_ELEM 2
#define BPF_OBJ_GET 7

/*
 * The whole file, NUL-terminated; NULL when unreadable, or when `mine` and it is not this
 * user's own file, unwritable by others: what it names is run as this user (a root client must
 * not run commands another user wrote into a start file under a home they own).
 */
static char *slurp_file(const char *path, size_t *n, int mine) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return NULL;
  struct stat st;
  char *p = NULL;
  if (fstat(fd, &st) == 0 && (!mine || (st.st_uid == getuid() && (st.st_mode & 022) == 0)) && st.st_size > 0 && st.st_size < (64 << 20) && (p = malloc((size_t)st.st_size + 1))) {
    ssize_t r = read(fd, p, (size_t)st.st_size);
    if (r != st.st_size) { free(p); p = NULL; } else { p[r] = 0; *n = (size_t)r; }
  }
  close(fd);
  return p;
}

/* A NUL-separated buffer being read field by field. */
struct fields { char *at, *end; };
static char *next(struct fields *f) { return next_field(&f->at, f->end); }
static long count(struct fields *f, long max) { return decimal(next(f), max); }

/* One candidate of the start file. */
struct candidate {
  char *run, *exe, *cwd, *show;
  char **argv, **envp;
  int changed;
};

/* 1: an input's content differs from its stamp; 0: none does; -1: one cannot be read (ask the server). */
static int inputs_changed(struct fields *f, long n) {
  int changed = 0;
  for (long k = 0; k < n; k++) {
    char *path = next(f), *ino = next(f), *size = next(f), *mtime = next(f), *hash = next(f);
    if (!hash) return -1;
    struct stat st;
    if (strcmp(ino, "-") == 0) {
      /* A temporary of the record: decide ignores it while missing; present, the server decides. */
      if (stat(path, &st) == 0 || errno != ENOENT) return -1;
      continue;
    }
    if (stat(path, &st) != 0) return -1;
    unsigned long long m = (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec;
    char buf[32];
    snprintf(buf, sizeof buf, "%llu", m);
    int same_size = (unsigned long long)st.st_size == strtoull(size, NULL, 10);
    if ((unsigned long long)st.st_ino == strtoull(ino, NULL, 10) && same_size && strcmp(buf, mtime) == 0) continue;
    if (changed) continue; /* known already; the rest are only checked to exist */
    if (!same_size || strcmp(hash, "-") == 0) { changed = 1; continue; } /* "-": too large to hash, as decide has it */
    char hex[65];
    if (sha256_file(path, SHA256_FILE_LIMIT, hex) != 0) return -1;
    if (strcmp(hex, hash) != 0) changed = 1;
  }
  return changed;
}

static int bpf_add(const char *pin, uint32_t pid) {
  union { unsigned char raw[128]; struct { uint64_t pathname; uint32_t bpf_fd, file_flags; } get; struct { uint32_t map_fd, pad; uint64_t key, value, flags; } upd; } a;
  memset(&a, 0, sizeof a);
  a.get.pathname = (uint64_t)(uintptr_t)pin;
  int fd = (int)syscall(SYS_bpf, BPF_OBJ_GET, &a, sizeof a);
  if (fd < 0) return -1;
  unsigned char one = 1;
  memset(&a, 0, sizeof a);
  a.upd.map_fd = (uint32_t)fd;
  a.upd.key = (uint64_t)(uintptr_t)&pid;
  a.upd.value = (uint64_t)(uintptr_t)&one;
  int r = (int)syscall(SYS_bpf, BPF_MAP_UPDATE_ELEM, &a, sizeof a);
  close(fd);
  return r;
}

char *fast_start(const struct fast_start_in *in) {
  char spath[4096];
  size_t ql = strlen(in->qpath);
  if (ql < 2 || ql >= sizeof spath || strcmp(in->qpath + ql - 2, ".q") != 0) return NULL;
  memcpy(spath, in->qpath, ql + 1);
  spath[ql - 1] = 's';
  size_t n = 0;
  char *buf = slurp_file(spath, &n, 1);
  if (!buf) { tmark("fast start: no start file"); return NULL; }
  struct fields f = { buf, buf + n };
  char *x;
  if (!(x = next(&f)) || strcmp(x, "PS1") != 0) return NULL;
  if (!(x = next(&f)) || strcmp(x, in->target) != 0) return NULL;
  if (!(x = next(&f)) || strcmp(x, in->store_fp) != 0) { tmark("fast start: the store changed"); return NULL; }
  long nc = count(&f, 1 << 20);
  if (nc <= 0) return NULL;
  struct candidate *chosen = calloc((size_t)in->jobs + 1, sizeof *chosen);
  int nchosen = 0;
  /* Latest first: the command a person just changed the input of usually comes first. After the
     first changed one, only a few more are looked at (a header change makes them all changed;
     one source file changed, the rest need not be stat'ed: 100 compiles × 17 inputs cost 2 ms). */
  int after_first = 0;
  for (long k = 0; k < nc && nchosen < in->jobs && after_first <= 8; k++) {
    if (nchosen > 0) after_first++;
    struct candidate c = { 0 };
    c.run = next(&f); c.exe = next(&f); c.cwd = next(&f); c.show = next(&f);
    long argc = count(&f, 1 << 16);
    if (!c.show || argc < 1) return NULL;
    c.argv = calloc((size_t)argc + 1, sizeof *c.argv);
    for (long i = 0; i < argc; i++) if (!(c.argv[i] = next(&f))) return NULL;
    long envc = count(&f, 1 << 16);
    if (envc < 0) return NULL;
    c.envp = calloc((size_t)envc + 1, sizeof *c.envp);
    for (long i = 0; i < envc; i++) if (!(c.envp[i] = next(&f))) return NULL;
    long ni = count(&f, 1 << 20);
    if (ni < 0) return NULL;
    int ch = inputs_changed(&f, ni);
    if (ch < 0) return NULL; /* something the server should look at */
    if (ch && nchosen < in->jobs) chosen[nchosen++] = c;
  }
  if (nchosen == 0) { tmark("fast start: no input changed"); return NULL; }

  /* The token: exactly one client can take it; the server keeps the ring's records for it. */
  char tok[4096], mine[4200];
  if ((size_t)snprintf(tok, sizeof tok, "%s/rebuild/start-token", in->runtime) >= sizeof tok) return NULL;
  snprintf(mine, sizeof mine, "%s.%d", tok, (int)getpid());
  if (rename(tok, mine) != 0) { tmark("fast start: no token"); return NULL; }
  tmark("start token taken");
  size_t tn = 0;
  char *t = NULL;
  int fd = open(mine, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  struct stat st;
  /* Only the server's own user may use what it armed (a root client of another user's server would run its commands as root). */
  int ours = fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == getuid() && st.st_gid == getgid();
  if (fd >= 0) close(fd);
  if (ours) t = slurp_file(mine, &tn, 1);
  unlink(mine);
  char *id = NULL, *pin = NULL, *journal = NULL;
  if (t) {
    struct fields tf = { t, t + tn };
    if ((x = next(&tf)) && strcmp(x, "PT1") == 0) { id = next(&tf); pin = next(&tf); journal = next(&tf); }
  }
  if (!id || !*id) return NULL; /* not a token of this server's: it goes unused (the server times it out) */
  char want[4200], pins[4200];
  snprintf(want, sizeof want, "%s/journal", in->home);
  int usable = pin && journal && strcmp(journal, want) == 0;
  if (usable) {
    uint32_t me = (uint32_t)getpid();
    snprintf(pins, sizeof pins, "%s/excluded", pin);
    usable = bpf_add(pins, me) == 0;
    snprintf(pins, sizeof pins, "%s/tracked", pin);
    usable = usable && bpf_add(pins, me) == 0;
  }
  size_t cap = strlen(id) + 2;
  for (int i = 0; i < nchosen; i++) cap += strlen(chosen[i].run) + 1;
  char *started = malloc(cap);
  if (!started) return NULL;
  strcpy(started, id);
  if (!usable) return started; /* taken, unused: the server is told, so it need not wait */
  for (int i = 0; i < nchosen; i++) {
    if (run_start_now(chosen[i].exe, chosen[i].cwd, chosen[i].show, chosen[i].argv, chosen[i].envp) != 0) break;
    strcat(started, "\n");
    strcat(started, chosen[i].run);
  }
  return started;
}
