/*
 * cli/fast-start.h — the native client starts a rebuild's first stale commands itself, before
 * the rebuild server has read its request: the server's wake-up and decision cost 1.5–2 ms
 * before the first command, make's whole start 1.7. From the start file the server leaves beside
 * the no-op shortcut (collector/rebuild/start) it picks commands that depend on nothing planned
 * and have an input whose content changed (inode, size and mtime differ from the stamp, and the
 * size or the SHA-256 does: decide finds the same), takes the server's start token (ebpf/warm:
 * the server is armed, idle and keeps what the ring holds for this client), tracks itself in the
 * pinned capture's maps and starts up to --jobs of them. The request then says what it started.
 */
#ifndef PROV_FAST_START_H
#define PROV_FAST_START_H

struct fast_start_in {
  const char *home;      /* prov's home, clean and absolute */
  const char *target;    /* the target, clean and absolute */
  const char *store_fp;  /* the store fingerprint the shortcut matched */
  const char *qpath;     /* the shortcut's path (<name>.q): the start file is <name>.s */
  const char *runtime;   /* $PROV_RUNTIME_DIR or its default */
  int jobs;              /* how many commands may run at once */
};

/*
 * Start what can be started. Returns the request's "started" field (malloc'ed): NULL when it did
 * not take the token (nothing started), "<token>" when it took it but started nothing, else
 * "<token>\n<run id>\n…" in the order started.
 */
char *fast_start(const struct fast_start_in *in);

#endif
