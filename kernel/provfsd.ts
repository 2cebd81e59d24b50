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
import { mkdirSync, writeFileSync, rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { mountProvfs, type ProvfsMode } from './daemon.js';
import { RUNTIME_DIR, daemonInfoPath, type DaemonInfo } from './runtime.js';
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
      timeout: { type: 'string' },
    },
  });
  if (!values.backing || !values.mountpoint) {
    log.error('usage: provfsd --backing DIR --mountpoint DIR --mode plain|prov [--journal DIR] [--no-passthrough]');
    return 2;
  }
  const mode = values.mode as ProvfsMode;
  const m = await mountProvfs({
    backing: values.backing, mountpoint: values.mountpoint, mode,
    passthrough: !values['no-passthrough'],
    timeouts: values.timeout !== undefined ? timeoutsOf(values.timeout) : undefined,
    journalDir: mode === 'prov' ? values.journal : undefined,
  });
  const info: DaemonInfo = {
    pid: process.pid, backing: m.backing, mountpoint: m.mountpoint, mode, dev: m.dev,
    passthrough: m.passthrough, journalDir: mode === 'prov' ? values.journal : undefined, stream: m.stream,
    startedAt: new Date().toISOString(),
  };
  const infoPath = daemonInfoPath(m.mountpoint);
  mkdirSync(RUNTIME_DIR, { recursive: true, mode: 0o700 });
  writeFileSync(infoPath, JSON.stringify(info, null, 1) + '\n', { mode: 0o600 });
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${sig}: unmounting ${m.mountpoint}`);
    m.stop({ lazy: true }).catch((e: Error) => log.error(`unmount ${m.mountpoint}: ${e.message}`));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (process.send) {
    process.send({ type: 'ready', ...info });
    process.disconnect();
  }
  const end = await m.done;
  rmSync(infoPath, { force: true });
  log.info(`${m.mountpoint} unmounted (${end.reason})`);
  return 0;
}

main().then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    log.error(e.message);
    if (process.send) { try { process.send({ type: 'error', message: e.message, code: exitCodeOf(e) }); } catch { /* parent gone */ } }
    process.exitCode = exitCodeOf(e);
  },
);
