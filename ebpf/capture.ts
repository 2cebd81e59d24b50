/**
 * @module ebpf/capture
 * eBPF capture as a service: attach the pinned programs and drain them into a journal, either
 * inside this process ({@link captureToJournal}, for code and tests) or in a detached collector
 * daemon ({@link startCapture}, what `prov capture start` does), detach ({@link stopCapture}),
 * and report ({@link captureStatus}). The journal keeps raw records (codec ebpfRaw): readers
 * decode them with {@link ebpfDecoders}.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, closeSync, writeFileSync } from 'node:fs';
import { join, basename, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openJournalWriter, type JournalWriterHandle } from '../collector/journal/writer.js';
import { running } from '../collector/proc.js';
import { NotFoundError } from '../graph/errors.js';
import { Drainer, type DrainStats } from './drain.js';
import {
  attachCapture, detachCapture, attachedPrograms, readCounters, isAttached, LoaderError,
  DEFAULT_PIN_DIR, checkCapabilities, type AttachOptions,
} from './loader.js';
import type { DaemonConfig, DaemonProgress } from './daemon.js';
import { RingReader } from './ring.js';

export { ebpfDecoders, registerEbpfDecoder } from './decode.js';

export const DEFAULT_STATE_DIR = '/run/prov';
export const DEFAULT_STREAM = 'ebpf';

export interface StartOptions extends AttachOptions {
  /** Journal directory (created 0700 when missing). */
  journalDir: string;
  /** Journal stream name (default `ebpf`). */
  stream?: string;
  /** Where the daemon's state and log live (default /run/prov). */
  stateDir?: string;
  /** Journal segment size (default the journal's, 64 MiB) for {@link captureToJournal}. */
  segmentBytes?: number;
  /** Nice of the drain threads while the ring is over a quarter full (default -10; null: never changed). */
  boostNice?: number | null;
  /** Nice of the drain threads while the ring is calm (default: unchanged; 19 yields the CPU to the workloads watched). */
  calmNice?: number | null;
}

export interface CaptureHandle {
  pinDir: string;
  programs: string[];
  drainer: Drainer;
  writer: JournalWriterHandle;
  /** Detach, drain what is left, close the journal; nothing stays pinned. */
  stop(): Promise<DrainStats>;
}

/**
 * Attach and drain into `journalDir` from this process (the ring is read on a worker thread).
 * This process is excluded from capture.
 */
export async function captureToJournal(opts: StartOptions): Promise<CaptureHandle> {
  const attached = attachCapture(opts);
  let writer: JournalWriterHandle | null = null;
  try {
    writer = openJournalWriter({ dir: opts.journalDir, stream: opts.stream ?? DEFAULT_STREAM, segmentBytes: opts.segmentBytes });
    const drainer = await Drainer.start({ pinDir: attached.pinDir, sink: writer, boostNice: opts.boostNice, calmNice: opts.calmNice });
    const w = writer;
    let stopped: Promise<DrainStats> | null = null;
    return {
      pinDir: attached.pinDir, programs: attached.programs, drainer, writer: w,
      stop() {
        stopped ??= (async () => {
          try {
            detachCapture(attached.pinDir);
            return await drainer.stop();
          } finally {
            await w.close();
          }
        })();
        return stopped;
      },
    };
  } catch (err) {
    detachCapture(attached.pinDir);
    if (writer) await writer.close();
    throw err;
  }
}

/** What `prov capture start` leaves in the state directory (and returns). */
export interface CaptureStateFile {
  pinDir: string;
  /** Programs left out at attach (their tracepoint is missing on this kernel). */
  skipped?: string[];
  journalDir: string;
  stream: string;
  daemonPid: number;
  started: number;
  programs: string[];
  progressFile: string;
  logFile: string;
}

function stateFiles(pinDir: string, stateDir: string) {
  const name = basename(pinDir);
  return { state: join(stateDir, `${name}.json`), progress: join(stateDir, `${name}.drain.json`), log: join(stateDir, `${name}.log`) };
}

function daemonScript(): string {
  return fileURLToPath(new URL('./daemon.js', import.meta.url));
}

function readJson<T>(file: string): T | null {
  try { return JSON.parse(readFileSync(file, 'utf8')) as T; } catch { return null; }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Spawn the collector daemon. It waits (up to 15 s) for the programs to be attached at pinDir,
 * so it can be started before the attach and excluded from capture from the first event on.
 */
function spawnDaemon(cfg: DaemonConfig, logFile: string): number {
  rmSync(cfg.progressFile, { force: true });
  const logFd = openSync(logFile, 'a', 0o600);
  const child = spawn(process.execPath, [daemonScript(), JSON.stringify(cfg)], { detached: true, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  child.unref();
  return child.pid!;
}

/** Wait until the daemon drains (ready) or fails. */
async function daemonReady(pid: number, cfg: DaemonConfig, logFile: string): Promise<void> {
  const deadline = Date.now() + 15000;
  for (;;) {
    const p = readJson<DaemonProgress>(cfg.progressFile);
    if (p?.error) throw new LoaderError('drain', `collector daemon failed: ${p.error} (log: ${logFile})`);
    if (p?.ready) return;
    if (!running(pid)) throw new LoaderError('drain', `collector daemon exited before it was ready (log: ${logFile})`);
    if (Date.now() > deadline) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } throw new LoaderError('drain', `collector daemon not ready after 15 s (log: ${logFile})`); }
    await sleep(20);
  }
}

/**
 * `prov capture start`: attach, start a detached collector daemon that drains into the journal,
 * wait until it drains, and return. Capture continues after this process exits.
 *
 * When the programs are already attached but their collector is gone (it crashed or was
 * killed), only a new collector is started: it resumes from the pinned ring where the last one
 * stopped (`resumed: true`), with the settings of the original attach.
 */
export async function startCapture(opts: StartOptions): Promise<CaptureStateFile & { resumed: boolean }> {
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  const journalDir = resolve(opts.journalDir);
  const stream = opts.stream ?? DEFAULT_STREAM;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  const files = stateFiles(pinDir, stateDir);
  const cfg: DaemonConfig = { pinDir, journalDir, stream, progressFile: files.progress, ...(opts.boostNice !== undefined ? { boostNice: opts.boostNice } : {}), ...(opts.calmNice !== undefined ? { calmNice: opts.calmNice } : {}) };
  const prior = readJson<CaptureStateFile>(files.state);
  if (isAttached(pinDir)) {
    if (prior && running(prior.daemonPid)) throw new LoaderError('pin', `capture already running at ${pinDir} (collector pid ${prior.daemonPid})`);
    // A dead collector may linger as a zombie until init reaps it; its journal lock names it.
    if (prior) {
      const deadline = Date.now() + 5000;
      while (Date.now() < deadline && existsSync(`/proc/${prior.daemonPid}`)) await sleep(20);
    }
    const dcfg = prior ? { ...cfg, journalDir: prior.journalDir, stream: prior.stream } : cfg;
    const pid = spawnDaemon(dcfg, files.log);
    await daemonReady(pid, dcfg, files.log);
    const state: CaptureStateFile = {
      pinDir, journalDir: prior?.journalDir ?? journalDir, stream: prior?.stream ?? stream, daemonPid: pid,
      started: Date.now(), programs: attachedPrograms(pinDir), progressFile: files.progress, logFile: files.log,
    };
    writeFileSync(files.state, JSON.stringify(state, null, 2), { mode: 0o600 });
    return { ...state, resumed: true };
  }
  // The daemon starts first, so it is excluded from capture from the first event on.
  checkCapabilities();
  const pid = spawnDaemon(cfg, files.log);
  let attached: ReturnType<typeof attachCapture>;
  try {
    attached = attachCapture({ ...opts, pinDir, exclude: [...(opts.exclude ?? []), pid] });
  } catch (err) {
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    throw err;
  }
  try {
    await daemonReady(pid, cfg, files.log);
    const state: CaptureStateFile = {
      pinDir, journalDir, stream, daemonPid: pid, started: Date.now(), programs: attached.programs,
      skipped: attached.skipped, progressFile: files.progress, logFile: files.log,
    };
    writeFileSync(files.state, JSON.stringify(state, null, 2), { mode: 0o600 });
    return { ...state, resumed: false };
  } catch (err) {
    detachCapture(pinDir);
    try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    throw err;
  }
}

export interface StopResult {
  programs: number;
  records: number;
  lost: number;
  daemonStopped: boolean;
}

/** `prov capture stop`: detach, let the daemon drain what is left and exit, clean up. */
export async function stopCapture(opts: { pinDir?: string; stateDir?: string } = {}): Promise<StopResult> {
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  const files = stateFiles(pinDir, opts.stateDir ?? DEFAULT_STATE_DIR);
  const state = readJson<CaptureStateFile>(files.state);
  if (!isAttached(pinDir) && !state) throw new NotFoundError(`no capture attached at ${pinDir}`);
  const { programs } = detachCapture(pinDir);
  let daemonStopped = false;
  if (state && running(state.daemonPid)) {
    process.kill(state.daemonPid, 'SIGTERM');
    const deadline = Date.now() + 15000;
    while (running(state.daemonPid) && Date.now() < deadline) await sleep(20);
    if (running(state.daemonPid)) process.kill(state.daemonPid, 'SIGKILL');
    daemonStopped = true;
  }
  const p = readJson<DaemonProgress>(files.progress);
  rmSync(files.state, { force: true });
  rmSync(files.progress, { force: true });
  return { programs, records: p?.records ?? 0, lost: p?.lost ?? 0, daemonStopped };
}

export interface CaptureStatus {
  attached: boolean;
  pinDir: string;
  programs: string[];
  /** Records the kernel emitted / dropped since attach. */
  emitted: number;
  dropped: number;
  /** Emitted per second, sampled over `sampleMs`. */
  eventsPerSec: number;
  /** The ring: its size and the bytes written and not yet given back by the collector. */
  ring?: { bytes: number; pending: number };
  daemon?: { pid: number; alive: boolean; records: number; lost: number; journal: string; error?: string; /** Why its journal cannot be written now (e.g. ENOSPC). */ stalled?: string };
}

/** `prov capture status`: attached programs, event rate, drops, the collector daemon. */
export async function captureStatus(opts: { pinDir?: string; stateDir?: string; sampleMs?: number } = {}): Promise<CaptureStatus> {
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  const files = stateFiles(pinDir, opts.stateDir ?? DEFAULT_STATE_DIR);
  const attached = isAttached(pinDir);
  const st: CaptureStatus = { attached, pinDir, programs: attachedPrograms(pinDir), emitted: 0, dropped: 0, eventsPerSec: 0 };
  if (attached) {
    const a = readCounters(pinDir);
    const t0 = performance.now();
    await sleep(opts.sampleMs ?? 1000);
    const b = readCounters(pinDir);
    st.emitted = b.emitted;
    st.dropped = b.dropped;
    st.eventsPerSec = Math.round((b.emitted - a.emitted) / ((performance.now() - t0) / 1000));
    try {
      const ring = RingReader.open(join(pinDir, 'events'));
      st.ring = { bytes: ring.size, pending: ring.pending() };
      ring.close();
    } catch { /* detached meanwhile */ }
  }
  const state = readJson<CaptureStateFile>(files.state);
  if (state) {
    const p = readJson<DaemonProgress>(files.progress);
    st.daemon = {
      pid: state.daemonPid, alive: running(state.daemonPid), records: p?.records ?? 0, lost: p?.lost ?? 0,
      journal: join(state.journalDir, state.stream), ...(p?.error ? { error: p.error } : {}), ...(p?.stalled ? { stalled: p.stalled } : {}),
    };
  }
  if (!existsSync(pinDir) && !state) st.programs = [];
  return st;
}
