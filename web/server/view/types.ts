/**
 * @module web/server/view/types
 * The drawable form of a lineage answer, shared by the browser UI and the SVG export so both
 * draw the same picture. Edges here point from cause to effect (time flows left to right),
 * the reverse of PROV's effect→cause direction in graph/model.
 */
import type { EdgeKind, GraphNode, NodeKind } from '../../../graph/model.js';

/** A node to draw: one graph node, or a group standing for many similar siblings. */
export interface ViewNode {
  id: string;
  kind: NodeKind | 'group';
  label: string;
  /** The graph node (absent for a group). */
  node?: GraphNode;
  /** For a group: the kind its members share, the ids they have and the name pattern they match. */
  memberKind?: NodeKind;
  members?: string[];
  pattern?: string;
  /** True when the node's lifetime overlaps a window of lost events. */
  gap: boolean;
}

/** An edge to draw, from cause (`source`) to effect (`target`); parallel edges are merged and counted. */
export interface ViewEdge {
  id: string;
  kind: EdgeKind;
  source: string;
  target: string;
  /** How many graph edges this drawn edge stands for (more than one when it touches a group). */
  count: number;
  /** True when the relation happened inside a window of lost events: it may be incomplete. */
  gap: boolean;
}

export interface ViewGraph {
  nodes: ViewNode[];
  edges: ViewEdge[];
}

/** A node with its place: x is its left side, y its top side. */
export interface PlacedNode extends ViewNode {
  layer: number;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** An edge with its SVG path (`d`). */
export interface PlacedEdge extends ViewEdge {
  path: string;
}

export interface Layout {
  nodes: PlacedNode[];
  edges: PlacedEdge[];
  width: number;
  height: number;
}
