/**
 * @module collector/rebuild/decide.test
 * Staleness and hazards on real files: unchanged, modified after read, replaced, missing
 * output, stale dependency, the stamp deciding exactly (touch without change), and each hazard;
 * the Decider's command that can start ahead, and that deciding the rest after it changes nothing.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decide, bootOffsetNs, Decider } from './decide.js';
import { FileCache, loadStamps } from './stamp.js';
import { stampFresh } from './index.js';
import { commandKey, type Command, type Plan, type RecordedFile } from './plan.js';
import { redactEnv } from './redact.js';

const dir = mkdtempSync(join(tmpdir(), 'prov-rb-decide-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Monotonic ns "now" (what capture would have recorded). */
const mono = (): number => Number(process.hrtime.bigint());

function rec(path: string, ts: number, version = 0, extra: Partial<RecordedFile> = {}): RecordedFile {
  const st = statSync(path);
  return { id: `file:h:${st.dev}:${st.ino}:${version}`, path, dev: st.dev, ino: st.ino, version, ts, ...extra };
}

function cmd(run: string, argv: string[], inputs: RecordedFile[], outputs: RecordedFile[], deps: string[] = [], extra: Partial<Command> = {}): Command {
  return { key: commandKey(argv, dir), run, argv, exe: `/usr/bin/${argv[0]}`, cwd: dir, uid: 0, gid: 0, start: 0, inputs, outputs, deps, images: 1, sockets: [], ...extra };
}

const plan = (commands: Command[]): Plan => ({ target: 'x', targetVersion: 'v', commands, sources: 0 });

describe('rebuild decide', () => {
  it('up to date, then an input modified after it was read, then stale through a dependency', async () => {
    const src = join(dir, 'a.c'), obj = join(dir, 'a.o'), app = join(dir, 'app');
    writeFileSync(src, 'x');
    await new Promise((r) => setTimeout(r, 20));
    const readAt = mono();
    writeFileSync(obj, 'o');
    writeFileSync(app, 'b');
    const closedAt = mono() + 1;
    const c1 = cmd('r1', ['cc', '-c', 'a.c'], [rec(src, readAt)], [rec(obj, closedAt)]);
    const c2 = cmd('r2', ['cc', '-o', 'app'], [rec(obj, closedAt + 1, 0)], [rec(app, closedAt + 2)], ['r1']);
    const stamps = loadStamps(join(dir, 'none.json'));
    let d = decide(plan([c1, c2]), new FileCache(), stamps);
    assert.deepEqual(d.decisions.map((x) => x.stale), [false, false], JSON.stringify(d.decisions.map((x) => x.reasons)));
    await new Promise((r) => setTimeout(r, 20));
    appendFileSync(src, 'y');
    d = decide(plan([c1, c2]), new FileCache(), stamps);
    assert.deepEqual(d.decisions.map((x) => x.stale), [true, true]);
    assert.match(d.decisions[0]!.reasons[0]!, /a\.c was modified after the command read it/);
    assert.match(d.decisions[1]!.reasons[0]!, /depends on `cc -c a.c`/);
  });

  it('missing and replaced outputs are stale; the stamp decides by content (a touch is no change)', async () => {
    const src = join(dir, 'b.c'), obj = join(dir, 'b.o');
    writeFileSync(src, 'x');
    await new Promise((r) => setTimeout(r, 20));
    const readAt = mono();
    writeFileSync(obj, 'o');
    const c = cmd('r3', ['cc', '-c', 'b.c'], [rec(src, readAt)], [rec(obj, mono() + 1)]);
    const stamps = loadStamps(join(dir, 'none.json'));
    const files = new FileCache();
    const d = decide(plan([c]), files, stamps);
    assert.equal(d.decisions[0]!.stale, false);
    assert.equal(stampFresh(d, files, stamps), 1);
    // Touch the source into the future: without the stamp this would look modified.
    const future = new Date(Date.now() + 60_000);
    utimesSync(src, future, future);
    assert.equal(decide(plan([c]), new FileCache(), stamps).decisions[0]!.stale, false);
    assert.equal(decide(plan([c]), new FileCache(), loadStamps(join(dir, 'none.json'))).decisions[0]!.stale, true);
    // Content changed: stale even with the stamp.
    appendFileSync(src, 'z');
    assert.match(decide(plan([c]), new FileCache(), stamps).decisions[0]!.reasons[0]!, /changed \(content differs/);
    // Output replaced by another inode, then missing.
    writeFileSync(src, 'x');
    utimesSync(src, future, future);
    await new Promise((r) => setTimeout(r, 30)); // past the mtime slack (ext4 may reuse the inode number)
    unlinkSync(obj);
    writeFileSync(obj, 'o');
    const r = decide(plan([c]), new FileCache(), loadStamps(join(dir, 'none.json'))).decisions[0]!.reasons.join(' ');
    assert.match(r, /b\.o was replaced|b\.o was modified/);
    unlinkSync(obj);
    assert.match(decide(plan([c]), new FileCache(), stamps).decisions[0]!.reasons.join(' '), /output .*b\.o is missing/);
  });

  it('reports hazards: two writers, read before write, missing input, changed executable, network', () => {
    const f = join(dir, 'shared.txt'), exe = join(dir, 'tool');
    writeFileSync(f, 's');
    writeFileSync(exe, 'bin');
    const t = mono();
    const shared0 = rec(f, t - 10, 0), shared1 = rec(f, t - 5, 1);
    const gone: RecordedFile = { id: 'file:h:1:999999:0', path: join(dir, 'gone.txt'), dev: 1, ino: 999999, version: 0, ts: t - 20 };
    const oldExe = { ...rec(exe, t - 1_000_000_000_000), exe: true }; // read long before its mtime
    const a = cmd('ra', ['a'], [shared0, gone, oldExe], [rec(f, t - 30, 0)], [], { sockets: ['sock:h:5'] });
    const b = cmd('rb', ['b'], [], [shared1]);
    const d = decide(plan([a, b]), new FileCache(), loadStamps(join(dir, 'none.json')));
    const kinds = d.hazards.map((h) => h.kind).sort();
    assert.deepEqual(kinds, ['exe-changed', 'missing-input', 'multiple-writers', 'network', 'read-before-write']);
    assert.ok(d.decisions[0]!.reasons.some((r) => /executable .*tool changed/.test(r)));
    assert.ok(Math.abs(Number(bootOffsetNs()) - (Date.now() * 1e6 - mono())) < 1e9);
  });

  it('the command that can start ahead: stale on its own, no dependency running; the rest decided after it come out as decide says', async () => {
    // Three compiles into objects, a link reading them and a step reading the link's output.
    const srcs = ['x.c', 'y.c', 'z.c'].map((n) => join(dir, `ahead-${n}`));
    const objs = srcs.map((p) => p.replace(/\.c$/, '.o'));
    const app = join(dir, 'ahead-app'), out = join(dir, 'ahead-out');
    for (const p of srcs) writeFileSync(p, 's');
    await new Promise((r) => setTimeout(r, 20));
    const t = mono();
    for (const p of [...objs, app, out]) writeFileSync(p, 'o');
    const closed = mono() + 1;
    const compiles = srcs.map((p, i) => cmd(`c${i}`, ['cc', '-c', p], [rec(p, t)], [rec(objs[i]!, closed)]));
    const link = cmd('l', ['cc', '-o', app], objs.map((o) => rec(o, closed + 1)), [rec(app, closed + 2)], ['c0', 'c1', 'c2']);
    const post = cmd('p', ['strip', app], [rec(app, closed + 3)], [rec(out, closed + 4)], ['l']);
    const p = plan([...compiles, link, post]);
    const stamps = loadStamps(join(dir, 'none.json'));
    const same = (files: FileCache): void => {
      const whole = decide(p, files, stamps);
      const decider = new Decider(p, files, stamps);
      const first = decider.firstStartable();
      const rest = decider.finish();
      assert.deepEqual(rest.decisions.map((x) => [x.cmd.run, x.stale, x.reasons]), whole.decisions.map((x) => [x.cmd.run, x.stale, x.reasons]));
      assert.deepEqual(rest.hazards, whole.hazards);
      const stale = whole.decisions.filter((x) => x.stale);
      if (!stale.length) { assert.equal(first, null); return; }
      const d = whole.decisions.find((x) => x.cmd === first);
      assert.ok(d && d.stale && d.own.length > 0 && d.reasons.length === d.own.length, `${first?.run} can start ahead: ${JSON.stringify(d)}`);
    };
    same(new FileCache()); // nothing stale: no command
    assert.equal(new Decider(p, new FileCache(), stamps).firstStartable(), null);
    await new Promise((r) => setTimeout(r, 20));
    appendFileSync(srcs[1]!, 'edit');
    // The compile of the edited file, found among the commands that depend on nothing (latest first).
    assert.equal(new Decider(p, new FileCache(), stamps).firstStartable()?.run, 'c1');
    same(new FileCache());
    appendFileSync(srcs[0]!, 'edit');
    assert.equal(new Decider(p, new FileCache(), stamps).firstStartable()?.run, 'c1', 'the latest compile first');
    same(new FileCache());
    // An edit and the link's output gone: the step after the link misses its input, but the link
    // runs first (remaking it): not a command to start ahead.
    unlinkSync(app);
    assert.equal(new Decider(p, new FileCache(), stamps).firstStartable()?.run, 'c1');
    same(new FileCache());
    writeFileSync(app, 'o');
    // Only the link's output gone: the link itself (it depends on the compiles, so it is found in plan order).
    writeFileSync(srcs[0]!, 's'); writeFileSync(srcs[1]!, 's');
    const fresh = plan([...srcs.map((q, i) => cmd(`c${i}`, ['cc', '-c', q], [rec(q, mono())], [rec(objs[i]!, mono() + 1)])), link, post]);
    unlinkSync(app);
    const decider = new Decider(fresh, new FileCache(), stamps);
    assert.equal(decider.firstStartable()?.run, 'l');
    assert.deepEqual(decider.finish().decisions.filter((x) => x.stale).map((x) => x.cmd.run), decide(fresh, new FileCache(), stamps).decisions.filter((x) => x.stale).map((x) => x.cmd.run));
  });

  it('redacts secret-looking environment values', () => {
    assert.deepEqual(redactEnv(['PATH=/bin', 'GITHUB_TOKEN=abc', 'DB_PASSWORD=x', 'AWS_SECRET_ACCESS_KEY=y', 'api_key=z', 'HOME=/root']),
      ['PATH=/bin', 'GITHUB_TOKEN=<redacted>', 'DB_PASSWORD=<redacted>', 'AWS_SECRET_ACCESS_KEY=<redacted>', 'api_key=<redacted>', 'HOME=/root']);
  });
});
