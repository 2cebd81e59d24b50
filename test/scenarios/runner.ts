/**
 * @module test/scenarios/runner
 * Runs one scenario (test/scenarios/<name>.sh with its hand-written <name>.expected.json) live:
 * setup outside capture, `run` under eBPF capture (its process tree, file events under its work
 * directory) → journal → the collector pipeline (join engine) → SQLite, then compares each
 * output's lineage with the expectation and reports recall and precision.
 *
 * Files are compared by identity (dev:ino), named by the work-directory-relative paths they had
 * after setup or after the run ("name@before" means the inode the name had before the run, e.g.
 * the version a rename replaced). Files that did not exist at either moment (temporaries), file
 * versions named under the work directory's tmp/ (an inode number can be reused after a
 * temporary is deleted) and files outside the work directory are not counted.
 */
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCaptured, type CapturedRun } from '../../ebpf/run-captured.js';
import { runPipeline, type PipelineResult } from '../../collector/pipeline.js';
import { openSqliteStore } from '../../graph/sqlite/index.js';
import { ebpfDecoders } from '../../ebpf/decode.js';

export const SCENARIO_DIR = fileURLToPath(new URL('../../../test/scenarios/', import.meta.url));

export interface Expected {
  description: string;
  /** output path → input paths its lineage must contain (and nothing else under the work dir). */
  outputs: Record<string, string[]>;
  /** Basenames of programs that must have been exec'd. */
  execs?: string[];
}

export interface OutputResult {
  expected: string[];
  found: string[];
  missing: string[];
  extra: string[];
}

export interface ScenarioResult {
  name: string;
  workDir: string;
  outputs: Record<string, OutputResult>;
  recall: number;
  precision: number;
  /** Capture-level facts. */
  events: number;
  rejected: string[];
  lost: number;
  execs: string[];
  execsMissing: string[];
  joinRejected: Record<string, number>;
  /** Records the collector's journal reader skipped. */
  readerRejected: number;
  /** Records the collector applied. */
  records: number;
  code: number | null;
  stderr: string;
  run: CapturedRun;
}

export function scenarioNames(): string[] {
  return readdirSync(SCENARIO_DIR).filter((f) => f.endsWith('.sh')).map((f) => f.slice(0, -3)).sort();
}

/** relative path → "dev:ino" for everything under dir (tmp/ excluded). */
function inodeMap(dir: string): Map<string, string> {
  const m = new Map<string, string>();
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const rel = relative(dir, p);
      if (rel === 'tmp') continue;
      const st = lstatSync(p);
      m.set(rel, `${st.dev}:${st.ino}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk(dir);
  return m;
}

export interface RunScenarioOptions {
  /** Keep the journal (and graph.db) here instead of a temp dir. */
  journalDir?: string;
  keepWorkDir?: boolean;
}

export async function runScenario(name: string, opts: RunScenarioOptions = {}): Promise<ScenarioResult> {
  const script = join(SCENARIO_DIR, `${name}.sh`);
  const expected = JSON.parse(readFileSync(join(SCENARIO_DIR, `${name}.expected.json`), 'utf8')) as Expected;
  const work = realpathSync(mkdtempSync(join(tmpdir(), 'prov-scn-')));
  const journalDir = opts.journalDir ?? mkdtempSync(join(tmpdir(), 'prov-scn-journal-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'prov-scn-state-'));
  mkdirSync(join(work, 'tmp'));
  const env = { ...process.env, TMPDIR: join(work, 'tmp'), LC_ALL: 'C' };
  try {
    const setup = spawnSync('bash', [script, 'setup'], { cwd: work, env, encoding: 'utf8' });
    if (setup.status !== 0) throw new Error(`scenario ${name} setup failed: ${setup.stderr}`);
    const before = inodeMap(work);
    const run = await runCaptured(['bash', script, 'run'], { cwd: work, env, journalDir, pathPrefix: work });
    const after = inodeMap(work);

    // The spine as `prov ingest` runs it: journal (raw eBPF records) → join → SQLite.
    const store = await openSqliteStore(opts.journalDir ? join(journalDir, 'graph.db') : ':memory:');
    const outputs: Record<string, OutputResult> = {};
    let hit = 0, expectedN = 0, foundN = 0;
    let pipeline: PipelineResult;
    try {
      pipeline = await runPipeline({ journalDir, store, statePath: join(stateDir, 'join.json'), decoders: ebpfDecoders });
      const nameOf = new Map<string, string>();
      for (const [p, k] of before) if (!nameOf.has(k)) nameOf.set(k, `${p}@before`);
      for (const [p, k] of after) nameOf.set(k, p);
      const keyOf = (n: string) => (n.endsWith('@before') ? before.get(n.slice(0, -7)) : after.get(n) ?? before.get(n));
      for (const [out, inputs] of Object.entries(expected.outputs)) {
        const outKey = after.get(out);
        if (!outKey) throw new Error(`scenario ${name}: expected output ${out} does not exist after the run`);
        const want = new Set(inputs.map((i) => {
          const k = keyOf(i);
          if (!k) throw new Error(`scenario ${name}: expected input ${i} never existed`);
          return k;
        }));
        const found = new Set<string>();
        const node = await store.resolvePath(join(work, out));
        if (node) {
          const sub = await store.ancestors(node.id, { depth: 64, limit: 100000 });
          const tmp = join(work, 'tmp') + '/';
          for (const n of sub.nodes) {
            if (n.kind !== 'file') continue;
            // A temporary (gcc's .s files) may have had the inode number a kept file got later.
            if (typeof n.attrs.path === 'string' && n.attrs.path.startsWith(tmp)) continue;
            const k = `${n.attrs.dev}:${n.attrs.ino}`;
            if (k !== outKey && nameOf.has(k)) found.add(k);
          }
        }
        const names = (ks: Iterable<string>) => [...ks].map((k) => nameOf.get(k) ?? k).sort();
        const common = [...want].filter((k) => found.has(k));
        hit += common.length;
        expectedN += want.size;
        foundN += found.size;
        outputs[out] = {
          expected: names(want), found: names(found),
          missing: names([...want].filter((k) => !found.has(k))), extra: names([...found].filter((k) => !want.has(k))),
        };
      }
    } finally {
      await store.close();
    }
    const execs = [...new Set(run.events.flatMap((e) => (e.op === 'exec' ? [basename(e.filename)] : [])))].sort();
    return {
      name, workDir: work, outputs,
      recall: expectedN ? hit / expectedN : 1,
      precision: foundN ? hit / foundN : 1,
      events: run.events.length, rejected: run.rejected, lost: run.drain.lost,
      execs, execsMissing: (expected.execs ?? []).filter((x) => !execs.includes(x)),
      joinRejected: pipeline.join.rejected, readerRejected: pipeline.rejectedByReader, records: pipeline.records,
      code: run.code, stderr: run.stderr, run,
    };
  } finally {
    if (!opts.keepWorkDir) rmSync(work, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
    if (!opts.journalDir) rmSync(journalDir, { recursive: true, force: true });
  }
}
