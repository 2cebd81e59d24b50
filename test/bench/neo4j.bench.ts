/**
 * @module test/bench/neo4j.bench
 * Neo4j store against the SQLite store, in one run, on the same generated build-like graph
 * (test/bench/graph-gen.ts):
 * 1. ingest rate by batch size (Neo4j and SQLite interleaved A B A B);
 * 2. ingest of the big graph (1,000,000 edges; PROV_BENCH_NEO4J_EDGES overrides) into both;
 * 3. depth-10 ancestors on it, per start node Neo4j then SQLite, medians and spread; and, on
 *    Neo4j, the store's level-wise walk against one variable-length Cypher match
 *    (`[*1..10]`, count(DISTINCT), no rule applied, nothing returned: the least a single
 *    query can do), to show what the walk costs.
 * The server is Neo4j 3.1.1 from test/neo4j/server.ts (JDK 17, heap 2 GiB, page cache 1 GiB),
 * driven through neo4j-driver 4.0.x. Run alone: `node dist/test/bench/neo4j.bench.js [--quick]`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import neo4j from 'neo4j-driver-4';
import { openSqliteStore } from '../../graph/sqlite/store.js';
import type { GraphStore } from '../../graph/store.js';
import { driver4, freshStore } from '../neo4j/fixture.js';
import { Neo4jTestServer } from '../neo4j/server.js';
import { DEFAULT_SHAPE, generateBuildGraph, type BuildGraphShape, type GeneratedGraph } from './graph-gen.js';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';
import { printResult } from './standalone.js';

const round = (x: number, d = 2): number => Number(x.toFixed(d));
const fmt = (n: number): string => n.toLocaleString('en');

function peakRssMiB(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 1024) : null;
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return 0;
  }
}

interface Ingested { rate: number; items: number; edges: number; ms: number; cpu: number; gen: GeneratedGraph }

/**
 * Ingest a generated graph; the rate counts only time inside ingest(). `cpu` is the CPU time
 * spent meanwhile by this process and by the server (`serverPid`), which a busy machine
 * disturbs less than wall time.
 */
async function ingestInto(store: GraphStore, shape: BuildGraphShape, batch: number, serverPid?: number, progress?: (items: number, ms: number) => void): Promise<Ingested> {
  let ms = 0;
  let cpu = 0;
  let items = 0;
  let edges = 0;
  const gen = await generateBuildGraph(shape, batch, async (b) => {
    const c0 = process.cpuUsage();
    const s0 = cpuSeconds(serverPid);
    const t0 = performance.now();
    await store.ingest(b);
    ms += performance.now() - t0;
    const c = process.cpuUsage(c0);
    cpu += (c.user + c.system) / 1e6 + cpuSeconds(serverPid) - s0;
    items += b.nodes.length + b.edges.length;
    edges += b.edges.length;
    progress?.(items, ms);
  });
  return { rate: items / (ms / 1000), items, edges, ms, cpu, gen };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  const quick = opts.quick;
  const bigEdges = Number(process.env.PROV_BENCH_NEO4J_EDGES ?? (quick ? 50_000 : 1_000_000));
  const dir = mkdtempSync(join(tmpdir(), 'prov-neo4j-bench-'));
  const rows: BenchRow[] = [];
  const memory: Record<string, number> = {};
  const load0 = loadavg()[0]!;
  const server = await Neo4jTestServer.start({ heap: '2g', pageCache: '1g', timeoutMs: 120_000 });
  let n = 0;
  const sqlitePath = () => join(dir, `g${++n}.db`);
  const dropSqlite = (p: string) => { for (const f of [p, `${p}-wal`, `${p}-shm`]) rmSync(f, { force: true }); };
  try {
    // 1. Ingest rate by batch size (nodes+edges per batch), interleaved.
    const smallShape: BuildGraphShape = { ...DEFAULT_SHAPE, edges: quick ? 10_000 : 20_000, headerPool: 2000 };
    const repeats = quick ? 1 : 2;
    for (const batch of quick ? [1000, 10_000] : [1000, 5000, 20_000]) {
      const neo: Ingested[] = [];
      const lite: Ingested[] = [];
      for (let r = 0; r < repeats; r++) {
        const ns = await freshStore(server, { driver: driver4 });
        try { neo.push(await ingestInto(ns, smallShape, batch, server.pid)); } finally { await ns.close(); }
        const p = sqlitePath();
        const ls = await openSqliteStore(p);
        try { lite.push(await ingestInto(ls, smallShape, batch)); } finally { await ls.close(); dropSqlite(p); }
      }
      const nr = neo.map((x) => x.rate);
      const lr = lite.map((x) => x.rate);
      rows.push({
        figure: `ingest nodes+edges/s, batches of ${fmt(batch)} items (${fmt(smallShape.edges)}-edge graph), Neo4j 3.1.1 vs SQLite`,
        unit: 'items/s', prov: Math.round(median(nr)), baseline: Math.round(median(lr)), baselineName: 'SQLite store, same batches',
        ratio: round(median(nr) / median(lr), 3), better: 'higher', spread: { prov: round(spread(nr)), baseline: round(spread(lr)) }, repeats,
        note: `per CPU-second (client + server): Neo4j ${fmt(Math.round(median(neo.map((x) => x.items / x.cpu))))}, SQLite ${fmt(Math.round(median(lite.map((x) => x.items / x.cpu))))}`,
      });
    }

    // 2. The big graph into both stores.
    const bigShape: BuildGraphShape = { ...DEFAULT_SHAPE, edges: bigEdges, headerPool: quick ? 5000 : 20_000 };
    const bigBatch = 20_000;
    const neoStore = await freshStore(server, { driver: driver4 });
    const p = sqlitePath();
    const liteStore = await openSqliteStore(p);
    try {
      let last = 0;
      const neoBig = await ingestInto(neoStore, bigShape, bigBatch, server.pid, (items, ms) => {
        if (ms - last > 30_000) { last = ms; process.stderr.write(`neo4j bench: ${fmt(items)} items in ${Math.round(ms / 1000)} s\n`); }
      });
      const liteBig = await ingestInto(liteStore, bigShape, bigBatch);
      memory['neo4j server after the big ingest (VmHWM)'] = peakRssMiB(server.pid) ?? -1;
      rows.push({
        figure: `ingest of the ${fmt(neoBig.edges)}-edge graph (${fmt(neoBig.items)} nodes+edges), batches of ${fmt(bigBatch)} items`,
        unit: 'items/s', prov: Math.round(neoBig.rate), baseline: Math.round(liteBig.rate), baselineName: 'SQLite store, same batches',
        ratio: round(neoBig.rate / liteBig.rate, 3), better: 'higher', repeats: 1,
        note: `Neo4j ${round(neoBig.ms / 1000, 1)} s (${fmt(Math.round(neoBig.edges / (neoBig.ms / 1000)))} edges/s; ${round(neoBig.cpu, 1)} CPU-s client + server), SQLite ${round(liteBig.ms / 1000, 1)} s (${fmt(Math.round(liteBig.edges / (liteBig.ms / 1000)))} edges/s; ${round(liteBig.cpu, 1)} CPU-s)`,
      });

      // 3. Depth-10 ancestors, interleaved per start node.
      const count = quick ? 10 : 40;
      const outs = neoBig.gen.lastOutputs;
      const starts = Array.from({ length: count }, (_, i) => outs[(i * 7919) % outs.length]!);
      for (const id of starts.slice(0, 3)) { await neoStore.ancestors(id); await liteStore.ancestors(id); }
      const neoT: number[] = [];
      const liteT: number[] = [];
      let nodes = 0;
      let agree = 0;
      for (const id of starts) {
        const a = await timed(() => neoStore.ancestors(id, { depth: 10 }));
        const b = await timed(() => liteStore.ancestors(id, { depth: 10 }));
        neoT.push(a.ms);
        liteT.push(b.ms);
        nodes += a.value.nodes.length;
        if (a.value.nodes.length === b.value.nodes.length && a.value.edges.length === b.value.edges.length) agree++;
      }
      rows.push({
        figure: `ancestors depth 10 on the ${fmt(neoBig.edges)}-edge graph, whole Subgraph returned`,
        unit: 'ms', prov: round(median(neoT)), baseline: round(median(liteT)), baselineName: 'SQLite store, same query',
        ratio: round(median(liteT) / median(neoT), 3), better: 'lower', spread: { prov: round(spread(neoT)), baseline: round(spread(liteT)) }, repeats: count,
        note: `avg ${Math.round(nodes / count)} nodes returned; both stores returned the same node and edge counts for ${agree} of ${count} starts`,
      });

      // Level-wise walk vs one variable-length match on the same server.
      const d = neo4j.driver(server.url, undefined, { disableLosslessIntegers: true });
      const varLen: number[] = [];
      const walkT: number[] = [];
      let reach = 0;
      try {
        const s = d.session();
        try {
          const q = 'MATCH (s:ProvNode {id: $id}) USING INDEX s:ProvNode(id) MATCH (s)-[*1..10]->(n) RETURN count(DISTINCT n) AS c';
          await s.run(q, { id: starts[0] });
          for (const id of starts) {
            const v = await timed(() => s.run(q, { id }));
            varLen.push(v.ms);
            reach += Number(v.value.records[0]!.get('c'));
            walkT.push((await timed(() => neoStore.ancestors(id, { depth: 10 }))).ms);
          }
        } finally {
          await s.close();
        }
      } finally {
        await d.close();
      }
      rows.push({
        figure: 'Neo4j ancestors depth 10: the store\'s level-wise walk (history rule, Subgraph returned) vs one [*1..10] match',
        unit: 'ms', prov: round(median(walkT)), baseline: round(median(varLen)), baselineName: 'MATCH (s)-[*1..10]->(n) RETURN count(DISTINCT n): no rule, nothing returned',
        ratio: round(median(varLen) / median(walkT), 3), better: 'lower', spread: { prov: round(spread(walkT)), baseline: round(spread(varLen)) }, repeats: count,
        note: `the match counts ${Math.round(reach / count)} reachable nodes on average`,
      });
    } finally {
      await neoStore.close();
      await liteStore.close();
      dropSqlite(p);
    }
    memory['neo4j server peak (VmHWM)'] = peakRssMiB(server.pid) ?? -1;
    memory['bench process peak'] = Math.round(process.resourceUsage().maxRSS / 1024);
  } finally {
    await server.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  for (const r of rows) r.note = `${r.note ? `${r.note}; ` : ''}load average ${round(load0, 1)} at start, ${round(loadavg()[0]!, 1)} at end (2 cores, shared)`;
  return { name: 'neo4j (Neo4j 3.1.1 store vs SQLite store)', rows, memory };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await run({ quick: process.argv.includes('--quick') });
  printResult(result);
}
