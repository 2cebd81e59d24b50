/**
 * @module graph/lineage
 * The lineage walk, independent of any store: breadth-first over a store's adjacency with the
 * derivation rules of graph/store.ts applied edge by edge. A store supplies one function that
 * returns the edges touching a frontier of nodes (one query per level), so the same rules give
 * the same answers on SQLite and Neo4j.
 *
 * The `history` rule's time bound: walking up (towards causes), a process reached through an
 * edge at time t admits only its `used` and `wasInformedBy` edges with ts ≤ t; walking down
 * (towards effects), a process reached through an edge at time t admits only edges into it
 * (`wasGeneratedBy`, `wasInformedBy` from children, `wasInvalidatedBy`) with ts ≥ t. Reaching
 * an entity resets the bound. Because a process can be reached with different bounds, the walk
 * keeps the best bound seen per node and expands a node again when a better bound arrives.
 */
import type { EdgeKind } from './model.js';
import type { DerivationRule, LineageOptions } from './store.js';
import { InputError } from './errors.js';

/** Up = towards causes (follow edges from → to); down = towards effects. */
export type Direction = 'up' | 'down';

/** An edge as the walk sees it; `K` is the store's node key (an integer rowid, a string id…). */
export interface WalkEdge<K> {
  src: K;
  dst: K;
  kind: EdgeKind;
  ts: number;
  pos: string;
  /** attrs.rule === 'strict' on a wasDerivedFrom edge. */
  strict: boolean;
  /** Whatever the store wants back with the edge (e.g. its raw attrs). */
  data?: unknown;
}

/**
 * Fetch the edges leaving (up) or entering (down) the nodes of the frontier: all of them, or at
 * most `max` (a store may stop there; the walk then reports its result as truncated).
 */
export type FetchEdges<K> = (frontier: K[], dir: Direction, max: number) => Promise<WalkEdge<K>[]> | WalkEdge<K>[];

/**
 * Most edges one level may fetch: a file every process reads (libc) has millions of effects,
 * and a walk that returns `limit` nodes needs far fewer than that to find them.
 */
export function levelCap(o: WalkOptions): number {
  return Math.max(10_000, o.limit * 4);
}

/** Options after defaults and validation. */
export interface WalkOptions {
  depth: number;
  since: number;
  until: number;
  rule: DerivationRule;
  limit: number;
}

export interface WalkResult<K> {
  /** Nodes reached, start first, in breadth-first order. */
  nodes: K[];
  edges: WalkEdge<K>[];
  truncated: boolean;
}

/** Kinds whose `to` end is a process (activity). */
const TO_PROCESS: ReadonlySet<EdgeKind> = new Set<EdgeKind>(['wasGeneratedBy', 'wasInformedBy', 'wasInvalidatedBy']);
/** Kinds whose `from` end is a process. */
const FROM_PROCESS: ReadonlySet<EdgeKind> = new Set<EdgeKind>(['used', 'wasInformedBy', 'wasAssociatedWith']);
/** Inputs of a process: bounded when walking up. */
const PROCESS_INPUTS: ReadonlySet<EdgeKind> = new Set<EdgeKind>(['used', 'wasInformedBy']);

/** Defaults and validation of LineageOptions; `where` names the caller in errors. */
export function walkOptions(opts: LineageOptions | undefined, where: string, defaults: Partial<WalkOptions> = {}): WalkOptions {
  const o = opts ?? {};
  const depth = o.depth ?? defaults.depth ?? 10;
  const limit = o.limit ?? defaults.limit ?? 5000;
  const rule = o.rule ?? 'history';
  if (!Number.isInteger(depth) || depth < 0) throw new InputError(`depth must be a non-negative integer, got ${String(o.depth)}`, where);
  if (!Number.isInteger(limit) || limit < 1) throw new InputError(`limit must be a positive integer, got ${String(o.limit)}`, where);
  if (rule !== 'history' && rule !== 'strict') throw new InputError(`rule must be 'history' or 'strict', got ${String(rule)}`, where);
  for (const k of ['since', 'until'] as const) {
    const v = o[k];
    if (v !== undefined && (typeof v !== 'number' || Number.isNaN(v))) throw new InputError(`${k} must be a number (ns), got ${String(v)}`, where);
  }
  return { depth, limit, rule, since: o.since ?? -Infinity, until: o.until ?? Infinity };
}

/**
 * Whether the walk may cross edge `e` from a node held with bound `bound`, and the bound of the
 * node it reaches. Bounds are signed so that larger is always better: up, `bound` is the latest
 * admitted ts; down, it is minus the earliest admitted ts. Returns NaN when the edge is refused.
 */
export function crossEdge<K>(e: WalkEdge<K>, dir: Direction, bound: number, o: WalkOptions): number {
  if (e.ts < o.since || e.ts > o.until) return NaN;
  if (o.rule === 'strict') {
    return e.kind === 'wasDerivedFrom' && e.strict ? Infinity : NaN;
  }
  if (e.kind === 'wasDerivedFrom' && e.strict) return NaN;
  if (dir === 'up') {
    if (PROCESS_INPUTS.has(e.kind) && e.ts > bound) return NaN;
    return TO_PROCESS.has(e.kind) ? e.ts : Infinity;
  }
  if (TO_PROCESS.has(e.kind) && -e.ts > bound) return NaN;
  return FROM_PROCESS.has(e.kind) ? -e.ts : Infinity;
}

/** Breadth-first walk from `start` in direction `dir` under options `o`. */
export async function walk<K>(start: K, dir: Direction, o: WalkOptions, fetch: FetchEdges<K>): Promise<WalkResult<K>> {
  const included = new Set<K>([start]);
  const order: K[] = [start];
  const best = new Map<K, number>([[start, Infinity]]);
  // Each edge object comes from one fetch (adjacency is cached per node), so identity dedupes.
  const edges = new Set<WalkEdge<K>>();
  const adjacency = new Map<K, WalkEdge<K>[]>();
  let truncated = false;
  let frontier = new Map<K, number>([[start, Infinity]]);
  const cap = levelCap(o);

  for (let d = 0; d < o.depth && frontier.size > 0; d++) {
    const need = [...frontier.keys()].filter((k) => !adjacency.has(k));
    if (need.length > 0) {
      for (const k of need) adjacency.set(k, []);
      const got = await fetch(need, dir, cap);
      if (got.length >= cap) truncated = true; // the level was cut: some edges were never seen
      for (const e of got) adjacency.get(dir === 'up' ? e.src : e.dst)?.push(e);
    }
    const next = new Map<K, number>();
    for (const [k, bound] of frontier) {
      for (const e of adjacency.get(k)!) {
        const nb = crossEdge(e, dir, bound, o);
        if (Number.isNaN(nb)) continue;
        const target = dir === 'up' ? e.dst : e.src;
        if (!included.has(target)) {
          if (included.size >= o.limit) { truncated = true; continue; }
          included.add(target);
          order.push(target);
        }
        edges.add(e);
        const prev = best.get(target);
        if (prev !== undefined && prev >= nb) continue; // reached before, no later, with a bound as good
        best.set(target, nb);
        const queued = next.get(target);
        if (queued === undefined || queued < nb) next.set(target, nb);
      }
    }
    frontier = next;
  }
  return { nodes: order, edges: [...edges], truncated };
}

/**
 * A shortest admissible path from `from` to `to` walking in direction `dir` (up: along the
 * edges' direction), as the list of edges in walk order, or null when none within `o.depth`
 * (or none among the first {@link levelCap} edges of each level).
 */
export async function shortestPath<K>(from: K, to: K, dir: Direction, o: WalkOptions, fetch: FetchEdges<K>): Promise<WalkEdge<K>[] | null> {
  if (from === to) return [];
  interface State { node: K; bound: number; parent: State | null; via: WalkEdge<K> | null }
  const best = new Map<K, number>([[from, Infinity]]);
  const adjacency = new Map<K, WalkEdge<K>[]>();
  let frontier: State[] = [{ node: from, bound: Infinity, parent: null, via: null }];
  const cap = levelCap(o);
  for (let d = 0; d < o.depth && frontier.length > 0; d++) {
    const need = [...new Set(frontier.map((s) => s.node))].filter((k) => !adjacency.has(k));
    if (need.length > 0) {
      for (const k of need) adjacency.set(k, []);
      for (const e of await fetch(need, dir, cap)) adjacency.get(dir === 'up' ? e.src : e.dst)?.push(e);
    }
    const next: State[] = [];
    for (const s of frontier) {
      for (const e of adjacency.get(s.node)!) {
        const nb = crossEdge(e, dir, s.bound, o);
        if (Number.isNaN(nb)) continue;
        const target = dir === 'up' ? e.dst : e.src;
        const state: State = { node: target, bound: nb, parent: s, via: e };
        if (target === to) {
          const path: WalkEdge<K>[] = [];
          for (let c: State | null = state; c?.via; c = c.parent) path.unshift(c.via);
          return path;
        }
        const prev = best.get(target);
        if (prev !== undefined && prev >= nb) continue;
        best.set(target, nb);
        next.push(state);
      }
    }
    frontier = next;
  }
  return null;
}
