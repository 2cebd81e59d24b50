/**
 * @module web/server/server
 * Starting and stopping the explorer's HTTP server: the bind rule is checked before listening,
 * and closing ends open live streams too, so a test or `prov serve` never hangs on exit.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GraphStore } from '../../graph/store.js';
import { createApp } from './app.js';
import { checkBind } from './security.js';

export interface ServeOptions {
  store: GraphStore;
  /** Default 127.0.0.1. Anything but loopback needs `token`. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  token?: string;
  uiDir?: string;
  pollMs?: number;
}

export interface RunningServer {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

/** Check the bind rule, then listen. Rejects (InputError) when the rule refuses the address. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const host = opts.host ?? '127.0.0.1';
  checkBind(host, opts.token);
  const app = createApp({
    store: opts.store,
    ...(opts.token ? { token: opts.token } : {}),
    ...(opts.uiDir ? { uiDir: opts.uiDir } : {}),
    ...(opts.pollMs !== undefined ? { pollMs: opts.pollMs } : {}),
  });
  const server = createServer(app);
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, host, () => { server.off('error', reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const shown = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return {
    url: `http://${shown}:${port}`,
    port,
    server,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
