/**
 * @module web/server/routes/activity
 * `GET /api/histogram` (edge counts per time bucket, for the time filter) and `GET /api/stats`
 * (counts, hosts and the time span of the store, for the UI's header).
 */
import { Router } from 'express';
import type { GraphStore } from '../../../graph/store.js';
import { InputError } from '../../../graph/errors.js';
import { handle } from '../errors.js';
import { onlyKnown, optInt } from '../params.js';

/** Mount the activity endpoints. */
export function activityRoutes(store: GraphStore): Router {
  const r = Router();
  r.get('/histogram', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    onlyKnown(q, ['buckets', 'since', 'until']);
    const buckets = optInt(q, 'buckets', 1, 1000, 80)!;
    const since = optInt(q, 'since', 0, Number.MAX_SAFE_INTEGER);
    const until = optInt(q, 'until', 0, Number.MAX_SAFE_INTEGER);
    if (since !== undefined && until !== undefined && since > until) throw new InputError(`must not be after until (${since} > ${until})`, 'since');
    res.json(await store.histogram(buckets, since, until));
  }));
  r.get('/stats', handle(async (req, res) => {
    onlyKnown(req.query as Record<string, unknown>, []);
    const [stats, hosts] = await Promise.all([store.stats(), store.hosts()]);
    res.json({ ...stats, hostNames: hosts, store: store.url });
  }));
  return r;
}
