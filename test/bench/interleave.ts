/**
 * @module test/bench/interleave
 * Run compared contenders in rounds (A B C, then B C A, then C A B, …) so that drift in the
 * machine's load hits every contender alike, and repeat until every contender's spread is
 * small or a time budget is spent. Any bench module can use it: a contender is a function that
 * returns one measured value (seconds, ops/s, MiB/s — the caller says which is better).
 */
import { median, spread, type BenchRow } from './types.js';

export interface Contender {
  name: string;
  /** Untimed work before each sample (attach a tracer, empty a directory). */
  before?: () => void | Promise<void>;
  /** One sample: returns the measured value (the caller decides the unit). */
  sample: () => number | Promise<number>;
  /** Untimed work after each sample, also when the sample threw. */
  after?: () => void | Promise<void>;
}

export interface InterleaveOptions {
  /** Rounds always run (default 3). */
  minRounds?: number;
  /** Rounds never exceeded (default 9). */
  maxRounds?: number;
  /** Stop after minRounds once every contender's spread is at most this (default 0.10). */
  targetSpread?: number;
  /** Stop after minRounds once this much wall time is spent (default 30 s). */
  budgetMs?: number;
  /** Rotate the order each round (default true); off keeps A B A B. */
  rotate?: boolean;
}

export interface Interleaved {
  samples: Record<string, number[]>;
  median: Record<string, number>;
  spread: Record<string, number>;
  rounds: number;
  /** Why the rounds stopped. */
  stoppedBy: 'spread' | 'budget' | 'maxRounds';
  wallMs: number;
}

/**
 * Measure `contenders` interleaved. Samples run one after another (never concurrently): the
 * point is to compare them under the same conditions, not to load the machine.
 */
export async function interleave(contenders: Contender[], opts: InterleaveOptions = {}): Promise<Interleaved> {
  if (contenders.length === 0) throw new Error('interleave: no contenders');
  const minRounds = Math.max(1, opts.minRounds ?? 3);
  const maxRounds = Math.max(minRounds, opts.maxRounds ?? 9);
  const target = opts.targetSpread ?? 0.1;
  const budget = opts.budgetMs ?? 30_000;
  const rotate = opts.rotate ?? true;
  const samples: Record<string, number[]> = Object.fromEntries(contenders.map((c) => [c.name, []]));
  const t0 = Date.now();
  let rounds = 0;
  let stoppedBy: Interleaved['stoppedBy'] = 'maxRounds';
  while (rounds < maxRounds) {
    const k = rotate ? rounds % contenders.length : 0;
    const order = [...contenders.slice(k), ...contenders.slice(0, k)];
    for (const c of order) {
      await c.before?.();
      try {
        const v = await c.sample();
        if (!Number.isFinite(v)) throw new Error(`interleave: ${c.name} returned ${v}`);
        samples[c.name]!.push(v);
      } finally {
        await c.after?.();
      }
    }
    rounds++;
    if (rounds < minRounds) continue;
    if (contenders.every((c) => spread(samples[c.name]!) <= target)) { stoppedBy = 'spread'; break; }
    if (Date.now() - t0 >= budget) { stoppedBy = 'budget'; break; }
  }
  return {
    samples,
    median: Object.fromEntries(contenders.map((c) => [c.name, median(samples[c.name]!)])),
    spread: Object.fromEntries(contenders.map((c) => [c.name, spread(samples[c.name]!)])),
    rounds, stoppedBy, wallMs: Date.now() - t0,
  };
}

/** Round to `digits` significant-ish decimals for the report (keeps integers whole). */
export function tidy(x: number): number {
  const a = Math.abs(x);
  const d = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : a >= 1 ? 3 : 4;
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

/**
 * A report row comparing contender `prov` with contender `base` of one interleaved run.
 * ratio = prov/base for rates (higher is better), base/prov for times (lower is better), so a
 * ratio above 1 always means prov did better.
 */
export function rowOf(r: Interleaved, prov: string, base: string | null, row: {
  figure: string; unit: string; better: 'higher' | 'lower'; paper?: string; goal?: string; note?: string; baselineName?: string;
}): BenchRow {
  const p = r.median[prov];
  if (p === undefined) throw new Error(`rowOf: no contender ${prov}`);
  const b = base === null ? null : r.median[base] ?? null;
  const ratio = b === null || p === 0 ? null : row.better === 'higher' ? p / b : b / p;
  return {
    figure: row.figure, unit: row.unit, prov: tidy(p), baseline: b === null ? null : tidy(b),
    baselineName: row.baselineName ?? base ?? undefined, ratio: ratio === null ? null : Math.round(ratio * 1000) / 1000,
    better: row.better,
    spread: { prov: Math.round(r.spread[prov]! * 1000) / 1000, ...(base !== null ? { baseline: Math.round(r.spread[base]! * 1000) / 1000 } : {}) },
    repeats: r.rounds, paper: row.paper, goal: row.goal,
    note: [row.note, r.stoppedBy === 'budget' && Math.max(r.spread[prov]!, base ? r.spread[base]! : 0) > 0.1 ? 'time budget spent before the spread fell under 10 %' : undefined].filter(Boolean).join('; ') || undefined,
  };
}

/** Geometric mean of positive numbers (the fair average of ratios). */
export function geomean(xs: number[]): number {
  const ok = xs.filter((x) => x > 0 && Number.isFinite(x));
  if (!ok.length) return NaN;
  return Math.exp(ok.reduce((s, x) => s + Math.log(x), 0) / ok.length);
}
