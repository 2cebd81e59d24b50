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

/** Answers kept: the histogram scans every edge, and every page load asks for it. */
const CACHE_SIZE = 32;
/**
 * While capture runs the checkpoint moves every moment; an answer this young is served even
 * if the store moved on, so a busy collector does not turn every page's refresh into a scan.
 */
export const HISTOGRAM_MAX_AGE_MS = 10_000;

/** Mount the activity endpoints. */
export function activityRoutes(store: GraphStore): Router {
  const r = Router();
  const cache = new Map<string, { answer: HistogramBucket[]; checkpoint: string; at: number }>();
  r.get('/histogram', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    onlyKnown(q, ['buckets', 'since', 'until']);
    const buckets = optInt(q, 'buckets', 1, 1000, 80)!;
    const since = optInt(q, 'since', 0, Number.MAX_SAFE_INTEGER);
    const until = optInt(q, 'until', 0, Number.MAX_SAFE_INTEGER);
    if (since !== undefined && until !== undefined && since > until) throw new InputError(`must not be after until (${since} > ${until})`, 'since');
    const key = `${buckets}|${since ?? ''}|${until ?? ''}`;
    const checkpoint = JSON.stringify(await store.checkpoint());
    const hit = cache.get(key);
    if (hit && (hit.checkpoint === checkpoint || Date.now() - hit.at < HISTOGRAM_MAX_AGE_MS)) { res.json(hit.answer); return; }
    const answer = await store.histogram(buckets, since, until);
    cache.delete(key);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
    cache.set(key, { answer, checkpoint, at: Date.now() });
    res.json(answer);
  }));
  r.get('/stats', handle(async (req, res) => {
    onlyKnown(req.query as Record<string, unknown>, []);
    const [stats, hosts] = await Promise.all([store.stats(), store.hosts()]);
    res.json({ ...stats, hostNames: hosts, store: store.url });
  }));
  return r;
}
