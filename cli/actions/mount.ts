/**
 * @module cli/actions/mount
 * `prov mount BACKING MOUNTPOINT [--mode plain|prov] [--journal DIR] [--no-passthrough]` starts a
 * provfs daemon (detached, logging to /run/prov/provfs/<stream>.log) and returns once the file
 * system answers; `prov umount MOUNTPOINT [--lazy]` unmounts it and waits for the daemon to end.
 * `prov upgrade MOUNTPOINT --mode plain|prov [--to PATH]` replaces the daemon live.
 * All detect a stale mount left by a crashed daemon (every access fails with ENOTCONN) and say
 * what to do; `prov umount` clears it.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync, readFileSync, rmSync, mkdirSync, realpathSync, existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve, join } from 'node:path';
import { logger } from '../../collector/log.js';
import { running } from '../../collector/proc.js';
import { EXIT, InputError, NotFoundError, exitCodeOf } from '../../graph/errors.js';
import { mountState, unmount } from '../../kernel/mount.js';
import { daemonInfoPath, daemonSocketPath, RUNTIME_DIR, type DaemonInfo } from '../../kernel/runtime.js';
import { connect } from 'node:net';
import { clearLeftovers, type Leftovers } from '../../kernel/leftovers.js';
import type { ProvfsMode } from '../../kernel/daemon.js';
import * as libc from '../../kernel/libc.js';

const log = logger('mount');
const DAEMON = fileURLToPath(new URL('../../kernel/provfsd.js', import.meta.url));

export interface MountCliOptions {
  mode?: ProvfsMode;
  /** Journal directory for prov mode (default $PROV_JOURNAL or /var/lib/prov/journal). */
  journal?: string;
  passthrough?: boolean;
  /** Start an fd keeper so a crashed daemon is restarted without losing the mount (default true). */
  keeper?: boolean;
  json?: boolean;
}

export const DEFAULT_JOURNAL_DIR = process.env.PROV_JOURNAL ?? '/var/lib/prov/journal';

function out(json: boolean | undefined, text: string, data: object): void {
  process.stdout.write(json ? JSON.stringify(data) + '\n' : text + '\n');
}

function fail(e: unknown, json?: boolean): number {
  const msg = e instanceof Error ? e.message : String(e);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: msg }) + '\n');
  log.error(msg);
  return exitCodeOf(e);
}

/** Absolute path without following it (a stale mount point cannot be resolved). */
function absolute(p: string): string {
  try { return realpathSync(p); } catch { return resolve(p); }
}

const staleHelp = (mp: string): string =>
  `${mp} is a provfs mount whose daemon is gone: every access fails with ENOTCONN ("Transport endpoint is not connected"). ` +
  `This happens when the daemon was killed or crashed. Run \`prov umount ${mp}\` to clear it, then mount again.`;

/** `prov mount`: returns the exit code. */
export async function mountCommand(backing: string, mountpoint: string, opts: MountCliOptions = {}): Promise<number> {
  const mode = opts.mode ?? 'plain';
  try {
    if (mode !== 'plain' && mode !== 'prov') throw new InputError(`--mode must be plain or prov (got ${String(mode)})`, '--mode');
    const mp = absolute(mountpoint);
    const state = mountState(mp);
    if (state === 'stale') throw new InputError(staleHelp(mp), 'MOUNTPOINT');
    if (state === 'live') throw new InputError(`${mp} is already a provfs mount (\`prov umount ${mp}\` first)`, 'MOUNTPOINT');
    const journal = opts.journal ?? DEFAULT_JOURNAL_DIR;
    const args = [DAEMON, '--backing', backing, '--mountpoint', mp, '--mode', mode];
    if (mode === 'prov') args.push('--journal', journal);
    if (opts.passthrough === false) args.push('--no-passthrough');
    if (opts.keeper !== false) args.push('--keeper');
    mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o700 });
    const logPath = daemonInfoPath(mp).replace(/\.json$/, '.log');
    const logFd = openSync(logPath, 'a', 0o600);
    const child = spawn(process.execPath, args, { detached: true, stdio: ['ignore', logFd, logFd, 'ipc'] });
    closeSync(logFd);
    const info = await new Promise<DaemonInfo>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`provfs daemon did not answer within 15 s (log: ${logPath})`)), 15_000);
      child.on('message', (m: { type: string; message?: string; code?: number } & DaemonInfo) => {
        clearTimeout(timer);
        if (m.type === 'ready') res(m);
        else rej(Object.assign(new InputError(m.message ?? 'provfs daemon failed'), { exit: m.code }));
      });
      child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`provfs daemon exited with ${code} before mounting (log: ${logPath})`)); });
    });
    child.removeAllListeners();
    if (child.connected) child.disconnect();
    child.unref();
    out(opts.json, `mounted ${info.backing} on ${info.mountpoint} (${info.mode}, passthrough ${info.passthrough ? 'on' : 'off'}, daemon pid ${info.pid}${info.stream ? `, journal ${info.journalDir}/${info.stream}` : ''})`, { ok: true, ...info });
    return EXIT.ok;
  } catch (e) {
    const code = (e as { exit?: number }).exit;
    const r = fail(e, opts.json);
    return code ?? r;
  }
}

export interface UmountCliOptions {
  /** Detach a busy mount (MNT_DETACH): it goes away when the last user leaves. */
  lazy?: boolean;
  json?: boolean;
}

/** `prov umount`: returns the exit code. */
export async function umountCommand(mountpoint: string, opts: UmountCliOptions = {}): Promise<number> {
  try {
    const mp = absolute(mountpoint);
    const state = mountState(mp);
    const infoPath = daemonInfoPath(mp);
    if (state === 'none') throw new NotFoundError(`${mp} is not mounted`, 'MOUNTPOINT');
    if (state === 'other') throw new InputError(`${mp} is not a provfs mount`, 'MOUNTPOINT');
    if (state === 'stale') {
      log.warn(`${mp}: the daemon is gone (ENOTCONN); clearing the stale mount`);
      try { unmount(mp, false); } catch { unmount(mp, true); }
      let dead: DaemonInfo | null = null;
      try { dead = JSON.parse(readFileSync(infoPath, 'utf8')) as DaemonInfo; } catch { /* no state file */ }
      if (dead) await waitGone(dead.pid, 5000);
      sayLeftovers(mp, await clearLeftovers(mp, dead));
      out(opts.json, `cleared stale mount ${mp} (the daemon's log stays in ${infoPath.replace(/\.json$/, '.log')})`, { ok: true, mountpoint: mp, stale: true });
      return EXIT.ok;
    }
    let info: DaemonInfo | null = null;
    try { info = JSON.parse(readFileSync(infoPath, 'utf8')) as DaemonInfo; } catch { info = null; }
    try {
      unmount(mp, opts.lazy ?? false);
    } catch (e) {
      if (e instanceof libc.Errno && e.errno === libc.E.EBUSY) {
        throw new InputError(`${mp} is busy (a process has a file or its cwd there); close it or use --lazy`, 'MOUNTPOINT');
      }
      throw e;
    }
    if (info) await waitGone(info.pid, 5000);
    if (info && !running(info.pid) && existsSync(infoPath)) {
      // Its state file outlived it: the daemon ended without its clean-up. Its log says why.
      log.warn(`${mp}: daemon ${info.pid} ended without cleaning up after itself; its log stays in ${infoPath.replace(/\.json$/, '.log')}`);
      sayLeftovers(mp, await clearLeftovers(mp, info));
    } else {
      // A clean unmount: the daemon's log has nothing worth keeping.
      rmSync(infoPath.replace(/\.json$/, '.log'), { force: true });
    }
    out(opts.json, `unmounted ${mp}`, { ok: true, mountpoint: mp, pid: info?.pid });
    return EXIT.ok;
  } catch (e) {
    return fail(e, opts.json);
  }
}

function sayLeftovers(mp: string, left: Leftovers): void {
  if (left.journaled > 0) log.info(`${mp}: ${left.journaled} records the dead daemon had not yet made durable were journaled from its ring`);
  if (left.reason) log.warn(`${mp}: ${left.reason}`);
  if (left.kept.length > 0) log.warn(`${mp}: kept ${left.kept.join(', ')}`);
}

async function waitGone(pid: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!running(pid)) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  log.warn(`daemon ${pid} still running ${ms} ms after unmount`);
}

export interface UpgradeCliOptions {
  mode: ProvfsMode;
  /** provfsd.js of another build (version N → N+1). */
  to?: string;
  /** Journal directory when switching to prov mode (default: the daemon's, else $PROV_JOURNAL or /var/lib/prov/journal). */
  journal?: string;
  json?: boolean;
}

/**
 * `prov upgrade MOUNTPOINT --mode prov|plain [--to PATH]`: ask the daemon of a mount to hand its
 * connection to a successor (live upgrade, no remount, open files stay open). Returns the exit
 * code; when the successor fails or rejects the state the old daemon keeps serving and the
 * message says why.
 */
export async function upgradeCommand(mountpoint: string, opts: UpgradeCliOptions): Promise<number> {
  try {
    if (opts.mode !== 'plain' && opts.mode !== 'prov') throw new InputError(`--mode must be plain or prov (got ${String(opts.mode)})`, '--mode');
    const mp = absolute(mountpoint);
    const state = mountState(mp);
    if (state === 'stale') throw new InputError(staleHelp(mp), 'MOUNTPOINT');
    if (state !== 'live') throw new NotFoundError(`${mp} is not a provfs mount`, 'MOUNTPOINT');
    let info: DaemonInfo | null = null;
    try { info = JSON.parse(readFileSync(daemonInfoPath(mp), 'utf8')) as DaemonInfo; } catch { info = null; }
    const to = opts.to ? resolve(opts.to) : undefined;
    if (to && !existsSync(to)) throw new NotFoundError(`no daemon build at ${to}`, '--to');
    const journalDir = opts.journal ?? info?.journalDir ?? DEFAULT_JOURNAL_DIR;
    const report = await daemonRequest(daemonSocketPath(mp), { cmd: 'upgrade', mode: opts.mode, daemon: to, journalDir });
    if (!report.ok) {
      out(opts.json, `upgrade of ${mp} failed; the old daemon${info ? ` (pid ${info.pid})` : ''} keeps serving: ${String(report.reason)}`, { ...report, mountpoint: mp });
      return EXIT.failure;
    }
    out(opts.json, `${mp} now served by pid ${String(report.pid)} in ${opts.mode} mode (stall ${Number(report.stallMs).toFixed(1)} ms)`, { ...report, mountpoint: mp });
    return EXIT.ok;
  } catch (e) {
    return fail(e, opts.json);
  }
}

/** One request on a daemon's control socket (see kernel/provfsd), one JSON answer. */
export function daemonRequest(path: string, body: object): Promise<Record<string, unknown>> {
  return new Promise((res, rej) => {
    const sock = connect(path);
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(body) + '\n'));
    sock.on('data', (c: string) => { buf += c; });
    sock.on('end', () => {
      try { res(JSON.parse(buf) as Record<string, unknown>); } catch { rej(new Error(`daemon at ${path} answered ${JSON.stringify(buf)}`)); }
    });
    sock.on('error', (e) => rej(new Error(`cannot reach the daemon's control socket ${path}: ${e.message}`)));
  });
}

/**
 * The provfs half of `prov up` / `prov down`: upgrade every running provfs daemon (found by
 * its runtime state file) to `mode`, live, in turn. Mounts already in that mode are left alone.
 * Returns the exit code (1 when any upgrade failed; each failure leaves that mount served by its
 * old daemon).
 */
export async function upgradeAllCommand(mode: ProvfsMode, opts: { journal?: string; json?: boolean } = {}): Promise<number> {
  let names: string[] = [];
  try { names = readdirSync(RUNTIME_DIR).filter((n) => n.endsWith('.json')); } catch { names = []; }
  let failed = 0;
  const results: object[] = [];
  for (const n of names) {
    let info: DaemonInfo;
    try { info = JSON.parse(readFileSync(join(RUNTIME_DIR, n), 'utf8')) as DaemonInfo; } catch { continue; }
    if (mountState(info.mountpoint) !== 'live') continue;
    if (info.mode === mode) { results.push({ mountpoint: info.mountpoint, ok: true, unchanged: true }); continue; }
    const journalDir = opts.journal ?? info.journalDir ?? DEFAULT_JOURNAL_DIR;
    try {
      const r = await daemonRequest(daemonSocketPath(info.mountpoint), { cmd: 'upgrade', mode, journalDir });
      results.push({ mountpoint: info.mountpoint, ...r });
      if (!r.ok) { failed++; log.warn(`${info.mountpoint}: ${String(r.reason)}`); }
    } catch (e) {
      failed++;
      results.push({ mountpoint: info.mountpoint, ok: false, reason: (e as Error).message });
      log.warn(`${info.mountpoint}: ${(e as Error).message}`);
    }
  }
  out(opts.json, results.map((r) => JSON.stringify(r)).join('\n') || 'no provfs mounts', { ok: failed === 0, mounts: results });
  return failed ? EXIT.failure : EXIT.ok;
}
