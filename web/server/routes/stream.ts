/**
 * @module web/server/routes/stream
 * `GET /api/stream?cursor=` — server-sent events carrying the nodes ingested after `cursor`
 * (from the store's feed), so the UI shows new activity while capture runs. Each event's id
 * is the next cursor, so a reconnecting client resumes where it stopped (Last-Event-ID).
 */
import { Router } from 'express';
import type { GraphStore } from '../../../graph/store.js';
import { InputError } from '../../../graph/errors.js';
import { handle } from '../errors.js';
import { onlyKnown, optInt, optString } from '../params.js';

/** How often the feed is polled, and the most nodes sent in one event. */
export const POLL_MS = 500;
const BATCH = 500;
const HEARTBEAT_MS = 15_000;

/**
 * The cursor after the newest node, found by galloping then bisecting on `feed(c, 1)`
 * (the contract gives no direct "end" query; this costs about 2·log2(nodes) tiny reads).
 */
export async function endCursor(store: GraphStore): Promise<number> {
  const first = await store.feed(0, 1);
  if (first.nodes.length === 0) return 0;
  // Invariant: `lo` is the cursor of a real node; feed(hi) is empty once hi is known.
  let lo = first.cursor;
  let step = 1024;
  let hi: number;
  for (;;) {
    const probe = await store.feed(lo + step, 1);
    if (probe.nodes.length === 0) { hi = lo + step; break; }
    lo = probe.cursor;
    step *= 2;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    const r = await store.feed(mid, 1);
    if (r.nodes.length === 0) hi = mid; else lo = r.cursor;
  }
  const last = await store.feed(lo, 1);
  return last.nodes.length ? last.cursor : lo;
}

/** Mount the stream endpoint. */
export function streamRoutes(store: GraphStore, opts: { pollMs?: number } = {}): Router {
  const r = Router();
  r.get('/stream', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    onlyKnown(q, ['cursor']);
    const raw = optString(q, 'cursor');
    let cursor: number;
    const resume = req.headers['last-event-id'];
    if (typeof resume === 'string' && resume !== '') {
      if (!/^\d+$/.test(resume)) throw new InputError('must be a cursor (a non-negative integer)', 'Last-Event-ID');
      cursor = Number(resume);
    } else if (raw === undefined || raw === '' || raw === 'end') {
      cursor = await endCursor(store);
    } else {
      cursor = optInt(q, 'cursor', 0, Number.MAX_SAFE_INTEGER)!;
    }
    res.writeHead(200, {
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-store',
      'Connection': 'keep-alive',
      'X-Accel-Buffering': 'no',
    });
    res.write(`retry: 2000\nevent: ready\ndata: ${JSON.stringify({ cursor })}\n\n`);
    let busy = false;
    let closed = false;
    let lastWrite = Date.now();
    const tick = async (): Promise<void> => {
      if (busy || closed) return;
      busy = true;
      try {
        for (;;) {
          const next = await store.feed(cursor, BATCH);
          if (closed || next.nodes.length === 0) break;
          cursor = next.cursor;
          res.write(`id: ${cursor}\nevent: nodes\ndata: ${JSON.stringify(next)}\n\n`);
          lastWrite = Date.now();
          if (next.nodes.length < BATCH) break;
        }
        if (!closed && Date.now() - lastWrite > HEARTBEAT_MS) { res.write(': keep-alive\n\n'); lastWrite = Date.now(); }
      } catch (err) {
        if (!closed) res.write(`event: error\ndata: ${JSON.stringify({ message: err instanceof Error ? err.message : String(err) })}\n\n`);
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => { void tick(); }, opts.pollMs ?? POLL_MS);
    req.on('close', () => { closed = true; clearInterval(timer); });
    await tick();
  }));
  return r;
}
