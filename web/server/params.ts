/**
 * @module web/server/params
 * Parsing and validation of every query and path parameter the API takes. Each parser either
 * returns a clean value or throws an InputError naming the parameter, so a bad request becomes
 * a 400 with its reason in one place (see errors.ts) and no handler sees unchecked input.
 */
import { InputError } from '../../graph/errors.js';
import type { DerivationRule, LineageOptions } from '../../graph/store.js';
import type { NodeKind } from '../../graph/model.js';

/** A query string as Express parses it: values may be strings, arrays or nested objects. */
export type Query = Record<string, unknown>;

const NODE_KINDS: readonly NodeKind[] = ['process', 'file', 'pipe', 'socket', 'user'];
const RULES: readonly DerivationRule[] = ['history', 'strict'];
/** Longest id or path we accept: Linux PATH_MAX plus the host and inode prefix. */
const MAX_TEXT = 4096 + 256;

/** The single string value of `name`, or undefined when absent. Repeated or nested values are refused. */
export function optString(q: Query, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new InputError('must be given once, as a plain string', name);
  if (v.length > MAX_TEXT) throw new InputError(`is longer than ${MAX_TEXT} characters`, name);
  if (v.includes('\0')) throw new InputError('contains a NUL byte', name);
  return v;
}

/** A required non-empty string. */
export function reqString(q: Query, name: string): string {
  const v = optString(q, name);
  if (v === undefined || v === '') throw new InputError('is required', name);
  return v;
}

/** An optional integer within [min, max]; `fallback` when absent. */
export function optInt(q: Query, name: string, min: number, max: number, fallback?: number): number | undefined {
  const raw = optString(q, name);
  if (raw === undefined || raw === '') return fallback;
  if (!/^-?\d+$/.test(raw)) throw new InputError(`must be an integer, got ${JSON.stringify(raw.slice(0, 40))}`, name);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new InputError('is too large', name);
  if (n < min || n > max) throw new InputError(`must be between ${min} and ${max}, got ${n}`, name);
  return n;
}

/** A node id as the graph model spells it (`kind:host:…`). */
export function nodeId(raw: unknown, name = 'id'): string {
  if (typeof raw !== 'string' || raw === '') throw new InputError('is required', name);
  if (raw.length > MAX_TEXT) throw new InputError(`is longer than ${MAX_TEXT} characters`, name);
  if (!/^(proc|file|pipe|sock|user):[^:]+:/.test(raw)) {
    throw new InputError(`is not a node id (expected proc:|file:|pipe:|sock:|user:<host>:…), got ${JSON.stringify(raw.slice(0, 60))}`, name);
  }
  return raw;
}

/** An optional node kind. */
export function optKind(q: Query, name = 'kind'): NodeKind | undefined {
  const v = optString(q, name);
  if (v === undefined || v === '') return undefined;
  if (!(NODE_KINDS as readonly string[]).includes(v)) throw new InputError(`must be one of ${NODE_KINDS.join(', ')}, got ${JSON.stringify(v.slice(0, 40))}`, name);
  return v as NodeKind;
}

/** Maximum nodes a lineage answer may hold: the UI draws up to this many. */
export const MAX_NODES = 20000;

/**
 * The common lineage options: depth (1..100, default 10), since/until (ns, since ≤ until),
 * rule (history|strict) and limit (1..20000, default 5000).
 */
export function lineageOptions(q: Query): LineageOptions {
  const depth = optInt(q, 'depth', 1, 100, 10)!;
  const since = optInt(q, 'since', 0, Number.MAX_SAFE_INTEGER);
  const until = optInt(q, 'until', 0, Number.MAX_SAFE_INTEGER);
  if (since !== undefined && until !== undefined && since > until) throw new InputError(`must not be after until (${since} > ${until})`, 'since');
  const ruleRaw = optString(q, 'rule');
  let rule: DerivationRule = 'history';
  if (ruleRaw !== undefined && ruleRaw !== '') {
    if (!(RULES as readonly string[]).includes(ruleRaw)) throw new InputError(`must be history or strict, got ${JSON.stringify(ruleRaw.slice(0, 40))}`, 'rule');
    rule = ruleRaw as DerivationRule;
  }
  const limit = optInt(q, 'limit', 1, MAX_NODES, 5000)!;
  const opts: LineageOptions = { depth, rule, limit };
  if (since !== undefined) opts.since = since;
  if (until !== undefined) opts.until = until;
  return opts;
}

/** Refuse query parameters this endpoint does not know: a typo must not silently widen a query. */
export function onlyKnown(q: Query, known: readonly string[]): void {
  for (const k of Object.keys(q)) {
    if (!known.includes(k)) throw new InputError(`unknown parameter (this endpoint takes ${known.join(', ') || 'none'})`, k);
  }
}
