/**
 * @module test/neo4j/synth
 * A deterministic synthetic provenance history for store tests and benchmarks: a build-like
 * workload where each process is forked by an earlier one, reads `fanIn` earlier file
 * versions and writes one new version, with monotonically increasing times, so the history
 * rule admits every edge and a depth-10 ancestry reaches a few hundred nodes.
 * Each edge has its own journal position (`<stream>:<seq>`), the batch's checkpoint is the
 * last seq in it: exactly what a collector would hand to a store.
 */
import { emptyBatch, fileVersionId, processId, type IngestBatch } from '../../graph/model.js';
import { rng } from '../rng.js';

export interface SynthOptions {
  /** Total edges to produce (rounded up to whole processes). */
  edges: number;
  /** Edges per batch. */
  batchEdges: number;
  host?: string;
  stream?: string;
  /** Files each process reads. Default 3. */
  fanIn?: number;
  seed?: number;
  /** How many initial source files exist before the first process. Default 100. */
  sources?: number;
}


/** The batches, lazily (a million edges never sit in memory at once). */
export function* synthBatches(o: SynthOptions): Generator<IngestBatch> {
  const host = o.host ?? 'bench';
  const stream = o.stream ?? 'ebpf';
  const fanIn = o.fanIn ?? 3;
  const sources = o.sources ?? 100;
  const rand = rng(o.seed ?? 42);
  const fileId = (i: number) => fileVersionId(host, 1, i, i < sources ? 0 : 1);
  const procId = (i: number) => processId(host, 1000 + i, i * 10 + 5);
  let seq = 0;
  let files = 0;
  let procs = 0;
  let batch = emptyBatch();
  const flush = () => {
    batch.checkpoint = { [stream]: seq };
    const out = batch;
    batch = emptyBatch();
    return out;
  };
  // Source files (version 0) go in the first batch.
  for (; files < sources; files++) {
    batch.nodes.push({ id: fileId(files), kind: 'file', host, label: `src${files}.c`, ts: 0, attrs: { dev: 1, ino: files, version: 0, path: `/src/src${files}.c` } });
  }
  let edges = 0;
  while (edges < o.edges) {
    const p = procs++;
    const t = p * 10 + 5;
    batch.nodes.push({ id: procId(p), kind: 'process', host, label: `cc ${p}`, ts: t, attrs: { pid: 1000 + p, start: t, exe: '/usr/bin/cc', argv: ['cc', `${p}`] } });
    if (p > 0) {
      const parent = Math.floor(rand() * p);
      batch.edges.push({ kind: 'wasInformedBy', from: procId(p), to: procId(parent), ts: t, pos: `${stream}:${++seq}`, attrs: { via: 'fork' } });
      edges++;
    }
    for (let k = 0; k < fanIn; k++) {
      // Prefer recent files (a build reads what was just built), sometimes any earlier one.
      const f = rand() < 0.7 ? Math.max(0, files - 1 - Math.floor(rand() * 50)) : Math.floor(rand() * files);
      batch.edges.push({ kind: 'used', from: procId(p), to: fileId(f), ts: t + 1 + k, pos: `${stream}:${++seq}` });
      edges++;
    }
    const out = files++;
    batch.nodes.push({ id: fileId(out), kind: 'file', host, label: `obj${out}.o`, ts: t + 9, attrs: { dev: 1, ino: out, version: 1, path: `/build/obj${out}.o` } });
    batch.edges.push({ kind: 'wasGeneratedBy', from: fileId(out), to: procId(p), ts: t + 9, pos: `${stream}:${++seq}` });
    edges++;
    if (batch.edges.length >= o.batchEdges) yield flush();
  }
  if (batch.edges.length > 0 || batch.nodes.length > 0) yield flush();
}

/** The id of the last file written by a synthetic history of `edges` edges (a deep start point). */
export function lastFileId(o: SynthOptions): string {
  let last = '';
  for (const b of synthBatches(o)) {
    for (const n of b.nodes) if (n.kind === 'file') last = n.id;
  }
  return last;
}
