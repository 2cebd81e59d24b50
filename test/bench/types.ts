/**
 * @module test/bench/types
 * What every benchmark module returns, so `npm run bench` can put all of them in one report.
 * A bench module is `test/bench/<area>.bench.ts` and exports `run(opts): Promise<BenchResult>`;
 * it can also be run alone: `node dist/test/bench/<area>.bench.js [--quick]`.
 */

export interface BenchOptions {
  /** A sanity run of about a minute in total: fewer repeats, smaller inputs. */
  quick: boolean;
}

/** One figure: prov's value against the baseline measured in the same run. */
export interface BenchRow {
  /** What was measured, e.g. "create+unlink ops/s, provfs plain vs ext4". */
  figure: string;
  unit: string;
  /** Median of prov's runs. */
  prov: number;
  /** Median of the baseline's runs (measured interleaved with prov's), or null when there is none. */
  baseline: number | null;
  baselineName?: string;
  /** prov / baseline for rates (higher is better), baseline / prov for times; say which in `better`. */
  ratio: number | null;
  better: 'higher' | 'lower';
  /** Spread as (max - min) / median over the repeats, for prov and baseline. */
  spread?: { prov: number; baseline?: number };
  repeats: number;
  /** The figure Bento's paper reported, where it reported one, with its meaning. */
  paper?: string;
  /** The goal from the issue, e.g. "≥ 0.9× ext4". */
  goal?: string;
  note?: string;
  /** A figure the README should quote (the report lists it in its headline table). */
  headline?: boolean;
}

export interface BenchResult {
  name: string;
  rows: BenchRow[];
  /** Peak RSS of the long-running parts measured, in MiB. */
  memory?: Record<string, number>;
  /** Plot files written (paths relative to the repo root). */
  plots?: string[];
  /** Extra tables the report prints as given (e.g. one row per workload, one column per target). */
  tables?: BenchTable[];
  /** What the module could not measure in this run, and why (printed as such, never as a number). */
  notMeasured?: Array<{ what: string; reason: string }>;
}

/** A pre-formatted table: cells are already text. */
export interface BenchTable {
  title: string;
  columns: string[];
  rows: string[][];
  /** A sentence printed under the table (how to read it). */
  caption?: string;
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** (max - min) / median. */
export function spread(xs: number[]): number {
  const md = median(xs);
  return md === 0 ? 0 : (Math.max(...xs) - Math.min(...xs)) / md;
}
