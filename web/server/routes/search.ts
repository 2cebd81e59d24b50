/**
 * @module web/server/routes/search
 * `GET /api/search` (by path prefix or glob, paged) and `GET /api/resolve` (the file version
 * holding an exact path): the entry points of the search-first UI.
 */
import { Router } from 'express';
import { InputError, NotFoundError } from '../../../graph/errors.js';
import type { GraphStore, SearchQuery } from '../../../graph/store.js';
import { handle } from '../errors.js';
import { onlyKnown, optInt, optKind, optString, reqString } from '../params.js';

/** Mount the search endpoints. */
export function searchRoutes(store: GraphStore): Router {
  const r = Router();
  r.get('/search', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    onlyKnown(q, ['prefix', 'glob', 'kind', 'host', 'limit', 'offset']);
    const prefix = optString(q, 'prefix');
    const glob = optString(q, 'glob');
    if (!prefix && !glob) throw new InputError('give a path prefix or a glob', 'prefix');
    if (prefix && glob) throw new InputError('give either a prefix or a glob, not both', 'glob');
    const sq: SearchQuery = { limit: optInt(q, 'limit', 1, 500, 50)!, offset: optInt(q, 'offset', 0, 1_000_000_000, 0)! };
    if (prefix) sq.prefix = prefix;
    if (glob) sq.glob = glob;
    const kind = optKind(q);
    if (kind) sq.kind = kind;
    const host = optString(q, 'host');
    if (host) sq.host = host;
    const page = await store.search(sq);
    res.json({ ...page, limit: sq.limit, offset: sq.offset });
  }));
  r.get('/resolve', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    onlyKnown(q, ['path', 'at', 'host']);
    const path = reqString(q, 'path');
    if (!path.startsWith('/')) throw new InputError('must be an absolute path', 'path');
    const at = optInt(q, 'at', 0, Number.MAX_SAFE_INTEGER);
    const node = await store.resolvePath(path, at, optString(q, 'host') || undefined);
    if (!node) throw new NotFoundError(`no file was ever named ${JSON.stringify(path)}`, 'path');
    res.json(node);
  }));
  return r;
}
