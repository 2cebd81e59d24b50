/**
 * @module kernel/keeper
 * The fd keeper: a small process that holds a duplicate of a provfs connection (/dev/fuse) and
 * of the backing root, so a daemon that dies does not take the mount with it — the kernel keeps
 * the connection while any fd is open, and applications' requests wait instead of failing with
 * ENOTCONN. When the daemon exits while the file system is still mounted, the keeper checks
 * whether a live upgrade replaced it (the runtime state file names a new live pid: follow it);
 * otherwise it starts a recovering daemon with its fds (`provfsd --recover`), which rebuilds the
 * node table from the node log and has the kernel resend unanswered requests
 * (FUSE_NOTIFY_RESEND). It exits when the file system is unmounted.
 *
 * Usage (started by provfsd --keeper): `node keeper.js --daemon-pid P --dev-fd N --root-fd R
 *   --backing DIR --mountpoint DIR`
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { logger } from '../collector/log.js';
import * as libc from './libc.js';
import { mountAt, FS_TYPE } from './mount.js';
import { daemonInfoPath, nodeLogPath, type DaemonInfo } from './runtime.js';

const log = logger('keeper');
const PROVFSD = fileURLToPath(new URL('./provfsd.js', import.meta.url));

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

function mounted(mp: string): boolean {
  return mountAt(mp)?.fstype === FS_TYPE;
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
  const restarts: number[] = [];
  for (;;) {
    const ev = await libc.pollInAsync(pidfd, 1000);
    if (!mounted(mp)) { log.info(`${mp} unmounted; keeper done`); return 0; }
    if (!ev && alive(pid)) continue;
    libc.close(pidfd);
    let info: DaemonInfo | null = null;
    try { info = JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo; } catch { info = null; }
    if (info && info.pid !== pid && alive(info.pid)) {
      log.info(`${mp}: daemon ${pid} handed over to ${info.pid}; following it`);
      pid = info.pid;
      pidfd = libc.pidfdOpen(pid);
      continue;
    }
    // The daemon died with the file system still mounted: restart it from what we hold, once
    // its pid is reaped (the journal lock of a prov daemon names that pid).
    for (let i = 0; i < 150 && alive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    let child = null;
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
  }
}

main().then((code) => { process.exit(code); }, (e: Error) => { log.error(e.message); process.exit(1); });
