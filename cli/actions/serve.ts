/**
 * @module cli/actions/serve
 * `prov serve`: the lineage explorer over a graph store, on 127.0.0.1 unless told otherwise
 * (then a token is required). Runs until SIGINT or SIGTERM, then closes the server and the store.
 */
import type { GraphStore } from '../../graph/store.js';
import { existsSync } from 'node:fs';
import { InputError, NotFoundError } from '../../graph/errors.js';
import { logger } from '../../collector/log.js';
import { startServer } from '../../web/server/server.js';
import { openSqliteStore } from '../../graph/sqlite/index.js';

const log = logger('serve');

export interface ServeActionOptions {
  /** An open store, or the path of a SQLite store file. */
  store: GraphStore | string;
  host: string;
  port: number;
  /** Required when host is not loopback; also read from PROV_TOKEN by the CLI. */
  token?: string;
}

/** Serve until interrupted; the exit code is 0 after a clean stop. Bad options throw InputError. */
export default async function serve(opts: ServeActionOptions): Promise<number> {
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new InputError(`must be 0..65535, got ${opts.port}`, 'port');
  const owned = typeof opts.store === 'string';
  if (typeof opts.store === 'string' && !existsSync(opts.store)) throw new NotFoundError('no graph store here (run `prov ingest` first)', opts.store);
  // Read-only: the explorer never writes, and can run beside a collector that does.
  const store = typeof opts.store === 'string' ? await openSqliteStore(opts.store, { readonly: true }) : opts.store;
  let running;
  try {
    running = await startServer({ store, host: opts.host, port: opts.port, ...(opts.token ? { token: opts.token } : {}) });
  } catch (err) {
    if (owned) await store.close();
    throw err;
  }
  log.info(`lineage explorer on ${running.url}/ (store ${store.url})${opts.token ? '; API requests need the token' : ''}`);
  if (opts.token) log.info(`open ${running.url}/#token=<token> in a browser; the token stays in the page, never in a request URL`);
  await new Promise<void>((resolve) => {
    const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve(); };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  log.info('stopping');
  await running.close();
  if (owned) await store.close();
  return 0;
}
