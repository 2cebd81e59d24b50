/**
 * @module kernel/nodes.test
 * The node table after {@link NodeTable.renewMaps}: every node and handle is found as before,
 * and the table goes on adding, forgetting and closing; a table tracking changes for a handover
 * keeps its maps (its snapshot may be walking them).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import * as libc from './libc.js';
import { NodeTable, type Node } from './nodes.js';
import { FUSE_ROOT_ID } from './protocol.js';

function scratch(t: { after(fn: () => void): void }, files: number): { dir: string; nodes: NodeTable; made: Node[] } {
  const dir = mkdtempSync(join(tmpdir(), 'prov-nodes-'));
  const rootFd = libc.open(dir, libc.O.PATH | libc.O.DIRECTORY);
  t.after(() => { libc.close(rootFd); rmSync(dir, { recursive: true, force: true }); });
  const nodes = new NodeTable(rootFd);
  const made: Node[] = [];
  for (let i = 0; i < files; i++) made.push(adoptFile(nodes, dir, `f${i}`));
  return { dir, nodes, made };
}

function adoptFile(nodes: NodeTable, dir: string, name: string): Node {
  writeFileSync(join(dir, name), name);
  const fd = libc.open(join(dir, name), libc.O.PATH);
  return nodes.adopt(fd, libc.fstat(fd), FUSE_ROOT_ID, Buffer.from(name));
}

const maps = (t: NodeTable): unknown[] => {
  const m = t as unknown as { byId: unknown; byKey: unknown; handles: unknown };
  return [m.byId, m.byKey, m.handles];
};

test('after renewMaps the table finds every node and handle, and goes on changing', (t) => {
  const { dir, nodes, made } = scratch(t, 40);
  const handles = made.slice(0, 10).map((n) => nodes.openHandle({ node: n.id, flags: 0, fd: -1, passthrough: false }));
  const before = maps(nodes);
  nodes.renewMaps();
  const after = maps(nodes);
  after.forEach((m, i) => assert.notEqual(m, before[i], 'a fresh map'));
  assert.equal(nodes.size, 41, '40 files and the root');
  for (const n of made) {
    assert.equal(nodes.find(n.id), n);
    assert.equal(nodes.findByIdentity(n.dev, n.ino), n);
  }
  for (const h of handles) assert.equal(nodes.findHandle(h.fh), h);
  // Changes after the renewal land in the new maps.
  const late = adoptFile(nodes, dir, 'late');
  assert.equal(nodes.find(late.id), late);
  nodes.forget(made[20]!.id, 1);
  assert.equal(nodes.find(made[20]!.id), undefined, 'forgotten');
  assert.equal(nodes.findByIdentity(made[20]!.dev, made[20]!.ino), undefined);
  nodes.forget(made[0]!.id, 1); // still open: stays until its handle closes
  assert.equal(nodes.find(made[0]!.id), made[0]);
  nodes.closeHandle(handles[0]!.fh);
  assert.equal(nodes.findHandle(handles[0]!.fh), undefined);
  assert.equal(nodes.find(made[0]!.id), undefined, 'gone with its last handle');
  assert.equal(nodes.size, 40);
});

test('renewMaps leaves a table that tracks changes for a handover alone', (t) => {
  const { nodes } = scratch(t, 5);
  nodes.startTracking();
  const before = maps(nodes);
  nodes.renewMaps();
  maps(nodes).forEach((m, i) => assert.equal(m, before[i], 'the same map'));
  nodes.stopTracking();
  nodes.renewMaps();
  maps(nodes).forEach((m, i) => assert.notEqual(m, before[i], 'renewed once tracking stopped'));
});
