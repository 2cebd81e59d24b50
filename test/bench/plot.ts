/**
 * @module test/bench/plot
 * Plots for the benchmark report without a browser: SVG written by hand, converted to PNG by
 * `rsvg-convert` (Debian librsvg2-bin). When rsvg-convert is missing the SVG stays and the
 * report links it instead (and says why there is no PNG).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';

export interface Bar {
  label: string;
  /** prov / baseline, oriented so that above 1 means prov did better. */
  ratio: number;
  /** Colour group (one colour per group, shown in the legend). */
  group: string;
}

const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#17becf'];

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * Horizontal bars on a log axis, one per figure, a line at 1× (as fast as the baseline).
 * Returns the SVG text.
 */
export function ratioChartSvg(title: string, bars: Bar[], subtitle = 'ratio to the baseline measured in the same run (log scale; > 1 = prov better)'): string {
  const ok = bars.filter((b) => b.ratio > 0 && Number.isFinite(b.ratio));
  const groups = [...new Set(ok.map((b) => b.group))];
  const rowH = 16, labelW = 430, plotW = 420, top = 62, left = labelW + 10, right = 60;
  const H = top + ok.length * rowH + 40, W = left + plotW + right;
  const lo = Math.min(0.5, ...ok.map((b) => b.ratio)) / 1.2, hi = Math.max(2, ...ok.map((b) => b.ratio)) * 1.2;
  const lx = (r: number) => left + ((Math.log(r) - Math.log(lo)) / (Math.log(hi) - Math.log(lo))) * plotW;
  const ticks = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100].filter((t) => t >= lo && t <= hi);
  const parts: string[] = [];
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="10" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`);
  parts.push(`<text x="10" y="38" font-size="11" fill="#555">${esc(subtitle)}</text>`);
  groups.forEach((g, i) => {
    const x = left + i * 150;
    parts.push(`<rect x="${x}" y="46" width="10" height="10" fill="${COLOURS[i % COLOURS.length]}"/><text x="${x + 14}" y="55" font-size="11">${esc(g)}</text>`);
  });
  for (const t of ticks) {
    const x = lx(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${top - 4}" x2="${x}" y2="${top + ok.length * rowH}" stroke="${t === 1 ? '#000' : '#ddd'}" stroke-width="${t === 1 ? 1.5 : 1}"/>`);
    parts.push(`<text x="${x}" y="${top + ok.length * rowH + 14}" font-size="10" text-anchor="middle">${t}×</text>`);
  }
  ok.forEach((b, i) => {
    const y = top + i * rowH;
    const x1 = lx(1), x2 = lx(b.ratio);
    const c = COLOURS[groups.indexOf(b.group) % COLOURS.length];
    parts.push(`<text x="${labelW}" y="${y + 11}" font-size="10.5" text-anchor="end">${esc(b.label.length > 80 ? b.label.slice(0, 77) + '…' : b.label)}</text>`);
    parts.push(`<rect x="${Math.min(x1, x2).toFixed(1)}" y="${y + 2}" width="${Math.max(1, Math.abs(x2 - x1)).toFixed(1)}" height="${rowH - 4}" fill="${c}"/>`);
    parts.push(`<text x="${(Math.max(x1, x2) + 3).toFixed(1)}" y="${y + 11}" font-size="9.5" fill="#333">${b.ratio >= 10 ? b.ratio.toFixed(0) : b.ratio.toFixed(2)}</text>`);
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="DejaVu Sans, sans-serif">${parts.join('')}</svg>\n`;
}

/** Is rsvg-convert on PATH? */
export function canConvert(): boolean {
  return spawnSync('rsvg-convert', ['--version'], { stdio: 'ignore' }).status === 0;
}

/** SVG file → PNG file beside it (same name, .png). Returns the PNG path, or null when rsvg-convert is missing or fails. */
export function svgToPng(svgPath: string, pngPath = svgPath.replace(/\.svg$/, '.png')): string | null {
  const r = spawnSync('rsvg-convert', ['-b', 'white', '-o', pngPath, svgPath], { encoding: 'utf8' });
  return r.status === 0 ? pngPath : null;
}

/** Write `svg` to `svgPath` and convert it; returns the files written. */
export function writePlot(svgPath: string, svg: string): { svg: string; png: string | null } {
  writeFileSync(svgPath, svg);
  return { svg: svgPath, png: svgToPng(svgPath) };
}
