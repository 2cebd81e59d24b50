/**
 * @module cli/actions/ingest
 * `prov ingest`: run the collector over the journal into the graph store, once (drain and
 * exit) or with --follow (until SIGINT/SIGTERM).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { ProvConfig } from '../config.js';
import { openStore } from '../../graph/open.js';
import { runPipeline } from '../../collector/pipeline.js';
import { payloadDecoders } from '../decoders.js';
import { isInteractive } from '../../collector/log.js';

export interface IngestFlags {
  follow?: boolean;
  strict?: boolean;
  json?: boolean;
}

/** Where the join snapshot for a given store lives. */
export function joinStatePath(cfg: ProvConfig): string {
  const key = createHash('sha256').update(cfg.store).digest('hex').slice(0, 16);
  return join(cfg.home, 'collector', `join-${key}.json`);
}

export default async function ingest(cfg: ProvConfig, flags: IngestFlags): Promise<number> {
  const store = await openStore(cfg.store);
  const abort = new AbortController();
  const stop = (): void => abort.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const result = await runPipeline({
      journalDir: cfg.journal,
      store,
      statePath: joinStatePath(cfg),
      follow: flags.follow,
      strict: flags.strict,
      signal: abort.signal,
      decoders: await payloadDecoders(),
      onProgress: (p) => {
        if (isInteractive) process.stderr.write(`\r\x1b[2Kingest: ${p.records} records, ${p.batches} batches`);
      },
    });
    if (isInteractive) process.stderr.write('\r\x1b[2K');
    const rejected = result.rejectedByReader + result.rejectedByJoin;
    if (flags.json) {
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    } else {
      process.stdout.write(
        `ingested ${result.records} records in ${result.batches} batches into ${store.url}` +
          ` (resumed from ${result.resumedFrom}); rejected ${rejected}` +
          (rejected ? ` (reader ${result.rejectedByReader}, join ${result.rejectedByJoin}: see prov ingest --json)` : '') +
          (result.storeRetries ? `; the store was retried ${result.storeRetries} times` : '') + '\n',
      );
    }
    return 0;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await store.close();
  }
}
