/**
 * @module ebpf/daemon
 * The collector process `prov capture start` leaves behind: excludes itself from capture,
 * drains the pinned ring into the journal (stream `ebpf` by default) until SIGTERM/SIGINT, then
 * drains what is left and closes the journal. Its progress is written to a small state file
 * (JSON, 0600) once a second for `prov capture status`.
 *
 * Run as: node dist/ebpf/daemon.js '<json DaemonConfig>'
 */
import { writeFileSync, renameSync } from 'node:fs';
import { openJournalWriter } from '../collector/journal/writer.js';
import { Drainer } from './drain.js';
import { excludePid, isAttached } from './loader.js';
import { logger } from '../collector/log.js';

const log = logger('ebpf-drain');

export interface DaemonConfig {
  pinDir: string;
  journalDir: string;
  stream: string;
  /** Progress file (drain.json) written once a second. */
  progressFile: string;
  /** Nice of the drain threads while the ring is filling up (default -10; null: never changed). */
  boostNice?: number | null;
  /** Nice of the drain threads while the ring is calm (default: unchanged; see DrainOptions.calmNice). */
  calmNice?: number | null;
}

export interface DaemonProgress {
  pid: number;
  ready: boolean;
  stopped: boolean;
  records: number;
  lost: number;
  bytes: number;
  /** Times the drain threads were given priority because the ring was filling up. */
  boosts?: number;
  lastSeq: number;
  updated: number;
  error?: string;
  /** Why the journal cannot be written now (its disk is full): records wait, nothing is lost yet. */
  stalled?: string;
}

function writeProgress(file: string, p: DaemonProgress): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(p), { mode: 0o600 });
  renameSync(tmp, file);
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as DaemonConfig;
  const progress: DaemonProgress = { pid: process.pid, ready: false, stopped: false, records: 0, lost: 0, bytes: 0, lastSeq: 0, updated: Date.now() };
  try {
    // Started before the attach (so the attach can exclude it): wait for the pins.
    const until = Date.now() + 15000;
    while (!isAttached(cfg.pinDir)) {
      if (Date.now() > until) throw new Error(`no capture attached at ${cfg.pinDir} after 15 s`);
      await new Promise((r) => setTimeout(r, 10));
    }
    excludePid(process.pid, cfg.pinDir); // already excluded by the attach; kept for a resumed start

    const writer = openJournalWriter({ dir: cfg.journalDir, stream: cfg.stream });
    const drainer = await Drainer.start({ pinDir: cfg.pinDir, sink: writer, boostNice: cfg.boostNice, calmNice: cfg.calmNice });
    let progressFailed = false;
    const tick = () => {
      Object.assign(progress, { records: drainer.stats.records, lost: drainer.stats.lost, bytes: drainer.stats.bytes, boosts: drainer.stats.boosts ?? 0, lastSeq: writer.lastSeq, updated: Date.now() });
      if (drainer.error) progress.error = drainer.error.message;
      if (writer.stalled) progress.stalled = writer.stalled.message;
      else delete progress.stalled;
      try {
        writeProgress(cfg.progressFile, progress);
        progressFailed = false;
      } catch (e) {
        // Its directory may be on the disk that filled up: the drain goes on regardless.
        if (!progressFailed) log.warn(`progress not written: ${(e as Error).message}`);
        progressFailed = true;
      }
    };
    progress.ready = true;
    tick();
    const timer = setInterval(tick, 1000);
    let stopping = false;
    const stop = async () => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      await drainer.stop();
      await writer.close();
      progress.stopped = true;
      tick();
      log.info(`drained ${drainer.stats.records} records into ${cfg.journalDir}/${cfg.stream} (${drainer.stats.lost} lost)`);
      process.exit(drainer.error ? 1 : 0);
    };
    process.on('SIGTERM', () => void stop());
    process.on('SIGINT', () => void stop());
  } catch (err) {
    progress.error = (err as Error).message;
    progress.updated = Date.now();
    try { writeProgress(cfg.progressFile, progress); } catch { /* nowhere to report */ }
    log.error(progress.error);
    process.exit(1);
  }
}

void main();
