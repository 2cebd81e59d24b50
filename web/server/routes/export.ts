/**
 * @module web/server/routes/export
 * `GET /api/export?view=&format=prov-json|dot|svg&…` — a lineage view as a file to keep:
 * W3C PROV-JSON and Graphviz DOT from graph/export, SVG drawn from the same layout the UI uses.
 */
import { Router } from 'express';
import { InputError } from '../../../graph/errors.js';
import { handle } from '../errors.js';
import type { GraphStore } from '../../../graph/store.js';
import { onlyKnown, optString } from '../params.js';
import { VIEW_PARAMS, fetchView, viewName, type ViewAnswer } from '../views.js';
import { toViewGraph } from '../view/grouping.js';
import { layoutGraph } from '../view/layout.js';
import { renderSvg } from '../view/svg.js';
import { toDot, toProvJson } from '../../../graph/export/index.js';

interface Format {
  type: string;
  ext: string;
  render(a: ViewAnswer, grouped: boolean): string;
}

const FORMATS: Record<string, Format> = {
  'prov-json': { type: 'application/json; charset=utf-8', ext: 'json', render: (a) => JSON.stringify(toProvJson(a.subgraph), null, 1) },
  dot: { type: 'text/vnd.graphviz; charset=utf-8', ext: 'dot', render: (a) => toDot(a.subgraph, { title: a.title }) },
  svg: {
    type: 'image/svg+xml; charset=utf-8', ext: 'svg',
    render: (a, grouped) => {
      const g = toViewGraph(a.subgraph, { ...(a.focus ? { focus: a.focus } : {}), threshold: grouped ? 8 : Number.POSITIVE_INFINITY });
      return renderSvg(layoutGraph(g, { pack: a.view === 'ancestors' ? 'sink' : 'source' }), a.title);
    },
  },
};

/** Mount the export endpoint. */
export function exportRoutes(store: GraphStore): Router {
  const r = Router();
  r.get('/export', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    const view = viewName(q);
    onlyKnown(q, ['view', 'format', 'group', ...VIEW_PARAMS[view]]);
    const fmtName = optString(q, 'format') ?? '';
    const format = FORMATS[fmtName];
    if (!format) throw new InputError(`must be one of ${Object.keys(FORMATS).join(', ')}, got ${JSON.stringify(fmtName.slice(0, 40))}`, 'format');
    const group = optString(q, 'group') ?? 'on';
    if (group !== 'on' && group !== 'off') throw new InputError('must be on or off', 'group');
    const answer = await fetchView(store, view, q);
    res.setHeader('Content-Type', format.type);
    res.setHeader('Content-Disposition', `attachment; filename="prov-${view}.${format.ext}"`);
    res.send(format.render(answer, group === 'on'));
  }));
  return r;
}
