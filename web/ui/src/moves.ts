/**
 * @module web/ui/moves
 * Keyboard moves over a laid-out lineage: ← to a cause, → to an effect (the nearest one on
 * screen), ↑ ↓ to the neighbour in the same column.
 */
import type { Layout, PlacedNode } from '../../server/view/types.js';

export interface Moves { move(from: PlacedNode, key: string): PlacedNode | undefined }

/** Index `layout` once for fast moves. */
export function movesOf(layout: Layout): Moves {
  const byId = new Map(layout.nodes.map((n) => [n.id, n]));
  const causes = new Map<string, PlacedNode[]>(), effects = new Map<string, PlacedNode[]>();
  for (const e of layout.edges) {
    const s = byId.get(e.source), t = byId.get(e.target);
    if (!s || !t) continue;
    (effects.get(s.id) ?? effects.set(s.id, []).get(s.id)!).push(t);
    (causes.get(t.id) ?? causes.set(t.id, []).get(t.id)!).push(s);
  }
  const columns = new Map<number, PlacedNode[]>();
  for (const n of layout.nodes) (columns.get(n.layer) ?? columns.set(n.layer, []).get(n.layer)!).push(n);
  for (const c of columns.values()) c.sort((a, b) => a.y - b.y);
  const nearest = (from: PlacedNode, ns: PlacedNode[] = []): PlacedNode | undefined =>
    [...ns].sort((a, b) => Math.abs(a.y - from.y) - Math.abs(b.y - from.y))[0];
  return {
    move(from, key) {
      if (key === 'ArrowLeft') return nearest(from, causes.get(from.id));
      if (key === 'ArrowRight') return nearest(from, effects.get(from.id));
      const column = columns.get(from.layer) ?? [];
      const i = column.indexOf(from);
      if (key === 'ArrowUp') return column[i - 1];
      if (key === 'ArrowDown') return column[i + 1];
      return undefined;
    },
  };
}
