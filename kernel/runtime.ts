/**
 * @module kernel/runtime
 * Where running provfs daemons describe themselves: `/run/prov/provfs/<stream>.json` (0600 in a
 * 0700 directory; PROV_RUNTIME_DIR overrides the directory), read by `prov umount` and
 * `prov upgrade` to find the daemon of a mount point.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { journalStreamName, type ProvfsMode } from './daemon.js';
import { statFields } from '../collector/proc.js';
import { takeoverTracePath } from './takeovertrace.js';

/** Where running daemons leave their state files. */
export const RUNTIME_DIR = process.env.PROV_RUNTIME_DIR ?? '/run/prov/provfs';

/** What a running daemon records about itself. */
export interface DaemonInfo {
  pid: number;
  backing: string;
  mountpoint: string;
  mode: ProvfsMode;
  dev: number;
  passthrough: boolean;
  journalDir?: string;
  stream?: string;
  startedAt: string;
  /**
   * The thread id of its request loop: the fd keeper watches that thread, whose exit it sees
   * 0.1–3 ms after a SIGKILL, long before the whole process is gone (10–80 ms under load).
   */
  loopTid?: number;
}

/** The state file of the daemon serving `mountpoint` (an absolute, resolved path). */
export function daemonInfoPath(mountpoint: string): string {
  return join(RUNTIME_DIR, `${journalStreamName(mountpoint)}.json`);
}


/** The control socket of the daemon serving `mountpoint` (`prov upgrade` talks to it). */
export function daemonSocketPath(mountpoint: string): string {
  return join(RUNTIME_DIR, `${journalStreamName(mountpoint)}.sock`);
}

/** What the fd keeper of `mountpoint` holds (see {@link KeeperState}). */
export function keeperStatePath(mountpoint: string): string {
  return join(RUNTIME_DIR, `${journalStreamName(mountpoint)}.keeper.json`);
}

/** The fd keeper's own state file (0600): its pid, the daemon it watches, its standby. */
export interface KeeperState {
  pid: number;
  daemon: number;
  /** The warm standby's pid, and whether it is ready to take over (warm, following the node log). */
  standby: number | null;
  standbyReady: boolean;
  /** Crashes taken over so far (by the standby or a cold start). */
  takeovers: number;
}

/** The node log of the connection at `mountpoint` (crash survival; see kernel/nodelog). */
export function nodeLogPath(mountpoint: string): string {
  return join(RUNTIME_DIR, `${journalStreamName(mountpoint)}.nodes`);
}

/**
 * The files of `mountpoint`'s fd keeper: its state, the crash marker the fault-injection hook
 * leaves (kernel/resent), the takeover trace. The keeper removes them once the mount is gone;
 * `prov umount` does when the keeper is gone too (kernel/leftovers).
 */
export function keeperFilePaths(mountpoint: string): string[] {
  const nodeLog = nodeLogPath(mountpoint);
  return [keeperStatePath(mountpoint), `${nodeLog}.crashed`, takeoverTracePath(nodeLog)];
}

/** A provfs daemon's memory holder's name (/proc/PID/comm; kernel/mmhold). */
export const HOLDER_NAME = 'provfs-mmhold';

/** Whether process `pid` is a daemon's memory holder (kernel/mmhold): its command line is the daemon's. */
export function isMemoryHolder(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === HOLDER_NAME;
  } catch {
    return false;
  }
}

/** Pids of the `provfsd --standby` processes waiting to take over `mountpoint` (from /proc). */
export function standbyPids(mountpoint: string): number[] {
  const found = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let cmdline: string;
    try { cmdline = readFileSync(`/proc/${d}/cmdline`, 'utf8'); } catch { continue; }
    const args = cmdline.split('\0');
    if (args.includes('--standby') && args[args.indexOf('--mountpoint') + 1] === mountpoint) found.set(Number(d), cmdline);
  }
  // A daemon's memory holder (kernel/mmhold) reads as the daemon's command line too: it names
  // itself once it runs, and until then it is told apart as its daemon's child.
  const parentOf = (pid: number): number => Number(statFields(pid)?.[4 - 3] ?? 0);
  return [...found.keys()].filter((pid) => !isMemoryHolder(pid) && found.get(parentOf(pid)) !== found.get(pid));
}
