// Runs every compiled X.test.js under dist/ with node's own test runner, one file at a time
// (FUSE mounts and BPF programs are host-wide: files must not race each other).
// PROV_TEST_FILTER=substring narrows the set while working on one area.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const filter = process.env.PROV_TEST_FILTER ?? '';
const files = collect('dist', []).filter((f) => f.includes(filter)).sort();
if (files.length === 0) {
  console.error(`run-tests: no test files under dist/ match "${filter}"`);
  process.exit(1);
}
const r = spawnSync(process.execPath, [
  '--test', '--test-concurrency=1', '--test-timeout=600000', '--test-reporter=spec', ...files,
], { stdio: 'inherit' });
process.exit(r.status ?? 1);
