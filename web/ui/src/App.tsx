/**
 * @module web/ui/App
 * The explorer's page: search, the view toolbar, the time filter, the lineage drawing and the
 * detail panel. The URL is the state (route.ts); expansions, collapses and opened groups are
 * per-view refinements kept in memory.
 */
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import { download, get, type HistogramBucket, type LineageAnswer, type StatsAnswer, type Subgraph } from './api.js';
import { navigate, readRoute, type Route, type View } from './route.js';
import { hideCollapsed, mergeSubgraphs, type Walk } from './visible.js';
import { toViewGraph } from '../../server/view/grouping.js';
import { layoutGraph } from '../../server/view/layout.js';
import { SearchBar } from './SearchBar.js';
import { GraphView } from './GraphView.js';
import { DetailPanel } from './DetailPanel.js';
import { Histogram } from './Histogram.js';
import { Live } from './Live.js';
import { fmtTs, pathOf } from './format.js';

const WALK: Record<View, Walk> = { ancestors: 'forward', descendants: 'backward', tree: 'backward', path: 'both' };
const VIEW_LABEL: Record<View, string> = { ancestors: 'Where it came from', descendants: 'What came out of it', tree: 'Process tree', path: 'Path' };

function lineageParams(r: Route): Record<string, string | number | undefined> {
  const common = { depth: r.depth, since: r.since, until: r.until };
  if (r.view === 'tree') return { root: r.id, ...common };
  if (r.view === 'path') return { from: r.id, to: r.to, rule: r.rule, ...common };
  return { id: r.id, rule: r.rule, ...common };
}

export function App() {
  const [route, setRoute] = useState<Route>(() => readRoute());
  useEffect(() => {
    const on = (): void => setRoute(readRoute());
    addEventListener('popstate', on);
    return () => removeEventListener('popstate', on);
  }, []);
  const go = useCallback((r: Partial<Route>, mode: 'push' | 'replace' = 'push') => navigate({ ...readRoute(), ...r }, mode), []);

  const key = JSON.stringify([route.view, route.id, route.to, route.depth, route.rule, route.since, route.until]);
  const [base, setBase] = useState<LineageAnswer | null>(null);
  // The view the loaded answer belongs to: a new one frames the drawing afresh.
  const [baseKey, setBaseKey] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(() => Boolean(route.id) || route.view === 'tree');
  const [extras, setExtras] = useState<Subgraph[]>([]);
  const [collapsed, setCollapsed] = useState<ReadonlySet<string>>(new Set());
  const [openGroups, setOpenGroups] = useState<ReadonlySet<string>>(new Set());
  useEffect(() => {
    setExtras((x) => (x.length ? [] : x)); setCollapsed((c) => (c.size ? new Set() : c)); setOpenGroups((g) => (g.size ? new Set() : g)); setError(null);
    if (!route.id && route.view !== 'tree') { setBase(null); return; }
    const ac = new AbortController();
    setLoading(true);
    get<LineageAnswer>(route.view, lineageParams(route), ac.signal)
      .then((a) => { setBase(a); setBaseKey(key); setLoading(false); }, (e: Error) => { if (!ac.signal.aborted) { setBase(null); setError(e.message); setLoading(false); } });
    return () => ac.abort();
  }, [key]); // eslint-disable-line react-hooks/exhaustive-deps

  // The overview waits for the lineage: on a big store the histogram is the slower query and
  // the server answers one query at a time.
  const [stats, setStats] = useState<StatsAnswer | null>(null);
  const [buckets, setBuckets] = useState<HistogramBucket[]>([]);
  const [fresh, setFresh] = useState(0);
  const overviewReady = !loading;
  const lastOverview = useRef(0);
  useEffect(() => {
    if (!overviewReady) return;
    // New nodes arrive many times a second while capture runs: refresh the overview at most every 15 s.
    const wait = Math.max(0, lastOverview.current + 15_000 - Date.now());
    const timer = setTimeout(() => {
      lastOverview.current = Date.now();
      get<StatsAnswer>('stats').then(setStats, () => {});
      get<HistogramBucket[]>('histogram', { buckets: 120 }).then(setBuckets, (e: Error) => setError(`activity histogram: ${e.message}`));
    }, fresh === 0 ? 0 : wait);
    return () => clearTimeout(timer);
  }, [fresh, overviewReady]);

  const focus = route.id;
  const pack = route.view === 'ancestors' ? 'sink' : 'source';
  const visible = useMemo(() => (base ? hideCollapsed(mergeSubgraphs([base, ...extras]), focus, WALK[route.view], collapsed) : null), [base, extras, collapsed, focus, route.view]);
  const layout = useMemo(() => (visible ? layoutGraph(toViewGraph(visible, { ...(focus ? { focus } : {}), expanded: openGroups, threshold: route.group ? 8 : Number.POSITIVE_INFINITY }), { pack }) : null), [visible, openGroups, focus, pack, route.group]);

  const expandLineage = useCallback((id: string) => {
    if (id.startsWith('group:')) { setOpenGroups((s) => new Set([...s, id])); return; }
    setCollapsed((s) => { const n = new Set(s); n.delete(id); return n; });
    const span = { since: route.since, until: route.until };
    const more = route.view === 'tree' ? get<LineageAnswer>('tree', { root: id, depth: 3, ...span })
      : get<LineageAnswer>(route.view === 'descendants' ? 'descendants' : 'ancestors', { id, depth: 3, rule: route.rule, ...span });
    more
      .then((sub) => setExtras((x) => [...x, sub]), (e: Error) => setError(e.message));
  }, [route.view, route.rule, route.since, route.until]);
  const toggleCollapse = useCallback((id: string) => {
    if (id === focus) return;
    setCollapsed((s) => { const n = new Set(s); if (n.has(id)) n.delete(id); else n.add(id); return n; });
  }, [focus]);
  const open = useCallback((id: string) => {
    if (id.startsWith('group:')) setOpenGroups((s) => new Set([...s, id]));
    else go({ id, sel: id, view: route.view === 'path' ? 'ancestors' : route.view });
  }, [go, route.view]);
  const select = useCallback((id: string | undefined) => go(id ? { sel: id } : { sel: undefined }, 'replace'), [go]);

  const nodeById = useMemo(() => new Map((visible?.nodes ?? []).map((n) => [n.id, n])), [visible]);
  const group = route.sel?.startsWith('group:') ? layout?.nodes.find((n) => n.id === route.sel) : undefined;
  const gaps = visible?.gaps ?? [];
  const lost = gaps.reduce((s, g) => s + g.count, 0);
  const exportAs = (format: 'svg' | 'prov-json' | 'dot'): void => {
    const ext = format === 'prov-json' ? 'json' : format;
    void download({ view: route.view, format, ...lineageParams(route) }, `prov-${route.view}.${ext}`).catch((e: Error) => setError(e.message));
  };

  return (
    <div className="app">
      <header className="top">
        <h1><button type="button" className="home" onClick={() => go({ id: undefined, sel: undefined, to: undefined, view: 'ancestors' })}>prov</button> <span>lineage explorer</span></h1>
        <SearchBar initial={route.q} onPick={(n, q) => go({ id: n.id, sel: n.id, view: 'ancestors', q, to: undefined })} />
        {stats && <div className="stats muted">{Object.values(stats.nodes).reduce((a, b) => a + b, 0).toLocaleString()} nodes · {Object.values(stats.edges).reduce((a, b) => a + b, 0).toLocaleString()} relations · {stats.hostNames.length} host{stats.hostNames.length === 1 ? '' : 's'}</div>}
        <Live onGo={(id) => go({ id, sel: id })} onNew={() => setFresh((f) => f + 1)} />
      </header>

      <nav className="toolbar" aria-label="View">
        {route.id && (['ancestors', 'descendants'] as View[]).concat(route.id.startsWith('proc:') ? ['tree'] : [], route.view === 'path' ? ['path'] : []).map((v) => (
          <button key={v} type="button" className={route.view === v ? 'on' : ''} aria-pressed={route.view === v} onClick={() => go({ view: v })}>{VIEW_LABEL[v]}</button>
        ))}
        {!route.id && <button type="button" className={route.view === 'tree' ? 'on' : ''} onClick={() => go({ view: 'tree' })}>All process trees</button>}
        <label>depth <input type="number" min={1} max={100} value={route.depth} data-testid="depth" onChange={(e) => { const d = Number(e.target.value); if (d >= 1 && d <= 100) go({ depth: d }, 'replace'); }} /></label>
        {route.view !== 'tree' && <label>rule <select value={route.rule} onChange={(e) => go({ rule: e.target.value as Route['rule'] })} aria-label="Derivation rule">
          <option value="history">history (through processes)</option><option value="strict">strict (Bento-prov)</option>
        </select></label>}
        <label><input type="checkbox" checked={route.group} onChange={(e) => go({ group: e.target.checked }, 'replace')} /> group similar</label>
        {openGroups.size > 0 && <button type="button" onClick={() => setOpenGroups(new Set())}>Regroup siblings</button>}
        {collapsed.size > 0 && <button type="button" onClick={() => setCollapsed(new Set())}>Show collapsed</button>}
        {layout && <span className="exports">Export <button type="button" onClick={() => exportAs('svg')}>SVG</button><button type="button" onClick={() => exportAs('prov-json')}>PROV-JSON</button><button type="button" onClick={() => exportAs('dot')}>DOT</button></span>}
        <span className="keys muted">keys: / search · ←→ along edges · ↑↓ column · Enter open · E expand · C collapse · F fit · Esc close</span>
      </nav>

      <Histogram buckets={buckets} gaps={gaps} {...(route.since !== undefined ? { since: route.since } : {})} {...(route.until !== undefined ? { until: route.until } : {})} onChange={(since, until) => go({ since, until })} />

      {lost > 0 && (
        <div className="gap-banner" role="alert" data-testid="gap-banner">
          ⚠ This lineage crosses {gaps.length === 1 ? 'a window' : `${gaps.length} windows`} of lost events ({lost} event{lost === 1 ? '' : 's'} lost: {gaps.map((g) => `${g.src} ${g.reason} ${fmtTs(g.from)}–${fmtTs(g.to)}`).join('; ')}). Red dashed edges and nodes may be incomplete.
        </div>
      )}
      {base?.truncated && <div className="warn-banner">The answer was cut at its node limit: lower the depth or narrow the time window to see all of it.</div>}
      {error && <div className="error-banner" role="alert">{error}</div>}

      <main className="main">
        <section className="canvas">
          {layout && layout.nodes.length > 0 && (
            <GraphView layout={layout} frameKey={baseKey} {...(focus ? { focus } : {})} {...(route.sel ? { selected: route.sel } : {})} collapsed={collapsed}
              onSelect={select} onOpen={open} onExpand={expandLineage} onToggleCollapse={toggleCollapse} />
          )}
          {layout && layout.nodes.length === 0 && <p className="empty">Nothing in this window. Widen the time range or the depth.</p>}
          {!base && !loading && !error && (
            <div className="empty">
              <h2>Find a file to see where it came from.</h2>
              <p>Type a path prefix like <code>/home/</code>, a glob like <code>**/*.o</code>, or part of a name. Press <kbd>/</kbd> to search from anywhere.</p>
            </div>
          )}
          {loading && <p className="empty muted">Loading lineage…</p>}
          {layout && <div className="legend muted">{layout.nodes.length} boxes · {layout.edges.length} edges · {VIEW_LABEL[route.view]}{route.since !== undefined || route.until !== undefined ? ' · time-filtered' : ''}</div>}
        </section>
        {route.sel && !group && !route.sel.startsWith('group:') && (
          <DetailPanel id={route.sel} onGo={(id) => (layout?.nodes.some((n) => n.id === id) ? select(id) : go({ id, sel: id, view: 'ancestors' }))}
            onView={(view, id) => go({ view, id, sel: id })} onClose={() => select(undefined)}
            {...(route.id && route.sel !== route.id && route.view !== 'path' ? { onPath: () => go({ view: 'path', to: route.sel }) } : {})} />
        )}
        {group && (
          <aside className="panel" data-testid="group-panel" aria-label="Group">
            <header><h3>{group.label}</h3><button type="button" className="close" onClick={() => select(undefined)} aria-label="Close">×</button></header>
            <p>{group.members?.length} similar {group.memberKind} nodes matching <code>{group.pattern}</code>, folded into one box.</p>
            <div className="panel-actions"><button type="button" data-testid="expand-group" onClick={() => { expandLineage(group.id); select(undefined); }}>Expand group</button></div>
            <ul className="uses" data-testid="group-members">{group.members?.slice(0, 200).map((m) => {
              const n = nodeById.get(m);
              return <li key={m}><button type="button" className="link" title={m} onClick={() => go({ id: m, sel: m })}>{n ? (n.kind === 'file' ? pathOf(n) : n.label) : m}</button></li>;
            })}</ul>
            {(group.members?.length ?? 0) > 200 && <p className="muted">and {(group.members?.length ?? 0) - 200} more</p>}
          </aside>
        )}
      </main>
    </div>
  );
}
