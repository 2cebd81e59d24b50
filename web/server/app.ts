/**
 * @module web/server/app
 * The Express application of `prov serve`: security headers and the token check first, then
 * the JSON API under /api over any GraphStore, then the built UI (web/ui/dist) with the
 * single-page fallback so deep links load, and the one error handler last.
 */
import express, { type Express } from 'express';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GraphStore } from '../../graph/store.js';
import { errorHandler, unknownRoute } from './errors.js';
import { requireToken, securityHeaders } from './security.js';
import { searchRoutes } from './routes/search.js';
import { nodeRoutes } from './routes/node.js';
import { lineageRoutes } from './routes/lineage.js';
import { activityRoutes } from './routes/activity.js';
import { exportRoutes } from './routes/export.js';
import { streamRoutes } from './routes/stream.js';

/** Where Vite writes the UI (web/build.sh), seen from dist/web/server/. */
export const UI_DIR = fileURLToPath(new URL('../../../web/ui/dist', import.meta.url));

export interface AppOptions {
  store: GraphStore;
  /** When set, every /api request must carry `Authorization: Bearer <token>`. */
  token?: string;
  /** The built UI; default UI_DIR. */
  uiDir?: string;
  /** Poll period of the live stream (tests shorten it). */
  pollMs?: number;
}

/** Build the application (not listening; see server.ts). */
export function createApp(opts: AppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple'); // flat strings; repeated keys become arrays, which params.ts refuses
  app.set('etag', false);
  app.use(securityHeaders);

  const api = express.Router();
  api.use(requireToken(opts.token));
  api.use((req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') { res.status(405).json({ error: 'EMETHOD', message: 'the API is read-only: GET only' }); return; }
    res.setHeader('Cache-Control', 'no-store');
    next();
  });
  api.use(searchRoutes(opts.store));
  api.use(nodeRoutes(opts.store));
  api.use(lineageRoutes(opts.store));
  api.use(activityRoutes(opts.store));
  api.use(exportRoutes(opts.store));
  api.use(streamRoutes(opts.store, opts.pollMs === undefined ? {} : { pollMs: opts.pollMs }));
  api.use(unknownRoute);
  app.use('/api', api);

  const uiDir = opts.uiDir ?? UI_DIR;
  const index = join(uiDir, 'index.html');
  app.use('/assets', express.static(join(uiDir, 'assets'), { immutable: true, maxAge: '365d', index: false, fallthrough: false }));
  app.use(express.static(uiDir, { index: false, maxAge: 0 }));
  // Any other GET is a deep link into the single-page UI.
  app.get('*', (_req, res) => {
    if (!existsSync(index)) {
      res.status(503).type('text/plain').send('The web UI is not built: run web/build.sh (npm test and npm run demo do it).\n');
      return;
    }
    res.setHeader('Cache-Control', 'no-cache');
    res.sendFile(index);
  });
  app.use(errorHandler);
  return app;
}
