/**
 * @module kernel/keeper
 * The fd keeper: a small process that holds a duplicate of a provfs connection (/dev/fuse) and
 * of the backing root, so a daemon that dies does not take the mount with it — the kernel keeps
 * the connection while any fd is open, and applications' requests wait instead of failing with
 * ENOTCONN. When the daemon exits while the file system is still mounted, the keeper checks
 * whether a live upgrade replaced it (the runtime state file names a new live pid: follow it);
 * otherwise it hands its fds to a recovering daemon, which rebuilds the node table from the node
 * log and has the kernel resend unanswered requests (FUSE_NOTIFY_RESEND). It exits when the file
 * system is unmounted.
 *
 * The recovering daemon is normally already running: the keeper keeps a warm standby
 * (`provfsd --standby`: Node, modules, a compiled request loop, waiting) for the mount's current
 * mode, so a crash costs recovery itself and not a Node start-up; it starts one cold
 * (`provfsd --recover`) when the standby is missing, not ready or for another mode.
 * PROV_KEEPER_STANDBY=0 turns the standby off (one Node process less per mount).
 *
 * Provenance records survive too: a prov daemon keeps its record ring in a file
 * (kernel/ringfiles); the recovering daemon journals what the dead one had not yet made durable.
 * When the mount goes, the keeper removes ring files left empty (standbys it killed).
 *
 * Usage (started by provfsd --keeper): `node keeper.js --daemon-pid P --dev-fd N --root-fd R
 *   --backing DIR --mountpoint DIR`
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { logger } from '../collector/log.js';
import * as libc from './libc.js';
import { mountAt, FS_TYPE } from './mount.js';
import { daemonInfoPath, nodeLogPath, type DaemonInfo } from './runtime.js';
import { sweepEmptyRingFiles } from './ringfiles.js';

const log = logger('keeper');
const PROVFSD = fileURLToPath(new URL('./provfsd.js', import.meta.url));

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function mounted(mp: string): boolean {
  return mountAt(mp)?.fstype === FS_TYPE;
}

function readInfo(mp: string): DaemonInfo | null {
  try { return JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo; } catch { return null; }
}

/** A warm standby daemon for one mode of the mount (see the module comment). */
interface Standby { child: ChildProcess; mode: string; passthrough: boolean; ready: boolean }

function startStandby(mp: string, info: DaemonInfo, dev: number, root: number): Standby {
  const args = [PROVFSD, '--standby', '--keeper-pid', String(process.pid), '--dev-fd', String(dev), '--root-fd', String(root),
    '--backing', info.backing, '--mountpoint', mp, '--mode', info.mode, '--node-log', nodeLogPath(mp)];
  if (!info.passthrough) args.push('--no-passthrough');
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const sb: Standby = { child, mode: info.mode, passthrough: info.passthrough, ready: false };
  child.on('message', (m: { type: string }) => { if (m.type === 'standby') sb.ready = true; });
  child.on('error', () => { /* reported through exit */ });
  child.once('exit', () => { sb.ready = false; });
  return sb;
}

/** Hand the connection to a warm standby; resolves with it serving, or null (then start one cold). */
function wakeStandby(sb: Standby, info: DaemonInfo): Promise<ChildProcess | null> {
  if (!sb.ready || sb.child.exitCode !== null || !sb.child.connected || sb.mode !== info.mode || sb.passthrough !== info.passthrough) {
    return Promise.resolve(null);
  }
  return new Promise((resolve) => {
    const done = (c: ChildProcess | null): void => { sb.child.off('message', onMsg); sb.child.off('exit', onExit); resolve(c); };
    const onMsg = (m: { type: string }): void => {
      if (m.type === 'ready') done(sb.child);
      else if (m.type === 'stale') done(null);
    };
    const onExit = (): void => done(null);
    sb.child.on('message', onMsg);
    sb.child.once('exit', onExit);
    sb.child.send({ type: 'go', mode: info.mode, passthrough: info.passthrough, backing: info.backing, journalDir: info.journalDir });
  });
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      'daemon-pid': { type: 'string' }, 'dev-fd': { type: 'string' }, 'root-fd': { type: 'string' },
      backing: { type: 'string' }, mountpoint: { type: 'string' },
    },
  });
  const mp = values.mountpoint!, backing = values.backing!;
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
  };
  freshStandby();
  const restarts: number[] = [];
  for (;;) {
    const ev = await libc.pollInAsync(pidfd, 1000);
    if (!mounted(mp)) {
      // The standby's ring file is swept once it is gone.
      const sb = standby as Standby | null;
      if (sb) { try { sb.child.kill('SIGKILL'); } catch { /* gone */ } }
      for (let i = 0; i < 100 && sb && sb.child.exitCode === null && sb.child.signalCode === null; i++) await new Promise((r) => setTimeout(r, 10));
      sweepEmptyRingFiles(nodeLogPath(mp));
      log.info(`${mp} unmounted; keeper done`);
      return 0;
    }
    if (!ev && alive(pid)) {
      // A standby that died (or is for a mode the mount left by an upgrade) is replaced.
      freshStandby();
      continue;
    }
    libc.close(pidfd);
    const info = readInfo(mp);
    if (info && info.pid !== pid && alive(info.pid)) {
      log.info(`${mp}: daemon ${pid} handed over to ${info.pid}; following it`);
      pid = info.pid;
      pidfd = libc.pidfdOpen(pid);
      freshStandby();
      continue;
    }
    // The daemon died with the file system still mounted: restart it from what we hold, once
    // its pid is reaped (the journal lock of a prov daemon names that pid).
    const dead = performance.now();
    for (let i = 0; i < 600 && alive(pid); i++) await new Promise((r) => setTimeout(r, 5));
    log.debug(`${mp}: daemon ${pid} reaped ${(performance.now() - dead).toFixed(1)} ms after its exit was seen`);
    let child: ChildProcess | null = null;
    if (standby && info) {
      restarts.push(Date.now());
      const t0 = performance.now();
      child = await wakeStandby(standby, info);
      if (child) log.warn(`${mp}: daemon ${pid} is gone; its warm standby ${child.pid} serves after ${(performance.now() - t0).toFixed(1)} ms`);
      else log.warn(`${mp}: daemon ${pid} is gone; the standby could not take over, restarting cold`);
      standby = null;
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
        '--backing', info?.backing ?? backing, '--mountpoint', mp, '--mode', mode, '--node-log', nodeLogPath(mp)];
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
    log.info(`${mp}: served again by pid ${pid}`);
    freshStandby();
  }
}

main().then((code) => { process.exit(code); }, (e: Error) => { log.error(e.message); process.exit(1); });
