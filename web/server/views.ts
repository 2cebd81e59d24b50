/**
 * @module web/server/views
 * The four lineage views the explorer shows (ancestors, descendants, path, process tree):
 * their parameters checked once and their Subgraph fetched from the store, shared by the JSON
 * endpoints and the exports so an export is exactly what the screen showed.
 */
import { InputError, NotFoundError } from '../../graph/errors.js';
import type { GraphStore, LineageOptions, Subgraph } from '../../graph/store.js';
import { lineageOptions, nodeId, optString, type Query } from './params.js';

export const VIEWS = ['ancestors', 'descendants', 'path', 'tree'] as const;
export type ViewName = (typeof VIEWS)[number];

/** Query parameters each view takes (besides `view` and, for exports, `format`). */
export const VIEW_PARAMS: Record<ViewName, readonly string[]> = {
  ancestors: ['id', 'depth', 'since', 'until', 'rule', 'limit'],
  descendants: ['id', 'depth', 'since', 'until', 'rule', 'limit'],
  path: ['from', 'to', 'depth', 'since', 'until', 'rule', 'limit'],
  tree: ['root', 'depth', 'since', 'until', 'limit'],
};

/** A fetched view: the subgraph, the node it is about and a title for exports. */
export interface ViewAnswer {
  view: ViewName;
  focus?: string;
  options: LineageOptions;
  subgraph: Subgraph;
  title: string;
}

/** Parse `view` (one of VIEWS). */
export function viewName(q: Query): ViewName {
  const v = optString(q, 'view');
  if (!v) throw new InputError(`is required (one of ${VIEWS.join(', ')})`, 'view');
  if (!(VIEWS as readonly string[]).includes(v)) throw new InputError(`must be one of ${VIEWS.join(', ')}, got ${JSON.stringify(v.slice(0, 40))}`, 'view');
  return v as ViewName;
}

async function mustExist(store: GraphStore, id: string, where: string): Promise<void> {
  if (!(await store.node(id))) throw new NotFoundError(`no node ${JSON.stringify(id)}`, where);
}

/** Fetch `view` with the parameters in `q` (already limited to VIEW_PARAMS by the caller). */
export async function fetchView(store: GraphStore, view: ViewName, q: Query): Promise<ViewAnswer> {
  const options = lineageOptions(q);
  switch (view) {
    case 'ancestors':
    case 'descendants': {
      const id = nodeId(q.id, 'id');
      const subgraph = view === 'ancestors' ? await store.ancestors(id, options) : await store.descendants(id, options);
      // An answer holds its start node; only an empty one needs the (extra) existence check.
      if (subgraph.nodes.length === 0) await mustExist(store, id, 'id');
      return { view, focus: id, options, subgraph, title: `${view} of ${id}` };
    }
    case 'path': {
      const from = nodeId(q.from, 'from');
      const to = nodeId(q.to, 'to');
      await mustExist(store, from, 'from');
      await mustExist(store, to, 'to');
      const subgraph = await store.path(from, to, options);
      if (!subgraph) throw new NotFoundError(`no path between ${from} and ${to} within depth ${options.depth}`, 'to');
      return { view, focus: from, options, subgraph, title: `path from ${from} to ${to}` };
    }
    case 'tree': {
      const raw = optString(q, 'root');
      const root = raw ? nodeId(raw, 'root') : undefined;
      if (root) {
        if (!root.startsWith('proc:')) throw new InputError('must be a process id (proc:…)', 'root');
        await mustExist(store, root, 'root');
      }
      const subgraph = await store.processTree(root, options);
      return { view, ...(root ? { focus: root } : {}), options, subgraph, title: root ? `process tree of ${root}` : 'process trees' };
    }
  }
}
