/**
 * @module web/ui/Histogram
 * The time filter: a bar chart of activity (edges per time bucket, d3 scales) over which the
 * user drags a window; windows of lost events are drawn as red bands.
 */
import { useMemo, useRef, useState } from 'react';
import { scaleLinear } from 'd3-scale';
import type { Gap, HistogramBucket } from './api.js';
import { fmtTs } from './format.js';

const W = 1000, H = 52, PAD = 2;

export interface HistogramProps {
  buckets: HistogramBucket[];
  gaps: Gap[];
  since?: number;
  until?: number;
  onChange(since: number | undefined, until: number | undefined): void;
}

export function Histogram({ buckets, gaps, since, until, onChange }: HistogramProps) {
  const svg = useRef<SVGSVGElement>(null);
  const [drag, setDrag] = useState<{ a: number; b: number } | null>(null);
  const lo = buckets.length ? buckets[0]!.from : 0;
  const hi = buckets.length ? buckets[buckets.length - 1]!.to : 1;
  const x = useMemo(() => scaleLinear().domain([lo, Math.max(hi, lo + 1)]).range([PAD, W - PAD]).clamp(true), [lo, hi]);
  const y = useMemo(() => scaleLinear().domain([0, Math.max(1, ...buckets.map((b) => b.count))]).range([H - 2, 2]), [buckets]);

  const toX = (clientX: number): number => {
    const r = svg.current!.getBoundingClientRect();
    return Math.min(W - PAD, Math.max(PAD, ((clientX - r.left) / r.width) * W));
  };
  const commit = (a: number, b: number): void => {
    const [l, r] = a < b ? [a, b] : [b, a];
    if (r - l < 3) { onChange(undefined, undefined); return; }
    onChange(Math.floor(x.invert(l)), Math.ceil(x.invert(r)));
  };
  const sel = drag ? [Math.min(drag.a, drag.b), Math.max(drag.a, drag.b)]
    : since !== undefined || until !== undefined ? [x(since ?? lo), x(until ?? hi)] : null;

  return (
    <div className="histogram">
      <svg
        ref={svg} viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="slider"
        aria-label="Time range: drag across the activity chart to filter the lineage by time"
        aria-valuetext={since !== undefined || until !== undefined ? `${fmtTs(since ?? lo)} to ${fmtTs(until ?? hi)}` : 'all time'}
        data-testid="histogram"
        onPointerDown={(e) => { svg.current!.setPointerCapture(e.pointerId); const p = toX(e.clientX); setDrag({ a: p, b: p }); }}
        onPointerMove={(e) => { if (drag) setDrag({ a: drag.a, b: toX(e.clientX) }); }}
        onPointerUp={(e) => { if (drag) { commit(drag.a, toX(e.clientX)); setDrag(null); } }}
      >
        {gaps.map((g) => (
          <rect key={g.id} className="gap-band" x={x(g.from)} width={Math.max(3, x(g.to) - x(g.from))} y={0} height={H}>
            <title>{`${g.count} events lost (${g.src}, ${g.reason}) ${fmtTs(g.from)} – ${fmtTs(g.to)}`}</title>
          </rect>
        ))}
        {buckets.map((b, i) => (
          <rect key={i} className="bar" x={x(b.from)} width={Math.max(1, x(b.to) - x(b.from) - 1)} y={y(b.count)} height={H - 2 - y(b.count)}>
            <title>{`${b.count} relations ${fmtTs(b.from)} – ${fmtTs(b.to)}`}</title>
          </rect>
        ))}
        {sel && <rect className="selection" x={sel[0]} width={Math.max(1, sel[1]! - sel[0]!)} y={0} height={H} />}
      </svg>
      <div className="histogram-axis muted"><span>{fmtTs(lo)}</span><span>{fmtTs(hi)}</span></div>
      <div className="histogram-legend">
        {since !== undefined || until !== undefined
          ? <>Showing relations from <b>{fmtTs(since ?? lo)}</b> to <b>{fmtTs(until ?? hi)}</b> <button type="button" onClick={() => onChange(undefined, undefined)}>All time</button></>
          : <>Drag across the chart to filter by time.</>}
      </div>
    </div>
  );
}
