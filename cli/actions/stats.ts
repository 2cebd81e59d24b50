/**
 * @module cli/actions/stats
 * `prov stats`: counts of nodes and edges by kind, gaps, hosts and the ingest checkpoint.
 */
import type { ProvConfig } from '../config.js';
import { openStore } from '../../graph/open.js';

export default async function stats(cfg: ProvConfig, flags: { json?: boolean }): Promise<number> {
  const store = await openStore(cfg.store);
  try {
    const s = await store.stats();
    if (flags.json) {
      process.stdout.write(JSON.stringify({ store: store.url, ...s }, null, 2) + '\n');
      return 0;
    }
    const kv = (o: Record<string, number | undefined>): string =>
      Object.entries(o).map(([k, v]) => `${k} ${v ?? 0}`).join(', ') || 'none';
    const lines = [
      `store       ${store.url}`,
      `nodes       ${kv(s.nodes)}`,
      `edges       ${kv(s.edges)}`,
      `gaps        ${s.gaps} (windows of lost events)`,
      `hosts       ${s.hosts}`,
      `checkpoint  ${kv(s.checkpoint)}`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
    return 0;
  } finally {
    await store.close();
  }
}
