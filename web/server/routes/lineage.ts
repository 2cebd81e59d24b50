/**
 * @module web/server/routes/lineage
 * `GET /api/ancestors`, `/api/descendants`, `/api/path`, `/api/tree`: the lineage views as
 * Subgraph JSON (see views.ts for their parameters).
 */
import { Router } from 'express';
import type { GraphStore } from '../../../graph/store.js';
import { handle } from '../errors.js';
import { onlyKnown } from '../params.js';
import { VIEWS, VIEW_PARAMS, fetchView } from '../views.js';

/** Mount one endpoint per view. */
export function lineageRoutes(store: GraphStore): Router {
  const r = Router();
  for (const view of VIEWS) {
    r.get(`/${view}`, handle(async (req, res) => {
      const q = req.query as Record<string, unknown>;
      onlyKnown(q, VIEW_PARAMS[view]);
      const answer = await fetchView(store, view, q);
      res.json({ ...answer.subgraph, focus: answer.focus ?? null, options: answer.options });
    }));
  }
  return r;
}
