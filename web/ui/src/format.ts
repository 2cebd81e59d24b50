/**
 * @module web/ui/format
 * How times and values read on screen. Timestamps are CLOCK_MONOTONIC nanoseconds of the
 * recording host, shown as seconds since its boot.
 */
export function fmtTs(ns: number | undefined): string {
  if (ns === undefined || ns === null || !Number.isFinite(ns)) return '—';
  return `${(ns / 1e9).toFixed(3)} s`;
}

export function fmtDuration(ns: number): string {
  if (ns < 1e6) return `${(ns / 1e3).toFixed(0)} µs`;
  if (ns < 1e9) return `${(ns / 1e6).toFixed(1)} ms`;
  return `${(ns / 1e9).toFixed(2)} s`;
}

export function str(v: unknown): string {
  if (v === undefined || v === null) return '—';
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

/** The path a graph node shows: a file's path attribute, else its label. */
export function pathOf(n: { label: string; attrs: Record<string, unknown> }): string {
  return typeof n.attrs.path === 'string' ? n.attrs.path : n.label;
}
