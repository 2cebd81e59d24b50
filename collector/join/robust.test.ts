/**
 * @module collector/join/robust.test
 * Bad and surprising input never crashes the engine and is counted with a reason; a snapshot
 * taken after a batch and restored continues exactly as an uninterrupted run; replayed
 * records are skipped.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { JournalRecord } from '../journal/api.js';
import type { IngestBatch } from '../../graph/model.js';
import { JoinEngine, type JoinState } from './engine.js';
import { FUSE, O_RDONLY, Scenario, WRITE_NEW, file } from './testkit.js';

function rec(seq: number, event: unknown): JournalRecord {
  return { stream: 'ebpf', seq, pos: `ebpf:${seq}`, segment: '0', offset: 0, event: event as JournalRecord['event'] };
}

process.env.PROV_LOG = 'error'; // rejections are expected here; the counters are what is checked

const base = { v: 1, src: 'ebpf', host: 'h', pid: 10, tid: 10 };

describe('join: bad records', () => {
  it('rejects malformed records with a reason and handles unknown state leniently', () => {
    const e = new JoinEngine();
    const bad: unknown[] = [
      null,
      'text',
      { ...base, ts: 1, op: 'teleport' },
      { ...base, op: 'exit', code: 0, group: true },
      { ...base, ts: 2, op: 'open', flags: 0, fd: 3 },
      { ...base, ts: 3, op: 'fork', child: '11', childTid: 11, thread: false },
      { ...base, ts: 4, op: 'exec', filename: '/bin/x', argv: 'x', uid: 0, gid: 0 },
      { ...base, ts: 5, op: 'open', file: { dev: 1, ino: 2 }, flags: 0 }, // eBPF open without fd
      { ...base, ts: 6, op: 'unlink', file: { dev: 1, ino: 0, name: 'nowhere' }, deleted: true },
      { ...base, ts: 7, pid: 0, tid: 0, op: 'close', fd: 3 },
    ];
    const lenient: unknown[] = [
      { ...base, ts: 10, op: 'close', fd: 42 },
      { ...base, ts: 11, op: 'dup', oldfd: 40, newfd: 1 },
      { ...base, ts: 12, op: 'exit', code: 1, group: true, pid: 77, tid: 77 },
      { ...base, ts: 13, op: 'sendmsg', fd: 9, sock: 5, fds: [8] },
      { ...base, ts: 14, op: 'recvmsg', fd: 9, sock: 6, fds: [4, 5] },
      { ...base, ts: 15, src: 'provfs', pid: 0, tid: 999, op: 'close', file: { dev: FUSE, ino: 3 }, fh: 12 },
      { ...base, ts: 16, op: 'close', fd: 0, fdMax: 4294967295 },
    ];
    let seq = 0;
    for (const ev of [...bad, ...lenient]) assert.doesNotThrow(() => e.apply(rec(++seq, ev)));
    const st = e.stats();
    assert.deepEqual(st.rejected, {
      'event is not an object': 2,
      'unknown op "teleport"': 1,
      'exit: field ts is not a number': 1,
      'open: field file is not a file reference {dev, ino}': 1,
      'fork: field child is not an integer': 1,
      'exec: field argv is not an array': 1,
      'open: eBPF open without fd': 1,
      'unlink: unlink of an inode that cannot be resolved': 1,
      'close: neither pid nor tid': 1,
    });
    assert.equal(st.applied, lenient.length);
    assert.equal(st.unknownFds, 1 + 1 + 1 + 2);
    assert.equal(st.unknownPids, 2); // pid 10 given a lazy image; the exit of 77
    assert.equal(st.unknownTids, 1);
    assert.deepEqual(e.checkpoint(), { ebpf: seq });
  });

  it('survives randomly mutated and reordered real sequences', () => {
    const s = realistic();
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
    const pick = <T>(a: T[]): T => a[Math.floor(rnd() * a.length)];
    const values = [undefined, null, -1, 0, 1, 3, 2 ** 31, 1.5, 'x', [], {}, [1, 2], { dev: 1, ino: 1 }, true];
    const rounds = Number(process.env.PROV_FUZZ_ROUNDS ?? 300);
    for (let round = 0; round < rounds; round++) {
      const e = new JoinEngine({ strict: round % 2 === 0 });
      const recs = s.records.map((r) => structuredClone(r));
      for (let i = 0; i < recs.length; i++) {
        if (rnd() < 0.3) {
          const ev = recs[i].event as unknown as Record<string, unknown>;
          const k = pick(Object.keys(ev));
          ev[k] = pick(values);
        }
        if (rnd() < 0.1) {
          const j = Math.floor(rnd() * recs.length);
          [recs[i].event, recs[j].event] = [recs[j].event, recs[i].event];
        }
      }
      for (const r of recs) assert.doesNotThrow(() => e.apply(r));
      const st = e.stats();
      const rejected = Object.values(st.rejected).reduce((a, b) => a + b, 0);
      assert.equal(st.applied + rejected, recs.length);
      for (const why of Object.keys(st.rejected)) assert.ok(!why.includes('internal error'), why);
      assert.doesNotThrow(() => JSON.stringify(e.snapshot()));
      e.takeBatch();
    }
  });
});

function realistic(): Scenario {
  const s = new Scenario();
  const a = file(20, '/w/a');
  const b = file(21, '/w/b');
  const m = file(22, '/mnt/m', FUSE);
  s.exec(100, ['sh', '-c', 'cat a | sort > b']);
  s.pipe(100, 3, 4, 9000);
  s.fork(100, 101);
  s.close(100, 4);
  s.fork(100, 102);
  s.close(100, 3);
  s.close(101, 3);
  s.dup(101, 4, 1);
  s.close(101, 4);
  s.exec(101, ['cat', 'a']);
  s.dup(102, 3, 0);
  s.close(102, 3);
  s.open(102, 3, b, WRITE_NEW, true);
  s.dup(102, 3, 1);
  s.close(102, 3);
  s.exec(102, ['sort']);
  s.open(101, 3, a, O_RDONLY);
  s.provfs(101, { op: 'open', file: m, flags: WRITE_NEW, fh: 7, created: true });
  s.open(101, 5, m, WRITE_NEW, true);
  s.ebpf(101, { op: 'socket', fd: 6, ino: 50, peer: 51 });
  s.ebpf(101, { op: 'sendmsg', fd: 6, sock: 50, peer: 51, fds: [3] });
  s.ebpf(102, { op: 'socket', fd: 7, ino: 51, peer: 50 });
  s.ebpf(102, { op: 'recvmsg', fd: 7, sock: 51, peer: 50, fds: [8], files: [a] });
  s.close(101, 5);
  s.provfs(101, { op: 'close', file: m, fh: 7 });
  s.provfs(101, { op: 'rename', file: { ...m, path: '/mnt/n' }, from: { path: '/mnt/m' }, flags: 0 });
  s.ebpf(101, { op: 'link', file: { ...a, path: '/w/a2' } });
  s.close(101, 3);
  s.close(101, 1);
  s.exit(101);
  s.exit(102);
  s.lost('ebpf', 1, 2, 3);
  s.exit(100);
  return s;
}

/** Edges as full identity strings and nodes merged by id, over several batches. */
function fold(batches: IngestBatch[]) {
  const edges = new Set<string>();
  const nodes = new Map<string, Record<string, unknown>>();
  const names: string[] = [];
  for (const b of batches) {
    for (const e of b.edges) edges.add(JSON.stringify([e.kind, e.from, e.to, e.ts, e.pos, e.attrs ?? {}]));
    // A later emission overwrites label and ts as the stores do: they must not drift.
    for (const n of b.nodes) nodes.set(n.id, { ...(nodes.get(n.id) ?? {}), ...n.attrs, kind: n.kind, ts: n.ts, label: n.label });
    for (const n of b.names) names.push(JSON.stringify(n));
    for (const n of b.nameEnds) names.push(JSON.stringify(n));
    for (const g of b.gaps) names.push(JSON.stringify(g));
  }
  return { edges: [...edges].sort(), nodes: Object.fromEntries([...nodes].sort()), names: names.sort() };
}

describe('join: snapshot, restore, replay', () => {
  it('a restart from any snapshot gives the same graph as one uninterrupted run, and replay is skipped', () => {
    const s = realistic();
    const whole = fold([s.run({ strict: true }).batch]);
    for (let k = 0; k <= s.records.length; k++) {
      const first = new JoinEngine({ strict: true });
      for (const r of s.records.slice(0, k)) first.apply(r);
      const b1 = first.takeBatch();
      const state = JSON.parse(JSON.stringify(first.snapshot())) as JoinState;
      const second = JoinEngine.restore(state);
      for (const r of s.records) second.apply(r); // the pipeline may hand over records again from before the checkpoint
      const b2 = second.takeBatch();
      assert.equal(second.stats().replayed, k, `split at ${k}`);
      assert.deepEqual(fold([b1, b2]), whole, `split at ${k}`);
      assert.deepEqual(b2.checkpoint, s.run().batch.checkpoint);
    }
  });

  it('restore refuses something that is not a snapshot', () => {
    assert.throws(() => JoinEngine.restore({ v: 2 } as unknown as JoinState), /not a version 1 snapshot/);
  });
});
