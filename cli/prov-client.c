/*
 * cli/prov-client.c — the native `prov` entry (built by cli/build.sh as dist/cli/prov, next to
 * dist/cli/main.js). When the command line names `rebuild` and a rebuild server
 * (cli/rebuild-server.ts, `prov rebuild-server`) listens on
 * $PROV_RUNTIME_DIR/rebuild/server.sock (default /run/prov/provfs/rebuild/server.sock), it
 * sends the request (cwd, isatty of 0/1/2, umask, arguments, environment), copies the reply frames to
 * stdout/stderr and exits with the code the server sent. Otherwise — no server, not a rebuild,
 * the server answers "fallback", PROV_NO_SERVER is set — it execs `node <dir>/main.js ARGS`
 * (node from $PROV_NODE or PATH), so behaviour never depends on the server running.
 * Wire format: see cli/rebuild-server.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static void fallback(int argc, char **argv) {
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

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Read exactly n bytes; 0 at a clean end of stream before any byte, -1 on error or a short read. */
static int read_all(int fd, char *p, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, p + got, n - got);
    if (r < 0) { if (errno == EINTR) continue; return -1; }
    if (r == 0) return got == 0 ? 0 : -1;
    got += (size_t)r;
  }
  return 1;
}

int main(int argc, char **argv) {
  int wants = 0;
  for (int i = 1; i < argc; i++) if (strcmp(argv[i], "rebuild") == 0) wants = 1;
  const char *off = getenv("PROV_NO_SERVER");
  if (!wants || (off && *off)) fallback(argc, argv);

  const char *rt = getenv("PROV_RUNTIME_DIR");
  if (!rt || !*rt) rt = "/run/prov/provfs";
  struct sockaddr_un addr = { .sun_family = AF_UNIX };
  if ((size_t)snprintf(addr.sun_path, sizeof addr.sun_path, "%s/rebuild/server.sock", rt) >= sizeof addr.sun_path) fallback(argc, argv);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) fallback(argc, argv);

  struct buf b = { 0 };
  put(&b, "\0\0\0\0", 4);
  char cwd[PATH_MAX], num[32];
  if (!getcwd(cwd, sizeof cwd)) { close(fd); fallback(argc, argv); }
  field(&b, "prov1", 1);
  field(&b, cwd, 0);
  char tty[4] = { isatty(0) ? '1' : '0', isatty(1) ? '1' : '0', isatty(2) ? '1' : '0', 0 };
  field(&b, tty, 0);
  mode_t mask = umask(0);
  umask(mask);
  snprintf(num, sizeof num, "%o", (unsigned)mask);
  field(&b, num, 0);
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
  if (write_all(fd, b.p, b.n) != 0) { close(fd); fallback(argc, argv); }
  free(b.p);

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
    any = 1;
    uint32_t n = (uint32_t)h[1] | (uint32_t)h[2] << 8 | (uint32_t)h[3] << 16 | (uint32_t)h[4] << 24;
    char *p = malloc(n + 1);
    if (!p || (n > 0 && read_all(fd, p, n) != 1)) { fputs("prov: short frame from the rebuild server\n", stderr); return 1; }
    p[n] = 0;
    switch (h[0]) {
    case 'o': write_all(1, p, n); break;
    case 'e': write_all(2, p, n); break;
    case 'x': return atoi(p);
    case 'f': close(fd); fallback(argc, argv); break;
    default: fputs("prov: unknown frame from the rebuild server\n", stderr); return 1;
    }
    free(p);
  }
}
