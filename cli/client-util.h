/*
 * cli/client-util.h — what the native client's parts share: whole writes, and reading the
 * NUL-terminated fields of the shortcut, start and token files and of the server's frames.
 */
#ifndef PROV_CLIENT_UTIL_H
#define PROV_CLIENT_UTIL_H
#include <stddef.h>

/* Write all n bytes (retrying on EINTR); 0, or -1 on an error. */
int write_all(int fd, const char *p, size_t n);
/* The next NUL-terminated field at *at (before end), moving *at past it; NULL at the end or when unterminated. */
char *next_field(char **at, char *end);
/* A plain decimal below or equal to max, or -1 (missing, not digits, too large). */
long decimal(const char *s, long max);

#endif
