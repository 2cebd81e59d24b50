/**
 * @module collector/join/setattr.test
 * eBPF's setattr records (chmod/chown/utimes/truncate syscalls) in the join: a truncate makes a
 * new version by the truncating process, a chmod, chown or utimes does not.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { E, Scenario, edges, file, ver } from './testkit.js';

describe('eBPF setattr', () => {
  it('truncate makes a version, chmod/chown/utimes do not', () => {
    const s = new Scenario();
    const f = file(21, '/w/f');
    s.exec(940, ['chmod']);
    const chmod = s.img(940);
    s.ebpf(940, { op: 'setattr', file: f, mode: 0o600 });
    s.ebpf(940, { op: 'setattr', file: f, uid: 5, gid: 6 });
    s.ebpf(940, { op: 'setattr', file: f, mtime: 1_600_000_000_000_000_000 });
    s.exec(941, ['truncate']);
    const tr = s.img(941);
    s.ebpf(941, { op: 'setattr', file: f, size: 0, mtime: 1_700_000_000_000_000_000 });
    const { batch, engine } = s.run();
    assert.deepEqual(edges(batch, ['wasGeneratedBy']), [E('wasGeneratedBy', ver(f, 1), tr)]);
    assert.deepEqual(edges(batch).filter((e) => e.includes(chmod)), [E('wasAssociatedWith', chmod, 'user:h:1000')], 'chmod, chown, utimes: no version, no use');
    assert.deepEqual(engine.stats().rejected, {});
    assert.equal(engine.stats().applied, s.records.length);
  });

});
