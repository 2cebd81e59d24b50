/**
 * @module kernel/provfsd
 * The provfs daemon process: mounts one provfs file system and serves it until it is unmounted
 * (from anywhere) or receives SIGTERM/SIGINT, which unmount it cleanly. `prov mount` starts it
 * detached and waits for its `ready` message on the IPC channel.
 *
 * Usage: `node dist/kernel/provfsd.js --backing DIR --mountpoint DIR --mode plain|prov
 *         [--journal DIR] [--no-passthrough] [--timeout SECONDS]`
 *
 * While it runs, `/run/prov/provfs/<stream>.json` (0600, directory 0700) records its pid,
 * backing directory, mount point, mode and journal stream, for `prov umount` and `prov upgrade`.
 */
import './v8flags.js'; // first: V8 settings before the loop's isolate starts
import { mkdirSync, writeFileSync, rmSync, chmodSync, realpathSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { createServer, type Server } from 'node:net';
import { mountProvfs, recoverProvfs, standbyProvfs, removeRecoveredRings, DEFAULT_TIMEOUTS, type ProvfsMode, type ProvfsMount, type UpgradeOptions } from './daemon.js';
import { runSuccessor } from './upgrade.js';
import { ringFilePath } from './ringfiles.js';
import { TakeoverTrace } from './takeovertrace.js';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as libc from './libc.js';
import { holdMemoryPastExit } from './mmhold.js';
import { RUNTIME_DIR, daemonInfoPath, daemonSocketPath, nodeLogPath, type DaemonInfo } from './runtime.js';
import { logger } from '../collector/log.js';
import { exitCodeOf, InputError } from '../graph/errors.js';

const log = logger('provfsd');

/** `--timeout S`: one cache timeout (seconds) for entries, attributes and negative entries. */
function timeoutsOf(v: string): { entry: number; attr: number; negative: number } {
  const t = Number(v);
  if (!(t >= 0)) throw new InputError(`--timeout must be a number of seconds ≥ 0 (got ${v})`, '--timeout');
  return { entry: t, attr: t, negative: t };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      backing: { type: 'string' }, mountpoint: { type: 'string' }, mode: { type: 'string', default: 'plain' },
      journal: { type: 'string' }, 'no-passthrough': { type: 'boolean', default: false },
      timeout: { type: 'string' }, 'timeout-entry': { type: 'string' }, 'timeout-attr': { type: 'string' },
      'timeout-negative': { type: 'string' }, successor: { type: 'boolean', default: false },
      keeper: { type: 'boolean', default: false }, 'node-log': { type: 'string' }, recover: { type: 'boolean', default: false },
      'keeper-pid': { type: 'string' }, 'dev-fd': { type: 'string' }, 'root-fd': { type: 'string' },
      standby: { type: 'boolean', default: false }, 'go-fd': { type: 'string' }, 'dead-pid': { type: 'string' },
    },
  });
  if (!values.backing || !values.mountpoint) {
    log.error('usage: provfsd --backing DIR --mountpoint DIR --mode plain|prov [--journal DIR] [--no-passthrough] [--timeout S]');
    return 2;
  }
  const mode = values.mode as ProvfsMode;
  if (mode !== 'plain' && mode !== 'prov') throw new InputError(`--mode must be plain or prov (got ${mode})`, '--mode');
  // Whatever this process becomes (daemon, standby, successor), its death unmaps nothing on the
  // way (kernel/mmhold). PROV_PROVFS_MMHOLD=0: without the holder (to measure it).
  if (process.env.PROV_PROVFS_MMHOLD !== '0') holdMemoryPastExit();
  let timeouts = values.timeout !== undefined ? timeoutsOf(values.timeout) : undefined;
  if (values['timeout-entry'] !== undefined) {
    timeouts = { entry: Number(values['timeout-entry']), attr: Number(values['timeout-attr']), negative: Number(values['timeout-negative']) };
  }
  let journalDir = mode === 'prov' ? values.journal : undefined;
  const publish = (m: ProvfsMount): DaemonInfo => {
    const info: DaemonInfo = {
      pid: process.pid, backing: m.backing, mountpoint: m.mountpoint, mode, dev: m.dev,
      passthrough: m.passthrough, journalDir, stream: m.stream, startedAt: new Date().toISOString(), loopTid: m.loopTid,
    };
    mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o700 });
    writeFileSync(daemonInfoPath(m.mountpoint), JSON.stringify(info, null, 1) + '\n', { mode: 0o600 });
    listenControl(m);
    return info;
  };
  const nodeLog = values['node-log'] ?? (values.keeper ? nodeLogPath(realpathSync(values.mountpoint)) : undefined);
  // prov mode keeps its records in a ring file with or without a keeper: `prov umount` of a
  // stale mount journals what a killed daemon left there. (Without a journal there is nowhere to
  // put them: the ring stays in memory.)
  const rings = nodeLog ?? (mode === 'prov' && journalDir ? nodeLogPath(realpathSync(values.mountpoint)) : undefined);
  let m: ProvfsMount;
  if (values.successor) {
    m = await runSuccessor({
      backing: values.backing, mountpoint: values.mountpoint, mode, passthrough: !values['no-passthrough'],
      timeouts: timeouts ?? DEFAULT_TIMEOUTS, journalDir, onSettled: publish, nodeLog, rings,
    });
  } else if (values.standby) {
    const got = await runStandby({
      mountpoint: values.mountpoint, mode, passthrough: !values['no-passthrough'], timeouts, nodeLog: nodeLog!,
      keeperPid: Number(values['keeper-pid']), devFd: Number(values['dev-fd']), rootFd: Number(values['root-fd']), goFd: Number(values['go-fd']),
    });
    if (!got) {
      rmSync(ringFilePath(nodeLog!), { force: true }); // this standby's ring, never used
      process.exit(0); // its warm loop thread would keep the process alive
    }
    m = got.mount;
    journalDir = got.journalDir; // from the keeper's word: what the dead daemon wrote to
    const info = publish(m);
    process.send?.({ type: 'ready', ...info });
    if (process.connected) process.disconnect();
  } else {
    if (values.recover) {
      // Take the connection back from the fd keeper.
      const pidfd = libc.pidfdOpen(Number(values['keeper-pid']));
      const devFd = libc.pidfdGetfd(pidfd, Number(values['dev-fd']));
      const rootFd = libc.pidfdGetfd(pidfd, Number(values['root-fd']));
      libc.close(pidfd);
      m = await recoverProvfs({
        devFd, rootFd, backing: values.backing, mountpoint: values.mountpoint, mode, passthrough: !values['no-passthrough'],
        timeouts, journalDir, nodeLog: nodeLog!, deadPid: values['dead-pid'] ? Number(values['dead-pid']) : undefined,
      });
    } else {
      mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o700 });
      m = await mountProvfs({
        backing: values.backing, mountpoint: values.mountpoint, mode, passthrough: !values['no-passthrough'], timeouts, journalDir, nodeLog, rings,
      });
    }
    const info = publish(m);
    if (values.keeper) {
      try { await startKeeper(m); } catch (e) { log.warn(`${m.mountpoint} is served without crash survival: ${(e as Error).message}`); }
    }
    if (process.send) {
      process.send({ type: 'ready', ...info });
      process.disconnect();
    }
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: unmounting ${m.mountpoint}`);
    m.stop({ lazy: true }).catch((e: Error) => log.error(`unmount ${m.mountpoint}: ${e.message}`));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  const end = await m.done;
  control?.close();
  removeRecoveredRings();
  if (end.reason !== 'upgraded') {
    rmSync(daemonInfoPath(m.mountpoint), { force: true });
    rmSync(daemonSocketPath(m.mountpoint), { force: true });
    rmSync(nodeLogPath(m.mountpoint), { force: true });
    log.info(`${m.mountpoint} unmounted (${end.reason})`);
  }
  return 0;
}

let control: Server | null = null;

/**
 * `--standby`: start warm beside the fd keeper, with the connection and backing root taken from
 * it now, following the serving daemon's node log. The keeper's byte on `--go-fd` (the daemon
 * died) makes the loop take over by itself; the keeper's `go` message, right behind it, says
 * where the journal is and which pid died, and the main thread then journals what the dead
 * daemon left. The keeper going away (the file system unmounted) ends the standby. Resolves with
 * the mount once serving, or null when there is nothing to serve.
 */
async function runStandby(o: {
  mountpoint: string; mode: ProvfsMode; passthrough: boolean; timeouts?: { entry: number; attr: number; negative: number }; nodeLog: string;
  keeperPid: number; devFd: number; rootFd: number; goFd: number;
}): Promise<{ mount: ProvfsMount; journalDir?: string } | null> {
  const pidfd = libc.pidfdOpen(o.keeperPid);
  let devFd: number, rootFd: number;
  try {
    devFd = libc.pidfdGetfd(pidfd, o.devFd);
    rootFd = libc.pidfdGetfd(pidfd, o.rootFd);
  } finally {
    libc.close(pidfd);
  }
  const trace = new TakeoverTrace(o.nodeLog, 'standby');
  const sb = await standbyProvfs({ mountpoint: o.mountpoint, mode: o.mode, passthrough: o.passthrough, timeouts: o.timeouts, nodeLog: o.nodeLog, devFd, rootFd, goFd: o.goFd });
  type Go = { type: 'go'; backing: string; journalDir?: string; since?: number; deadPid?: number };
  const go = await new Promise<Go | null>((resolve) => {
    process.on('message', (msg: { type?: string }) => { if (msg.type === 'go') resolve(msg as Go); });
    process.once('disconnect', () => resolve(null));
    process.send?.({ type: 'standby', pid: process.pid });
  });
  if (!go) return null;
  trace.mark('goMsg');
  const servingAt = await sb.serving;
  trace.mark('loopServing', servingAt);
  const journalDir = o.mode === 'prov' ? go.journalDir : undefined;
  const mount = await sb.settle({ backing: go.backing, journalDir, since: go.since, deadPid: go.deadPid });
  trace.mark('journal');
  trace.write();
  return { mount, journalDir };
}

/**
 * Start the fd keeper of this mount and wait until it holds the connection (it takes its fds
 * from us with pidfd_getfd): only then is the mount crash-safe, so only then is it `ready`.
 */
async function startKeeper(m: ProvfsMount): Promise<void> {
  const keeper = fileURLToPath(new URL('./keeper.js', import.meta.url));
  const child = spawn(process.execPath, [keeper, '--daemon-pid', String(process.pid), '--dev-fd', String(m.fds.dev),
    '--root-fd', String(m.fds.root), '--backing', m.backing, '--mountpoint', m.mountpoint], { detached: true, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the fd keeper did not start within 15 s')), 15_000);
    child.once('message', () => { clearTimeout(timer); resolve(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the fd keeper exited (${code})`)); });
  });
  child.removeAllListeners('exit');
  if (child.connected) child.disconnect();
  child.unref();
}

/**
 * The control socket (`<stream>.sock`, 0600): one JSON request per line —
 * `{"cmd":"upgrade","mode":"prov","daemon":PATH?,"journalDir":DIR?,"stateVersion":N?}` → an UpgradeReport line;
 * `{"cmd":"status"}` → this daemon's pid and mode.
 */
function listenControl(m: ProvfsMount): void {
  const path = daemonSocketPath(m.mountpoint);
  rmSync(path, { force: true });
  control = createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let req: { cmd?: string } & Partial<UpgradeOptions>;
      try { req = JSON.parse(buf.slice(0, nl)) as typeof req; } catch { sock.end(JSON.stringify({ ok: false, reason: 'bad request' }) + '\n'); return; }
      if (req.cmd === 'status') { sock.end(JSON.stringify({ ok: true, pid: process.pid, mode: m.mode }) + '\n'); return; }
      if (req.cmd !== 'upgrade') { sock.end(JSON.stringify({ ok: false, reason: `unknown command ${String(req.cmd)}` }) + '\n'); return; }
      m.upgrade({ mode: req.mode as ProvfsMode, daemon: req.daemon, journalDir: req.journalDir, stateVersion: typeof req.stateVersion === 'number' ? req.stateVersion : undefined }).then(
        (r) => sock.end(JSON.stringify(r) + '\n'),
        (e: Error) => sock.end(JSON.stringify({ ok: false, reason: e.message }) + '\n'),
      );
    });
    sock.on('error', () => { /* client went away */ });
  });
  // The daemon's umask is 0 (it creates files with modes the kernel already masked), so the
  // socket is made 0600 right after; its directory is 0700 meanwhile.
  control.listen(path, () => {
    try { chmodSync(path, 0o600); } catch (e) { log.warn(`control socket ${path}: ${(e as Error).message}`); }
  });
  m.beforeHandoff = () => { control?.close(); control = null; };
  control.unref();
}

main().then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    log.error(e.message);
    if (process.send) { try { process.send({ type: 'error', message: e.message, code: exitCodeOf(e) }); } catch { /* parent gone */ } }
    process.exitCode = exitCodeOf(e);
  },
);
