/**
 * @module web/server/routes/activity
 * `GET /api/histogram` (edge counts per time bucket, for the time filter) and `GET /api/stats`
 * (counts, hosts and the time span of the store, for the UI's header).
 */
import { Router } from 'express';
import type { GraphStore, HistogramBucket } from '../../../graph/store.js';
import { InputError } from '../../../graph/errors.js';
import { handle } from '../errors.js';
import { onlyKnown, optInt } from '../params.js';

/** Answers kept per store state: the histogram scans every edge, and every page load asks for it. */
const CACHE_SIZE = 32;

/** Mount the activity endpoints. */
export function activityRoutes(store: GraphStore): Router {
  const r = Router();
  // Keyed by the store's checkpoint too, so an ingest makes every cached answer stale.
  const cache = new Map<string, HistogramBucket[]>();
  r.get('/histogram', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    onlyKnown(q, ['buckets', 'since', 'until']);
    const buckets = optInt(q, 'buckets', 1, 1000, 80)!;
    const since = optInt(q, 'since', 0, Number.MAX_SAFE_INTEGER);
    const until = optInt(q, 'until', 0, Number.MAX_SAFE_INTEGER);
    if (since !== undefined && until !== undefined && since > until) throw new InputError(`must not be after until (${since} > ${until})`, 'since');
    const key = `${buckets}|${since ?? ''}|${until ?? ''}|${JSON.stringify(await store.checkpoint())}`;
    let answer = cache.get(key);
    if (!answer) {
      answer = await store.histogram(buckets, since, until);
      if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
      cache.set(key, answer);
    }
    res.json(answer);
  }));
  r.get('/stats', handle(async (req, res) => {
    onlyKnown(req.query as Record<string, unknown>, []);
    const [stats, hosts] = await Promise.all([store.stats(), store.hosts()]);
    res.json({ ...stats, hostNames: hosts, store: store.url });
  }));
  return r;
}
