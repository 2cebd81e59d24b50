/**
 * @module test/scenarios/record
 * Re-records the scenario fixtures from real runs (scripts/record-fixtures.sh calls this): for
 * each scenario, a JSON-codec journal of the decoded eBPF events (stream `ebpf`) under
 * test/fixtures/scenarios/<name>/journal, plus meta.json (work directory, recall/precision of
 * the run, the expectation). Readers need no eBPF decoder: `openJournalReader(dir)`.
 *
 * Usage: node dist/test/scenarios/record.js [--out DIR] [name ...]
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openJournalWriter } from '../../collector/journal/writer.js';
import { runScenario, scenarioNames } from './runner.js';

async function main(): Promise<number> {
  const args = process.argv.slice(2);
  let out = fileURLToPath(new URL('../../../test/fixtures/scenarios/', import.meta.url));
  const oi = args.indexOf('--out');
  if (oi >= 0) { out = args[oi + 1]!; args.splice(oi, 2); }
  const names = args.length ? args : scenarioNames();
  let failed = 0;
  for (const name of names) {
    const r = await runScenario(name);
    const dir = join(out, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    const w = openJournalWriter({ dir: join(dir, 'journal'), stream: 'ebpf' });
    // Environments stay out of the repository (they describe the recording machine, may hold secrets).
    for (const e of r.run.events) {
      if (e.op === 'exec') { const { env: _env, envTruncated: _t, ...rest } = e; w.append(rest); } else w.append(e);
    }
    await w.close();
    writeFileSync(join(dir, 'meta.json'), JSON.stringify({
      scenario: name, recorded: new Date().toISOString(), workDir: r.workDir, host: r.run.events[0]?.host,
      rootPid: r.run.pid, events: r.events, recall: r.recall, precision: r.precision, outputs: r.outputs,
    }, null, 2) + '\n');
    const ok = r.code === 0 && r.recall === 1 && r.precision === 1;
    if (!ok) failed++;
    process.stdout.write(`${name}: ${r.events} events, recall ${r.recall.toFixed(2)}, precision ${r.precision.toFixed(2)}${ok ? '' : '  (NOT as expected)'} → ${dir}\n`);
  }
  return failed ? 1 : 0;
}

main().then((c) => { process.exitCode = c; }, (e) => { process.stderr.write(`record-fixtures: ${(e as Error).message}\n`); process.exitCode = 1; });
