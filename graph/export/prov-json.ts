/**
 * @module graph/export/prov-json
 * A Subgraph as a W3C PROV-JSON document (W3C Member Submission, 2013): `prefix`, `entity`,
 * `activity`, `agent` and one object per relation kind, each record keyed by a blank-node id.
 *
 * Node ids are already qualified names (`file:…`, `proc:…`, `pipe:…`, `sock:…`, `user:…`):
 * each prefix is declared under a `urn:x-prov:` namespace, so ids stay as they are. prov's own
 * attributes go under the `px` prefix. Timestamps are CLOCK_MONOTONIC ns of their host; they
 * are always given as `px:ts` (xsd:long), and as `prov:time` / `prov:startTime` /
 * `prov:endTime` (xsd:dateTime) only when the caller supplies the host's boot time.
 */
import type { EdgeKind, GraphEdge, GraphNode } from '../model.js';
import type { Subgraph } from '../store.js';

/** A PROV-JSON literal with an explicit type (e.g. xsd:long for ns timestamps). */
export interface TypedLiteral {
  $: string;
  type: string;
}
export type ProvValue = string | number | boolean | TypedLiteral;
export type ProvRecord = Record<string, ProvValue>;

export interface ProvJsonDocument {
  prefix: Record<string, string>;
  entity: Record<string, ProvRecord>;
  activity: Record<string, ProvRecord>;
  agent: Record<string, ProvRecord>;
  used: Record<string, ProvRecord>;
  wasGeneratedBy: Record<string, ProvRecord>;
  wasInformedBy: Record<string, ProvRecord>;
  wasDerivedFrom: Record<string, ProvRecord>;
  wasInvalidatedBy: Record<string, ProvRecord>;
  wasAssociatedWith: Record<string, ProvRecord>;
}

export interface ProvJsonOptions {
  /**
   * Wall-clock time (ms since the Unix epoch, fractional allowed) at which each host's
   * CLOCK_MONOTONIC read 0, i.e. its boot time. Hosts without one get no xsd:dateTime values.
   */
  bootTimeMs?: Record<string, number>;
}

/**
 * This machine's boot time as {@link ProvJsonOptions.bootTimeMs} wants it: the wall clock minus
 * CLOCK_MONOTONIC (which process.hrtime reads, as capture does). Valid for records of this host
 * since its last boot; a suspend shifts it by the time spent asleep.
 */
export function localBootTimeMs(): number {
  return Date.now() - Number(process.hrtime.bigint()) / 1e6;
}

/** The namespace of prov's own attributes and of each id prefix. */
export const PROV_JSON_PREFIXES: Readonly<Record<string, string>> = {
  px: 'urn:x-prov:attr:',
  file: 'urn:x-prov:file:',
  proc: 'urn:x-prov:proc:',
  pipe: 'urn:x-prov:pipe:',
  sock: 'urn:x-prov:sock:',
  user: 'urn:x-prov:user:',
  gap: 'urn:x-prov:gap:',
};

/** The PROV-JSON member names of each relation's two ends (effect, cause). */
const ENDS: Record<EdgeKind, [string, string]> = {
  used: ['prov:activity', 'prov:entity'],
  wasGeneratedBy: ['prov:entity', 'prov:activity'],
  wasInformedBy: ['prov:informed', 'prov:informant'],
  wasDerivedFrom: ['prov:generatedEntity', 'prov:usedEntity'],
  wasInvalidatedBy: ['prov:entity', 'prov:activity'],
  wasAssociatedWith: ['prov:activity', 'prov:agent'],
};
/** Relations whose PROV-DM form has a time. */
const TIMED: ReadonlySet<EdgeKind> = new Set<EdgeKind>(['used', 'wasGeneratedBy', 'wasInvalidatedBy']);

const TYPE_OF: Record<GraphNode['kind'], string> = {
  file: 'px:File', pipe: 'px:Pipe', socket: 'px:Socket', process: 'px:Process', user: 'prov:Agent',
};

/** Convert a Subgraph to a PROV-JSON document (a plain object; JSON.stringify it to write). */
export function toProvJson(g: Subgraph, opts: ProvJsonOptions = {}): ProvJsonDocument {
  const doc: ProvJsonDocument = {
    prefix: { ...PROV_JSON_PREFIXES },
    entity: {}, activity: {}, agent: {},
    used: {}, wasGeneratedBy: {}, wasInformedBy: {}, wasDerivedFrom: {}, wasInvalidatedBy: {}, wasAssociatedWith: {},
  };
  const hostOf = new Map<string, string>();
  for (const n of g.nodes) {
    hostOf.set(n.id, n.host);
    const r: ProvRecord = {
      'prov:label': n.label,
      'prov:type': { $: TYPE_OF[n.kind], type: 'prov:QUALIFIED_NAME' },
      'px:kind': n.kind,
      'px:host': n.host,
      'px:ts': long(n.ts),
    };
    for (const [k, v] of Object.entries(n.attrs)) putAttr(r, k, v);
    if (n.kind === 'process') {
      const start = wallTime(opts, n.host, typeof n.attrs.start === 'number' ? n.attrs.start : n.ts);
      if (start) r['prov:startTime'] = start;
      const end = typeof n.attrs.end === 'number' ? wallTime(opts, n.host, n.attrs.end) : undefined;
      if (end) r['prov:endTime'] = end;
      doc.activity[n.id] = r;
    } else if (n.kind === 'user') {
      doc.agent[n.id] = r;
    } else {
      doc.entity[n.id] = r;
    }
  }
  g.edges.forEach((e: GraphEdge, i) => {
    const [effect, cause] = ENDS[e.kind];
    const r: ProvRecord = { [effect]: e.from, [cause]: e.to, 'px:ts': long(e.ts), 'px:pos': e.pos };
    if (TIMED.has(e.kind)) {
      const t = wallTime(opts, hostOf.get(e.from) ?? hostOf.get(e.to) ?? '', e.ts);
      if (t) r['prov:time'] = t;
    }
    for (const [k, v] of Object.entries(e.attrs ?? {})) putAttr(r, k, v);
    doc[e.kind][`_:e${i}`] = r;
  });
  for (const gap of g.gaps) {
    doc.entity[`gap:${encodeURIComponent(gap.id)}`] = {
      'prov:type': { $: 'px:Gap', type: 'prov:QUALIFIED_NAME' },
      'prov:label': `${gap.count} events lost (${gap.reason})`,
      'px:host': gap.host, 'px:src': gap.src, 'px:from': long(gap.from), 'px:to': long(gap.to),
      'px:count': gap.count, 'px:reason': gap.reason,
    };
  }
  return doc;
}

function long(n: number): TypedLiteral {
  return { $: Number.isInteger(n) ? BigInt(n).toString() : String(n), type: Number.isInteger(n) ? 'xsd:long' : 'xsd:double' };
}

/** Attribute keys become `px:<key>` with anything outside [A-Za-z0-9_.-] replaced. */
function putAttr(r: ProvRecord, key: string, v: unknown): void {
  if (v === undefined || v === null) return;
  const k = `px:${key.replace(/[^A-Za-z0-9_.-]/g, '_')}`;
  if (typeof v === 'string' || typeof v === 'boolean') r[k] = v;
  else if (typeof v === 'number') r[k] = Number.isSafeInteger(v) && Math.abs(v) < 2 ** 31 ? v : long(v);
  else r[k] = { $: JSON.stringify(v), type: 'px:json' };
}

/** An xsd:dateTime (UTC, µs precision) for monotonic `ts` ns on `host`, when its boot time is known. */
function wallTime(opts: ProvJsonOptions, host: string, ts: number): string | undefined {
  const boot = opts.bootTimeMs?.[host];
  if (boot === undefined) return undefined;
  const ms = boot + ts / 1e6;
  const whole = Math.floor(ms);
  const micros = Math.round((ms - whole) * 1000);
  const iso = new Date(whole).toISOString(); // …T12:34:56.789Z
  return `${iso.slice(0, -1)}${String(Math.min(999, micros)).padStart(3, '0')}Z`;
}
