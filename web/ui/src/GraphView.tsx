/**
 * @module web/ui/GraphView
 * The lineage drawing: a layered left-to-right DAG. d3 computes the layout (view/layout.ts),
 * the scales and the zoom; React owns every element, keyed by node id. Keyboard: arrows move
 * along edges (← causes, → effects, ↑↓ within a column), Enter opens, E expands, C collapses.
 */
import { useEffect, useMemo, useRef, useState, type KeyboardEvent, type MouseEvent as ReactMouseEvent } from 'react';
import { select } from 'd3-selection';
import { zoom, zoomIdentity, zoomTransform, type ZoomBehavior, type ZoomTransform } from 'd3-zoom';
import { GAP_COLOUR, EDGE_WORDS } from '../../server/view/style.js';
import type { Layout, PlacedEdge, PlacedNode } from '../../server/view/types.js';
import { NodeBox, domId, tooltip } from './NodeBox.js';
import { fitFrame } from './frame.js';
import { movesOf } from './moves.js';
import { CULL_ABOVE, boxIn, cullWindow, edgeIn } from './cull.js';

export interface GraphViewProps {
  layout: Layout;
  /** Names the view (node, view, filters): a new key frames the drawing afresh. */
  frameKey: string;
  focus?: string;
  selected?: string;
  collapsed: ReadonlySet<string>;
  onSelect(id: string | undefined): void;
  /** Enter / double click: a group expands, a node becomes the focus. */
  onOpen(id: string): void;
  onExpand(id: string): void;
  onToggleCollapse(id: string): void;
}

export function GraphView(p: GraphViewProps) {
  const { layout, frameKey, focus, selected, collapsed, onSelect, onOpen, onExpand, onToggleCollapse } = p;
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

  const frame = (): void => {
    const svg = svgRef.current!;
    const f = fitFrame(layout, focus ? byId.get(focus) : undefined, svg.clientWidth || 1000, svg.clientHeight || 600);
    select(svg).call(zoomRef.current!.transform, zoomIdentity.translate(f.x, f.y).scale(f.k));
  };

  // A new view is framed afresh; a refinement of the same view (expand, collapse, open a
  // group) keeps the selected box where it was on screen instead.
  const framed = useRef<{ key: string; at: Map<string, PlacedNode> } | null>(null);
  useEffect(() => {
    const before = framed.current;
    framed.current = { key: frameKey, at: byId };
    const anchor = selected ?? focus;
    const was = anchor ? before?.at.get(anchor) : undefined;
    const now = anchor ? byId.get(anchor) : undefined;
    if (before?.key === frameKey && was && now) {
      // The transform d3 holds now, not React's copy of it, which may lag one render behind.
      const cur = zoomTransform(svgRef.current!);
      select(svgRef.current!).call(zoomRef.current!.transform, zoomIdentity.translate(cur.x + (was.x - now.x) * cur.k, cur.y + (was.y - now.y) * cur.k).scale(cur.k));
    } else {
      frame();
    }
  }, [layout]); // eslint-disable-line react-hooks/exhaustive-deps

  // Keep the selected node on screen when the keyboard moves the selection.
  const ensureVisible = (n: PlacedNode): void => {
    const svg = svgRef.current!;
    const w = svg.clientWidth, h = svg.clientHeight;
    const t = zoomTransform(svg);
    const sx = t.applyX(n.x), sy = t.applyY(n.y);
    if (sx < 20 || sy < 20 || sx + n.width * t.k > w - 20 || sy + n.height * t.k > h - 20) {
      select(svg).call(zoomRef.current!.transform, zoomIdentity.translate(w / 2 - (n.x + n.width / 2) * t.k, h / 2 - (n.y + n.height / 2) * t.k).scale(t.k));
    }
  };

  const moves = useMemo(() => movesOf(layout), [layout]);

  const onKey = (e: KeyboardEvent<SVGSVGElement>): void => {
    const cur = (selected && byId.get(selected)) || (focus && byId.get(focus)) || layout.nodes[0];
    if (!cur) return;
    if (e.key.startsWith('Arrow')) {
      e.preventDefault();
      const next = selected ? moves.move(cur, e.key) : cur;
      if (next) { onSelect(next.id); ensureVisible(next); }
    } else if (e.key === 'Enter') { e.preventDefault(); onOpen(cur.id); }
    else if (e.key === 'e' || e.key === '+') { onExpand(cur.id); }
    else if (e.key === 'c' || e.key === '-') { onToggleCollapse(cur.id); }
    else if (e.key === 'Escape') { onSelect(undefined); }
    else if (e.key === 'f') { frame(); }
  };

  // Big drawings keep only what is near the viewport in the DOM (quantised so panning a little
  // changes nothing); small ones are drawn whole.
  const [size, setSize] = useState({ w: 1000, h: 600 });
  useEffect(() => {
    const svg = svgRef.current!;
    const ro = new ResizeObserver(() => setSize({ w: svg.clientWidth, h: svg.clientHeight }));
    ro.observe(svg);
    return () => ro.disconnect();
  }, []);
  const win = layout.nodes.length > CULL_ABOVE ? cullWindow(t, size.w, size.h) : null;
  const winKey = win ? win.join(',') : 'all';

  const nodes = useMemo(() => {
    const shown = win ? layout.nodes.filter((n) => boxIn(n, win)) : layout.nodes;
    return shown.map((n) => <NodeBox key={n.id} n={n} focus={n.id === focus} selected={n.id === selected} collapsed={collapsed.has(n.id)} />);
  }, [layout, focus, selected, collapsed, winKey]); // eslint-disable-line react-hooks/exhaustive-deps

  const edges = useMemo(() => {
    const shown = win ? layout.edges.filter((e) => edgeIn(byId.get(e.source)!, byId.get(e.target)!, win)) : layout.edges;
    return shown.map((e) => (
      <path
        key={e.id} d={e.path} className={`edge kind-${e.kind}${e.gap ? ' gap' : ''}`}
        data-source={e.source} data-target={e.target} data-kind={e.kind}
        fill="none" stroke={e.gap ? GAP_COLOUR : '#6b7280'} strokeWidth={Math.min(1 + Math.log2(e.count), 6)}
        strokeDasharray={e.gap ? '6 4' : undefined} markerEnd={e.gap ? 'url(#arrow-gap)' : 'url(#arrow)'}
      />
    ));
  }, [layout, winKey]); // eslint-disable-line react-hooks/exhaustive-deps

  // One listener for all boxes and edges (event delegation): clicks and the hover tooltip.
  const [tip, setTip] = useState<{ text: string; x: number; y: number } | null>(null);
  const boxOf = (target: EventTarget | null): PlacedNode | undefined => {
    const g = (target as Element | null)?.closest?.('g.node');
    const id = g?.getAttribute('data-node-id');
    return id ? byId.get(id) : undefined;
  };
  const edgeOf = (target: EventTarget | null): PlacedEdge | undefined => {
    const el = target as Element | null;
    if (!el?.classList?.contains('edge')) return undefined;
    return edgeById.get(`${el.getAttribute('data-kind')}|${el.getAttribute('data-source')}|${el.getAttribute('data-target')}`);
  };
  const edgeById = useMemo(() => new Map(layout.edges.map((e) => [e.id, e])), [layout]);
  const onHover = (ev: ReactMouseEvent<SVGGElement>): void => {
    const n = boxOf(ev.target);
    const e = n ? undefined : edgeOf(ev.target);
    const text = n ? tooltip(n) : e ? `${EDGE_WORDS[e.kind]} (${e.kind}${e.count > 1 ? ` ×${e.count}` : ''})${e.gap ? ' — during lost events: may be incomplete' : ''}` : null;
    const r = svgRef.current!.getBoundingClientRect();
    const x = ev.clientX - r.left, y = ev.clientY - r.top;
    // Near the right or bottom edge the tooltip opens towards the inside.
    setTip(text ? { text, x: x > r.width - 440 ? x - 440 : x + 12, y: y > r.height - 120 ? y - 110 : y + 14 } : null);
  };

  return (
    <div className="graph-wrap">
    <svg
      ref={svgRef} className="graph" tabIndex={0} onKeyDown={onKey} data-testid="graph"
      role="application" aria-label="Lineage graph. Arrow keys move along edges, Enter opens, E expands, C collapses."
      aria-activedescendant={selected ? domId(selected) : undefined}
      onClick={(e) => { const n = boxOf(e.target); onSelect(n?.id); }}
      onDoubleClick={(e) => { const n = boxOf(e.target); if (n) onOpen(n.id); }}
    >
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill="#6b7280" /></marker>
        <marker id="arrow-gap" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill={GAP_COLOUR} /></marker>
      </defs>
      <g transform={t.toString()} onMouseOver={onHover} onMouseLeave={() => setTip(null)}>
        <g className="edges">{edges}</g>
        <g className="nodes">{nodes}</g>
      </g>
    </svg>
    <button type="button" className="fit" onClick={frame} title="Fit the drawing (F)">Fit</button>
    {tip && <div className="tooltip" role="tooltip" style={{ left: tip.x, top: tip.y }}>{tip.text}</div>}
    </div>
  );
}
