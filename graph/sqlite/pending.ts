/**
 * @module graph/sqlite/pending
 * "Records are on their way into this store": a marker file beside an SQLite database
 * (`<db>.ingest-pending`, 0600) that a process holds while it ingests journal records it has
 * promised to ingest (today: `prov rebuild`, which hands the ingest of what its commands did to a
 * background process so the terminal is free once the outputs are in place). Opening the store
 * waits while the marker is held, so a `prov lineage` or `prov rebuild` run right after sees the
 * new versions.
 *
 * The holder is named by pid and start time (/proc/PID/stat field 22), so a crashed holder
 * (or a reused pid) is recognised: its marker is "orphaned" — the records are durable in the
 * journal, only not yet in the store; the next rebuild (or `prov ingest`) brings them in.
 */
import { existsSync, linkSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { startTime } from '../../collector/proc.js';

export interface PendingHolder {
  pid: number;
  /** Process start time in clock ticks since boot (/proc/PID/stat field 22). */
  start: string;
  /** What the holder is ingesting for (for messages). */
  what: string;
}

export type PendingState = { state: 'none' } | { state: 'held' | 'orphaned'; holder: PendingHolder };

/** The marker file of the database at `db`. */
export function pendingPath(db: string): string {
  return `${db}.ingest-pending`;
}

/** The holder `pid` as a marker names it (null when it is not running). */
export function holderOf(pid: number, what: string): PendingHolder | null {
  const start = startTime(pid);
  return start === null ? null : { pid, start, what };
}

/** Is there a marker, and is its holder still running? */
export function pendingState(db: string): PendingState {
  let holder: PendingHolder;
  try {
    holder = JSON.parse(readFileSync(pendingPath(db), 'utf8')) as PendingHolder;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { state: 'none' };
    // Unreadable or torn (a holder writes by rename, so this is foreign): treat as orphaned.
    return { state: 'orphaned', holder: { pid: 0, start: '', what: 'unknown' } };
  }
  return { state: startTime(holder.pid) === holder.start ? 'held' : 'orphaned', holder };
}

/**
 * Create the marker naming `holder`, only if there is none (atomic: written aside, then
 * hard-linked into place). False when another marker exists.
 */
export function claimPending(db: string, holder: PendingHolder): boolean {
  const tmp = `${pendingPath(db)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(holder), { mode: 0o600 });
  try {
    linkSync(tmp, pendingPath(db));
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw e;
  } finally {
    rmSync(tmp, { force: true });
  }
}

/** Hand a marker this process holds over to another holder (atomic replace). */
export function handOverPending(db: string, to: PendingHolder): void {
  const tmp = `${pendingPath(db)}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(to), { mode: 0o600 });
  renameSync(tmp, pendingPath(db));
}

/** Remove the marker if `pid` holds it (or, with pid null, whoever held it). */
export function releasePending(db: string, pid: number | null): void {
  const st = pendingState(db);
  if (st.state === 'none') return;
  if (pid === null || st.holder.pid === pid) rmSync(pendingPath(db), { force: true });
}

/**
 * Wait while a live holder has the marker (polling every `pollMs`), at most `timeoutMs`.
 * Returns the last state seen: 'none' (nothing pending), 'orphaned' (a dead holder left it),
 * or 'held' (timed out waiting). A marker held by this process does not make it wait.
 */
export async function waitPending(db: string, timeoutMs = 60_000, pollMs = 2): Promise<PendingState> {
  if (!existsSync(pendingPath(db))) return { state: 'none' };
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const st = pendingState(db);
    if (st.state !== 'held' || st.holder.pid === process.pid || performance.now() > deadline) return st;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
