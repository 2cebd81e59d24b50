/**
 * @module test/bench/web.bench
 * The explorer's speed. (1) API latency on a SQLite store of about 1,000,000 edges (the
 * build-like graph of graph-gen.ts): per endpoint, p50 and p95 over HTTP, interleaved with the
 * same query made directly on the store (the baseline: what HTTP, validation and JSON add).
 * (2) A 5,000-node lineage in headless Chromium: from navigation to every box drawn, and to
 * the first click answered (the selection drawn), with sibling grouping off so all are drawn.
 * Run alone: `node dist/test/bench/web.bench.js [--quick]`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import type { GraphStore } from '../../graph/store.js';
import { startServer } from '../../web/server/server.js';
import { DEFAULT_SHAPE, generateBuildGraph } from './graph-gen.js';
import { launchBrowser } from '../web/browser.js';
import { median, spread, type BenchOptions, type BenchResult, type BenchRow } from './types.js';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
}

interface Probe {
  name: string;
  http: (i: number) => string;
  direct: (i: number) => Promise<unknown>;
}

/** Build (or reuse within this run) the generated store. */
async function buildStore(path: string, edges: number): Promise<{ store: GraphStore; outputs: string[]; headers: string[]; ms: number }> {
  const store = await openSqliteStore(path);
  const t0 = performance.now();
  const g = await generateBuildGraph({ ...DEFAULT_SHAPE, edges }, 20_000, (b) => store.ingest(b));
  return { store, outputs: g.lastOutputs, headers: g.headers, ms: performance.now() - t0 };
}

export async function run(opts: BenchOptions): Promise<BenchResult> {
  // graph-gen lands a little under its target; aim above so the store holds over a million edges.
  const edges = opts.quick ? 100_000 : 1_030_000;
  const repeats = opts.quick ? 15 : 60;
  const dir = mkdtempSync(join(tmpdir(), 'prov-web-bench-'));
  const rows: BenchRow[] = [];
  let store: GraphStore | undefined;
  let srv: Awaited<ReturnType<typeof startServer>> | undefined;
  try {
    const built = await buildStore(join(dir, 'graph.db'), edges);
    store = built.store;
    const st = await store.stats();
    const edgeCount = Object.values(st.edges).reduce((a, b) => a + (b ?? 0), 0);
    process.stderr.write(`web bench: store of ${edgeCount} edges built in ${(built.ms / 1000).toFixed(1)} s\n`);
    srv = await startServer({ store, port: 0 });
    const s = store;
    const out = (i: number): string => built.outputs[(i * 7919) % built.outputs.length]!;
    const hdr = (i: number): string => built.headers[(i * 104_729) % built.headers.length]!;
    const enc = encodeURIComponent;
    const probes: Probe[] = [
      { name: 'search prefix (50 of a directory)', http: (i) => `/api/search?prefix=${enc(`/build/l11/o${i % 9}`)}`, direct: (i) => s.search({ prefix: `/build/l11/o${i % 9}`, limit: 50, offset: 0 }) },
      { name: 'search glob', http: (i) => `/api/search?glob=${enc(`/src/include/d${i % 97}/*.h`)}`, direct: (i) => s.search({ glob: `/src/include/d${i % 97}/*.h`, limit: 50, offset: 0 }) },
      { name: 'node details', http: (i) => `/api/node?id=${enc(out(i))}`, direct: (i) => s.node(out(i)) },
      { name: 'ancestors depth 3', http: (i) => `/api/ancestors?id=${enc(out(i))}&depth=3`, direct: (i) => s.ancestors(out(i), { depth: 3, rule: 'history', limit: 5000 }) },
      { name: 'ancestors depth 10 (≤5000 nodes)', http: (i) => `/api/ancestors?id=${enc(out(i))}`, direct: (i) => s.ancestors(out(i), { depth: 10, rule: 'history', limit: 5000 }) },
      { name: 'descendants depth 3 of a header', http: (i) => `/api/descendants?id=${enc(hdr(i))}&depth=3`, direct: (i) => s.descendants(hdr(i), { depth: 3, rule: 'history', limit: 5000 }) },
      { name: 'histogram (120 buckets)', http: () => '/api/histogram?buckets=120', direct: () => s.histogram(120) },
    ];
    const base = srv.url;
    for (const p of probes) {
      const viaHttp: number[] = [], direct: number[] = [];
      for (let i = 0; i < repeats; i++) {
        // Same input both ways, order alternating (A B, B A, …) so neither always finds a warm cache.
        const viaApi = async (): Promise<void> => {
          const t = performance.now();
          const res = await fetch(base + p.http(i));
          await res.arrayBuffer();
          if (!res.ok) throw new Error(`${p.name}: HTTP ${res.status}`);
          viaHttp.push(performance.now() - t);
        };
        const onStore = async (): Promise<void> => {
          const t = performance.now();
          JSON.stringify(await p.direct(i));
          direct.push(performance.now() - t);
        };
        if (i % 2 === 0) { await viaApi(); await onStore(); } else { await onStore(); await viaApi(); }
      }
      const p50 = median(viaHttp), d50 = median(direct);
      rows.push({
        figure: `API ${p.name}, p50 (p95 ${pct(viaHttp, 95).toFixed(1)} ms) on ${edgeCount.toLocaleString('en')} edges`,
        unit: 'ms', prov: p50, baseline: d50, baselineName: 'same query on the store, no HTTP (p50)',
        ratio: d50 / p50, better: 'lower', spread: { prov: spread(viaHttp), baseline: spread(direct) }, repeats,
        goal: 'p50 ≤ 50 ms',
      });
    }

    // The 5,000-node lineage in Chromium.
    // A 5,000-node lineage: what came out of a shared header (cut at the 5,000-node limit).
    let focus = built.headers[0]!;
    let want = 0;
    for (const h of built.headers.slice(0, 50)) {
      const sub = await (await fetch(`${base}/api/descendants?id=${enc(h)}&limit=5000`)).json() as { nodes: unknown[] };
      if (sub.nodes.length > want) { want = sub.nodes.length; focus = h; }
      if (want >= 5000) break;
    }
    const br = await launchBrowser();
    try {
      const renders: number[] = [], interactive: number[] = [];
      const tries = opts.quick ? 3 : 7;
      // Drawn = the legend counts every box, boxes are in the DOM and a frame has been painted
      // (rAF then a task); interactive = a click on a box has been answered with its selection painted.
      await br.page.addInitScript((expected: number) => {
        const w = window as unknown as { __bench?: { drawn?: number; interactive?: number; inDom?: number } };
        w.__bench = {};
        const afterPaint = (f: () => void): void => { requestAnimationFrame(() => setTimeout(f, 0)); };
        let clicked = false, done = false;
        const obs = new MutationObserver(() => {
          const b = w.__bench!;
          if (!clicked && document.querySelector('g.node') && document.querySelector('.legend')?.textContent?.startsWith(`${expected} boxes`)) {
            clicked = true;
            afterPaint(() => {
              b.drawn = performance.now();
              b.inDom = document.querySelectorAll('g.node').length;
              document.querySelector('g.node:not(.focus)')?.dispatchEvent(new MouseEvent('click', { bubbles: true }));
            });
          } else if (clicked && !done && document.querySelector('g.node.selected')) {
            done = true;
            obs.disconnect();
            afterPaint(() => { b.interactive = performance.now(); });
          }
        });
        obs.observe(document, { childList: true, subtree: true, attributes: true, attributeFilter: ['class'] });
      }, want);
      let inDom = 0;
      const fetched: number[] = [], asked: number[] = [];
      for (let i = 0; i < tries; i++) {
        await br.page.goto(`${base}/?view=descendants&id=${enc(focus)}&depth=10&group=off`);
        await br.page.waitForFunction(() => (window as unknown as { __bench: { interactive?: number } }).__bench.interactive !== undefined, undefined, { timeout: 60_000 });
        const b = await br.page.evaluate(() => (window as unknown as { __bench: { drawn: number; interactive: number; inDom: number } }).__bench);
        const timing = await br.page.evaluate(() => {
          const e = performance.getEntriesByType('resource').find((x) => x.name.includes('/api/descendants')) as PerformanceResourceTiming | undefined;
          return e ? [e.startTime, e.responseEnd] : [NaN, NaN];
        });
        asked.push(timing[0]!);
        fetched.push(timing[1]!);
        inDom = b.inDom;
        renders.push(b.drawn);
        interactive.push(b.interactive);
      }
      rows.push({ figure: `${want}-node lineage drawn in Chromium, from navigation (grouping off)`, unit: 'ms', prov: median(renders), baseline: null, ratio: null, better: 'lower', spread: { prov: spread(renders) }, repeats: tries, goal: '≤ 1000 ms', note: `${inDom} boxes near the viewport in the DOM (the rest are culled until panned to); the page asked for the lineage at ${median(asked).toFixed(0)} ms and had it at ${median(fetched).toFixed(0)} ms (medians)` });
      rows.push({ figure: `${want}-node lineage interactive (first click answered), from navigation`, unit: 'ms', prov: median(interactive), baseline: null, ratio: null, better: 'lower', spread: { prov: spread(interactive) }, repeats: tries, goal: '≤ 1000 ms' });
    } finally {
      await br.close();
    }
    for (const r of rows) r.note = `${r.note ? `${r.note}; ` : ''}load average ${loadavg()[0]!.toFixed(2)} at the end; 2 vCPUs`;
    return { name: 'web', rows, memory: { server: Math.round(process.memoryUsage().rss / 2 ** 20) } };
  } finally {
    await srv?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const result = await run({ quick: process.argv.includes('--quick') });
  for (const r of result.rows) {
    console.log(`${r.figure}: ${r.prov.toFixed(1)} ${r.unit}${r.baseline !== null ? ` (baseline ${r.baseline.toFixed(1)} ${r.unit}, ${r.baselineName})` : ''}; goal ${r.goal}; ${r.note ?? ''}`);
  }
}
