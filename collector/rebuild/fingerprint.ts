/**
 * @module collector/rebuild/fingerprint
 * A cheap stand-in for the store's checkpoint on the no-op path: the identity of an SQLite
 * store's files (database and write-ahead log). Any committed ingest either appends to the WAL
 * or checkpoints into the database file, so while neither changed, neither did the checkpoint,
 * and the plan cached for it still holds — without loading SQLite at all.
 *
 * An empty WAL holds nothing (opening the store creates or deletes one), so only a non-empty
 * WAL counts. File times are coarse (a clock tick), so a file changed within
 * {@link FRESH_MS} of now gives no fingerprint: a second write in the same tick could keep
 * size and time; the caller then asks the store itself.
 */
import { statSync } from 'node:fs';

/**
 * Files modified this recently are not trusted to show a further change in their time stamp:
 * many times the kernel's coarse clock tick (1–10 ms), by which file times advance.
 */
export const FRESH_MS = 100;

/** The SQLite file a store URL names (null for other stores). */
export function sqlitePath(url: string): string | null {
  const scheme = /^([a-z][a-z0-9+.-]*:)/i.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return url;
  return scheme === 'sqlite:' ? url.slice(scheme.length) : null;
}

/**
 * The fingerprint of the store's files now, or null when there is none to trust (not SQLite,
 * missing, or changed too recently — unless `evenFresh`, for a caller that has just checked
 * the content itself).
 */
export function storeFingerprint(url: string, nowMs = Date.now(), evenFresh = false): string | null {
  const db = sqlitePath(url);
  if (!db) return null;
  const fresh = BigInt(nowMs - FRESH_MS) * 1_000_000n;
  const parts: string[] = [];
  for (const f of [db, `${db}-wal`]) {
    const st = statSync(f, { bigint: true, throwIfNoEntry: false });
    if (!st) {
      if (f === db) return null;
      parts.push('-');
      continue;
    }
    if (f !== db && st.size === 0n) { parts.push('-'); continue; }
    if (st.mtimeNs > fresh && !evenFresh) return null; // content writes set mtime (and ctime) to the coarse clock
    parts.push(`${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`);
  }
  return parts.join(' ');
}
