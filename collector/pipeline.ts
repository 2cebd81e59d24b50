/**
 * @module collector/pipeline
 * The collector: follows the journal from a checkpoint, merges the streams by time, runs the
 * join engine and writes its batches into a graph store.
 *
 * Exactly once in effect, without a two-phase commit: the store commits each batch with its
 * checkpoint first; the join engine's state is snapshotted to a file afterwards (every few
 * seconds and at the end). After a crash the engine restarts from its last snapshot, which
 * is at or behind the store's checkpoint, and re-derives the same edges from the same journal
 * positions; the store ignores what it already holds (edges are keyed by journal position).
 *
 * A store outage never loses events: the batch is kept and retried with backoff while the
 * journal keeps them durable; in follow mode it retries forever, otherwise up to
 * `maxRetryMs` and then fails with StoreError (a rerun resumes where it stopped).
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { StoreError, ProvError } from '../graph/errors.js';
import type { Checkpoint } from '../graph/model.js';
import type { GraphStore } from '../graph/store.js';
import { JoinEngine, type JoinState, type JoinStats } from './join/engine.js';
import { openJournalReader, type PayloadDecoder, type JournalRecord } from './journal/index.js';
import { logger } from './log.js';
import { StreamMerger } from './merge.js';

const log = logger('collector');

export interface PipelineOptions {
  journalDir: string;
  store: GraphStore;
  /** File holding the join engine's snapshot (created 0600). */
  statePath: string;
  /** Keep following the journal until `signal` aborts. */
  follow?: boolean;
  signal?: AbortSignal;
  /** Emit the strict rule's edges too. */
  strict?: boolean;
  /** Decoders for binary payload codecs (e.g. the eBPF source's). */
  decoders?: ReadonlyMap<number, PayloadDecoder>;
  /** Records per store transaction (default 20,000). */
  batchRecords?: number;
  /** Longest a record waits before its batch is written in follow mode, ms (default 200). */
  batchDelayMs?: number;
  /** Snapshot the join state at most this often, ms (default 5,000). */
  snapshotEveryMs?: number;
  /** Without follow: give up on an unreachable store after this long, ms (default 60,000). */
  maxRetryMs?: number;
  /** Called after each committed batch. */
  onProgress?: (p: PipelineProgress) => void;
}

export interface PipelineProgress {
  records: number;
  batches: number;
  checkpoint: Checkpoint;
  /** Records the journal reader skipped as undecodable or invalid. */
  rejectedByReader: number;
  /** Records the join engine rejected. */
  rejectedByJoin: number;
  storeRetries: number;
}

export interface PipelineResult extends PipelineProgress {
  join: JoinStats;
  /** Where the run started: 'snapshot' (resumed) or 'start' (replayed the journal from the beginning). */
  resumedFrom: 'snapshot' | 'start';
}

interface SavedState {
  version: 1;
  store: string;
  checkpoint: Checkpoint;
  join: JoinState;
}

function loadState(path: string, storeUrl: string): SavedState | null {
  if (!existsSync(path)) return null;
  try {
    const s = JSON.parse(readFileSync(path, 'utf8')) as SavedState;
    if (s.version !== 1 || s.store !== storeUrl) {
      log.warn(`${path}: snapshot belongs to another store or version; replaying the journal from the start`);
      return null;
    }
    return s;
  } catch (e) {
    log.warn(`${path}: unreadable join snapshot (${(e as Error).message}); replaying the journal from the start`);
    return null;
  }
}

function saveState(path: string, s: SavedState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
  renameSync(tmp, path);
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

/** How long (wall ms) a followed stream may be silent before the merger stops waiting for it. */
export const FOLLOW_IDLE_MS = 1_000;

/** Run the collector until the journal is drained (or, with follow, until aborted). */
export async function runPipeline(opts: PipelineOptions): Promise<PipelineResult> {
  const { store, signal } = opts;
  const batchRecords = opts.batchRecords ?? 20_000;
  const batchDelayMs = opts.batchDelayMs ?? 200;
  const snapshotEveryMs = opts.snapshotEveryMs ?? 5_000;
  const maxRetryMs = opts.maxRetryMs ?? 60_000;

  const saved = loadState(opts.statePath, store.url);
  const engine = saved ? JoinEngine.restore(saved.join) : new JoinEngine({ strict: opts.strict });
  const reader = openJournalReader(opts.journalDir, { from: saved?.checkpoint ?? {}, decoders: opts.decoders });
  // Following a live journal, a stream's writer may lag (the eBPF drain on a busy host): a
  // stream counts as idle, and stops holding the others back, only after a second without
  // records, or a provfs open could be joined before the eBPF fork and exec of its caller.
  // A one-shot run knows instead: a stream the reader has read to its end is closed, so the
  // order never depends on how long a store commit took.
  const merger = new StreamMerger<JournalRecord>({ idleMs: opts.follow ? FOLLOW_IDLE_MS : Infinity });
  for (const s of reader.streams()) merger.add(s);

  const progress: PipelineProgress = {
    records: 0, batches: 0, checkpoint: saved?.checkpoint ?? {}, rejectedByReader: 0, rejectedByJoin: 0, storeRetries: 0,
  };
  let pending = 0;
  let firstPendingAt = 0;
  let lastSnapshotAt = performance.now();

  const commit = async (): Promise<void> => {
    const batch = engine.takeBatch();
    const started = performance.now();
    for (let delay = 250; ; delay = Math.min(delay * 2, 30_000)) {
      try {
        await store.ingest(batch);
        break;
      } catch (e) {
        const err = e instanceof ProvError ? e : new StoreError((e as Error).message, store.url);
        if (!(err instanceof StoreError)) throw err;
        progress.storeRetries++;
        const waited = performance.now() - started;
        if (signal?.aborted || (!opts.follow && waited > maxRetryMs)) {
          throw new StoreError(`gave up after ${Math.round(waited / 1000)} s: ${err.message}; the journal keeps every event, rerun to resume`, store.url);
        }
        log.warn(`store unreachable (${err.message}); retrying in ${delay} ms — events stay in the journal`);
        await sleep(delay, signal);
      }
    }
    progress.batches++;
    progress.checkpoint = batch.checkpoint;
    progress.rejectedByReader = reader.stats.rejected;
    progress.rejectedByJoin = Object.values(engine.stats().rejected).reduce((a, b) => a + b, 0);
    pending = 0;
    opts.onProgress?.({ ...progress });
    if (performance.now() - lastSnapshotAt >= snapshotEveryMs) snapshot();
  };
  const snapshot = (): void => {
    saveState(opts.statePath, { version: 1, store: store.url, checkpoint: engine.checkpoint(), join: engine.snapshot() });
    lastSnapshotAt = performance.now();
  };
  const apply = (recs: JournalRecord[]): void => {
    for (const r of recs) {
      engine.apply(r);
      progress.records++;
      if (pending++ === 0) firstPendingAt = performance.now();
    }
  };

  try {
    for (;;) {
      const recs = reader.readBatch(batchRecords);
      for (const r of recs) merger.push(r);
      if (!opts.follow) for (const s of reader.drained()) merger.close(s);
      apply(merger.drain());
      if (pending >= batchRecords) await commit();
      if (recs.length > 0) continue;
      // The journal has nothing more right now.
      if (!opts.follow || signal?.aborted) break;
      for (const s of reader.streams()) merger.add(s);
      apply(merger.drain());
      if (pending > 0 && performance.now() - firstPendingAt >= batchDelayMs) await commit();
      await sleep(25, signal);
    }
    apply(merger.flush());
    if (pending > 0 || progress.batches === 0) await commit();
    snapshot();
    if (!opts.follow) await store.caughtUp?.();
  } finally {
    reader.close();
  }
  return { ...progress, join: engine.stats(), resumedFrom: saved ? 'snapshot' : 'start' };
}
