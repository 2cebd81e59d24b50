/**
 * @module graph/neo4j/twohost.test
 * Two collectors (hosts `alpha` and `beta`, each with its own store connection and journal
 * streams) write into one Neo4j database. Their lineage is the union of both; a TCP flow
 * from alpha to beta, recorded by each end under the shared flow id (./flow.ts), joins the
 * two halves so beta's output has alpha's input among its ancestors. The join happens
 * whichever end arrives last. `prov hosts` lists both.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import hostsAction from '../../cli/actions/hosts.js';
import { emptyBatch, fileIdentity, fileVersionId, processId, type GraphNode, type IngestBatch } from '../model.js';
import type { GraphStore } from '../store.js';
import { socketFlowId } from './flow.js';
import { driver4, freshStore, startServer } from '../../test/neo4j/fixture.js';
import { openStore } from '../open.js';
import type { Neo4jTestServer } from '../../test/neo4j/server.js';

const alphaAddr = { ip: '192.0.2.10', port: 51000 };
const betaAddr = { ip: '192.0.2.20', port: 8080 };
/** Each end computes the id from its own view (local, remote). */
const flowSeenByAlpha = socketFlowId('tcp', alphaAddr, betaAddr);
const flowSeenByBeta = socketFlowId('tcp', betaAddr, alphaAddr);

const PA = processId('alpha', 300, 100);
const PB = processId('beta', 400, 7_000);
const IN = fileVersionId('alpha', 8, 11, 0);
const OUT = fileVersionId('beta', 9, 22, 1);
const LOCAL_A = fileVersionId('alpha', 8, 12, 0);

function file(id: string, host: string, path: string, ts: number, version: number): GraphNode {
  const [, , dev, ino] = id.split(':');
  return { id, kind: 'file', host, label: path.split('/').pop()!, ts, attrs: { dev: Number(dev), ino: Number(ino), version, path } };
}

/** alpha: `upload` reads /data/report.csv and sends it to beta:8080; also writes a local log. */
function alphaBatch(): IngestBatch {
  const b = emptyBatch({ 'alpha/ebpf': 5 });
  b.nodes = [
    { id: PA, kind: 'process', host: 'alpha', label: 'upload report.csv', ts: 100, attrs: { pid: 300, start: 100, exe: '/usr/bin/upload' } },
    file(IN, 'alpha', '/data/report.csv', 0, 0),
    file(LOCAL_A, 'alpha', '/var/log/upload.log', 0, 0),
    { id: flowSeenByAlpha, kind: 'socket', host: 'alpha', label: 'tcp 192.0.2.10:51000 → 192.0.2.20:8080', ts: 120, attrs: { addr: '192.0.2.20:8080' } },
  ];
  b.edges = [
    { kind: 'used', from: PA, to: IN, ts: 110, pos: 'alpha/ebpf:1' },
    { kind: 'wasGeneratedBy', from: flowSeenByAlpha, to: PA, ts: 120, pos: 'alpha/ebpf:2' },
    { kind: 'used', from: PA, to: LOCAL_A, ts: 130, pos: 'alpha/ebpf:3' },
  ];
  b.names = [{ file: fileIdentity('alpha', 8, 11), host: 'alpha', path: '/data/report.csv', since: 0, pos: 'alpha/ebpf:4' }];
  return b;
}

/** beta: `server` receives on :8080 and writes /srv/in/report.csv (beta's clock is far ahead). */
function betaBatch(): IngestBatch {
  const b = emptyBatch({ 'beta/ebpf': 3 });
  b.nodes = [
    { id: PB, kind: 'process', host: 'beta', label: 'server', ts: 7_000, attrs: { pid: 400, start: 7_000, exe: '/usr/bin/server' } },
    { id: flowSeenByBeta, kind: 'socket', host: 'beta', label: 'tcp 192.0.2.20:8080 ← 192.0.2.10:51000', ts: 9_000, attrs: { peer: '192.0.2.10:51000' } },
    file(OUT, 'beta', '/srv/in/report.csv', 9_500, 1),
  ];
  b.edges = [
    { kind: 'used', from: PB, to: flowSeenByBeta, ts: 9_100, pos: 'beta/ebpf:1' },
    { kind: 'wasGeneratedBy', from: OUT, to: PB, ts: 9_500, pos: 'beta/ebpf:2' },
  ];
  return b;
}

const ids = (xs: Array<{ id: string }>) => xs.map((x) => x.id).sort();

describe('two hosts, one Neo4j database', () => {
  let server: Neo4jTestServer;
  let alpha: GraphStore;
  let beta: GraphStore;
  before(async () => {
    server = await startServer();
    alpha = await freshStore(server);
    // The second collector opens the store the way `prov --store bolt://…` does.
    beta = await openStore(server.url, { neo4jDriver: driver4, env: {} });
  });
  after(async () => {
    await alpha?.close();
    await beta?.close();
    await server?.destroy();
  });

  it('the flow id is the same from both ends', () => {
    assert.equal(flowSeenByAlpha, flowSeenByBeta);
  });

  it('before the sender’s half arrives, beta’s lineage stops at the socket', async () => {
    await beta.ingest(betaBatch());
    const g = await beta.ancestors(OUT);
    assert.deepEqual(ids(g.nodes), [OUT, PB, flowSeenByBeta].sort());
  });

  it('when both ends are recorded, the flow joins them: union lineage across hosts', async () => {
    await alpha.ingest(alphaBatch());
    const up = await beta.ancestors(OUT);
    assert.deepEqual(ids(up.nodes), [OUT, PB, flowSeenByBeta, PA, IN].sort(),
      'alpha’s input is an ancestor of beta’s output; alpha’s later log read is not (after the send)');
    const down = await alpha.descendants(IN);
    assert.deepEqual(ids(down.nodes), [IN, PA, flowSeenByAlpha, PB, OUT].sort());
    const p = await alpha.path(OUT, IN);
    assert.deepEqual(p?.nodes.map((n) => n.id), [OUT, PB, flowSeenByBeta, PA, IN]);
  });

  it('one socket node, both hosts, both checkpoints; replay changes nothing', async () => {
    const s1 = await alpha.stats();
    assert.equal(s1.nodes.socket, 1);
    assert.equal(s1.hosts, 2);
    assert.deepEqual(s1.checkpoint, { 'alpha/ebpf': 5, 'beta/ebpf': 3 });
    const sock = (await alpha.node(flowSeenByAlpha))!.node;
    assert.deepEqual(sock.attrs, { addr: '192.0.2.20:8080', peer: '192.0.2.10:51000' }, 'both ends’ attributes merged');
    await alpha.ingest(alphaBatch());
    await beta.ingest(betaBatch());
    assert.deepEqual(await beta.stats(), s1);
    assert.deepEqual(await alpha.hosts(), ['alpha', 'beta']);
    const onlyBeta = await alpha.search({ prefix: '/', host: 'beta' });
    assert.deepEqual(ids(onlyBeta.items), [OUT]);
  });

  it('prov hosts lists both hosts, as text and JSON; a flow known only as an edge end adds no host', async () => {
    const b = emptyBatch({ 'alpha/ebpf': 6 });
    const ssh = socketFlowId('tcp', alphaAddr, { ip: '192.0.2.30', port: 22 });
    b.edges = [{ kind: 'wasGeneratedBy', from: ssh, to: PA, ts: 140, pos: 'alpha/ebpf:6' }];
    await alpha.ingest(b);
    assert.equal((await alpha.node(ssh))?.node.kind, 'socket', 'a placeholder for the flow');
    const out: string[] = [];
    const sink = { write: (s: string) => out.push(s) };
    const codes = [await hostsAction(alpha, { out: sink }), await hostsAction(alpha, { json: true, out: sink })];
    assert.deepEqual(codes, [0, 0]);
    assert.equal(out[0], 'alpha\nbeta\n');
    assert.deepEqual(JSON.parse(out[1]!).hosts, ['alpha', 'beta']);
  });
});
