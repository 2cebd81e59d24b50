/**
 * @module kernel/keeper
 * The fd keeper: a small process that holds a duplicate of a provfs connection (/dev/fuse) and
 * of the backing root, so a daemon that dies does not take the mount with it — the kernel keeps
 * the connection while any fd is open, and applications' requests wait instead of failing with
 * ENOTCONN. It exits when the file system is unmounted.
 *
 * Seeing a crash: the keeper watches the daemon's request-loop thread (a PIDFD_THREAD pidfd; its
 * tid is in the runtime state file) beside the whole process. A SIGKILL ends that thread within
 * a millisecond or so, while the process as a whole is gone only once its memory is torn down
 * (10–80 ms on a loaded machine). The thread gone with the process dying (its main thread a
 * zombie, or a SIGKILL pending for it) is a crash; the thread gone with the process living on is
 * an upgrade's handover or an unmount, and the whole process is watched from then on. When the
 * process ends, the runtime state file tells an upgrade (it names a new live pid: follow it)
 * from a crash.
 *
 * Taking over: the keeper keeps a warm standby (`provfsd --standby`) for the mount's current
 * mode: Node, modules and a compiled request loop up, the connection and backing root in hand,
 * and a node table that follows the serving daemon's node log (kernel/nodefollow). On a crash
 * the keeper writes the go word (1, the dead pid) on the standby's go wire, a FIFO its request
 * loop polls: the loop applies the log's last records, has the kernel resend what the dead
 * daemon never answered (FUSE_NOTIFY_RESEND) and reads on — no IPC, no main thread, no journal
 * and no per-node work before the first reply. The `go` message that follows lets the standby's
 * main thread journal what the dead daemon left in its ring file. Without a fitting standby (none
 * yet warm, another mode, PROV_KEEPER_STANDBY=0) a daemon starts cold (`provfsd --recover`).
 * The watch and the standby's wait run real-time when allowed (kernel/rtprio). Each takeover
 * leaves its phases in `<node log>.takeover` (kernel/takeovertrace); `<stream>.keeper.json`
 * says whether the standby is ready and how many takeovers there were.
 *
 * Provenance records survive too: a prov daemon keeps its record ring in a file
 * (kernel/ringfiles); the recovering daemon journals what the dead one had not yet made durable,
 * and a request the kernel resends is not recorded twice (kernel/resent). When the mount goes,
 * the keeper removes ring files left empty (standbys it killed).
 *
 * Usage (started by provfsd --keeper): `node keeper.js --daemon-pid P --dev-fd N --root-fd R
 *   --backing DIR --mountpoint DIR`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { TakeoverTrace } from './takeovertrace.js';
import { realtime, realtimeProcess } from './rtprio.js';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { logger } from '../collector/log.js';
import * as libc from './libc.js';
import { mountAt, fuseConnectionUp, FS_TYPE } from './mount.js';
import { daemonInfoPath, keeperFilePaths, keeperStatePath, nodeLogPath, type DaemonInfo, type KeeperState } from './runtime.js';
import { sweepEmptyRingFiles } from './ringfiles.js';
import { running } from '../collector/proc.js';

const log = logger('keeper');
const PROVFSD = fileURLToPath(new URL('./provfsd.js', import.meta.url));
/** How long a takeover's bookkeeping waits for the standby to serve the first requests (ms). */
const SERVED_FIRST_MS = 10;


/**
 * Whether process `pid` is on its way out: its main thread has exited (a zombie waiting for its
 * other threads), or a SIGKILL is pending for the whole process. A loop thread that is gone
 * while its process lives on ended for an upgrade or an unmount, not a crash.
 */
function dying(pid: number): boolean {
  let s: string;
  try { s = readFileSync(`/proc/${pid}/status`, 'utf8'); } catch { return true; } // reaped
  const state = /^State:\s+(\S)/m.exec(s)?.[1];
  if (state === 'Z' || state === 'X') return true;
  const shd = /^ShdPnd:\s+([0-9a-f]+)/m.exec(s)?.[1];
  return shd !== undefined && (BigInt(`0x${shd}`) & (1n << 8n)) !== 0n; // bit 8: signal 9
}

/**
 * Whether this keeper's mount is still at `mp`: a provfs mount there, and the connection the
 * keeper holds (`dev`) still up. A mount made at the same path after ours went (`prov umount X;
 * prov mount B X`) is another connection with its own keeper: taken for ours, it had this keeper
 * restart a daemon for a connection that was gone and remove the new mount's runtime files.
 */
function mounted(mp: string, dev: number): boolean {
  return mountAt(mp)?.fstype === FS_TYPE && fuseConnectionUp(dev);
}

function readInfo(mp: string): DaemonInfo | null {
  try { return JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo; } catch { return null; }
}

/** A warm standby daemon for one mode of the mount (see the module comment). */
interface Standby {
  child: ChildProcess; mode: string; passthrough: boolean; ready: boolean;
  /** The go wire (a FIFO opened read-write, its name already gone; the standby's fd 4 is the same). */
  go: number;
}

let standbys = 0;
/** Rewrites the keeper's state file (set in main). */
let onStandbyChange: () => void = () => undefined;

function startStandby(mp: string, info: DaemonInfo, dev: number, root: number): Standby {
  const args = [PROVFSD, '--standby', '--keeper-pid', String(process.pid), '--dev-fd', String(dev), '--root-fd', String(root),
    '--backing', info.backing, '--mountpoint', mp, '--mode', info.mode, '--node-log', nodeLogPath(mp), '--go-fd', '4'];
  if (!info.passthrough) args.push('--no-passthrough');
  // fd 4: the go wire, read by the standby's request loop itself (no IPC, no main thread in
  // between), written here with one write(2).
  const fifo = `${nodeLogPath(mp)}.go.${process.pid}.${++standbys}`;
  rmSync(fifo, { force: true });
  libc.mknodat(libc.AT.FDCWD, Buffer.from(fifo), libc.S.IFIFO | 0o600, 0);
  let go: number;
  try { go = libc.open(fifo, libc.O.RDWR | libc.O.CLOEXEC); } finally { rmSync(fifo, { force: true }); }
  libc.write(go, GO, 0); // a write of nothing: the call path compiled before it matters
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc', go] });
  const sb: Standby = { child, mode: info.mode, passthrough: info.passthrough, ready: false, go };
  child.on('message', (m: { type: string }) => { if (m.type === 'standby') { sb.ready = true; onStandbyChange(); } });
  child.on('error', () => { /* reported through exit */ });
  child.once('exit', () => { sb.ready = false; if (sb.go >= 0) libc.close(sb.go); sb.go = -1; onStandbyChange(); });
  return sb;
}

/** Whether the standby can take over the mount as `info` describes it now. */
function standbyFits(sb: Standby | null, info: DaemonInfo | null): boolean {
  return sb !== null && info !== null && sb.ready && sb.go >= 0 && sb.child.exitCode === null && sb.child.signalCode === null && sb.child.connected
    && sb.mode === info.mode && sb.passthrough === info.passthrough;
}

/**
 * The first step of a takeover, done the moment a crash is certain: one byte on the standby's go
 * wire, on which its request loop takes over by itself. False when the wire is broken.
 */
function goStandby(sb: Standby, deadPid: number): boolean {
  try {
    GO.writeUInt32LE(deadPid, 1);
    return libc.write(sb.go, GO) === GO.length;
  } catch (e) {
    log.warn(`the standby's go wire: ${(e as Error).message}`);
    return false;
  }
}

/**
 * The rest of a takeover, once the standby's loop was told (see {@link goStandby}): the `go`
 * message (where the journal is, which pid died) for its main thread. Resolves with the standby
 * settled (serving, journal recovered), or null (then start one cold).
 */
function settleStandby(sb: Standby, info: DaemonInfo, deadPid: number): Promise<ChildProcess | null> {
  return new Promise((resolve) => {
    const done = (c: ChildProcess | null): void => { sb.child.off('message', onMsg); sb.child.off('exit', onExit); resolve(c); };
    const onMsg = (m: { type: string }): void => { if (m.type === 'ready') done(sb.child); };
    const onExit = (): void => done(null);
    sb.child.on('message', onMsg);
    sb.child.once('exit', onExit);
    if (sb.child.exitCode !== null || sb.child.signalCode !== null) { done(null); return; }
    sb.child.send({ type: 'go', backing: info.backing, journalDir: info.journalDir, deadPid });
  });
}

/** The go word: 1, then the dead daemon's pid (u32 LE); one write(2) on a FIFO, so it arrives whole. */
const GO = Buffer.from([1, 0, 0, 0, 0]);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'daemon-pid': { type: 'string' }, 'dev-fd': { type: 'string' }, 'root-fd': { type: 'string' },
      backing: { type: 'string' }, mountpoint: { type: 'string' },
    },
  });
  const mp = values.mountpoint!, backing = values.backing!;
  // Seeing the daemon die is on the takeover path: ahead of other work on a busy machine (the
  // libuv pool threads that poll the pidfd are made later and inherit it). A no-op without the right.
  try { setPriority(-10); } catch { /* keep */ }
  // And real-time (below; without the right a no-op, kernel/rtprio): this thread and the libuv
  // pool threads that poll the pidfds; its children (standbys, restarted daemons) start ordinary.
  let pid = Number(values['daemon-pid']);
  let pidfd = libc.pidfdOpen(pid);
  const dev = libc.pidfdGetfd(pidfd, Number(values['dev-fd']));
  const root = libc.pidfdGetfd(pidfd, Number(values['root-fd']));
  log.info(`holding the connection of ${mp} (daemon pid ${pid})`);
  if (process.send) { process.send({ type: 'holding' }); process.disconnect(); }
  const useStandby = process.env.PROV_KEEPER_STANDBY !== '0';
  let standby: Standby | null = null;
  const freshStandby = (): void => {
    const info = readInfo(mp);
    if (!useStandby || !info) return;
    if (standby && standby.child.exitCode === null && standby.mode === info.mode && standby.passthrough === info.passthrough) return;
    if (standby) { try { standby.child.kill('SIGKILL'); } catch { /* gone */ } } // its empty ring file is swept later
    standby = startStandby(mp, info, dev, root);
    onStandbyChange();
  };
  let takeovers = 0;
  onStandbyChange = (): void => {
    const sb = standby as Standby | null;
    const st: KeeperState = { pid: process.pid, daemon: pid, standby: sb?.child.pid ?? null, standbyReady: Boolean(sb?.ready && sb.go >= 0), takeovers };
    try { writeFileSync(keeperStatePath(mp), JSON.stringify(st) + '\n', { mode: 0o600 }); } catch { /* the runtime dir is gone */ }
  };
  freshStandby();
  onStandbyChange();
  // The takeover path runs once in a while: compile it now (a first call is a lazy compile).
  dying(process.pid); standbyFits(null, readInfo(mp));
  // The daemon's request-loop thread, watched beside the whole process: a SIGKILL ends that
  // thread within a few ms, while the process as a whole is gone only once its memory is torn
  // down (10–80 ms on a loaded machine). Its exit with the process dying is a crash.
  let loopPidfd = -1;
  const watchLoop = (info: DaemonInfo | null): void => {
    if (loopPidfd >= 0) libc.close(loopPidfd);
    loopPidfd = -1;
    const tid = info?.pid === pid ? info.loopTid : undefined;
    // Only a thread of this very process (the tid of a thread gone may be another's now).
    if (!tid || !existsSync(`/proc/${pid}/task/${tid}`)) return;
    try { loopPidfd = libc.pidfdOpen(tid, libc.PIDFD_THREAD); } catch { return; }
    if (!existsSync(`/proc/${pid}/task/${tid}`)) { libc.close(loopPidfd); loopPidfd = -1; }
  };
  watchLoop(readInfo(mp));
  await Promise.all([0, 1, 2, 3].map(() => libc.pollInAsync(pidfd, 0))); // the pool threads are up
  realtimeProcess();
  const restarts: number[] = [];
  const unmounted = async (): Promise<number> => {
    // The standby's ring file is swept once it is gone.
    const sb = standby as Standby | null;
    if (sb) { try { sb.child.kill('SIGKILL'); } catch { /* gone */ } }
    for (let i = 0; i < 100 && sb && sb.child.exitCode === null && sb.child.signalCode === null; i++) await new Promise((r) => setTimeout(r, 10));
    sweepEmptyRingFiles(nodeLogPath(mp)); // only files of processes gone
    // The runtime files are named after the mount point: when another provfs mount is there
    // already (ours is gone: see mounted), they are its files.
    if (mountAt(mp)?.fstype !== FS_TYPE) {
      for (const f of keeperFilePaths(mp)) rmSync(f, { force: true });
    }
    log.info(`${mp} unmounted; keeper done`);
    return 0;
  };
  for (;;) {
    realtime(true);
    const group = libc.pollInAsync(pidfd, 1000).then((r) => (r ? 'process' : ''));
    let ev = loopPidfd < 0 ? await group : await Promise.race([group, libc.pollInAsync(loopPidfd, 1000).then((r) => (r ? 'loop' : ''))]);
    const trace = new TakeoverTrace(nodeLogPath(mp), 'keeper');
    trace.mark('exitSeen');
    if (ev === 'loop') {
      libc.close(loopPidfd);
      loopPidfd = -1;
      // Ended for an upgrade or an unmount: from now on the whole process is watched.
      if (!dying(pid)) continue;
      trace.mark('dying');
    }
    if (!ev && !running(pid)) ev = 'process';
    // A daemon that ended with its mount removes its state file first: one that is still there
    // and names the dead pid means a crash, and the standby is woken before anything else is
    // looked at (the mount table is read only when it is not).
    const info = ev ? readInfo(mp) : null;
    const crashed = info !== null && info.pid === pid && ev !== '';
    // A crash and a standby that fits: its loop takes over now; the rest follows.
    const woken = crashed && standbyFits(standby, info) && goStandby(standby!, pid);
    trace.mark(woken ? 'goSent' : 'info');
    // The standby's loop serves now: what this thread does next (the go message, logs, state
    // files, the next standby's spawn: 1.4 ms of CPU, traced) is nobody's wait, and real-time it
    // took a CPU from the applications inside their pause. Real-time again for the next watch.
    if (woken) {
      realtime(false);
      // This thread's next steps wait until the standby has served the applications' first
      // requests (2–4 ms after the kill, traced): until then they would be CPU taken from them.
      await new Promise((r) => setTimeout(r, SERVED_FIRST_MS));
    }
    if (!woken && !mounted(mp, dev)) return unmounted();
    if (!ev) {
      // A standby that died (or is for a mode the mount left by an upgrade) is replaced.
      freshStandby();
      continue;
    }
    libc.close(pidfd);
    if (info && info.pid !== pid && running(info.pid)) {
      log.info(`${mp}: daemon ${pid} handed over to ${info.pid}; following it`);
      pid = info.pid;
      pidfd = libc.pidfdOpen(pid);
      watchLoop(info);
      onStandbyChange();
      freshStandby();
      continue;
    }
    // The daemon died with the file system still mounted: restart it from what we hold.
    let child: ChildProcess | null = null;
    const sb = standby as Standby | null;
    if (woken) {
      restarts.push(Date.now());
      const t0 = performance.now();
      child = await settleStandby(sb!, info!, pid);
      trace.mark('readyMsg');
      if (child) log.warn(`${mp}: daemon ${pid} is gone; its warm standby ${child.pid} took over (settled after ${(performance.now() - t0).toFixed(1)} ms)`);
      else log.warn(`${mp}: daemon ${pid} is gone; the standby could not take over, restarting cold`);
      standby = null;
    } else if (sb) {
      try { sb.child.kill('SIGKILL'); } catch { /* gone */ }
      standby = null;
    }
    if (!child) {
      // A cold start opens the journal before it serves: wait until the dead pid is reaped (the
      // journal lock of a prov daemon names it).
      const dead = performance.now();
      for (let i = 0; i < 600 && running(pid); i++) await new Promise((r) => setTimeout(r, 5));
      log.debug(`${mp}: daemon ${pid} reaped ${(performance.now() - dead).toFixed(1)} ms after its exit was seen`);
    }
    while (!child) {
      const now = Date.now();
      restarts.push(now);
      while (restarts.length && restarts[0]! < now - 10_000) restarts.shift();
      if (restarts.length > 3) {
        log.error(`${mp}: the daemon keeps dying; giving up (the mount will fail with ENOTCONN until \`prov umount\`)`);
        return 1;
      }
      const mode = info?.mode ?? 'plain';
      const args = [PROVFSD, '--recover', '--keeper-pid', String(process.pid), '--dev-fd', String(dev), '--root-fd', String(root),
        '--backing', info?.backing ?? backing, '--mountpoint', mp, '--mode', mode, '--node-log', nodeLogPath(mp), '--dead-pid', String(pid)];
      if (mode === 'prov' && info?.journalDir) args.push('--journal', info.journalDir);
      if (info && !info.passthrough) args.push('--no-passthrough');
      log.warn(`${mp}: daemon ${pid} is gone; restarting it`);
      const c = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      const ready = await new Promise<boolean>((res) => {
        c.once('message', (m: { type: string }) => res(m.type === 'ready'));
        c.once('exit', () => res(false));
      });
      if (ready) child = c;
      else log.error(`${mp}: the restarted daemon failed`);
    }
    if (child.connected) child.disconnect();
    pid = child.pid!;
    pidfd = libc.pidfdOpen(pid);
    watchLoop(readInfo(mp));
    takeovers++;
    onStandbyChange();
    trace.write();
    log.info(`${mp}: served again by pid ${pid}`);
    freshStandby();
  }
}

main().then((code) => { process.exit(code); }, (e: Error) => { log.error(e.message); process.exit(1); });
