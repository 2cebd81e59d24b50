/**
 * @module cli/target
 * Turn what a user typed (a path, or a node id like `file:host:dev:ino:ver` / `proc:…`) into a
 * graph node.
 */
import { resolve } from 'node:path';
import { NotFoundError } from '../graph/errors.js';
import type { GraphNode } from '../graph/model.js';
import type { GraphStore } from '../graph/store.js';

const ID_PREFIXES = ['file:', 'proc:', 'pipe:', 'sock:', 'user:'];

/** Does the user's text name a node id (rather than a path)? */
export function isNodeId(text: string): boolean {
  return ID_PREFIXES.some((p) => text.startsWith(p));
}

export async function resolveTarget(store: GraphStore, text: string, at?: number): Promise<GraphNode> {
  if (isNodeId(text)) {
    const details = await store.node(text);
    if (!details) throw new NotFoundError(`no node with id ${text} in ${store.url}`);
    return details.node;
  }
  const path = resolve(text);
  const node = await store.resolvePath(path, at);
  if (!node) throw new NotFoundError(`no recorded file at ${path} in ${store.url} (was capture running when it was written?)`);
  return node;
}
