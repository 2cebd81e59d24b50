/**
 * @module graph/neo4j/lineage
 * Lineage walks as a breadth-first search driven from Node: one Cypher query per level,
 * the whole frontier in one UNWIND. Why not one variable-length MATCH: the history rule's
 * time bound depends on the edge that reached each process, which a `[*..10]` pattern cannot
 * carry without enumerating every path (exponential on busy processes); a level-wise walk
 * keeps one state per node and costs at most `depth` round trips (measured in
 * test/bench/neo4j.bench.ts).
 *
 * History rule, walking up (ancestors): reaching a process through an edge at time t admits
 * only its outgoing edges (used, wasInformedBy) with ts ≤ t; reaching an entity resets the
 * bound. Walking down (descendants) mirrors it: a process reached through an edge at t
 * admits only its incoming edges (wasGeneratedBy, wasInformedBy) with ts ≥ t.
 * A process reached again with a looser bound is walked again (it admits more edges).
 */
import type { GraphEdge, GraphNode } from '../model.js';
import type { LineageOptions, Subgraph } from '../store.js';
import type { QueryRunner } from './driver.js';
import { STEP, type Step } from './cypher.js';
import { edgeKey, toEdge, toNode } from './mapping.js';

export interface WalkOptions extends LineageOptions {
  /** Carry the history rule's time bound (only for history steps). */
  bounded?: boolean;
}

interface Front { id: string; bound: number | null }

/** Is bound `b` looser than `old` in the walk's direction (null = unbounded, the loosest)? */
function looser(b: number | null, old: number | null, up: boolean): boolean {
  if (old === null) return false;
  if (b === null) return true;
  return up ? b > old : b < old;
}

/**
 * Walk from `starts` (which exist: the caller fetched them) along `step`, level by level,
 * up to `depth` edges, returning at most `limit` nodes (then `truncated`).
 * `parents` (optional) records, per reached node, the edge that first reached it (for paths).
 */
export async function walk(
  run: QueryRunner,
  starts: GraphNode[],
  step: Step,
  opts: WalkOptions,
  parents?: Map<string, GraphEdge>,
  stopAt?: string,
): Promise<Subgraph> {
  const depth = opts.depth ?? 10;
  const limit = opts.limit ?? 5000;
  const up = step.startsWith('up');
  const nodes = new Map<string, GraphNode>(starts.slice(0, limit).map((n) => [n.id, n]));
  const edges = new Map<string, GraphEdge>();
  const bounds = new Map<string, number | null>([...nodes.keys()].map((id) => [id, null]));
  let truncated = nodes.size < starts.length;
  let front: Front[] = [...nodes.keys()].map((id) => ({ id, bound: null }));
  for (let level = 0; level < depth && front.length > 0 && !truncated; level++) {
    const res = await run.run(STEP[step], { front, since: opts.since ?? null, until: opts.until ?? null });
    const next = new Map<string, Front>();
    for (const rec of res.records) {
      const edge = toEdge(rec.get('t') as string, rec.get('from') as string, rec.get('to') as string, rec.get('e') as Record<string, unknown>);
      const far = toNode(rec.get('b') as Record<string, unknown>);
      if (!nodes.has(far.id)) {
        if (nodes.size >= limit) { truncated = true; continue; }
        nodes.set(far.id, far);
        parents?.set(far.id, edge);
      }
      edges.set(edgeKey(edge), edge);
      // A process reached through an edge is bounded by that edge's time; an entity is not.
      const bound = opts.bounded && far.kind === 'process' ? edge.ts : null;
      const seen = bounds.has(far.id);
      const old = seen ? bounds.get(far.id)! : null;
      if (!seen || looser(bound, old, up)) {
        bounds.set(far.id, bound);
        const queued = next.get(far.id);
        if (!queued || looser(bound, queued.bound, up)) next.set(far.id, { id: far.id, bound });
      }
    }
    if (stopAt && nodes.has(stopAt)) break;
    front = [...next.values()];
  }
  return { nodes: [...nodes.values()], edges: [...edges.values()], gaps: [], truncated };
}
