/**
 * @module web/ui/NodeBox
 * One node of the lineage drawing. Text goes through React, so file names and argv are
 * always escaped; the full name is in the tooltip, a shortened one in the box.
 */
import { memo } from 'react';
import { KIND_BADGE, KIND_COLOURS, GAP_COLOUR, fitLabel } from '../../server/view/style.js';
import type { PlacedNode } from '../../server/view/types.js';

export interface NodeBoxProps {
  n: PlacedNode;
  focus: boolean;
  selected: boolean;
  collapsed: boolean;
}

/** The DOM id of a box (for aria-activedescendant). */
export function domId(nodeId: string): string {
  return `node-${nodeId}`;
}

/** The full text behind a box (shown on hover by GraphView: one tooltip, not one per box). */
export function tooltip(n: PlacedNode): string {
  if (n.kind === 'group') return `${n.label}: ${n.members?.length ?? 0} similar nodes matching ${n.pattern ?? ''} (double-click or Enter to expand)`;
  const a = n.node?.attrs ?? {};
  if (n.kind === 'process' && Array.isArray(a.argv)) return `${(a.argv as unknown[]).map(String).join(' ')}\npid ${String(a.pid)}`;
  if (typeof a.path === 'string') return `${a.path}${a.version !== undefined ? `\nversion ${String(a.version)}` : ''}`;
  return n.label;
}

/** Clicks are handled once for all boxes by GraphView (event delegation on data-node-id). */
export const NodeBox = memo(function NodeBox({ n, focus, selected, collapsed }: NodeBoxProps) {
  const c = KIND_COLOURS[n.kind];
  const cls = ['node', `kind-${n.kind}`, focus && 'focus', selected && 'selected', n.gap && 'gap', collapsed && 'collapsed'].filter(Boolean).join(' ');
  return (
    <g className={cls} transform={`translate(${n.x},${n.y})`} data-node-id={n.id} data-kind={n.kind}
      id={domId(n.id)} role="button" aria-label={`${n.kind}: ${tooltip(n)}${n.gap ? ' (lost events around it)' : ''}`} aria-pressed={selected}>
      {n.kind === 'group' && <rect x={5} y={5} width={n.width} height={n.height} rx={3} fill={c.fill} stroke={c.stroke} />}
      <rect
        width={n.width} height={n.height} rx={n.kind === 'process' ? 12 : 3}
        fill={c.fill} stroke={n.gap ? GAP_COLOUR : c.stroke}
        strokeWidth={selected ? 3 : n.gap ? 2.5 : focus ? 2.5 : 1.2}
        strokeDasharray={n.gap ? '5 3' : undefined}
      />
      <text x={10} y={n.height / 2 + 4} className="badge" fill={c.stroke}>{KIND_BADGE[n.kind]}</text>
      <text x={26} y={n.height / 2 + 4} className="label">{fitLabel(n.label, n.width)}</text>
      {collapsed && <text x={n.width - 14} y={n.height / 2 + 4} className="more" aria-label="collapsed">⊕</text>}
      {n.gap && <text x={n.width - (collapsed ? 28 : 14)} y={n.height / 2 + 4} className="gap-mark" fill={GAP_COLOUR}>!</text>}
    </g>
  );
});
