/**
 * @module web/ui/frame
 * Where a drawing first sits on screen: the largest readable scale (shrink to fit down to
 * 0.6; below that keep 0.75 and let the user pan) with the focus in view: against the right
 * edge when it is the last column (an ancestors view: its causes extend left), the left edge
 * when it is the first, centred otherwise.
 */
import type { Layout, PlacedNode } from '../../server/view/types.js';

export interface Frame { x: number; y: number; k: number }

export function fitFrame(layout: Layout, focus: PlacedNode | undefined, w: number, h: number): Frame {
  const fit = Math.min(w / (layout.width + 80), h / (layout.height + 80));
  const k = fit >= 0.6 ? Math.min(1, fit) : 0.75;
  const fitsX = layout.width * k < w, fitsY = layout.height * k < h;
  if (!focus) return { k, x: Math.max(40, (w - layout.width * k) / 2), y: fitsY ? (h - layout.height * k) / 2 : 40 };
  let x: number;
  if (fitsX) x = (w - layout.width * k) / 2;
  else if (focus.x + focus.width >= layout.width - 1) x = w - 40 - (focus.x + focus.width) * k;
  else if (focus.x <= 0) x = 40 - focus.x * k;
  else x = w / 2 - (focus.x + focus.width / 2) * k;
  const y = fitsY ? (h - layout.height * k) / 2 : h / 2 - (focus.y + focus.height / 2) * k;
  return { x, y, k };
}
