/**
 * @module web/ui/GraphView
 * The lineage drawing: a layered left-to-right DAG. d3 computes the layout (view/layout.ts),
 * the scales and the zoom; React owns every element, keyed by node id. Keyboard: arrows move
 * along edges (← causes, → effects, ↑↓ within a column), Enter opens, E expands, C collapses.
 */
import { useCallback, useEffect, useMemo, useRef, useState, type KeyboardEvent } from 'react';
import { select } from 'd3-selection';
import { zoom, zoomIdentity, type ZoomBehavior, type ZoomTransform } from 'd3-zoom';
import { GAP_COLOUR, EDGE_WORDS } from '../../server/view/style.js';
import type { Layout, PlacedNode } from '../../server/view/types.js';
import { NodeBox } from './NodeBox.js';

export interface GraphViewProps {
  layout: Layout;
  focus?: string;
  selected?: string;
  collapsed: ReadonlySet<string>;
  /** Which side the focus sits on, to frame it first. */
  pack: 'sink' | 'source';
  onSelect(id: string | undefined): void;
  /** Enter / double click: a group expands, a node becomes the focus. */
  onOpen(id: string): void;
  onExpand(id: string): void;
  onToggleCollapse(id: string): void;
}

export function GraphView(p: GraphViewProps) {
  const { layout, focus, selected, collapsed, pack, onSelect, onOpen, onExpand, onToggleCollapse } = p;
  const svgRef = useRef<SVGSVGElement>(null);
  const zoomRef = useRef<ZoomBehavior<SVGSVGElement, unknown> | null>(null);
  const [t, setT] = useState<ZoomTransform>(zoomIdentity);
  const byId = useMemo(() => new Map(layout.nodes.map((n) => [n.id, n])), [layout]);

  useEffect(() => {
    const z = zoom<SVGSVGElement, unknown>().scaleExtent([0.03, 3])
      .filter((e: Event) => e.type !== 'dblclick' && !(e as MouseEvent).button)
      .on('zoom', (e: { transform: ZoomTransform }) => setT(e.transform));
    zoomRef.current = z;
    select(svgRef.current!).call(z).on('dblclick.zoom', null);
    return () => { select(svgRef.current!).on('.zoom', null); };
  }, []);

  // Frame a new drawing: readable scale (not below 0.55 unless it all fits), the focus in view.
  useEffect(() => {
    const svg = svgRef.current!;
    const w = svg.clientWidth || 1000, h = svg.clientHeight || 600;
    const fit = Math.min(w / (layout.width + 80), h / (layout.height + 80));
    // Shrink to fit down to 0.6; below that keep text readable (0.75) and let the user pan.
    const k = fit >= 0.6 ? Math.min(1.1, fit) : 0.75;
    const f = focus ? byId.get(focus) : undefined;
    let x: number, y: number;
    if (f) {
      x = pack === 'sink' ? Math.min(40, w - 40 - (f.x + f.width) * k) : Math.max(40 - f.x * k, (w - layout.width * k) / 2);
      if (pack === 'sink' && layout.width * k < w) x = (w - layout.width * k) / 2;
      y = h / 2 - (f.y + f.height / 2) * k;
      if (layout.height * k < h) y = (h - layout.height * k) / 2;
    } else {
      x = Math.max(40, (w - layout.width * k) / 2);
      y = layout.height * k < h ? (h - layout.height * k) / 2 : 40;
    }
    select(svg).call(zoomRef.current!.transform, zoomIdentity.translate(x, y).scale(k));
  }, [layout]); // eslint-disable-line react-hooks/exhaustive-deps

  // Keep the selected node on screen when the keyboard moves the selection.
  const ensureVisible = (n: PlacedNode): void => {
    const svg = svgRef.current!;
    const w = svg.clientWidth, h = svg.clientHeight;
    const sx = t.applyX(n.x), sy = t.applyY(n.y);
    if (sx < 20 || sy < 20 || sx + n.width * t.k > w - 20 || sy + n.height * t.k > h - 20) {
      select(svg).call(zoomRef.current!.transform, zoomIdentity.translate(w / 2 - (n.x + n.width / 2) * t.k, h / 2 - (n.y + n.height / 2) * t.k).scale(t.k));
    }
  };

  const neighbours = useMemo(() => {
    const causes = new Map<string, string[]>(), effects = new Map<string, string[]>();
    for (const e of layout.edges) {
      (effects.get(e.source) ?? effects.set(e.source, []).get(e.source)!).push(e.target);
      (causes.get(e.target) ?? causes.set(e.target, []).get(e.target)!).push(e.source);
    }
    return { causes, effects };
  }, [layout]);

  const move = (from: PlacedNode, key: string): PlacedNode | undefined => {
    const nearest = (ids: string[]): PlacedNode | undefined => ids.map((i) => byId.get(i)!).filter(Boolean)
      .sort((a, b) => Math.abs(a.y - from.y) - Math.abs(b.y - from.y))[0];
    if (key === 'ArrowLeft') return nearest(neighbours.causes.get(from.id) ?? []);
    if (key === 'ArrowRight') return nearest(neighbours.effects.get(from.id) ?? []);
    const column = layout.nodes.filter((n) => n.layer === from.layer).sort((a, b) => a.y - b.y);
    const i = column.indexOf(from);
    return column[key === 'ArrowUp' ? i - 1 : i + 1];
  };

  const onKey = (e: KeyboardEvent<SVGSVGElement>): void => {
    const cur = (selected && byId.get(selected)) || (focus && byId.get(focus)) || layout.nodes[0];
    if (!cur) return;
    if (e.key.startsWith('Arrow')) {
      e.preventDefault();
      const next = selected ? move(cur, e.key) : cur;
      if (next) { onSelect(next.id); ensureVisible(next); }
    } else if (e.key === 'Enter') { e.preventDefault(); onOpen(cur.id); }
    else if (e.key === 'e' || e.key === '+') { onExpand(cur.id); }
    else if (e.key === 'c' || e.key === '-') { onToggleCollapse(cur.id); }
    else if (e.key === 'Escape') { onSelect(undefined); }
  };

  // One stable handler for every box, so a selection change re-renders two boxes, not all.
  const handlers = useRef({ onOpen, onSelect });
  handlers.current = { onOpen, onSelect };
  const onPick = useCallback((id: string, open: boolean) => (open ? handlers.current.onOpen(id) : handlers.current.onSelect(id)), []);
  const nodes = useMemo(() => layout.nodes.map((n) => (
    <NodeBox key={n.id} n={n} focus={n.id === focus} selected={n.id === selected} collapsed={collapsed.has(n.id)} onPick={onPick} />
  )), [layout, focus, selected, collapsed, onPick]);

  const edges = useMemo(() => layout.edges.map((e) => (
    <path
      key={e.id} d={e.path} className={`edge kind-${e.kind}${e.gap ? ' gap' : ''}`}
      data-source={e.source} data-target={e.target} data-kind={e.kind}
      fill="none" stroke={e.gap ? GAP_COLOUR : '#6b7280'} strokeWidth={Math.min(1 + Math.log2(e.count), 6)}
      strokeDasharray={e.gap ? '6 4' : undefined} markerEnd={e.gap ? 'url(#arrow-gap)' : 'url(#arrow)'}
    >
      <title>{`${EDGE_WORDS[e.kind]} (${e.kind}${e.count > 1 ? ` ×${e.count}` : ''})${e.gap ? ' — during lost events: may be incomplete' : ''}`}</title>
    </path>
  )), [layout]);

  return (
    <svg
      ref={svgRef} className="graph" tabIndex={0} onKeyDown={onKey} data-testid="graph"
      role="application" aria-label="Lineage graph. Arrow keys move along edges, Enter opens, E expands, C collapses."
      aria-activedescendant={selected}
      onClick={() => onSelect(undefined)}
    >
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill="#6b7280" /></marker>
        <marker id="arrow-gap" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill={GAP_COLOUR} /></marker>
      </defs>
      <g transform={t.toString()}>
        <g className="edges">{edges}</g>
        <g className="nodes">{nodes}</g>
      </g>
    </svg>
  );
}
