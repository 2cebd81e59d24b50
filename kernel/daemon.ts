/**
 * @module kernel/daemon
 * Mount provfs from code: open the backing directory (before mounting, so a mount over the
 * backing directory itself works), open /dev/fuse, mount(2), and start the request loop in a
 * worker thread. In prov mode the main thread drains the loop's records into the journal every
 * few milliseconds (the journal group-commits). {@link ProvfsMount.stop} unmounts and waits for
 * the loop to end.
 *
 * ```ts
 * const m = await mountProvfs({ backing: '/data', mountpoint: '/data', mode: 'prov', journalDir: '/var/lib/prov/journal' });
 * // … later
 * await m.stop();
 * ```
 */
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { join } from 'node:path';
import { logger } from '../collector/log.js';
import type { ProvEvent } from '../collector/events.js';
import type { JournalWriter } from '../collector/journal/api.js';
import { openJournalWriter } from '../collector/journal/writer.js';
import * as libc from './libc.js';
import { O } from './libc.js';
import { Serving, type StopInfo, type JournalSink } from './serving.js';
import { lostRecord, recoverRings, removeRingFiles, ringFilePath, type RingRecovery } from './ringfiles.js';
import { upgradeConnection, type UpgradeOptions, type UpgradeReport } from './upgrade.js';
import { mountFuse, unmount, mountState, mountAt, FS_TYPE } from './mount.js';
import { setPriority } from 'node:os';
import type { Timeouts } from './dispatch.js';
import { CapabilityError, InputError } from '../graph/errors.js';

const log = logger('provfs');

export type ProvfsMode = 'plain' | 'prov';
export type { StopInfo, UpgradeOptions, UpgradeReport };

export interface ProvfsOptions {
  backing: string;
  mountpoint: string;
  mode: ProvfsMode;
  /** Use kernel passthrough for data I/O when the kernel offers it (default true). */
  passthrough?: boolean;
  /** Cache timeouts in seconds (default entry 1, attr 1, negative 1). */
  timeouts?: Partial<Timeouts>;
  /** prov mode: journal directory; records go to stream {@link journalStreamName}(mountpoint). */
  journalDir?: string;
  /** prov mode: an already open writer instead of `journalDir` (not closed by stop()). */
  journal?: JournalSink;
  /** prov mode: also hand every record to this callback (after the journal). */
  onEvent?: (ev: ProvEvent) => void;
  /** Crash survival: keep a node log at this path (see kernel/nodelog). */
  nodeLog?: string;
  /**
   * prov mode: keep the record ring in the file `<rings>.<pid>.ring` (kernel/ringfiles), so the
   * records of a daemon killed before they are durable wait there for whoever next recovers the
   * mount point (a keeper's daemon, a mount, `prov umount` of the stale mount). Default: the node
   * log's path; with neither, the ring is in memory only.
   */
  rings?: string;
  /** prov mode: records held in memory while the journal's disk is full (kernel/serving STALL_HOLD_BYTES). */
  stallHoldBytes?: number;
}


export interface ProvfsMount {
  readonly backing: string;
  readonly mountpoint: string;
  readonly mode: ProvfsMode;
  /** st_dev of the mount (what records carry as `dev`). */
  readonly dev: number;
  /** Whether the kernel does data I/O through passthrough. */
  readonly passthrough: boolean;
  /** Journal stream name (prov mode with journalDir), else undefined. */
  readonly stream?: string;
  /** Resolves when the request loop has ended (unmounted from anywhere). */
  readonly done: Promise<StopInfo>;
  /** Unmount (lazily when busy and `lazy`), wait for the loop to end, flush the journal. */
  stop(opts?: { lazy?: boolean }): Promise<StopInfo>;
  /**
   * Live upgrade: start a successor daemon warm, quiesce, hand it the connection, the open fds
   * and the state, and end here (`done` resolves with reason 'upgraded'). When the successor
   * fails or rejects the state, this daemon keeps serving and the report says why.
   */
  upgrade(opts: UpgradeOptions): Promise<UpgradeReport>;
  /** Called after a successful handover, before the successor takes over shared names (control socket). */
  beforeHandoff?: () => void;
  /** The /dev/fuse and backing-root fd numbers in this process (for the fd keeper). */
  readonly fds: { dev: number; root: number };
  /** The request loop's thread id (the fd keeper watches it). */
  readonly loopTid?: number;
  /** prov mode: whether the main thread polls the record ring now (false: idle, the loop's next record wakes it). */
  readonly draining: boolean;
}

/** The journal stream provfs writes for a mount point: `provfs-` + 16 hex of its path's SHA-256. */
export function journalStreamName(mountpoint: string): string {
  return 'provfs-' + createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
}

export const DEFAULT_TIMEOUTS: Timeouts = { entry: 1, attr: 1, negative: 1 };
const MAX_WRITE = 1 << 20;

export async function mountProvfs(opts: ProvfsOptions): Promise<ProvfsMount> {
  if (opts.mode !== 'plain' && opts.mode !== 'prov') throw new InputError(`mode must be plain or prov (got ${String(opts.mode)})`, '--mode');
  let backing: string, mountpoint: string;
  try {
    backing = realpathSync(opts.backing);
  } catch {
    throw new InputError(`backing directory ${opts.backing} does not exist`, 'BACKING');
  }
  const state = mountState(pathOrSelf(opts.mountpoint));
  if (state === 'stale') {
    throw new InputError(`${opts.mountpoint} is a provfs mount whose daemon is gone (ENOTCONN); run \`prov umount ${opts.mountpoint}\` first`, 'MOUNTPOINT');
  }
  try {
    mountpoint = realpathSync(opts.mountpoint);
  } catch {
    throw new InputError(`mount point ${opts.mountpoint} does not exist`, 'MOUNTPOINT');
  }
  if (mountState(mountpoint) === 'live') throw new InputError(`${mountpoint} is already a provfs mount`, 'MOUNTPOINT');

  const rings = opts.mode === 'prov' ? opts.rings ?? opts.nodeLog : undefined;
  let journal: JournalSink | null = opts.journal ?? null;
  let ownJournal: JournalWriter | null = null;
  let stream: string | undefined;
  if (opts.mode === 'prov' && !journal && opts.journalDir) {
    stream = journalStreamName(mountpoint);
    ownJournal = openJournalWriter({ dir: opts.journalDir, stream });
    journal = ownJournal;
    // A daemon of this mount point killed earlier may have left records not yet journaled.
    if (rings) afterDurable(ownJournal, recoverRings(rings, ownJournal));
  }
  // The daemon creates files on the caller's behalf with the mode the kernel already masked.
  libc.umask(0);
  const rootFd = libc.open(backing, O.PATH | O.DIRECTORY);
  let devFd: number;
  try {
    devFd = libc.open('/dev/fuse', O.RDWR);
  } catch (e) {
    libc.close(rootFd);
    await ownJournal?.close();
    throw new CapabilityError(`cannot open /dev/fuse: ${(e as Error).message}`, '/dev/fuse');
  }
  let info;
  try {
    info = mountFuse(devFd, mountpoint, backing);
  } catch (e) {
    libc.close(devFd);
    libc.close(rootFd);
    await ownJournal?.close();
    if (e instanceof libc.Errno && e.errno === libc.E.EPERM) throw new CapabilityError(`mount ${FS_TYPE} needs root (CAP_SYS_ADMIN)`, 'CAP_SYS_ADMIN');
    throw e;
  }

  const timeouts = { ...DEFAULT_TIMEOUTS, ...opts.timeouts };
  const serving = new Serving({
    loop: {
      devFd, rootFd, mode: opts.mode, passthrough: opts.passthrough ?? true, timeouts,
      maxWrite: MAX_WRITE, dev: info.dev, mountpoint,
      nodeLog: opts.nodeLog ? { path: opts.nodeLog, fresh: true } : undefined,
    },
    journal, ownJournal: ownJournal !== null, onEvent: opts.onEvent,
    ringFile: rings ? ringFilePath(rings) : undefined, stallHoldBytes: opts.stallHoldBytes,
  });
  try {
    await serving.start();
  } catch (e) {
    try { unmount(mountpoint, true); } catch { /* already gone */ }
    await serving.done;
    throw e;
  }
  log.debug(`mounted ${backing} on ${mountpoint} (${opts.mode}, passthrough ${serving.passthrough ? 'on' : 'off'})`);
  return makeMount(serving, { backing, mountpoint, mode: opts.mode, dev: info.dev, stream, timeouts, journalDir: opts.journalDir, passthrough: opts.passthrough ?? true, nodeLog: opts.nodeLog });
}

/**
 * Serve a connection whose daemon crashed, with the /dev/fuse and backing-root fds an fd keeper
 * held: the table comes from the node log, the kernel resends what the dead daemon never
 * answered. In prov mode the records the dead daemon had not yet made durable come from its
 * ring file (kernel/ringfiles) into the journal first; nothing is lost.
 */
export async function recoverProvfs(o: {
  devFd: number; rootFd: number; backing: string; mountpoint: string; mode: ProvfsMode; passthrough: boolean;
  timeouts?: Partial<Timeouts>; journalDir?: string; nodeLog: string; since?: number; deadPid?: number;
}): Promise<ProvfsMount> {
  const info = mountAt(o.mountpoint);
  if (!info) throw new InputError(`${o.mountpoint} is not mounted`, 'MOUNTPOINT');
  libc.umask(0);
  const { stream, journal, recovered } = recoveryJournal(o); // made durable beside serving
  const timeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  const serving = new Serving({
    loop: { devFd: o.devFd, rootFd: o.rootFd, mode: o.mode, passthrough: o.passthrough, timeouts, maxWrite: MAX_WRITE, dev: info.dev, mountpoint: o.mountpoint, nodeLog: { path: o.nodeLog, fresh: false }, recover: true, deadPid: o.deadPid },
    journal, ownJournal: journal !== null,
    ringFile: o.mode === 'prov' ? ringFilePath(o.nodeLog) : undefined,
  });
  await serving.start();
  recovered();
  return makeMount(serving, { backing: o.backing, mountpoint: o.mountpoint, mode: o.mode, dev: info.dev, stream, timeouts, journalDir: o.journalDir, passthrough: o.passthrough, nodeLog: o.nodeLog });
}

/**
 * A recovering daemon's journal stream: first every record the dead daemon left in its ring file
 * and the journal lacks (see kernel/ringfiles), then — only when some may still be missing (no
 * ring file, a damaged one, records that went around a full ring) — a `lost` record marking the
 * gap. Made durable beside serving, not before it (an fsync under an fsync-heavy workload took
 * 110 ms here); the ring files go once it is, so a crash before that recovers them again.
 */
function recoveryJournal(o: { mountpoint: string; mode: ProvfsMode; journalDir?: string; since?: number; nodeLog: string }): { stream?: string; journal: JournalWriter | null; /** Call once serving (the loop reads the dead daemon's ring for resent requests: kernel/resent). */ recovered: () => void } {
  const stream = o.mode === 'prov' && o.journalDir ? journalStreamName(o.mountpoint) : undefined;
  const journal = stream ? openJournalWriter({ dir: o.journalDir!, stream }) : null;
  if (journal) {
    const got = recoverRings(o.nodeLog, journal);
    const lost = got.files.length === 0 ? 'no ring file of the dead daemon was found; records it had not yet journaled are lost (count unknown)' : got.lost;
    if (lost) journal.append(lostRecord(`provfs daemon crashed and was restarted by its fd keeper: ${lost}`, o.since ?? 0));
    if (got.files.length > 0) log.info(`${o.mountpoint}: ${got.appended} records the dead daemon had not yet made durable recovered from its ring (${got.skipped} were already in the journal)`);
    return { stream, journal, recovered: () => afterDurable(journal, got) };
  }
  return { stream, journal, recovered: () => undefined };
}

/**
 * Flush beside serving; remove the ring files recovered once their records are durable — a
 * second later: the new loop looks into the dead daemon's ring while it serves the requests the
 * kernel resent (kernel/resent), and a recovery in between journals nothing twice (the records
 * are stamped with journal seqs the journal holds).
 */
function afterDurable(journal: JournalWriter, got: RingRecovery): void {
  journal.flush().then(
    () => {
      for (const f of got.files) ringsToRemove.add(f);
      setTimeout(() => { removeRingFiles(got.files); for (const f of got.files) ringsToRemove.delete(f); }, 1000).unref();
    },
    (e: Error) => log.warn(`journal flush: ${e.message}`),
  );
}

/** Recovered ring files whose records are durable, waiting for their removal (see {@link afterDurable}). */
const ringsToRemove = new Set<string>();

/** Remove now the recovered ring files still waiting (the daemon is ending). */
export function removeRecoveredRings(): void {
  removeRingFiles([...ringsToRemove]);
  ringsToRemove.clear();
}

/**
 * A warm standby for a crashed daemon (the fd keeper keeps one per mount): Node, the modules, a
 * request loop up and compiled, the connection and backing root already in hand, and a node
 * table that follows the serving daemon's node log as it grows (kernel/nodefollow). When the
 * keeper writes a byte on `goFd` the loop applies the log's last records, has the kernel resend
 * what the dead daemon never answered (FUSE_NOTIFY_RESEND) and reads on: no Node start-up, no
 * per-node work, no IPC and no journal on the way to the first reply. The journal comes after
 * ({@link StandbyProvfs.settle}): the dead daemon's unjournaled records first, then the ones
 * made meanwhile, which wait in this daemon's ring file.
 */
export interface StandbyProvfs {
  readonly mode: ProvfsMode;
  /** Resolves when the loop took over and serves (CLOCK_MONOTONIC ns of its first read). */
  readonly serving: Promise<number>;
  /** After the takeover: journal what the dead daemon left, then this daemon's records; the mount handle. */
  settle(o: { backing: string; journalDir?: string; since?: number; deadPid?: number }): Promise<ProvfsMount>;
}

export async function standbyProvfs(o: {
  mountpoint: string; mode: ProvfsMode; passthrough: boolean; timeouts?: Partial<Timeouts>; nodeLog: string;
  devFd: number; rootFd: number; goFd: number;
}): Promise<StandbyProvfs> {
  const info = mountAt(o.mountpoint);
  if (!info) throw new InputError(`${o.mountpoint} is not mounted`, 'MOUNTPOINT');
  libc.umask(0);
  const timeouts = { ...DEFAULT_TIMEOUTS, ...o.timeouts };
  const serving = new Serving({
    loop: {
      devFd: o.devFd, rootFd: o.rootFd, mode: o.mode, passthrough: o.passthrough, timeouts, maxWrite: MAX_WRITE, dev: info.dev,
      mountpoint: o.mountpoint, nodeLog: { path: o.nodeLog, fresh: false }, follow: { goFd: o.goFd },
    },
    journal: null, ownJournal: true,
    ringFile: o.mode === 'prov' ? ringFilePath(o.nodeLog) : undefined,
  });
  await serving.start({ awaitTransfer: true });
  const servingAt = serving.awaitServing().then((r) => r.at);
  return {
    mode: o.mode,
    serving: servingAt,
    async settle(t): Promise<ProvfsMount> {
      await servingAt;
      const t0 = performance.now();
      // Journaling what the dead daemon left takes this thread 1.5-4 ms of CPU right inside the
      // applications' pause (traced): below them meanwhile (the records wait safely in the rings).
      const tid = libc.gettid();
      try { setPriority(tid, 10); } catch { /* keep */ }
      let stream: string | undefined;
      try {
        const got = await recoveryJournalWhenFree({ mountpoint: o.mountpoint, mode: o.mode, journalDir: t.journalDir, since: t.since, nodeLog: o.nodeLog }, t.deadPid);
        stream = got.stream;
        if (got.journal) serving.setJournal(got.journal, true);
        got.recovered();
      } catch (e) {
        // Serving goes on (applications must not fail); the records wait in this daemon's ring
        // file, and the next daemon of this mount journals them.
        log.error(`${o.mountpoint}: serving without a journal: ${(e as Error).message}`);
      }
      try { setPriority(tid, 0); } catch { /* keep */ }
      log.debug(`standby took over ${o.mountpoint}; journal recovered ${(performance.now() - t0).toFixed(1)} ms after it served`);
      return makeMount(serving, { backing: t.backing, mountpoint: o.mountpoint, mode: o.mode, dev: info.dev, stream, timeouts, journalDir: t.journalDir, passthrough: o.passthrough, nodeLog: o.nodeLog });
    },
  };
}

/**
 * {@link recoveryJournal}, once the dead daemon's writer lock is free: the lock names its pid,
 * which the journal counts as alive until the process has finished dying (a zombie counts as
 * dead: collector/journal/writer).
 */
async function recoveryJournalWhenFree(o: Parameters<typeof recoveryJournal>[0], deadPid?: number): Promise<ReturnType<typeof recoveryJournal>> {
  for (let waited = 0; ; waited += 5) {
    try {
      return recoveryJournal(o);
    } catch (e) {
      if (!deadPid || waited >= 10_000 || !(e instanceof InputError) || !e.message.includes(`by pid ${deadPid}`)) throw e;
    }
    await new Promise((r) => setTimeout(r, waited === 0 ? 0 : 5));
  }
}

/** The handle over a Serving, shared by a first daemon and a successor. */
export function makeMount(serving: Serving, d: {
  backing: string; mountpoint: string; mode: ProvfsMode; dev: number; stream?: string; timeouts: Timeouts;
  journalDir?: string; passthrough: boolean; nodeLog?: string;
}): ProvfsMount {
  let upgrading = false;
  const m: ProvfsMount = {
    backing: d.backing, mountpoint: d.mountpoint, mode: d.mode, dev: d.dev, stream: d.stream,
    get passthrough() { return serving.passthrough; },
    get fds() { return serving.fds; },
    get loopTid() { return serving.loopTid; },
    get draining() { return serving.draining; },
    done: serving.done,
    async stop(o?: { lazy?: boolean }): Promise<StopInfo> {
      try {
        unmount(d.mountpoint, false);
      } catch (e) {
        if (!(e instanceof libc.Errno)) throw e;
        if (e.errno === libc.E.EBUSY && o?.lazy) unmount(d.mountpoint, true);
        else if (e.errno !== libc.E.EINVAL && e.errno !== libc.E.ENOENT) throw e;
      }
      return serving.done;
    },
    async upgrade(o: UpgradeOptions): Promise<UpgradeReport> {
      if (upgrading) return { ok: false, reason: 'an upgrade is already under way' };
      upgrading = true;
      try {
        return await upgradeConnection(serving, {
          backing: d.backing, mountpoint: d.mountpoint, timeouts: d.timeouts, passthrough: d.passthrough,
          journalDir: o.journalDir ?? d.journalDir, beforeHandoff: () => m.beforeHandoff?.(), nodeLog: d.nodeLog,
        }, o);
      } finally {
        upgrading = false;
      }
    },
  };
  return m;
}

/** Absolute form of a path without resolving it (a stale mount point cannot be resolved). */
function pathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p.startsWith('/') ? p.replace(/\/+$/, '') || '/' : `${process.cwd()}/${p}`.replace(/\/+$/, '');
  }
}
