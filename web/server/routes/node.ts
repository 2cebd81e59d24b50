/**
 * @module web/server/routes/node
 * `GET /api/node?id=` — everything the detail panel shows. For a file, each version also
 * lists who wrote it and who read it, so the panel answers "who touched this file" at once.
 */
import { Router } from 'express';
import { NotFoundError } from '../../../graph/errors.js';
import type { GraphNode } from '../../../graph/model.js';
import type { GraphStore, NodeDetails } from '../../../graph/store.js';
import { handle } from '../errors.js';
import { nodeId, onlyKnown } from '../params.js';

/** Most versions the panel details (the rest are listed without readers and writers). */
const MAX_VERSION_DETAILS = 50;

/** One version of a file with the processes that wrote and read it. */
export interface VersionUse {
  node: GraphNode;
  writers: Array<{ node: GraphNode; ts: number }>;
  readers: Array<{ node: GraphNode; ts: number }>;
}

/** The answer of /api/node. */
export interface NodeAnswer extends NodeDetails {
  uses: VersionUse[];
}

function usesOf(d: NodeDetails): VersionUse {
  return {
    node: d.node,
    writers: d.out.filter((x) => x.edge.kind === 'wasGeneratedBy').map((x) => ({ node: x.node, ts: x.edge.ts })),
    readers: d.in.filter((x) => x.edge.kind === 'used').map((x) => ({ node: x.node, ts: x.edge.ts })),
  };
}

/** Mount the node endpoint. */
export function nodeRoutes(store: GraphStore): Router {
  const r = Router();
  r.get('/node', handle(async (req, res) => {
    const q = req.query as Record<string, unknown>;
    onlyKnown(q, ['id']);
    const id = nodeId(q.id);
    const details = await store.node(id);
    if (!details) throw new NotFoundError(`no node ${JSON.stringify(id)}`, 'id');
    const uses: VersionUse[] = [];
    if (details.node.kind === 'file') {
      const versions = details.versions.length ? details.versions : [details.node];
      for (const v of versions.slice(-MAX_VERSION_DETAILS)) {
        const vd = v.id === id ? details : await store.node(v.id);
        if (vd) uses.push(usesOf(vd));
      }
    }
    const answer: NodeAnswer = { ...details, uses };
    res.json(answer);
  }));
  return r;
}
