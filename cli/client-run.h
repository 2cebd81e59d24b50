/*
 * cli/client-run.h — the native client runs a rebuild's commands itself (protocol "prov3", see
 * cli/rebuild-server.ts and collector/rebuild/remote.ts): the server decides what is stale and
 * sends the commands; the client starts them with posix_spawn, waits for them, applies early
 * cutoff by hashing outputs (cli/sha256), prints what the command line would print, and reports
 * back what ran. Spawning and reaping from a small C process is what make does; from the node
 * server each spawn cost 0.4–0.6 ms and each exit 0.35–0.5 ms more.
 */
#ifndef PROV_CLIENT_RUN_H
#define PROV_CLIENT_RUN_H
#include <stdint.h>

/* Frame 'c': one command (started at once when the server says so). 0, or -1 on a bad frame. */
int run_command_frame(char *payload, uint32_t n);
/* A command the client starts itself before asking (cli/fast-start.c): the next index, started now. */
int run_start_now(char *exe, char *cwd, char *show, char **argv, char **envp);
/* Frame 'g': the list is complete (jobs, progress, counts, target, cutoff data). 0, or -1. */
int run_go_frame(char *payload, uint32_t n);
/*
 * Run everything to the end, send the report on `sock`, print what the command line prints.
 * Returns 0 when every command succeeded (the client exits 0 at once), 1 when one failed (its
 * output is printed; the server's frames — the failure line, the exit code — follow).
 */
int run_all(int sock);
/* Wait for commands still running (the server ended the request early). */
void run_wait_all(void);
/* After a read interrupted by a signal: when it was SIGINT, SIGTERM or SIGHUP, pass it on to the
   commands running, wait for them and die of it (nothing this client started runs on). */
void run_interrupted(void);

#endif
