/**
 * @module cli/actions/up
 * `prov up` puts the running host into provenance mode; `prov down` takes it out. Neither
 * restarts or remounts anything.
 *
 * Order of `up`, chosen so no event is lost: (1) attach the eBPF probes with their collector
 * daemon draining into the journal, so every process and fd operation from now on is recorded;
 * (2) live-upgrade every provfs mount to prov mode (their file-system events join processes
 * eBPF already knows); (3) start the graph collector (`prov ingest --follow`), which can start
 * at any time because the journal keeps everything until it is read; (4) start the resident
 * rebuild server (cli/rebuild-server) so `prov rebuild` through the native client starts warm.
 * `down` runs the reverse: the rebuild server stopped (after the request under way and its
 * ingest), provfs back to plain, probes detached (their collector drains the ring first), then
 * the graph collector is stopped once it has applied what remains.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ProvConfig } from '../config.js';
import { EXIT } from '../../graph/errors.js';
import { logger } from '../../collector/log.js';

const log = logger('up');
const PROV = fileURLToPath(new URL('../main.js', import.meta.url));

/** Where the graph collector daemon keeps its pid and log. */
function collectorFiles(cfg: ProvConfig): { pid: string; log: string } {
  const dir = join(cfg.home, 'collector');
  return { pid: join(dir, 'ingest.pid'), log: join(dir, 'ingest.log') };
}

function running(pidFile: string): number | null {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    process.kill(pid, 0);
    // A reused pid must still be our collector: check its command line.
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmdline.includes('ingest') && cmdline.includes('--follow') ? pid : null;
  } catch {
    return null;
  }
}

function startCollector(cfg: ProvConfig): number {
  const files = collectorFiles(cfg);
  const existing = running(files.pid);
  if (existing) return existing;
  mkdirSync(join(cfg.home, 'collector'), { recursive: true, mode: 0o700 });
  const logFd = openSync(files.log, 'a', 0o600);
  const child = spawn(process.execPath, [PROV, '--home', cfg.home, '--journal', cfg.journal, '--store', cfg.store, 'ingest', '--follow'], {
    detached: true, stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  child.unref();
  writeFileSync(files.pid, `${child.pid}\n`, { mode: 0o600 });
  return child.pid!;
}

async function stopCollector(cfg: ProvConfig): Promise<boolean> {
  const files = collectorFiles(cfg);
  const pid = running(files.pid);
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 600 && running(files.pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (running(files.pid)) log.warn(`collector pid ${pid} did not stop within 30 s; it keeps its checkpoint, stop it by hand`);
  else rmSync(files.pid, { force: true });
  return true;
}

export interface UpFlags {
  json?: boolean;
}

/** `prov up`: probes, provfs prov mode, collector. */
export async function up(cfg: ProvConfig, flags: UpFlags): Promise<number> {
  const { startCapture, captureStatus } = await import('../../ebpf/capture.js');
  const { upgradeAllCommand } = await import('./mount.js');
  const status = await captureStatus();
  let capture: unknown = status;
  if (!status.attached || !status.daemon?.alive) capture = await startCapture({ journalDir: cfg.journal });
  const provfs = await upgradeAllCommand('prov', { journal: cfg.journal, json: true });
  const collector = startCollector(cfg);
  // The rebuild server: a failure to start it is reported, not fatal (rebuild works without it).
  let rebuildServerPid: number | null = null;
  let rebuildServerError: string | undefined;
  try {
    const { startRebuildServer } = await import('../rebuild-server.js');
    rebuildServerPid = (await startRebuildServer({ logPath: join(cfg.home, 'rebuild', 'server.log') })).pid;
  } catch (e) {
    rebuildServerError = (e as Error).message;
    process.stderr.write(`prov up: ${rebuildServerError}\n`);
  }
  const summary = { capture, provfsOk: provfs === EXIT.ok, collectorPid: collector, rebuildServerPid, rebuildServerError, journal: cfg.journal, store: cfg.store };
  process.stdout.write(flags.json ? JSON.stringify(summary) + '\n'
    : `provenance mode on: eBPF probes attached, provfs mounts in prov mode${provfs === EXIT.ok ? '' : ' (some failed: see above)'}, collector pid ${collector} → ${cfg.store}, rebuild server ${rebuildServerPid === null ? 'not started' : `pid ${rebuildServerPid}`}\n`);
  return provfs;
}

/** `prov down`: provfs plain mode, probes detached, collector stopped after it caught up. */
export async function down(cfg: ProvConfig, flags: UpFlags): Promise<number> {
  const { stopCapture } = await import('../../ebpf/capture.js');
  const { upgradeAllCommand } = await import('./mount.js');
  // First the rebuild server: it finishes the rebuild under way (and its ingest) under capture.
  let rebuildServerStopped = false;
  try {
    rebuildServerStopped = await (await import('../rebuild-server.js')).stopRebuildServer();
  } catch (e) {
    process.stderr.write(`prov down: ${(e as Error).message}\n`);
  }
  const provfs = await upgradeAllCommand('plain', { journal: cfg.journal, json: true });
  let capture: unknown = null;
  try {
    capture = await stopCapture();
  } catch (e) {
    capture = { error: (e as Error).message };
  }
  // The idle attach `prov rebuild` leaves for later rebuilds (ebpf/warm) goes too.
  let rebuildPrograms = 0;
  try {
    const warm = await import('../../ebpf/warm.js');
    // What an interrupted rebuild still owes its journal goes there before the ring is gone.
    await warm.recoverWarm().catch((e: Error) => process.stderr.write(`prov down: ${e.message}\n`));
    rebuildPrograms = warm.detachWarm().programs;
  } catch (e) {
    process.stderr.write(`prov down: cannot detach the warm rebuild capture: ${(e as Error).message}\n`);
  }
  const collectorStopped = await stopCollector(cfg);
  process.stdout.write(flags.json ? JSON.stringify({ provfsOk: provfs === EXIT.ok, capture, rebuildPrograms, rebuildServerStopped, collectorStopped }) + '\n'
    : `provenance mode off: provfs mounts plain, probes detached, rebuild server ${rebuildServerStopped ? 'stopped' : 'was not running'}, collector ${collectorStopped ? 'stopped' : 'was not running'}\n`);
  return provfs;
}
