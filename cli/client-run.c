/* cli/client-run.c — see client-run.h. Wire format: cli/rebuild-server.ts. */
#define _GNU_SOURCE
#include "client-run.h"
#include "client-util.h"
#include "sha256.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void tmark(const char *name);

enum state { WAITING, RUNNING, DONE_OK, FAILED, SKIPPED };

struct cmd {
  char *exe, *cwd, *show;
  char **argv, **envp;
  int *deps, ndeps;
  int conditional; /* stale only because commands it depends on re-run: may be cut off */
  char **cmp; int ncmp; /* output path, stamped hash, ... (ncmp pairs); ncmp < 0: not comparable */
  int changed;      /* outputs differ from the stamps: -1 not yet known */
  enum state state;
  pid_t pid;
  int out, err;
  char *stdout_text, *stderr_text;
  size_t stdout_len, stderr_len;
  int code, signo;
  struct timespec t0;
  long long micros;
};

static struct cmd *cmds;
static int ncmds, capcmds;
static int go_seen, jobs = 1, progress, total, decisions;
static char *target;
static int running, started;
/* A command failed (or could not be started): no further command starts. */
static int failed_any;
/* The report: what ran and what was cut off, in the order it happened. */
static int *events, nevents;
static char *eventkind;

/* Split a payload of NUL-terminated fields; NULL when it does not end with a NUL. */
static char **split(char *p, uint32_t n, int *count) {
  if (n == 0 || p[n - 1] != 0) return NULL;
  int k = 0;
  for (uint32_t i = 0; i < n; i++) if (p[i] == 0) k++;
  char **f = calloc((size_t)k + 1, sizeof *f);
  if (!f) return NULL;
  char *s = p;
  for (int i = 0; i < k; i++) { f[i] = s; s += strlen(s) + 1; }
  *count = k;
  return f;
}

/* A non-negative decimal field below `max`, or -1. */
static int number(const char *s, int max) {
  return (int)decimal(s, (long)max - 1);
}

static void spawn_cmd(struct cmd *c);

/*
 * SIGINT, SIGTERM or SIGHUP to this client (Ctrl-C reaches the commands too; a kill by pid does
 * not): passed on to the commands running, which are waited for; then no command starts, the
 * report goes out and the client dies of the same signal, as make does.
 */
static volatile sig_atomic_t stop_signal;
static void on_stop(int sig) { stop_signal = sig; }
static void catch_stops(void) {
  static int done;
  if (done) return;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop; /* no SA_RESTART: a blocking waitpid or read returns to look */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  done = 1;
}
static void pass_on_stop(void) {
  static int passed;
  if (!stop_signal || passed) return;
  passed = 1;
  for (int i = 0; i < ncmds; i++) if (cmds[i].state == RUNNING) kill(cmds[i].pid, stop_signal);
}

int run_command_frame(char *payload, uint32_t n) {
  int nf, at = 0;
  char **f = split(payload, n, &nf);
  if (!f || nf < 9) return -1;
  if (number(f[0], 1 << 20) != ncmds) return -1;
  if (ncmds == capcmds) {
    capcmds = capcmds ? capcmds * 2 : 16;
    struct cmd *g = realloc(cmds, (size_t)capcmds * sizeof *g);
    if (!g) return -1;
    cmds = g;
  }
  struct cmd *c = &cmds[ncmds];
  memset(c, 0, sizeof *c);
  int now = strcmp(f[1], "1") == 0;
  c->conditional = strcmp(f[2], "1") == 0;
  c->exe = f[3]; c->cwd = f[4]; c->show = f[5];
  at = 6;
  int argc = number(f[at++], nf);
  if (argc < 1 || at + argc >= nf) return -1;
  c->argv = calloc((size_t)argc + 1, sizeof *c->argv);
  for (int i = 0; i < argc; i++) c->argv[i] = f[at++];
  int envc = number(f[at++], nf);
  if (envc < 0 || at + envc >= nf) return -1;
  c->envp = calloc((size_t)envc + 1, sizeof *c->envp);
  for (int i = 0; i < envc; i++) c->envp[i] = f[at++];
  c->ndeps = number(f[at++], nf);
  if (c->ndeps < 0 || at + c->ndeps != nf) return -1;
  c->deps = calloc((size_t)c->ndeps + 1, sizeof *c->deps);
  for (int i = 0; i < c->ndeps; i++) {
    c->deps[i] = number(f[at++], ncmds);
    if (c->deps[i] < 0) return -1; /* a dependency is always sent before what depends on it */
  }
  c->ncmp = -1;
  c->changed = -1;
  c->out = c->err = -1;
  ncmds++;
  if (now) spawn_cmd(c);
  return 0;
}

int run_start_now(char *exe, char *cwd, char *show, char **argv, char **envp) {
  if (ncmds == capcmds) {
    capcmds = capcmds ? capcmds * 2 : 16;
    struct cmd *g = realloc(cmds, (size_t)capcmds * sizeof *g);
    if (!g) return -1;
    cmds = g;
  }
  struct cmd *c = &cmds[ncmds++];
  memset(c, 0, sizeof *c);
  c->exe = exe; c->cwd = cwd; c->show = show; c->argv = argv; c->envp = envp;
  c->ncmp = -1;
  c->changed = -1;
  c->out = c->err = -1;
  spawn_cmd(c);
  return 0;
}

int run_go_frame(char *payload, uint32_t n) {
  int nf;
  char **f = split(payload, n, &nf);
  if (!f || nf < 6) return -1;
  jobs = number(f[0], 1 << 16);
  progress = strcmp(f[1], "1") == 0;
  total = number(f[2], 1 << 20);
  decisions = number(f[3], 1 << 20);
  target = f[4];
  int ncmp = number(f[5], ncmds + 1), at = 6;
  if (jobs < 1 || total != ncmds || decisions < 0 || ncmp < 0) return -1;
  for (int k = 0; k < ncmp; k++) {
    if (at + 2 > nf) return -1;
    int idx = number(f[at], ncmds), pairs = number(f[at + 1], nf);
    at += 2;
    if (idx < 0 || pairs < 0 || at + 2 * pairs > nf) return -1;
    cmds[idx].cmp = f + at;
    cmds[idx].ncmp = pairs;
    at += 2 * pairs;
  }
  if (at != nf) return -1;
  go_seen = 1;
  return 0;
}

static long long since_us(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)(t.tv_sec - t0->tv_sec) * 1000000LL + (t.tv_nsec - t0->tv_nsec) / 1000;
}

static void note(char kind, int idx) {
  events = realloc(events, (size_t)(nevents + 1) * sizeof *events);
  eventkind = realloc(eventkind, (size_t)nevents + 1);
  if (!events || !eventkind) { fputs("prov: out of memory\n", stderr); exit(1); }
  events[nevents] = idx;
  eventkind[nevents++] = kind;
}

/* Every signal at its default and none blocked in the commands, as the server's spawn gives them. */
static posix_spawnattr_t *command_attr(void) {
  static posix_spawnattr_t attr;
  static int made;
  if (!made) {
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    made = 1;
  }
  return &attr;
}

static void spawn_cmd(struct cmd *c) {
  int rc;
  c->out = memfd_create("prov-rebuild-stdout", MFD_CLOEXEC);
  c->err = memfd_create("prov-rebuild-stderr", MFD_CLOEXEC);
  clock_gettime(CLOCK_MONOTONIC, &c->t0);
  if (c->out < 0 || c->err < 0) {
    rc = errno;
  } else {
    catch_stops();
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, c->out, 1);
    posix_spawn_file_actions_adddup2(&fa, c->err, 2);
    posix_spawn_file_actions_addchdir_np(&fa, c->cwd);
    rc = (strchr(c->exe, '/') ? posix_spawn : posix_spawnp)(&c->pid, c->exe, &fa, command_attr(), c->argv, c->envp);
    posix_spawn_file_actions_destroy(&fa);
  }
  started++;
  if (started == 1) tmark("first command spawned");
  if (rc != 0) {
    /* As the server reports it: no exit code, the reason as the command's error output. */
    char msg[512];
    int len = snprintf(msg, sizeof msg, "spawn %s: %s\n", c->exe, strerror(rc));
    c->stderr_text = strdup(msg);
    c->stderr_len = len > 0 ? (size_t)len : 0;
    c->code = -1;
    c->state = FAILED;
    failed_any = 1;
    if (c->out >= 0) close(c->out);
    if (c->err >= 0) close(c->err);
    note('r', (int)(c - cmds));
    return;
  }
  c->state = RUNNING;
  running++;
  if (progress && go_seen) fprintf(stderr, "\r\x1b[2K[%d/%d] %.100s", started, total, c->show);
}

static char *slurp(int fd, size_t *len) {
  struct stat st;
  *len = 0;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size <= 0) { if (fd >= 0) close(fd); return NULL; }
  char *p = malloc((size_t)st.st_size);
  ssize_t r = p ? pread(fd, p, (size_t)st.st_size, 0) : -1;
  close(fd);
  if (r <= 0) { free(p); return NULL; }
  *len = (size_t)r;
  return p;
}

/* Reap one command (blocking); 0, or -1 when none is left. */
static int reap_one(void) {
  int st;
  pid_t pid;
  do {
    pid = waitpid(-1, &st, 0);
    pass_on_stop();
  } while (pid < 0 && errno == EINTR);
  if (pid < 0) return -1;
  for (int i = 0; i < ncmds; i++) {
    struct cmd *c = &cmds[i];
    if (c->state != RUNNING || c->pid != pid) continue;
    c->micros = since_us(&c->t0);
    running--;
    c->stdout_text = slurp(c->out, &c->stdout_len);
    c->stderr_text = slurp(c->err, &c->stderr_len);
    if (WIFEXITED(st)) { c->code = WEXITSTATUS(st); c->signo = 0; }
    else { c->code = -1; c->signo = WIFSIGNALED(st) ? WTERMSIG(st) : 0; }
    c->state = c->code == 0 ? DONE_OK : FAILED;
    if (c->state == FAILED) failed_any = 1;
    note('r', i);
    break;
  }
  return 0;
}

/* Whether a re-made command's outputs differ from the content stamped for the run it replaced. */
static int changed(struct cmd *c) {
  if (c->changed >= 0) return c->changed;
  c->changed = c->ncmp <= 0;
  for (int k = 0; !c->changed && k < c->ncmp; k++) {
    char hex[65];
    if (sha256_file(c->cmp[2 * k], SHA256_FILE_LIMIT, hex) != 0 || strcmp(hex, c->cmp[2 * k + 1]) != 0) c->changed = 1;
  }
  return c->changed;
}

/* collector/rebuild/cutoff's skip: every dependency re-made byte-identical outputs or was cut off. */
static int cut_off(struct cmd *c) {
  if (!c->conditional || c->ndeps == 0) return 0;
  for (int k = 0; k < c->ndeps; k++) {
    struct cmd *d = &cmds[c->deps[k]];
    if (d->state == SKIPPED) continue;
    if (d->state != DONE_OK || changed(d)) return 0;
  }
  return 1;
}

static int ready(struct cmd *c) {
  for (int k = 0; k < c->ndeps; k++) {
    enum state s = cmds[c->deps[k]].state;
    if (s != DONE_OK && s != SKIPPED) return 0;
  }
  return 1;
}

static void send_report(int sock) {
  size_t cap = 64 + (size_t)nevents * 64, n = 5;
  char *b = malloc(cap);
  if (!b) return;
  n += (size_t)sprintf(b + n, "%d", nevents) + 1;
  for (int i = 0; i < nevents; i++) {
    struct cmd *c = &cmds[events[i]];
    if (eventkind[i] == 'k') n += (size_t)sprintf(b + n, "k%c%d%c0%c0%c0", 0, events[i], 0, 0, 0) + 1;
    else n += (size_t)sprintf(b + n, "r%c%d%c%d%c%d%c%lld", 0, events[i], 0, c->code, 0, c->signo, 0, c->micros) + 1;
  }
  uint32_t len = (uint32_t)(n - 5);
  b[0] = 'R';
  for (int i = 0; i < 4; i++) b[1 + i] = (char)((len >> (8 * i)) & 0xff);
  /* A server gone meanwhile must not kill the client with SIGPIPE: it still prints what ran. */
  for (size_t off = 0; off < n;) {
    ssize_t w = send(sock, b + off, n - off, MSG_NOSIGNAL);
    if (w < 0) { if (errno == EINTR) continue; break; }
    off += (size_t)w;
  }
  free(b);
}

int run_all(int sock) {
  /* The early command's start, as the server would have shown it. */
  if (progress && started) fprintf(stderr, "\r\x1b[2K[%d/%d] %.100s", started, total, cmds[0].show);
  for (;;) {
    int moved = 1;
    pass_on_stop();
    while (moved && !failed_any && !stop_signal) {
      moved = 0;
      for (int i = 0; i < ncmds && running < jobs && !failed_any; i++) {
        struct cmd *c = &cmds[i];
        if (c->state != WAITING || !ready(c)) continue;
        if (cut_off(c)) { c->state = SKIPPED; note('k', i); moved = 1; continue; }
        spawn_cmd(c);
        moved = 1;
      }
    }
    if (running == 0) break;
    if (reap_one() != 0) break;
  }
  tmark("last command reaped");
  send_report(sock);
  if (stop_signal) {
    if (progress) fputs("\r\x1b[2K", stderr);
    signal(stop_signal, SIG_DFL);
    raise(stop_signal);
  }
  if (progress) fputs("\r\x1b[2K", stderr);
  for (int i = 0; i < nevents; i++) {
    struct cmd *c = &cmds[events[i]];
    if (eventkind[i] != 'r' || c->state != FAILED) continue;
    /* As cli/actions/rebuild's printFailed: the failed command's output; the server adds why it stopped. */
    fflush(stdout);
    if (c->stdout_text) write_all(1, c->stdout_text, c->stdout_len);
    if (c->stderr_text) write_all(2, c->stderr_text, c->stderr_len);
    return 1;
  }
  /* As printRebuilt: the commands' own output, what was cut off, the summary. */
  int ran = 0, cut = 0;
  for (int i = 0; i < nevents; i++) {
    struct cmd *c = &cmds[events[i]];
    if (eventkind[i] == 'r') { ran++; if (c->stdout_text) fwrite(c->stdout_text, 1, c->stdout_len, stdout); }
  }
  for (int i = 0; i < nevents; i++) {
    if (eventkind[i] != 'k') continue;
    cut++;
    printf("not run: %s (the commands it depends on re-made byte-identical outputs)\n", cmds[events[i]].show);
  }
  if (cut) printf("rebuilt %s: ran %d of %d commands, %d cut off\n", target, ran, decisions, cut);
  else printf("rebuilt %s: ran %d of %d commands\n", target, ran, decisions);
  fflush(stdout);
  return 0;
}

void run_wait_all(void) {
  while (running > 0 && reap_one() == 0) {}
}

void run_interrupted(void) {
  if (!stop_signal) return;
  pass_on_stop();
  run_wait_all();
  signal(stop_signal, SIG_DFL);
  raise(stop_signal);
}
