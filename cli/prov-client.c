/*
 * cli/prov-client.c — the native `prov` entry (built by cli/build.sh as dist/cli/prov, next to
 * dist/cli/main.js). When the command line names `rebuild` and a rebuild server
 * (cli/rebuild-server.ts, `prov rebuild-server`) listens on
 * $PROV_RUNTIME_DIR/rebuild/server.sock (default /run/prov/provfs/rebuild/server.sock), it
 * sends the request (cwd, isatty of 0/1/2, umask, arguments, environment), copies the reply frames to
 * stdout/stderr and exits with the code the server sent. When the server sends commands to run
 * (frames 'c' and 'g'), the client runs them itself (cli/client-run.c), prints what the command
 * line prints, reports what ran and exits without waiting for the server, as make would. Otherwise — no server, not a rebuild,
 * the server answers "fallback", PROV_NO_SERVER is set — it execs `node <dir>/main.js ARGS`
 * (node from $PROV_NODE or PATH), so behaviour never depends on the server running.
 * Wire format: see cli/rebuild-server.ts.
 *
 * A plain no-op (`prov [--home D] [--journal D] [--store URL] rebuild FILE`, nothing changed) is
 * answered here without the server, from the no-op shortcut a rebuild that found FILE up to date
 * left (collector/rebuild/quick, its `.q` form), with exactly the checks the node side makes:
 * no background ingest pending, the SQLite store's files as they were (and not changed within
 * the last 100 ms), every file the commands read or wrote with the same inode, size and mtime.
 * Anything it cannot check the same way (another store, relative or unusual paths, a file it
 * cannot stat, PROV_REBUILD_TRACE set) goes to the server as before; a target it found not up
 * to date goes with a flag saying so, and the server does not look at the shortcut again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "client-run.h"
#include "client-util.h"
#include "fast-start.h"

extern char **environ;

/* PROV_CLIENT_TRACE set: when each step happened (ms since the epoch, to line up with the
   server's timeline), printed as one JSON line on stderr before the client exits. */
static int tracing;
static const char *trace_name[16];
static double trace_ms[16];
static int trace_n;
void tmark(const char *name) {
  if (!tracing || trace_n >= 16) return;
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  trace_name[trace_n] = name;
  trace_ms[trace_n++] = (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}
static void tprint(void) {
  if (!tracing) return;
  fputs("{\"client\":[", stderr);
  for (int i = 0; i < trace_n; i++) fprintf(stderr, "%s{\"name\":\"%s\",\"at\":%.3f}", i ? "," : "", trace_name[i], trace_ms[i]);
  fputs("]}\n", stderr);
}

/* Set once this client started commands itself (cli/fast-start.h): it may no longer hand over
   to the command line, which would decide and run them a second time. */
static int started_any;

static void fallback(int argc, char **argv) {
  if (started_any) {
    fputs("prov: the rebuild server did not take over the commands this client started (they ran under capture); run prov rebuild again\n", stderr);
    run_wait_all();
    exit(1);
  }
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 16);
  if (n <= 0) { perror("prov: /proc/self/exe"); exit(1); }
  self[n] = 0;
  char *slash = strrchr(self, '/');
  strcpy(slash + 1, "main.js");
  const char *node = getenv("PROV_NODE");
  if (!node || !*node) node = "node";
  char **args = calloc((size_t)argc + 2, sizeof *args);
  if (!args) exit(1);
  args[0] = (char *)node;
  args[1] = self;
  for (int i = 1; i < argc; i++) args[i + 1] = argv[i];
  execvp(node, args);
  fprintf(stderr, "prov: cannot run %s: %s\n", node, strerror(errno));
  exit(127);
}

/* A growing buffer for the request. */
struct buf { char *p; size_t n, cap; };
static void put(struct buf *b, const char *s, size_t len) {
  if (b->n + len + 1 > b->cap) {
    b->cap = (b->n + len + 1) * 2;
    b->p = realloc(b->p, b->cap);
    if (!b->p) { fputs("prov: out of memory\n", stderr); exit(1); }
  }
  memcpy(b->p + b->n, s, len);
  b->n += len;
}
static void field(struct buf *b, const char *s, int first) {
  if (!first) put(b, "", 1);
  put(b, s, strlen(s));
}

/* Read exactly n bytes; 0 at a clean end of stream before any byte, -1 on error or a short read. */
static int read_all(int fd, char *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0) { if (errno == EINTR) { run_interrupted(); continue; } return -1; }
    if (r == 0) return got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

/* An absolute path with no ".", ".." or empty component and no trailing slash: what node's
   path.resolve would return unchanged. */
static int clean_abs(const char *p) {
  if (p[0] != '/') return 0;
  if (p[1] == 0) return 1;
  for (const char *c = p; *c; c++) {
    if (*c != '/') continue;
    const char *n = c + 1;
    if (*n == 0 || *n == '/') return 0;
    if (n[0] == '.' && (n[1] == 0 || n[1] == '/')) return 0;
    if (n[0] == '.' && n[1] == '.' && (n[2] == 0 || n[2] == '/')) return 0;
  }
  return 1;
}

/* resolve(cwd, p) when the result is clean (else 0). */
static int resolve_clean(char *out, size_t cap, const char *cwd, const char *p) {
  int n = p[0] == '/' ? snprintf(out, cap, "%s", p) : snprintf(out, cap, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, p);
  return n > 0 && (size_t)n < cap && clean_abs(out);
}

/* The fingerprint part of one store file: 1 written, -1 the file changed too recently to tell
   (the node side declines the shortcut as well), 0 it cannot be stat'ed as the node side would. */
static int stat_part(char *out, size_t cap, const char *path, int is_db, unsigned long long fresh_ns) {
  struct stat st;
  if (stat(path, &st) != 0) {
    if (errno == ENOENT && !is_db) return snprintf(out, cap, "-") > 0;
    return 0;
  }
  if (!is_db && st.st_size == 0) return snprintf(out, cap, "-") > 0;
  unsigned long long m = (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec;
  unsigned long long c = (unsigned long long)st.st_ctim.tv_sec * 1000000000ULL + (unsigned long long)st.st_ctim.tv_nsec;
  if (m > fresh_ns) return -1; /* written too recently for its time stamp to show a further change */
  int n = snprintf(out, cap, "%llu:%llu:%lld:%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino, (long long)st.st_size, m, c);
  return n > 0 && (size_t)n < cap;
}

/* Whether the rebuild server of `rt` runs (its pid file names a live process), asked without
   waking it: connecting first made the server's wake-up share this client's CPU. */
static int server_alive(const char *rt) {
  char path[PATH_MAX], buf[32];
  if ((size_t)snprintf(path, sizeof path, "%s/rebuild/server.pid", rt) >= sizeof path) return 0;
  FILE *f = fopen(path, "re");
  if (!f) return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  long pid = strtol(buf, NULL, 10);
  return pid > 0 && kill((pid_t)pid, 0) == 0;
}

/* What the no-op check learned that a fast start needs (cli/fast-start.h): set when the shortcut
   matched the store and a file of the target's commands differed. */
static int q_changed, q_journal_given, q_jobs;
static char q_home[PATH_MAX], q_target[PATH_MAX], q_fp[512], q_path[PATH_MAX];

/* Answer a no-op from the shortcut: 1 when answered (printed); -1 when it looked and the target
   is not up to date (the server need not look again); 0 when it could not tell (the server looks). */
static int quick_noop(int argc, char **argv) {
  const char *home = NULL, *store = NULL, *journal = NULL, *file = NULL;
  int i = 1;
  for (; i < argc && strcmp(argv[i], "rebuild") != 0; i += 2) {
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!v || v[0] == '-') return 0;
    if (strcmp(argv[i], "--home") == 0 && !home) home = v;
    else if (strcmp(argv[i], "--store") == 0 && !store) store = v;
    else if (strcmp(argv[i], "--journal") == 0 && !journal) { journal = v; q_journal_given = 1; }
    else return 0;
  }
  /* After `rebuild`: FILE, and at most one -j N / --jobs N (which does not change the answer). */
  int jobs_seen = 0;
  for (int k = i + 1; k < argc; k++) {
    if (strcmp(argv[k], "-j") == 0 || strcmp(argv[k], "--jobs") == 0) {
      if (jobs_seen || k + 1 >= argc || !argv[k + 1][0] || strspn(argv[k + 1], "0123456789") != strlen(argv[k + 1])) return 0;
      jobs_seen = 1;
      q_jobs = atoi(argv[k + 1]);
      k++;
    } else if (argv[k][0] == '-' || file) {
      return 0;
    } else {
      file = argv[k];
    }
  }
  if (!file) return 0;
  const char *trace = getenv("PROV_REBUILD_TRACE");
  int tracing_rebuild = trace && *trace; /* an up-to-date answer then comes from the server, with its timeline */
  char cwd[PATH_MAX], homeAbs[PATH_MAX], db[PATH_MAX], target[PATH_MAX], path[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return 0;
  if (!home) home = getenv("PROV_HOME");
  if (home && !*home) return 0;
  if (!resolve_clean(homeAbs, sizeof homeAbs, cwd, home ? home : "/var/lib/prov")) return 0;
  if (!store) store = getenv("PROV_STORE");
  if (store && !*store) return 0;
  if (!store) {
    if ((size_t)snprintf(db, sizeof db, "%s/graph.db", homeAbs) >= sizeof db) return 0;
  } else if (strncmp(store, "sqlite:", 7) == 0) {
    if ((size_t)snprintf(db, sizeof db, "%s", store + 7) >= sizeof db) return 0;
  } else {
    return 0; /* another store, or a form whose meaning only the node side knows */
  }
  if (!clean_abs(db)) return 0;
  if ((size_t)snprintf(path, sizeof path, "%s.ingest-pending", db) >= sizeof path) return 0;
  if (access(path, F_OK) == 0) return -1; /* an ingest is pending: the node side does not use the shortcut either */
  if (errno != ENOENT) return 0;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  /* Date.now() - 100 ms, in ns, as collector/rebuild/fingerprint computes it. */
  unsigned long long nowMs = (unsigned long long)now.tv_sec * 1000ULL + (unsigned long long)now.tv_nsec / 1000000ULL;
  unsigned long long fresh = (nowMs - 100ULL) * 1000000ULL;
  char fp[512], a[240], b[240];
  int r = stat_part(a, sizeof a, db, 1, fresh);
  if (r <= 0) return r;
  if ((size_t)snprintf(path, sizeof path, "%s-wal", db) >= sizeof path) return 0;
  r = stat_part(b, sizeof b, path, 0, fresh);
  if (r <= 0) return r;
  snprintf(fp, sizeof fp, "%s %s", a, b);
  if (!resolve_clean(target, sizeof target, cwd, file)) return 0;
  /* quickPath: FNV-1a over the target's UTF-16 code units; the same as bytes for ASCII only. */
  uint32_t h = 0x811c9dc5u;
  for (const unsigned char *c = (const unsigned char *)target; *c; c++) {
    if (*c >= 0x80) return 0;
    h = (h ^ *c) * 0x01000193u;
  }
  if ((size_t)snprintf(path, sizeof path, "%s/rebuild/quick/%08x.q", homeAbs, h) >= sizeof path) return 0;
  FILE *f = fopen(path, "rb");
  if (!f) return errno == ENOENT ? -1 : 0;
  char *q = NULL;
  size_t n = 0, cap = 0;
  for (;;) {
    if (n + 65536 > cap) { cap = (n + 65536) * 2; char *g = realloc(q, cap); if (!g) { free(q); fclose(f); return 0; } q = g; }
    size_t r = fread(q + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  fclose(f);
  char *at = q, *end = q + n;
  const char *x;
  int ok = 0, unsure = 0, fp_matched = 0;
  const char *commands = NULL;
  const char **hazards = NULL;
  long nh = 0;
  do {
    if (!(x = next_field(&at, end)) || strcmp(x, "PQ1") != 0) break;
    if (!(x = next_field(&at, end)) || strcmp(x, target) != 0) break;
    if (!(x = next_field(&at, end)) || strcmp(x, fp) != 0) break;
    fp_matched = 1;
    if (!(commands = next_field(&at, end))) break;
    if (!(x = next_field(&at, end))) break;
    nh = strtol(x, NULL, 10);
    if (nh < 0 || nh > 100000) break;
    hazards = calloc((size_t)nh + 1, sizeof *hazards);
    if (!hazards) break;
    long k = 0;
    for (; k < nh && (hazards[k] = next_field(&at, end)); k++) {}
    if (k < nh) break;
    if (!(x = next_field(&at, end))) break;
    long nf = strtol(x, NULL, 10), seen = 0;
    for (; seen < nf; seen++) {
      const char *p = next_field(&at, end), *ino = next_field(&at, end);
      if (!p || !ino) break;
      struct stat st;
      int got = stat(p, &st);
      if (got != 0 && errno != ENOENT) { unsure = 1; break; } /* the node side would fail here: let it say why */
      if (strcmp(ino, "-") == 0) { if (got == 0) break; continue; }
      const char *size = next_field(&at, end), *mtime = next_field(&at, end);
      if (!size || !mtime || got != 0) break;
      char s1[32], s2[32], s3[32];
      snprintf(s1, sizeof s1, "%llu", (unsigned long long)st.st_ino);
      snprintf(s2, sizeof s2, "%lld", (long long)st.st_size);
      snprintf(s3, sizeof s3, "%llu", (unsigned long long)st.st_mtim.tv_sec * 1000000000ULL + (unsigned long long)st.st_mtim.tv_nsec);
      if (strcmp(s1, ino) != 0 || strcmp(s2, size) != 0 || strcmp(s3, mtime) != 0) break;
    }
    ok = seen == nf && at == end;
  } while (0);
  if (!ok && !unsure && fp_matched) {
    q_changed = 1;
    snprintf(q_home, sizeof q_home, "%s", homeAbs);
    snprintf(q_target, sizeof q_target, "%s", target);
    snprintf(q_fp, sizeof q_fp, "%s", fp);
    snprintf(q_path, sizeof q_path, "%s", path);
  }
  if (ok && tracing_rebuild) {
    ok = 0;
    unsure = 1;
  } else if (ok) {
    /* As cli/fast-rebuild prints it: the hazard lines, then the answer. */
    for (long k = 0; k < nh; k++) { fputs(hazards[k], stderr); fputc('\n', stderr); }
    printf("%s: up to date (%s recorded commands)\n", file, commands);
    fflush(stdout);
  }
  free(hazards);
  free(q);
  return ok ? 1 : unsure ? 0 : -1;
}

int main(int argc, char **argv) {
  const char *tr = getenv("PROV_CLIENT_TRACE");
  tracing = tr && *tr;
  tmark("client started");
  int wants = 0;
  for (int i = 1; i < argc; i++) if (strcmp(argv[i], "rebuild") == 0) wants = 1;
  const char *off = getenv("PROV_NO_SERVER");
  if (!wants || (off && *off)) fallback(argc, argv);
  int quick = quick_noop(argc, argv);
  if (quick > 0) return 0;
  tmark("no-op shortcut declined");

  const char *rt = getenv("PROV_RUNTIME_DIR");
  if (!rt || !*rt) rt = "/run/prov/provfs";
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/rebuild/server.sock", rt) >= sizeof addr.sun_path) fallback(argc, argv);
  /* The first stale commands started here (cli/fast-start.h) when the shortcut saw what changed:
     only with a server listening (its start token is what makes it safe). */
  char *started = NULL;
  int fd = -1;
  const char *nofast = getenv("PROV_NO_FAST_START"), *pj = getenv("PROV_JOURNAL"), *sync = getenv("PROV_REBUILD_SYNC");
  if (q_changed && !q_journal_given && !(pj && *pj) && !(sync && *sync) && !(nofast && *nofast) && server_alive(rt)) {
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct fast_start_in in = { q_home, q_target, q_fp, q_path, rt, q_jobs > 0 ? q_jobs : (cpus > 0 ? (int)cpus : 1) };
    started = fast_start(&in);
    started_any = started != NULL && strchr(started, '\n') != NULL;
    tmark("fast start done");
  }
  /* The request is made before connecting: written right after the connect, it is in the
     socket by the time the server accepts, which then reads it at once (cli/rebuild-server). */
  struct buf b = { 0 };
  put(&b, "\0\0\0\0", 4);
  char cwd[PATH_MAX], num[32];
  if (!getcwd(cwd, sizeof cwd)) fallback(argc, argv);
  field(&b, "prov4", 1); /* prov4: this client runs the commands, and says what it started itself */
  field(&b, cwd, 0);
  char tty[4] = { isatty(0) ? '1' : '0', isatty(1) ? '1' : '0', isatty(2) ? '1' : '0', 0 };
  field(&b, tty, 0);
  mode_t mask = umask(0);
  umask(mask);
  snprintf(num, sizeof num, "%o", (unsigned)mask);
  field(&b, num, 0);
  field(&b, quick < 0 ? "1" : "0", 0); /* the shortcut looked at already: not up to date */
  field(&b, started ? started : "", 0);
  snprintf(num, sizeof num, "%d", argc - 1);
  field(&b, num, 0);
  for (int i = 1; i < argc; i++) field(&b, argv[i], 0);
  int envc = 0;
  for (char **e = environ; *e; e++) envc++;
  snprintf(num, sizeof num, "%d", envc);
  field(&b, num, 0);
  for (char **e = environ; *e; e++) field(&b, *e, 0);
  uint32_t len = (uint32_t)(b.n - 4);
  for (int i = 0; i < 4; i++) b.p[i] = (char)((len >> (8 * i)) & 0xff);
  if (fd < 0) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) fallback(argc, argv);
    tmark("connected");
  }
  if (write_all(fd, b.p, b.n) != 0) { close(fd); fallback(argc, argv); }
  free(b.p);
  tmark("request sent");

  int any = 0;
  for (;;) {
    unsigned char h[5];
    int r = read_all(fd, (char *)h, 5);
    if (r <= 0) {
      /* Nothing came back: nothing ran (the server reads the whole request before it runs anything
         and always answers); the command line runs it instead. */
      if (!any) { close(fd); fallback(argc, argv); }
      fputs("prov: the rebuild server closed the connection before the exit code\n", stderr);
      return 1;
    }
    if (!any) tmark("first frame");
    any = 1;
    uint32_t n = (uint32_t)h[1] | (uint32_t)h[2] << 8 | (uint32_t)h[3] << 16 | (uint32_t)h[4] << 24;
    char *p = malloc(n + 1);
    if (!p || (n > 0 && read_all(fd, p, n) != 1)) { fputs("prov: short frame from the rebuild server\n", stderr); return 1; }
    p[n] = 0;
    switch (h[0]) {
    case 'o': write_all(1, p, n); break;
    case 'e': write_all(2, p, n); break;
    case 'x':
      /* Commands this client started still running (the server ended the request early) are
         waited for: nothing it started keeps running after it. */
      run_wait_all();
      tmark("exit code");
      tprint();
      return atoi(p);
    case 'f': close(fd); fallback(argc, argv); break;
    case 'c':
    case 'g':
      /* The commands to run (kept: the runner points into the frame). */
      if ((h[0] == 'c' ? run_command_frame(p, n) : run_go_frame(p, n)) != 0) {
        fputs("prov: bad command frame from the rebuild server\n", stderr);
        run_wait_all();
        return 1;
      }
      if (h[0] == 'g' && run_all(fd) == 0) {
        tmark("answered");
        /* With PROV_REBUILD_TRACE the server's timeline comes after the run: wait for it, unless
           PROV_REBUILD_TRACE_FILE sends it to a file (collector/rebuild/trace). */
        const char *trace = getenv("PROV_REBUILD_TRACE"), *file = getenv("PROV_REBUILD_TRACE_FILE");
        if (!trace || !*trace || (file && *file)) { tprint(); return 0; }
      }
      continue;
    default: fputs("prov: unknown frame from the rebuild server\n", stderr); return 1;
    }
    free(p);
  }
}
