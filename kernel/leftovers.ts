/**
 * @module kernel/leftovers
 * What a provfs daemon that ended without its own clean-up left of a mount: killed with no fd
 * keeper to take over (the mount went stale), or gone without finishing after its unmount. The
 * records its ring file still holds go to the journal first, as a cold start would journal them
 * (kernel/ringfiles), with a `lost` record only where some may be missing; then its runtime files
 * go. Its log stays: it is what says why the daemon ended.
 */
import { readFileSync, rmSync } from 'node:fs';
import { openJournalWriter } from '../collector/journal/writer.js';
import { running } from '../collector/proc.js';
import { deadRingFiles, lostRecord, recoverRings, removeRingFiles } from './ringfiles.js';
import { daemonInfoPath, daemonSocketPath, keeperFilePaths, keeperStatePath, nodeLogPath, type DaemonInfo, type KeeperState } from './runtime.js';

/** What {@link clearLeftovers} did. */
export interface Leftovers {
  /** Records from the dead daemons' rings appended to the journal now. */
  journaled: number;
  /** Ring files still here: their records could not be journaled (`reason` says why). */
  kept: string[];
  /** Why records may be missing or kept back, when some may be. */
  reason?: string;
}

/**
 * Journal and remove what the dead daemons of `mountpoint` left. Call only once no daemon serves
 * the mount point: after the unmount, with the daemon named by `info` gone (a live daemon's files
 * are never touched; its ring is not a dead one).
 */
export async function clearLeftovers(mountpoint: string, info: DaemonInfo | null): Promise<Leftovers> {
  const out: Leftovers = { journaled: 0, kept: [] };
  const nodeLog = nodeLogPath(mountpoint);
  const rings = deadRingFiles(nodeLog);
  if (rings.length > 0) {
    if (info?.journalDir && info.stream) {
      const journal = openJournalWriter({ dir: info.journalDir, stream: info.stream });
      try {
        const got = recoverRings(nodeLog, journal);
        out.journaled = got.appended;
        if (got.lost) {
          journal.append(lostRecord(`provfs daemon ${info.pid} ended without its clean-up: ${got.lost}`, 0));
          out.reason = got.lost;
        }
        await journal.flush();
        removeRingFiles(got.files);
      } finally {
        await journal.close();
      }
    } else {
      out.kept.push(...rings);
      out.reason = 'the dead daemon left no state file naming its journal; its ring files stay for the next prov mount of this mount point';
    }
  }
  if (info && running(info.pid)) return out;
  const keeper = readJson<KeeperState>(keeperStatePath(mountpoint));
  const files = [daemonInfoPath(mountpoint), daemonSocketPath(mountpoint), nodeLog];
  if (!keeper || !running(keeper.pid)) files.push(...keeperFilePaths(mountpoint));
  for (const f of files) rmSync(f, { force: true });
  return out;
}

function readJson<T>(path: string): T | null {
  try { return JSON.parse(readFileSync(path, 'utf8')) as T; } catch { return null; }
}
