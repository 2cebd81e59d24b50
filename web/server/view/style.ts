/**
 * @module web/server/view/style
 * The visual vocabulary shared by the UI and the SVG export: colours per kind, the short
 * label drawn in a node box, and what each edge kind is called on screen.
 */
import type { EdgeKind } from '../../../graph/model.js';
import type { ViewNode } from './types.js';

/** Fill and stroke per node kind; chosen to stay distinct for the common colour-blindnesses. */
export const KIND_COLOURS: Record<ViewNode['kind'], { fill: string; stroke: string }> = {
  process: { fill: '#dbeafe', stroke: '#1d4ed8' },
  file: { fill: '#fef3c7', stroke: '#b45309' },
  pipe: { fill: '#e0e7ff', stroke: '#4338ca' },
  socket: { fill: '#ede9fe', stroke: '#6d28d9' },
  user: { fill: '#dcfce7', stroke: '#15803d' },
  group: { fill: '#f3f4f6', stroke: '#374151' },
};

/** Stroke colour of an edge drawn inside a window of lost events. */
export const GAP_COLOUR = '#dc2626';

/** What an edge reads as, cause → effect. */
export const EDGE_WORDS: Record<EdgeKind, string> = {
  used: 'read by',
  wasGeneratedBy: 'wrote',
  wasInformedBy: 'started',
  wasDerivedFrom: 'derived into',
  wasInvalidatedBy: 'deleted by',
  wasAssociatedWith: 'ran',
};

/** A one-letter badge for the node kind, so kinds differ by more than colour. */
export const KIND_BADGE: Record<ViewNode['kind'], string> = {
  process: 'P', file: 'F', pipe: '|', socket: 'S', user: 'U', group: '∑',
};

/** The text drawn in a box `width` pixels wide (about 7 px per character at 12 px). */
export function fitLabel(label: string, width: number): string {
  const max = Math.max(4, Math.floor((width - 34) / 7));
  return label.length <= max ? label : `${label.slice(0, max - 1)}…`;
}
