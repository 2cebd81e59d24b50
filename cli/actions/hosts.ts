/**
 * @module cli/actions/hosts
 * `prov hosts`: the hosts whose provenance the store holds (several collectors may write into
 * one Neo4j database), one per line, or `{"hosts": [...]}` with --json.
 */
import type { GraphStore } from '../../graph/store.js';

export interface HostsOptions {
  json?: boolean;
  /** Where to print (default stdout). */
  out?: { write(text: string): unknown };
}

/** Print the store's hosts; returns the exit code. */
export default async function hosts(store: GraphStore, opts: HostsOptions): Promise<number> {
  const list = await store.hosts();
  const out = opts.out ?? process.stdout;
  if (opts.json) {
    out.write(`${JSON.stringify({ store: store.url, hosts: list })}\n`);
  } else if (list.length === 0) {
    out.write(`no hosts recorded in ${store.url}\n`);
  } else {
    out.write(list.map((h) => `${h}\n`).join(''));
  }
  return 0;
}
