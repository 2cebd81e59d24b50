/**
 * @module cli/actions/lineage
 * `prov lineage TARGET`: ancestors (--up, default) or descendants (--down) of a file or process.
 */
import { resolve } from 'node:path';
import type { ProvConfig } from '../config.js';
import { openStore } from '../../graph/open.js';
import type { LineageOptions, Subgraph } from '../../graph/store.js';
import { renderLineage } from '../render.js';
import { isNodeId, resolveTarget } from '../target.js';
import { parseTime } from '../time.js';

export interface LineageFlags {
  up?: boolean;
  down?: boolean;
  depth: number;
  since?: string;
  until?: string;
  rule: 'history' | 'strict';
  limit: number;
  json?: boolean;
}

/** Turn the shared lineage flags into store options. */
export function lineageQuery(flags: LineageFlags): LineageOptions {
  return {
    depth: flags.depth,
    limit: flags.limit,
    rule: flags.rule,
    since: flags.since === undefined ? undefined : parseTime(flags.since, '--since'),
    until: flags.until === undefined ? undefined : parseTime(flags.until, '--until'),
  };
}

/** Query a target's lineage in one direction. */
export async function queryLineage(cfg: ProvConfig, target: string, flags: LineageFlags): Promise<{ rootId: string; asked?: string; direction: 'up' | 'down'; graph: Subgraph }> {
  const q = lineageQuery(flags);
  const direction = flags.down && !flags.up ? 'down' : 'up';
  const store = await openStore(cfg.store);
  try {
    const node = await resolveTarget(store, target);
    const graph = direction === 'up' ? await store.ancestors(node.id, q) : await store.descendants(node.id, q);
    const asked = isNodeId(target) ? undefined : resolve(target);
    return { rootId: node.id, asked, direction, graph };
  } finally {
    await store.close();
  }
}

export default async function lineage(cfg: ProvConfig, target: string, flags: LineageFlags): Promise<number> {
  const { rootId, asked, direction, graph } = await queryLineage(cfg, target, flags);
  if (flags.json) process.stdout.write(JSON.stringify({ root: rootId, direction, ...graph }, null, 2) + '\n');
  else process.stdout.write(renderLineage(graph, rootId, direction, asked) + '\n');
  return 0;
}
