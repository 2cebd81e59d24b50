/**
 * @module test/demo
 * `npm run demo`: the main job end to end on the embedded default (SQLite), live.
 * A small real workload (a C program built by make, a text pipeline, a copy and an atomic
 * rename) runs under eBPF capture into a real journal; the collector joins it into a SQLite
 * lineage graph; then the same `prov` commands a user would type answer the forensic questions.
 * The state directory is kept so the user can go on exploring it (printed at the end).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCaptured } from '../ebpf/run-captured.js';
import { runPipeline } from '../collector/pipeline.js';
import { openStore } from '../graph/open.js';
import { registerEbpfDecoder } from '../ebpf/decode.js';
import type { PayloadDecoder } from '../collector/journal/api.js';

const PROV = join(import.meta.dirname, '..', 'cli', 'main.js');

const PROJECT: Record<string, string> = {
  'util.h': '#pragma once\nint square(int x);\n',
  'util.c': '#include "util.h"\nint square(int x) { return x * x; }\n',
  'main.c': '#include <stdio.h>\n#include "util.h"\nint main(void) { printf("%d\\n", square(7)); return 0; }\n',
  Makefile: 'app: main.o util.o\n\tcc -o app main.o util.o\n%.o: %.c util.h\n\tcc -c $< -o $@\n',
  'words.txt': 'tree\nfile\ntree\nprocess\nfile\ntree\n',
  'workload.sh': [
    'set -e',
    'make -s',
    './app > answer.txt',
    'sort words.txt | uniq -c | sort -rn > counts.txt',
    'cp counts.txt report.tmp',
    'mv report.tmp report.txt',
    '',
  ].join('\n'),
};

function banner(text: string): void {
  process.stdout.write(`\n\x1b[1m${text}\x1b[0m\n`.replace(/\x1b\[[0-9;]*m/g, process.stdout.isTTY ? '$&' : ''));
}

function prov(home: string, ...args: string[]): void {
  process.stdout.write(`$ prov ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [PROV, '--home', home, ...args], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`prov ${args.join(' ')} exited ${r.status}`);
}

async function main(): Promise<void> {
  const home = process.env.PROV_DEMO_HOME ?? mkdtempSync(join(tmpdir(), 'prov-demo-'));
  const work = join(home, 'work');
  mkdirSync(work, { recursive: true });
  for (const [name, text] of Object.entries(PROJECT)) writeFileSync(join(work, name), text);

  banner('1. A real workload runs under live eBPF capture (make, a pipeline, cp, an atomic rename)');
  const run = await runCaptured(['bash', 'workload.sh'], { cwd: work, journalDir: join(home, 'journal'), pathPrefix: tmpdir() });
  if (run.code !== 0) throw new Error(`the workload failed (exit ${run.code}): ${run.stderr}`);
  process.stdout.write(`captured ${run.records.length} events from pid ${run.pid} and its descendants ` +
    `(file events under ${tmpdir()}, where cc keeps its temporary files); ring drops: ${run.drain.lost}\n`);

  banner('2. The collector joins the journal into a lineage graph in SQLite');
  const store = await openStore(`sqlite:${join(home, 'graph.db')}`);
  try {
    const r = await runPipeline({
      journalDir: join(home, 'journal'), store, statePath: join(home, 'collector', 'demo.json'),
      decoders: registerEbpfDecoder(new Map<number, PayloadDecoder>()),
    });
    process.stdout.write(`joined ${r.records} records; rejected ${r.rejectedByReader + r.rejectedByJoin}\n`);
  } finally {
    await store.close();
  }
  prov(home, 'stats');

  banner('3. Which processes and inputs produced report.txt?');
  prov(home, 'lineage', join(work, 'report.txt'), '--up');
  banner('4. What came out of util.h?');
  prov(home, 'lineage', join(work, 'util.h'), '--down');
  banner('5. Is the journal intact?');
  prov(home, 'verify');

  banner('Explore further');
  process.stdout.write(
    `state kept in ${home}\n` +
      `  node ${PROV} --home ${home} lineage ${join(work, 'app')}\n` +
      `  node ${PROV} --home ${home} export ${join(work, 'app')} --format dot\n` +
      `  node ${PROV} --home ${home} serve        # then open http://127.0.0.1:7777/\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`demo: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
