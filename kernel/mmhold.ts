/**
 * @module kernel/mmhold
 * A provfs daemon's memory unmapped after its death, not as it dies.
 *
 * A killed process is gone only once its last thread has unmapped its whole address space: for
 * a Node daemon (150–200 MB resident) about 8 ms of CPU, measured, spent by whichever of its
 * threads happens to exit last. That landed inside the applications' pause at a kill -9
 * takeover twice over: the CPU it took from the applications and the new loop on a two-CPU
 * machine, and, when the last thread out was the request loop the fd keeper watches, a late
 * "daemon gone" (kernel/keeper). So every daemon process starts a holder (kernel/mmhold.c): a
 * process that shares its address space (clone with CLONE_VM, not a thread, so a SIGKILL of
 * the daemon does not reach it), keeps no descriptor and no signal, and waits for the daemon
 * to be gone; it then lingers {@link LINGER_MS} and exits, unmapping everything at SCHED_IDLE
 * in an autogroup of its own (nice 19). Its name is `provfs-mmhold` (its command line is the
 * daemon's: the memory it reads is the same), which kernel/runtime's `isMemoryHolder` checks.
 */
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { logger } from '../collector/log.js';
import { HOLDER_NAME } from './runtime.js';

const log = logger('provfs');

/** Built by kernel/build.sh from kernel/mmhold.c. */
export const MMHOLD_LIBRARY = fileURLToPath(new URL('./libprovmmhold.so', import.meta.url));
/** How long the holder outlives the daemon: past a takeover's first requests and its journal hand-over. */
export const LINGER_MS = 250;

let holdMm: ((lingerMs: number) => number) | null | undefined;

/**
 * Start this process's memory holder. Returns its pid, or null when the library is missing
 * (not built) or the clone failed (logged: the daemon runs as before, its teardown on its own
 * threads).
 */
export function holdMemoryPastExit(lingerMs = LINGER_MS): number | null {
  if (holdMm === undefined) {
    holdMm = null;
    if (!existsSync(MMHOLD_LIBRARY)) log.warn(`${MMHOLD_LIBRARY} is missing (kernel/build.sh): a killed daemon unmaps its memory as it dies`);
    else {
      try {
        holdMm = koffi.load(MMHOLD_LIBRARY).func('int prov_hold_mm(int linger_ms)') as (lingerMs: number) => number;
      } catch (e) {
        log.warn(`cannot load ${MMHOLD_LIBRARY}: ${(e as Error).message}`);
      }
    }
  }
  if (!holdMm) return null;
  const pid = holdMm(lingerMs);
  if (pid > 0) return pid;
  log.warn(`the memory holder could not be started (${pid}): a killed daemon unmaps its memory as it dies`);
  return null;
}
