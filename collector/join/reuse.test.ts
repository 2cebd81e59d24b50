/**
 * @module collector/join/reuse.test
 * An inode number given to a new file after the old file was deleted where capture did not see
 * it (found as an intermittent `prov rebuild` failure: `as` created plain.o on the inode the
 * test had freed by deleting `app`, and the new version was labelled `app`).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { E, O_RDONLY, Scenario, WRITE_NEW, edges, file, ver } from './testkit.js';

describe('join: an inode number reused after an unseen delete', () => {
  it('the new file is named by its own path, the old names end, the old version keeps its producer', () => {
    const s = new Scenario();
    const app = file(50, '/w/app');
    s.exec(100, ['ld']);
    const ld = s.img(100);
    s.open(100, 3, app, WRITE_NEW, true);
    s.close(100, 3);
    s.exit(100);
    // app is deleted by a process capture does not trace; the file system reuses inode 50.
    const plainO = file(50, '/w/plain.o');
    s.exec(200, ['as']);
    const as = s.img(200);
    s.open(200, 3, plainO, WRITE_NEW, true);
    s.close(200, 3);
    s.exit(200);
    const { engine, batch } = s.run();
    const node = (id: string) => batch.nodes.filter((n) => n.id === id).at(-1);
    assert.equal(node(ver(app, 0))?.attrs.path, '/w/app');
    assert.equal(node(ver(plainO, 1))?.attrs.path, '/w/plain.o', 'the new file\'s version is labelled with its own path');
    assert.deepEqual(edges(batch, ['wasGeneratedBy']), [E('wasGeneratedBy', ver(app, 0), ld), E('wasGeneratedBy', ver(plainO, 1), as)].sort());
    assert.deepEqual(batch.nameEnds.map((e) => e.path), ['/w/app'], 'the dead file\'s name ended');
    assert.equal(engine.stats().reusedInodes, 1);
  });

  it('a write of the dead file left open does not absorb the new file', () => {
    const s = new Scenario();
    const log = file(60, '/w/log');
    s.exec(100, ['daemon']);
    const daemon = s.img(100);
    s.open(100, 3, log, WRITE_NEW, true); // never closed in the record (its close was lost)
    const out = file(60, '/w/out');
    s.exec(200, ['gen']);
    const gen = s.img(200);
    s.open(200, 3, out, WRITE_NEW, true);
    s.close(200, 3);
    s.exec(300, ['cat']);
    const cat = s.img(300);
    s.open(300, 3, out, O_RDONLY);
    s.close(300, 3);
    const { batch } = s.run();
    const gens = edges(batch, ['wasGeneratedBy']);
    assert.ok(gens.includes(E('wasGeneratedBy', ver(out, 1), gen)), gens.join('\n'));
    assert.ok(!gens.some((l) => l.endsWith(`-> ${daemon}`) && l.includes(ver(out, 1))), 'the dead writer did not generate the new file');
    assert.ok(edges(batch, ['used']).includes(E('used', cat, ver(out, 1))));
  });

  it('mkdir on a reused number starts a new version with the new path', () => {
    const s = new Scenario();
    const f = file(70, '/w/old.txt');
    s.exec(100, ['w']);
    s.open(100, 3, f, WRITE_NEW, true);
    s.close(100, 3);
    s.ebpf(100, { op: 'mkdir', file: { ...file(70, '/w/newdir'), type: 0o040000 }, mode: 0o755 });
    const { batch } = s.run();
    const v1 = batch.nodes.filter((n) => n.id === ver(f, 1)).at(-1);
    assert.equal(v1?.attrs.path, '/w/newdir');
    assert.equal(v1?.attrs.type, 'dir');
  });
});
