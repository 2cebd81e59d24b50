/**
 * @module kernel/mount
 * Mounting and unmounting a FUSE file system with mount(2)/umount2(2) (no fusermount), and
 * reading /proc/self/mountinfo to learn a mount's device number and to tell a live provfs mount
 * from a stale one whose daemon died (every access then fails with ENOTCONN).
 */
import { readFileSync, statfsSync } from 'node:fs';
import * as libc from './libc.js';

export const FS_TYPE = 'fuse.provfs';

/** One line of /proc/self/mountinfo. */
export interface MountInfo {
  mountId: number;
  /** st_dev of files on the mount (userspace encoding). */
  dev: number;
  mountpoint: string;
  fstype: string;
  source: string;
  options: string;
}

const unescape = (s: string): string => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

export function readMountInfo(): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const [maj, min] = f[2]!.split(':').map(Number) as [number, number];
    out.push({
      mountId: Number(f[0]), dev: libc.makedev(maj, min),
      mountpoint: Buffer.from(unescape(f[4]!), 'latin1').toString(), options: f[5]!,
      fstype: f[sep + 1]!, source: unescape(f[sep + 2] ?? ''),
    });
  }
  return out;
}

/** The top-most mount at exactly `mountpoint` (absolute, resolved), if any. */
export function mountAt(mountpoint: string): MountInfo | undefined {
  const all = readMountInfo().filter((m) => m.mountpoint === mountpoint);
  return all[all.length - 1];
}

/**
 * Whether the FUSE connection behind `devFd` (a /dev/fuse fd) is still up. An unmount aborts
 * it (poll says POLLERR from then on) even while fds of it stay open; a daemon's crash does not.
 * A mount made again at the same path is a new connection: device numbers and mount ids are
 * reused, this is not.
 */
export function fuseConnectionUp(devFd: number): boolean {
  return (libc.pollIn([devFd], 0)[0]! & libc.POLLERR) === 0;
}

/** State of a path as a provfs mount point. */
export type MountState = 'none' | 'live' | 'stale' | 'other';

/** 'stale' = a provfs mount whose daemon is gone (ENOTCONN); 'other' = some other file system is mounted there. */
export function mountState(mountpoint: string): MountState {
  const m = mountAt(mountpoint);
  if (!m) return 'none';
  if (m.fstype !== FS_TYPE) return 'other';
  try {
    // STATFS always reaches the daemon (stat may be answered from the attribute cache).
    statfsSync(mountpoint);
    return 'live';
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOTCONN') return 'stale';
    return 'live';
  }
}

/**
 * mount(2) a FUSE file system served on `devFd` at `mountpoint`. allow_other lets every user
 * in; default_permissions makes the kernel check modes, so the daemon (root) need not.
 */
export function mountFuse(devFd: number, mountpoint: string, source: string): MountInfo {
  const data = `fd=${devFd},rootmode=40000,user_id=0,group_id=0,allow_other,default_permissions`;
  libc.mount(source, mountpoint, FS_TYPE, libc.MNT.NOSUID | libc.MNT.NODEV, data);
  const m = mountAt(mountpoint);
  if (!m || m.fstype !== FS_TYPE) throw new Error(`mounted ${mountpoint} but it is not in /proc/self/mountinfo`);
  return m;
}

/** umount2(2); `lazy` detaches a busy mount (MNT_DETACH). */
export function unmount(mountpoint: string, lazy = false): void {
  // A RELEASE is sent after close(2) returns and holds the mount until the daemon answers it:
  // an unmount right after the last close can find the mount busy for a moment. Retry for up
  // to 250 ms before reporting EBUSY.
  for (let waited = 0; ; waited += 5) {
    try {
      libc.umount2(mountpoint, lazy ? libc.MNT.DETACH : 0);
      return;
    } catch (e) {
      if (!(e instanceof libc.Errno && e.errno === libc.E.EBUSY) || waited >= 250) throw e;
      Atomics.wait(PAUSE, 0, 0, 5);
    }
  }
}

const PAUSE = new Int32Array(new SharedArrayBuffer(4));
