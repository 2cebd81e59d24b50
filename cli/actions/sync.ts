/**
 * @module cli/actions/sync
 * `prov sync SRC DST [--watch] [--dry-run] [--delete] [--json]`: make DST (a directory, or
 * `host:path` over ssh) equal SRC using what the journal recorded since the last sync of this
 * pair; a gap in the record means a full comparison, and the summary says so.
 *
 * Options: `journal` (default <PROV_HOME>/journal), `state` (directory for per-pair checkpoints,
 * default <PROV_HOME>/sync). Output: one summary line per sync (files, bytes, renames, deletes,
 * time, incremental or full and why), or one JSON object per sync with --json; --dry-run prints
 * the plan. Progress redraws on stderr only on a TTY. Exit codes as in graph/errors.ts.
 */
import { isInteractive } from '../../collector/log.js';
import { syncOnce, watch, type SyncResult } from '../../collector/sync/engine.js';
import { JournalFeed } from '../../collector/sync/journalfeed.js';
import { provHome } from '../../collector/sync/state.js';
import { ebpfDecoders } from '../../ebpf/decode.js';
import { exitCodeOf } from '../../graph/errors.js';

export interface SyncActionOptions {
  watch?: boolean;
  dryRun?: boolean;
  delete?: boolean;
  json?: boolean;
  /** Journal directory. */
  journal?: string;
  /** Directory holding the per-pair checkpoints. */
  state?: string;
  /** Compare contents by hash in a full comparison (like rsync --checksum). */
  checksum?: boolean;
}

function mib(bytes: number): string {
  return bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`;
}

/** One line for a human. */
export function summaryLine(r: SyncResult): string {
  const c = r.counts;
  const what = r.mode === 'incremental'
    ? `incremental (${r.relevant} of ${r.records} records concerned SRC)`
    : `FULL COMPARISON: ${r.reason}`;
  const parts = [
    `${c.files} files (${mib(c.bytes)})`, `${c.renames} renames`, `${c.deletes} deletes`,
    ...(c.dirs ? [`${c.dirs} dirs`] : []), ...(c.symlinks ? [`${c.symlinks} symlinks`] : []),
    ...(c.metadata ? [`${c.metadata} metadata`] : []), ...(c.skipped ? [`${c.skipped} skipped (not file, dir or symlink)`] : []),
  ];
  return `${r.dryRun ? 'would sync' : 'synced'}: ${parts.join(', ')} in ${r.seconds.toFixed(3)} s; ${what}`;
}

function report(r: SyncResult, json: boolean): void {
  if (json) { process.stdout.write(JSON.stringify(r) + '\n'); return; }
  if (r.dryRun && r.actions) for (const a of r.actions) process.stdout.write(`  ${a}\n`);
  process.stdout.write(summaryLine(r) + '\n');
}

/** Run `prov sync`; returns the exit code. */
export default async function sync(src: string, dst: string, opts: SyncActionOptions = {}): Promise<number> {
  const feed = new JournalFeed(opts.journal ?? `${provHome()}/journal`, ebpfDecoders);
  const progress = isInteractive && !opts.json
    ? (done: number, total: number): void => { process.stderr.write(`\r\x1b[Ksync: ${done}/${total}`); if (done === total) process.stderr.write('\r\x1b[K'); }
    : undefined;
  const o = {
    src, dst, delete: opts.delete, dryRun: opts.dryRun, checksum: opts.checksum, feed,
    stateDir: opts.state, progress,
  };
  try {
    if (opts.watch) {
      const ac = new AbortController();
      const stop = (): void => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        await watch(o, (r) => report(r, Boolean(opts.json)), ac.signal);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
      return 0;
    }
    report(await syncOnce(o), Boolean(opts.json));
    return 0;
  } catch (e) {
    const msg = (e as Error).message;
    if (opts.json) process.stdout.write(JSON.stringify({ error: msg }) + '\n');
    else process.stderr.write(`prov sync: ${msg}\n`);
    return exitCodeOf(e);
  } finally {
    await feed.close();
  }
}
