/**
 * @module web/ui/api
 * The API client: typed GETs against /api with the token (if any) in the Authorization header,
 * errors turned into ApiError carrying the server's reason.
 */
import type { GraphNode, NameRecord, GraphEdge, Gap } from '../../../graph/model.js';
import type { HistogramBucket, NodeDetails, Page, Subgraph } from '../../../graph/store.js';

export type { GraphNode, NameRecord, GraphEdge, Gap, HistogramBucket, Subgraph };

const TOKEN_KEY = 'prov-token';

/** Take the token from `#token=…` (never sent to a server), keep it for the tab, and clean the URL. */
export function adoptTokenFromHash(): void {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]!));
  history.replaceState(history.state, '', location.pathname + location.search);
}

export function authHeaders(): Record<string, string> {
  const t = sessionStorage.getItem(TOKEN_KEY);
  return t ? { Authorization: `Bearer ${t}` } : {};
}

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly where?: string) { super(message); }
}

type Params = Record<string, string | number | undefined | null>;

export function apiUrl(path: string, params: Params = {}): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  const s = qs.toString();
  return `/api/${path}${s ? `?${s}` : ''}`;
}

async function raw(path: string, params: Params, signal?: AbortSignal): Promise<Response> {
  const res = await fetch(apiUrl(path, params), { headers: authHeaders(), ...(signal ? { signal } : {}) });
  if (!res.ok) {
    let body: { message?: string; where?: string } = {};
    try { body = await res.json(); } catch { /* not JSON */ }
    throw new ApiError(res.status, body.message ?? `${res.status} ${res.statusText}`, body.where);
  }
  return res;
}

export async function get<T>(path: string, params: Params = {}, signal?: AbortSignal): Promise<T> {
  return (await raw(path, params, signal)).json() as Promise<T>;
}

/** Download an export as a file (fetch, so the token header goes along). */
export async function download(params: Params, filename: string): Promise<void> {
  const blob = await (await raw('export', params)).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export interface VersionUse {
  node: GraphNode;
  writers: Array<{ node: GraphNode; ts: number }>;
  readers: Array<{ node: GraphNode; ts: number }>;
}
export interface NodeAnswer extends NodeDetails { uses: VersionUse[] }
export type SearchPage = Page<GraphNode> & { limit: number; offset: number };
export interface LineageAnswer extends Subgraph { focus: string | null }
export interface StatsAnswer {
  nodes: Record<string, number>;
  edges: Record<string, number>;
  gaps: number;
  hostNames: string[];
  store: string;
}
