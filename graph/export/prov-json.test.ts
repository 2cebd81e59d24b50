/**
 * @module graph/export/prov-json.test
 * PROV-JSON export: the W3C member names for every element and relation of a small graph.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { GraphBuilder } from '../contract.js';
import type { Subgraph } from '../store.js';
import { readFileSync } from 'node:fs';
import { localBootTimeMs, toProvJson } from './prov-json.js';

function small() {
  const b = new GraphBuilder();
  const user = b.user(1000);
  const sh = b.proc(10, 1_000_000_000, { exe: '/bin/sh', end: 3_000_000_000, argv: ['sh', '-c', 'cc x.c'] });
  const cc = b.proc(11, 1_500_000_000, { exe: '/usr/bin/cc' });
  const src = b.file(1, 0, '/p/x"<c>.c', 0);
  const obj = b.file(2, 0, '/p/x.o', 2_000_000_000);
  const pipe = b.pipe(77, 1_600_000_000);
  b.associated(sh, user, 1_000_000_000);
  b.informed(cc, sh, 1_500_000_000, 'fork');
  b.used(cc, src, 1_700_000_000);
  b.used(cc, pipe, 1_750_000_000);
  b.generated(obj, cc, 2_000_000_000);
  b.derived(obj, src, 2_000_000_000);
  b.invalidated(src, sh, 2_900_000_000);
  const batch = b.batch();
  const g: Subgraph = { nodes: batch.nodes, edges: batch.edges, gaps: [{ id: 'lost 1', host: 'h1', src: 'ebpf', from: 5, to: 9, count: 3, reason: 'ring' }], truncated: false };
  return { g, user, sh, cc, src, obj, pipe };
}

describe('PROV-JSON export', () => {
  it('has the W3C PROV-JSON members with the right ends', () => {
    const { g, user, sh, cc, src, obj, pipe } = small();
    const doc = toProvJson(g);
    assert.deepEqual(Object.keys(doc.entity).sort(), [src, obj, pipe, 'gap:lost%201'].sort());
    assert.deepEqual(Object.keys(doc.activity).sort(), [sh, cc].sort());
    assert.deepEqual(Object.keys(doc.agent), [user]);
    for (const p of ['file', 'proc', 'pipe', 'user', 'px']) assert.equal(typeof doc.prefix[p], 'string', `prefix ${p} declared`);
    const one = <T>(o: Record<string, T>): T => { assert.equal(Object.keys(o).length, 1); return Object.values(o)[0]!; };
    const used = Object.values(doc.used);
    assert.equal(used.length, 2);
    assert.ok(used.every((u) => u['prov:activity'] === cc));
    assert.deepEqual(used.map((u) => u['prov:entity']).sort(), [src, pipe].sort());
    const gen = one(doc.wasGeneratedBy);
    assert.equal(gen['prov:entity'], obj);
    assert.equal(gen['prov:activity'], cc);
    const inf = one(doc.wasInformedBy);
    assert.equal(inf['prov:informed'], cc);
    assert.equal(inf['prov:informant'], sh);
    assert.equal(inf['px:via'], 'fork');
    const der = one(doc.wasDerivedFrom);
    assert.equal(der['prov:generatedEntity'], obj);
    assert.equal(der['prov:usedEntity'], src);
    assert.equal(der['px:rule'], 'strict');
    const inv = one(doc.wasInvalidatedBy);
    assert.equal(inv['prov:entity'], src);
    assert.equal(inv['prov:activity'], sh);
    const assoc = one(doc.wasAssociatedWith);
    assert.equal(assoc['prov:activity'], sh);
    assert.equal(assoc['prov:agent'], user);
    for (const rel of [...used, gen, inf, der, inv, assoc]) {
      assert.equal((rel['px:ts'] as { type: string }).type, 'xsd:long');
      assert.match(rel['px:pos'] as string, /^test:\d+$/);
      assert.equal(rel['prov:time'], undefined, 'no wall clock without a boot time');
    }
    const e = doc.entity[src]!;
    assert.equal(e['prov:label'], 'x"<c>.c');
    assert.equal(e['px:path'], '/p/x"<c>.c', 'names are kept exactly (JSON escapes them)');
    assert.deepEqual(e['prov:type'], { $: 'px:File', type: 'prov:QUALIFIED_NAME' });
    assert.deepEqual(doc.activity[sh]!['px:argv'], { $: JSON.stringify(['sh', '-c', 'cc x.c']), type: 'px:json' });
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc, 'plain JSON');
  });

  it('adds xsd:dateTime times when the host boot time is known', () => {
    const { g, sh, cc } = small();
    const boot = Date.UTC(2026, 10, 21, 12, 0, 0); // 12:00:00 UTC
    const doc = toProvJson(g, { bootTimeMs: { h1: boot } });
    assert.equal(doc.activity[sh]!['prov:startTime'], '2026-11-21T12:00:01.000000Z');
    assert.equal(doc.activity[sh]!['prov:endTime'], '2026-11-21T12:00:03.000000Z');
    assert.equal(doc.activity[cc]!['prov:endTime'], undefined);
    const gen = Object.values(doc.wasGeneratedBy)[0]!;
    assert.equal(gen['prov:time'], '2026-11-21T12:00:02.000000Z');
    const used = Object.values(doc.used).find((u) => u['px:ts'] && (u['px:ts'] as { $: string }).$ === '1750000000')!;
    assert.equal(used['prov:time'], '2026-11-21T12:00:01.750000Z');
    assert.equal(Object.values(doc.wasInformedBy)[0]!['prov:time'], undefined, 'communication has no time in PROV-DM');
  });

  it('knows this machine\'s boot time from the monotonic clock', () => {
    const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    const fromProc = Date.now() - uptimeS * 1000;
    assert.ok(Math.abs(localBootTimeMs() - fromProc) < 5000, 'within 5 s of now - /proc/uptime');
  });
});
