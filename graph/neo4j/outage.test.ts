/**
 * @module graph/neo4j/outage.test
 * A store outage loses nothing: the Neo4j server is killed (SIGKILL) while a batch is being
 * written; the write fails with a StoreError; after a restart the stored checkpoint matches
 * exactly what is in the database (no half-applied batch), and ingest resumed from that
 * checkpoint through the same store object leaves every edge in the database exactly once.
 *
 * To kill the server inside a transaction every time (not just probably), the driver module
 * handed to the store is the real neo4j-driver 4.0.x with one hook: before the Nth statement
 * of a transaction it runs the kill. The store code and the server are the real ones.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import neo4j from 'neo4j-driver-4';
import { StoreError } from '../errors.js';
import type { IngestBatch } from '../model.js';
import type { GraphStore } from '../store.js';
import { driver4, freshStore, startServer } from '../../test/neo4j/fixture.js';
import type { Neo4jModule } from './driver.js';
import type { Neo4jTestServer } from '../../test/neo4j/server.js';
import { synthBatches } from '../../test/neo4j/synth.js';

const STREAM = 'ebpf';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Count edges and distinct journal positions straight from the server (not through the store). */
async function census(url: string): Promise<{ edges: number; positions: number; nodes: number }> {
  const d = neo4j.driver(url, undefined, { disableLosslessIntegers: true });
  const s = d.session();
  try {
    const e = (await s.run('MATCH (:ProvNode)-[e]->(:ProvNode) RETURN count(e) AS c, count(DISTINCT e.pos) AS d')).records[0]!;
    const n = (await s.run('MATCH (n:ProvNode) RETURN count(n) AS c')).records[0]!;
    return { edges: e.get('c') as number, positions: e.get('d') as number, nodes: n.get('c') as number };
  } finally {
    await s.close();
    await d.close();
  }
}

/** What a collector does after an outage: retry with backoff until the store answers. */
async function retrying<T>(what: string, fn: () => Promise<T>, attempts = 20): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof StoreError) || i >= attempts) throw err;
      await sleep(Math.min(2000, 100 * 2 ** i));
    }
  }
}

/** A hook run before a transaction's statement: `(n) => …` with n counting from 1 per transaction. */
type BeforeStatement = ((n: number) => Promise<void>) | null;

/** neo4j-driver 4.0.x whose transactions call `hook.before` ahead of each statement. */
function hookedDriver(hook: { before: BeforeStatement }): Neo4jModule {
  const real = driver4;
  return {
    ...real,
    driver(url: string, auth?: unknown, config?: unknown) {
      const d = real.driver(url, auth, config) as { session(c?: unknown): { beginTransaction(): { run(q: string, p?: unknown): Promise<unknown> } } };
      const session = d.session.bind(d);
      return Object.assign(Object.create(d) as object, {
        session(c?: unknown) {
          const s = session(c);
          const begin = s.beginTransaction.bind(s);
          return Object.assign(Object.create(s) as object, {
            beginTransaction() {
              const tx = begin();
              const run = tx.run.bind(tx);
              let n = 0;
              return Object.assign(Object.create(tx) as object, {
                async run(q: string, p?: unknown) {
                  n++;
                  if (hook.before) await hook.before(n);
                  return run(q, p);
                },
              });
            },
          });
        },
      });
    },
  };
}

describe('Neo4j outage during ingest', () => {
  let server: Neo4jTestServer;
  let store: GraphStore;
  const hook: { before: BeforeStatement } = { before: null };
  const batches: IngestBatch[] = [...synthBatches({ edges: 1_200, batchEdges: 200, stream: STREAM })];
  const total = batches.at(-1)!.checkpoint[STREAM]!;
  const nodesUpTo = (seq: number) => batches.filter((b) => b.checkpoint[STREAM]! <= seq).reduce((s, b) => s + b.nodes.length, 0);

  before(async () => {
    server = await startServer();
    // Small UNWIND chunks: one batch is many statements, and the kill comes between two of them.
    store = await freshStore(server, { chunk: 100, driver: hookedDriver(hook) });
  });
  after(async () => {
    await store?.close();
    await server?.destroy();
  });

  it('kill mid-ingest → StoreError, nothing half-applied; restart → resume from checkpoint → every edge once', async () => {
    for (const b of batches.slice(0, 2)) await store.ingest(b);

    // The third batch: four statements go through inside its transaction, then the server dies.
    let killedAt = 0;
    hook.before = async (n) => {
      if (n === 5) {
        hook.before = null;
        killedAt = n;
        await server.stop('kill');
      }
    };
    const err = await store.ingest(batches[2]!).then(() => null, (e: unknown) => e);
    assert.equal(killedAt, 5, 'the kill came inside the transaction');
    assert.ok(err instanceof StoreError, `a StoreError, got ${String(err)}`);
    assert.match(err.message, /Neo4j at bolt:\/\/127\.0\.0\.1:\d+ is unreachable/);

    // While the server is down: reads and writes fail fast, as StoreErrors.
    const t0 = Date.now();
    await assert.rejects(store.checkpoint(), StoreError);
    await assert.rejects(store.ingest(batches[3]!), StoreError);
    assert.ok(Date.now() - t0 < 30_000, 'failures come within the driver timeouts');

    await server.restart();
    const cp = (await retrying('checkpoint', () => store.checkpoint()))[STREAM]!;
    const after1 = await census(server.url);
    assert.equal(cp, batches[1]!.checkpoint[STREAM], 'the checkpoint is that of the last committed batch');
    assert.equal(after1.edges, cp, 'edges in the database = edges up to the checkpoint: no half-applied batch');
    assert.equal(after1.positions, cp);
    assert.equal(after1.nodes, nodesUpTo(cp));

    // Resume from the stored checkpoint (the collector's journal reader would seek there).
    for (const b of batches) {
      if (b.checkpoint[STREAM]! > cp) await retrying('ingest', () => store.ingest(b));
    }
    const end = await census(server.url);
    assert.deepEqual(end, { edges: total, positions: total, nodes: nodesUpTo(total) }, 'every edge exactly once');
    assert.deepEqual(await store.checkpoint(), { [STREAM]: total });

    // A collector that lost its place and replays from an older checkpoint doubles nothing.
    await store.ingest(batches[1]!);
    await store.ingest(batches.at(-1)!);
    assert.deepEqual(await census(server.url), end);
    assert.deepEqual(await store.checkpoint(), { [STREAM]: total }, 'the checkpoint never moves back');
  });
});
