/**
 * @module collector/join/batch
 * Collects what the join produces between two takes: nodes merged by id (later attributes
 * overwrite earlier ones, as the store does), edges deduplicated on (kind, from, to, pos).
 */
import type { EdgeKind, Gap, GraphEdge, GraphNode, IngestBatch, NameRecord, NodeKind } from '../../graph/model.js';

export class BatchBuilder {
  private nodes = new Map<string, GraphNode>();
  private edges = new Map<string, GraphEdge>();
  private names: NameRecord[] = [];
  private nameEnds: IngestBatch['nameEnds'] = [];
  private gaps: Gap[] = [];

  /** Add or update a node; attrs merge into an earlier one of the same id. */
  node(id: string, kind: NodeKind, host: string, label: string, ts: number, attrs: Record<string, unknown>): void {
    const old = this.nodes.get(id);
    if (old) {
      for (const k in attrs) if (attrs[k] !== undefined) old.attrs[k] = attrs[k];
      if (label) old.label = label;
      return;
    }
    this.nodes.set(id, { id, kind, host, label, ts, attrs: dropUndefined(attrs) });
  }

  edge(kind: EdgeKind, from: string, to: string, ts: number, pos: string, attrs?: Record<string, unknown>): void {
    const key = `${kind}|${from}|${to}|${pos}`;
    if (this.edges.has(key)) return;
    const e: GraphEdge = { kind, from, to, ts, pos };
    if (attrs) e.attrs = dropUndefined(attrs);
    this.edges.set(key, e);
  }

  name(r: NameRecord): void { this.names.push(r); }
  nameEnd(file: string, path: string, until: number): void { this.nameEnds.push({ file, path, until }); }
  gap(g: Gap): void { this.gaps.push(g); }

  get size(): number { return this.nodes.size + this.edges.size + this.names.length + this.nameEnds.length + this.gaps.length; }

  /** Everything collected, and reset. */
  take(checkpoint: Record<string, number>): IngestBatch {
    const b: IngestBatch = {
      checkpoint: { ...checkpoint },
      nodes: [...this.nodes.values()],
      edges: [...this.edges.values()],
      names: this.names,
      nameEnds: this.nameEnds,
      gaps: this.gaps,
    };
    this.nodes = new Map();
    this.edges = new Map();
    this.names = [];
    this.nameEnds = [];
    this.gaps = [];
    return b;
  }
}

function dropUndefined(o: Record<string, unknown>): Record<string, unknown> {
  const r: Record<string, unknown> = {};
  for (const k in o) if (o[k] !== undefined) r[k] = o[k];
  return r;
}
