/**
 * @module web/ui/route
 * The deep link: everything that names what is on screen (view, node, depth, rule, time
 * window, selected node) lives in the URL's query, so a copied URL opens the same picture.
 */
export type View = 'ancestors' | 'descendants' | 'tree' | 'path';

export interface Route {
  view: View;
  id?: string;
  to?: string;
  depth: number;
  rule: 'history' | 'strict';
  since?: number;
  until?: number;
  /** The node whose details are open. */
  sel?: string;
  /** A search typed in the search box (shown when no node is chosen). */
  q?: string;
  /** False when the user turned sibling grouping off. */
  group: boolean;
}

const VIEWS: View[] = ['ancestors', 'descendants', 'tree', 'path'];

function num(s: string | null): number | undefined {
  return s !== null && /^\d+$/.test(s) ? Number(s) : undefined;
}

export function readRoute(search = location.search): Route {
  const p = new URLSearchParams(search);
  const view = p.get('view') as View | null;
  const r: Route = {
    view: view && VIEWS.includes(view) ? view : 'ancestors',
    depth: Math.min(100, Math.max(1, num(p.get('depth')) ?? 10)),
    rule: p.get('rule') === 'strict' ? 'strict' : 'history',
    group: p.get('group') !== 'off',
  };
  for (const k of ['id', 'to', 'sel', 'q'] as const) { const v = p.get(k); if (v) r[k] = v; }
  const since = num(p.get('since')), until = num(p.get('until'));
  if (since !== undefined) r.since = since;
  if (until !== undefined) r.until = until;
  return r;
}

export function routeSearch(r: Route): string {
  const p = new URLSearchParams();
  if (r.id || r.view === 'tree') p.set('view', r.view);
  if (r.id) p.set('id', r.id);
  if (r.to) p.set('to', r.to);
  if (r.depth !== 10) p.set('depth', String(r.depth));
  if (r.rule !== 'history') p.set('rule', r.rule);
  if (r.since !== undefined) p.set('since', String(r.since));
  if (r.until !== undefined) p.set('until', String(r.until));
  if (!r.group) p.set('group', 'off');
  if (r.sel) p.set('sel', r.sel);
  if (r.q) p.set('q', r.q);
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** Go to `r`: a new history entry (push) or a change in place (replace, for the selection). */
export function navigate(r: Route, mode: 'push' | 'replace' = 'push'): void {
  const url = location.pathname + routeSearch(r);
  if (mode === 'push') history.pushState(null, '', url); else history.replaceState(null, '', url);
  dispatchEvent(new PopStateEvent('popstate'));
}
