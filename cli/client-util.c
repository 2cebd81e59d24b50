/* cli/client-util.c — see client-util.h. */
#include "client-util.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) { if (errno == EINTR) continue; return -1; }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

char *next_field(char **at, char *end) {
  char *s = *at;
  if (s >= end) return NULL;
  char *z = memchr(s, 0, (size_t)(end - s));
  if (!z) return NULL;
  *at = z + 1;
  return s;
}

long decimal(const char *s, long max) {
  if (!s || !*s || strlen(s) > 18 || strspn(s, "0123456789") != strlen(s)) return -1;
  long v = strtol(s, NULL, 10);
  return v <= max ? v : -1;
}
