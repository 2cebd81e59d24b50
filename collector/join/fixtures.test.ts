/**
 * @module collector/join/fixtures.test
 * The join engine on real captures: each journal under test/fixtures/scenarios/ was recorded
 * by eBPF from a real workload (bash pipelines, gcc, tar, cp/mv/ln, an atomic save, fd passing
 * between Python processes). Replayed here without root: journal → join → SQLite, and each
 * output's lineage (history rule) must hold exactly the inputs meta.json expects.
 *
 * Files are named as the run named them: `x@before` is the inode that held name x first,
 * `x` the one holding it at the end. Only files with such a name under the work directory
 * count (temporaries under tmp/ and files elsewhere do not), as in test/scenarios/runner.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openJournalReader } from '../journal/index.js';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import type { IngestBatch } from '../../graph/model.js';
import { JoinEngine } from './engine.js';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/scenarios/', import.meta.url));

interface Meta { workDir: string; outputs: Record<string, { expected: string[] }> }

/** name → identity, from the batch's name history. */
function nameTables(b: IngestBatch, workDir: string) {
  const first = new Map<string, string>();
  const atEnd = new Map<string, string>();
  const ended = new Set(b.nameEnds.map((e) => `${e.file} ${e.path}`));
  for (const n of b.names) {
    if (!n.path.startsWith(workDir + '/')) continue;
    const rel = n.path.slice(workDir.length + 1);
    if (!first.has(rel)) first.set(rel, n.file);
    if (!ended.has(`${n.file} ${n.path}`)) atEnd.set(rel, n.file);
  }
  return { first, atEnd };
}

describe('join: real captures replayed (test/fixtures/scenarios)', () => {
  const names = existsSync(FIXTURES) ? readdirSync(FIXTURES).sort() : [];
  it('has fixtures to replay', () => assert.ok(names.length >= 5, `fixtures missing under ${FIXTURES}`));
  for (const name of names) {
    it(`${name}: every output's lineage is exactly what the workload did`, async () => {
      const meta = JSON.parse(readFileSync(join(FIXTURES, name, 'meta.json'), 'utf8')) as Meta;
      const reader = openJournalReader(join(FIXTURES, name, 'journal'));
      const engine = new JoinEngine();
      try {
        for (let recs = reader.readBatch(10_000); recs.length > 0; recs = reader.readBatch(10_000)) {
          for (const r of recs) engine.apply(r);
        }
      } finally {
        reader.close();
      }
      assert.deepEqual(engine.stats().rejected, {}, 'records rejected by the join');
      const batch = engine.takeBatch();
      // The shell's forked copies only set fds up for what they exec: they read nothing (one
      // does write a here-document into a pipe it made itself). Python's os.fork() child in
      // fd-passing is a forked image doing real work, so only the shell's copies are checked.
      const images = new Map(batch.nodes.filter((n) => n.kind === 'process').map((n) => [n.id, n]));
      const isBash = (n: typeof batch.nodes[number] | undefined) => (n?.attrs.argv as string[] | undefined)?.[0] === 'bash';
      for (const e of batch.edges) {
        const img = images.get(e.kind === 'used' ? e.from : e.to);
        if (e.kind === 'used' && img?.attrs.image === 'fork' && isBash(img)) assert.fail(`a forked copy of the shell used something: ${e.from} -> ${e.to}`);
        if (name === 'pipeline' && (e.kind === 'used' || e.kind === 'wasGeneratedBy') && (e.from.startsWith('pipe:') || e.to.startsWith('pipe:'))) {
          assert.ok(!isBash(img), `the shell relates to a pipe: ${e.kind} ${e.from} -> ${e.to}`);
        }
      }
      const { first, atEnd } = nameTables(batch, meta.workDir);
      const identityOf = (n: string) => (n.endsWith('@before') ? first.get(n.slice(0, -7)) : atEnd.get(n) ?? first.get(n));
      const nameOf = new Map<string, string>();
      for (const [rel, id] of first) if (!rel.startsWith('tmp/') && !nameOf.has(id)) nameOf.set(id, `${rel}@before`);
      for (const [rel, id] of atEnd) if (!rel.startsWith('tmp/')) nameOf.set(id, rel);
      const store = await openSqliteStore(':memory:');
      try {
        await store.ingest(batch);
        for (const [out, { expected }] of Object.entries(meta.outputs)) {
          const outId = atEnd.get(out);
          assert.ok(outId, `${out} has no name at the end of the run`);
          const node = await store.resolvePath(join(meta.workDir, out));
          assert.ok(node, `${out} does not resolve`);
          const sub = await store.ancestors(node.id, { depth: 64, limit: 100_000 });
          const found = new Set<string>();
          for (const n of sub.nodes) {
            if (n.kind !== 'file') continue;
            const id = `file:${n.host}:${String(n.attrs.dev)}:${String(n.attrs.ino)}`;
            if (id !== outId && nameOf.has(id)) found.add(nameOf.get(id)!);
          }
          const want = new Set(expected.map((e) => {
            const id = identityOf(e);
            assert.ok(id, `${e} never had a name in the run`);
            return nameOf.get(id) ?? e;
          }));
          assert.deepEqual([...found].sort(), [...want].sort(), `lineage of ${out}`);
        }
      } finally {
        await store.close();
      }
    });
  }
});
