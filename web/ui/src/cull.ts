/**
 * @module web/ui/cull
 * Which part of a big drawing is in the DOM: the viewport plus a margin, rounded out to a grid
 * so that small pans and zooms keep the same window (and React has nothing to redo).
 */
import type { PlacedNode } from '../../server/view/types.js';

/** Above this many boxes only those near the viewport are in the DOM. */
export const CULL_ABOVE = 1500;
const CELL = 400;

/** [left, top, right, bottom] in layout coordinates. */
export type Window = [number, number, number, number];

/** The window for transform (x, y, k) over a w × h viewport. */
export function cullWindow(t: { x: number; y: number; k: number }, w: number, h: number): Window {
  return [
    Math.floor((-t.x / t.k - CELL) / CELL) * CELL, Math.floor((-t.y / t.k - CELL) / CELL) * CELL,
    Math.ceil(((w - t.x) / t.k + CELL) / CELL) * CELL, Math.ceil(((h - t.y) / t.k + CELL) / CELL) * CELL,
  ];
}

export function boxIn(n: PlacedNode, win: Window): boolean {
  return n.x + n.width >= win[0] && n.x <= win[2] && n.y + n.height >= win[1] && n.y <= win[3];
}

/** True when the straight box spanned by an edge's two ends meets the window. */
export function edgeIn(a: PlacedNode, b: PlacedNode, win: Window): boolean {
  return Math.max(a.x + a.width, b.x + b.width) >= win[0] && Math.min(a.x, b.x) <= win[2]
    && Math.max(a.y + a.height, b.y + b.height) >= win[1] && Math.min(a.y, b.y) <= win[3];
}
