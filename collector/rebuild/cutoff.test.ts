/**
 * @module collector/rebuild/cutoff.test
 * Early cutoff on real files: a dependency that re-made byte-identical outputs cuts off what
 * depends on it only for that reason, and so does one cut off itself (a chain); a changed output
 * or a missing stamp does not.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cutoff, CUT_OFF_WHY } from './cutoff.js';
import type { Command } from './plan.js';
import type { Decisions } from './decide.js';
import type { StampFile } from './stamp.js';

function cmd(name: string, deps: string[], outputs: string[]): Command {
  return {
    key: name, run: `run-${name}`, argv: [name], exe: `/bin/${name}`, cwd: '/', uid: 0, gid: 0, start: 0, inputs: [], images: 1, sockets: [],
    outputs: outputs.map((path, i) => ({ id: `${name}${i}`, path, dev: 0, ino: 0, version: 1, ts: 0 })), deps: deps.map((d) => `run-${d}`),
  };
}

describe('early cutoff', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'prov-cutoff-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const setUp = (stampedContent: string) => {
    const out = join(dir, 'a.o');
    writeFileSync(out, 'object');
    const a = cmd('a', [], [out]), b = cmd('b', ['a'], [join(dir, 'b.bin')]), c = cmd('c', ['b'], []);
    const d: Decisions = {
      plan: { target: '/t', targetVersion: 'v', commands: [a, b, c], sources: 0 },
      decisions: [
        { cmd: a, stale: true, reasons: ['input changed'], own: ['input changed'] },
        { cmd: b, stale: true, reasons: ['a dependency runs'], own: [] },
        { cmd: c, stale: true, reasons: ['a dependency runs'], own: [] },
      ],
      hazards: [],
    };
    const hash = createHash('sha256').update(stampedContent).digest('hex');
    const stamps: StampFile = { version: 1, commands: { a: { run: 'run-a', files: { [out]: { ino: 0, size: 6, mtime: '0', hash } } } }, plans: {} };
    return { a, b, c, cutoff: new Cutoff(d, stamps), stamps };
  };

  it('cuts off a chain after byte-identical outputs, stamping what it cut off', () => {
    const { a, b, c, cutoff, stamps } = setUp('object');
    assert.equal(cutoff.finished(a), true);
    assert.equal(cutoff.skip(b), CUT_OFF_WHY);
    assert.equal(cutoff.skip(c), CUT_OFF_WHY, 'a command whose only stale dependency was cut off runs after all');
    assert.equal(stamps.commands.b?.run, 'run-b');
    assert.equal(stamps.commands.c?.run, 'run-c');
  });

  it('runs them when the output changed, or before the dependency finished', () => {
    const changed = setUp('something else');
    assert.equal(changed.cutoff.skip(changed.b), null, 'skipped before its dependency finished');
    assert.equal(changed.cutoff.finished(changed.a), false);
    assert.equal(changed.cutoff.skip(changed.b), null);
    changed.cutoff.finished(changed.b);
    assert.equal(changed.cutoff.skip(changed.c), null);
  });
});
