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
import { Worker } from 'node:worker_threads';
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { logger } from '../collector/log.js';
import type { ProvEvent } from '../collector/events.js';
import type { JournalWriter } from '../collector/journal/api.js';
import { openJournalWriter } from '../collector/journal/writer.js';
import * as libc from './libc.js';
import { O } from './libc.js';
import { EventRing } from './eventring.js';
import { mountFuse, unmount, mountState, FS_TYPE } from './mount.js';
import type { Timeouts } from './dispatch.js';
import type { LoopConfig, LoopMessage } from './loop.js';
import { CapabilityError, InputError } from '../graph/errors.js';

const log = logger('provfs');

export type ProvfsMode = 'plain' | 'prov';

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
  journal?: Pick<JournalWriter, 'append'>;
  /** prov mode: also hand every record to this callback (after the journal). */
  onEvent?: (ev: ProvEvent) => void;
}

/** What the loop served, when it ended. */
export interface StopInfo {
  reason: string;
  /** Requests per opcode number. */
  counts: Record<string, number>;
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
}

/** The journal stream provfs writes for a mount point: `provfs-` + 16 hex of its path's SHA-256. */
export function journalStreamName(mountpoint: string): string {
  return 'provfs-' + createHash('sha256').update(mountpoint).digest('hex').slice(0, 16);
}

const DEFAULT_TIMEOUTS: Timeouts = { entry: 1, attr: 1, negative: 1 };
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

  // The daemon creates files on the caller's behalf with the mode the kernel already masked.
  libc.umask(0);
  const rootFd = libc.open(backing, O.PATH | O.DIRECTORY);
  let devFd: number;
  try {
    devFd = libc.open('/dev/fuse', O.RDWR);
  } catch (e) {
    libc.close(rootFd);
    throw new CapabilityError(`cannot open /dev/fuse: ${(e as Error).message}`, '/dev/fuse');
  }
  let info;
  try {
    info = mountFuse(devFd, mountpoint, backing);
  } catch (e) {
    libc.close(devFd);
    libc.close(rootFd);
    if (e instanceof libc.Errno && e.errno === libc.E.EPERM) throw new CapabilityError(`mount ${FS_TYPE} needs root (CAP_SYS_ADMIN)`, 'CAP_SYS_ADMIN');
    throw e;
  }

  let journal: Pick<JournalWriter, 'append'> | null = opts.journal ?? null;
  let ownJournal: JournalWriter | null = null;
  let stream: string | undefined;
  if (opts.mode === 'prov' && !journal && opts.journalDir) {
    stream = journalStreamName(mountpoint);
    ownJournal = openJournalWriter({ dir: opts.journalDir, stream });
    journal = ownJournal;
  }
  const ring = EventRing.create();
  const control = new SharedArrayBuffer(4);
  const cfg: LoopConfig = {
    devFd, rootFd, mode: opts.mode, passthrough: opts.passthrough ?? true,
    timeouts: { ...DEFAULT_TIMEOUTS, ...opts.timeouts }, maxWrite: MAX_WRITE, dev: info.dev,
    mountpoint, ring: ring.sab, control,
  };
  const deliver = (ev: ProvEvent): void => {
    journal?.append(ev);
    opts.onEvent?.(ev);
  };
  const dec = new TextDecoder();
  const drain = (): void => {
    for (const rec of ring.drain()) deliver(JSON.parse(dec.decode(rec)) as ProvEvent);
  };
  const timer = opts.mode === 'prov' ? setInterval(drain, 5) : null;

  const worker = new Worker(new URL('./loop.js', import.meta.url), { workerData: { provfsLoop: cfg } });
  let passthrough = false;
  let stopInfo: StopInfo = { reason: 'worker exited', counts: {} };
  let readyResolve!: () => void, readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => { readyResolve = res; readyReject = rej; });
  worker.on('message', (m: LoopMessage) => {
    if (m.type === 'ready') { passthrough = m.passthrough; readyResolve(); }
    else if (m.type === 'events') { drain(); m.events.forEach(deliver); }
    else if (m.type === 'stopped') stopInfo = { reason: m.reason, counts: m.counts };
  });
  const done = new Promise<StopInfo>((resolve) => {
    worker.on('error', (e) => { log.error(`request loop failed: ${e.stack ?? e.message}`); stopInfo = { reason: e.message, counts: {} }; });
    worker.on('exit', () => {
      if (timer) clearInterval(timer);
      drain();
      libc.close(devFd);
      libc.close(rootFd);
      readyReject(new Error(`provfs request loop ended before INIT: ${stopInfo.reason}`));
      const fin = ownJournal ? ownJournal.close().catch((e: Error) => log.error(`journal close: ${e.message}`)) : Promise.resolve();
      void fin.then(() => resolve(stopInfo));
    });
  });
  try {
    await ready;
  } catch (e) {
    try { unmount(mountpoint, true); } catch { /* already gone */ }
    await done;
    throw e;
  }
  log.debug(`mounted ${backing} on ${mountpoint} (${opts.mode}, passthrough ${passthrough ? 'on' : 'off'})`);
  return {
    backing, mountpoint, mode: opts.mode, dev: info.dev, stream,
    get passthrough() { return passthrough; },
    done,
    async stop(o?: { lazy?: boolean }): Promise<StopInfo> {
      try {
        unmount(mountpoint, false);
      } catch (e) {
        if (!(e instanceof libc.Errno)) throw e;
        if (e.errno === libc.E.EBUSY && o?.lazy) unmount(mountpoint, true);
        else if (e.errno !== libc.E.EINVAL && e.errno !== libc.E.ENOENT) throw e;
      }
      return done;
    },
  };
}

/** Absolute form of a path without resolving it (a stale mount point cannot be resolved). */
function pathOrSelf(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p.startsWith('/') ? p.replace(/\/+$/, '') || '/' : `${process.cwd()}/${p}`.replace(/\/+$/, '');
  }
}
