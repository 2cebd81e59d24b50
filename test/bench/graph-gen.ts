/**
 * @module test/bench/graph-gen
 * A generated build-like lineage graph for graph-store benchmarks (any store can use it):
 * layers of compile/link jobs, each a process forked by its layer's `make` that reads a few
 * outputs of the previous layers (near its own index, as real dependency graphs are local), a
 * few shared headers and the compiler, and writes one new file version. Deterministic (seeded).
 */
import type { GraphEdge, GraphNode, IngestBatch, NameRecord } from '../../graph/model.js';

export interface BuildGraphShape {
  /** Approximate number of edges to generate. */
  edges: number;
  /** Number of job layers (depth of the build). */
  layers: number;
  /** Inputs per job taken from earlier layers' outputs. */
  fanIn: number;
  /** Shared headers read per job. */
  headers: number;
  /** Size of the shared header pool. */
  headerPool: number;
  /** How far (in job index) a job reaches into the previous layer. */
  window: number;
  host: string;
  seed: number;
}

export const DEFAULT_SHAPE: BuildGraphShape = {
  edges: 1_000_000, layers: 12, fanIn: 4, headers: 6, headerPool: 20_000, window: 40, host: 'bench', seed: 42,
};

/** Edges per job: fanIn + headers + compiler (used) + wasGeneratedBy + fork + user. */
export function edgesPerJob(s: BuildGraphShape): number {
  return s.fanIn + s.headers + 1 + 3;
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    return x / 0x100000000;
  };
}

export interface GeneratedGraph {
  /** Ids of the outputs of the last layer (good starting points for ancestors). */
  lastOutputs: string[];
  /** Ids of header files (good starting points for descendants). */
  headers: string[];
  jobs: number;
}

/**
 * Generate the graph as ingest batches of about `batchItems` nodes+edges each, calling `sink`
 * for every batch (awaited, so a store can apply it before the next is built).
 */
export async function generateBuildGraph(shape: BuildGraphShape, batchItems: number, sink: (b: IngestBatch) => Promise<void> | void): Promise<GeneratedGraph> {
  const s = shape;
  const rand = rng(s.seed);
  const h = s.host;
  const jobs = Math.max(s.layers, Math.round(s.edges / edgesPerJob(s)));
  const perLayer = Math.ceil(jobs / s.layers);
  let seq = 0;
  let batch: IngestBatch = fresh();
  let items = 0;
  function fresh(): IngestBatch {
    return { checkpoint: { bench: seq }, nodes: [], edges: [], names: [], nameEnds: [], gaps: [] };
  }
  async function flush(force = false): Promise<void> {
    if (!force && items < batchItems) return;
    if (items === 0) return;
    batch.checkpoint = { bench: seq };
    await sink(batch);
    batch = fresh();
    items = 0;
  }
  const node = (n: GraphNode): void => { batch.nodes.push(n); items++; };
  const edge = (kind: GraphEdge['kind'], from: string, to: string, ts: number, attrs?: Record<string, unknown>): void => {
    const e: GraphEdge = { kind, from, to, ts, pos: `bench:${++seq}` };
    if (attrs) e.attrs = attrs;
    batch.edges.push(e);
    items++;
  };
  const name = (file: string, path: string, since: number): void => {
    const r: NameRecord = { file, host: h, path, since, pos: `bench:${seq}` };
    batch.names.push(r);
  };
  const fileNode = (ino: number, path: string, ts: number): string => {
    const ident = `file:${h}:2049:${ino}`;
    const id = `${ident}:0`;
    node({ id, kind: 'file', host: h, label: path.slice(path.lastIndexOf('/') + 1), ts, attrs: { dev: 2049, ino, version: 0, path, type: 'file' } });
    name(ident, path, ts);
    return id;
  };

  const user = `user:${h}:1000`;
  node({ id: user, kind: 'user', host: h, label: 'uid 1000', ts: 0, attrs: { uid: 1000 } });
  const compiler = fileNode(1, '/usr/bin/cc', 1);
  const headers: string[] = [];
  for (let i = 0; i < s.headerPool; i++) {
    headers.push(fileNode(10 + i, `/src/include/d${i % 97}/h${i}.h`, 2 + i));
    await flush();
  }
  let ino = 10 + s.headerPool;
  let pid = 1000;
  let t = 1_000_000;
  const outputs: string[][] = [];
  for (let l = 0; l < s.layers; l++) {
    const makeId = `proc:${h}:${++pid}:${t}`;
    node({ id: makeId, kind: 'process', host: h, label: `make -C l${l}`, ts: t, attrs: { pid, start: t, exe: '/usr/bin/make', argv: ['make', '-C', `l${l}`] } });
    edge('wasAssociatedWith', makeId, user, t);
    const layerOut: string[] = [];
    const count = Math.min(perLayer, jobs - l * perLayer);
    for (let j = 0; j < count; j++) {
      t += 1000;
      const start = t;
      const procId = `proc:${h}:${++pid}:${start}`;
      const out = `/build/l${l}/o${j}.o`;
      node({ id: procId, kind: 'process', host: h, label: `cc -c o${j}.c`, ts: start, attrs: { pid, ppid: pid - j - 1, start, end: start + 900, exe: '/usr/bin/cc', argv: ['cc', '-c', `o${j}.c`, '-o', out], cwd: `/build/l${l}`, exitCode: 0 } });
      edge('wasInformedBy', procId, makeId, start, { via: 'fork' });
      edge('wasAssociatedWith', procId, user, start);
      edge('used', procId, compiler, start + 10);
      for (let k = 0; k < s.headers; k++) edge('used', procId, headers[Math.floor(rand() * headers.length)]!, start + 20 + k);
      if (l > 0) {
        for (let k = 0; k < s.fanIn; k++) {
          // Mostly the previous layer, near this job's index; sometimes an older layer.
          const from = rand() < 0.8 ? l - 1 : Math.floor(rand() * l);
          const src = outputs[from]!;
          const centre = Math.floor((j / count) * src.length);
          const idx = Math.min(src.length - 1, Math.max(0, centre + Math.floor((rand() * 2 - 1) * s.window)));
          edge('used', procId, src[idx]!, start + 100 + k);
        }
      }
      const outId = fileNode(++ino, out, start + 800);
      edge('wasGeneratedBy', outId, procId, start + 800);
      layerOut.push(outId);
      await flush();
    }
    outputs.push(layerOut);
  }
  await flush(true);
  return { lastOutputs: outputs[outputs.length - 1] ?? [], headers, jobs };
}
