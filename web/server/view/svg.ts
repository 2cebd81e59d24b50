/**
 * @module web/server/view/svg
 * Renders a Layout as a standalone SVG document (the API's SVG export), drawing what the UI
 * draws. Every piece of text is escaped: file names and argv are untrusted.
 */
import { EDGE_WORDS, GAP_COLOUR, KIND_BADGE, KIND_COLOURS, fitLabel } from './style.js';
import type { Layout } from './types.js';

/** Escape text for XML content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`)
    // Characters XML 1.0 forbids (control bytes a file name may still hold).
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '\ufffd');
}

/** The SVG document for `layout`, with `title` as its accessible name. */
export function renderSvg(layout: Layout, title: string): string {
  const m = 20;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${layout.width + 2 * m}" height="${layout.height + 2 * m}" viewBox="${-m} ${-m} ${layout.width + 2 * m} ${layout.height + 2 * m}" font-family="sans-serif" font-size="12">`);
  out.push(`<title>${escapeXml(title)}</title>`);
  out.push('<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" markerUnits="userSpaceOnUse" orient="auto"><path d="M0,0L10,5L0,10z" fill="#6b7280"/></marker></defs>');
  for (const e of layout.edges) {
    const stroke = e.gap ? GAP_COLOUR : '#6b7280';
    out.push(`<path d="${escapeXml(e.path)}" fill="none" stroke="${stroke}" stroke-width="${Math.min(1 + Math.log2(e.count), 6).toFixed(1)}"${e.gap ? ' stroke-dasharray="6 4"' : ''} marker-end="url(#arrow)"><title>${escapeXml(`${EDGE_WORDS[e.kind]} (${e.kind}${e.count > 1 ? ` ×${e.count}` : ''})`)}</title></path>`);
  }
  for (const n of layout.nodes) {
    const c = KIND_COLOURS[n.kind];
    const stroke = n.gap ? GAP_COLOUR : c.stroke;
    out.push(`<g transform="translate(${n.x},${n.y})"><title>${escapeXml(n.kind === 'group' ? n.label : (n.node?.attrs.path as string | undefined) ?? n.label)}</title>`);
    out.push(`<rect width="${n.width}" height="${n.height}" rx="${n.kind === 'process' ? 12 : 3}" fill="${c.fill}" stroke="${stroke}" stroke-width="${n.gap ? 2.5 : 1.2}"${n.gap ? ' stroke-dasharray="5 3"' : ''}/>`);
    out.push(`<text x="10" y="${n.height / 2 + 4}" font-weight="bold" fill="${c.stroke}">${escapeXml(KIND_BADGE[n.kind])}</text>`);
    out.push(`<text x="26" y="${n.height / 2 + 4}" fill="#111827">${escapeXml(fitLabel(n.label, n.width))}</text></g>`);
  }
  out.push('</svg>');
  return out.join('\n');
}
