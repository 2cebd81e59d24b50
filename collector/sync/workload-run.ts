/**
 * @module collector/sync/workload-run
 * Runs a {@link Workload} in its own process (for tests and the bench under real capture: the
 * process that attaches capture is excluded from it, so the workload must be another process).
 * Usage: node workload-run.js ROOT SEED STEPS [--populate DIRS FILES] [--without op,op]
 * Prints the operation counts as JSON.
 */
import { DEFAULT_MIX, Workload, type Mix } from './workload.js';

const [root, seed, steps, ...rest] = process.argv.slice(2);
if (!root || !seed || steps === undefined) {
  process.stderr.write('usage: workload-run ROOT SEED STEPS [--populate DIRS FILES] [--without op,op]\n');
  process.exit(2);
}
const mix: Mix = { ...DEFAULT_MIX };
let populate: [number, number] | null = null;
for (let i = 0; i < rest.length; i++) {
  if (rest[i] === '--populate') { populate = [Number(rest[i + 1]), Number(rest[i + 2])]; i += 2; }
  else if (rest[i] === '--without') { for (const op of rest[++i]!.split(',')) if (op in mix) mix[op as keyof Mix] = 0; }
}
const w = new Workload(root, Number(seed), undefined, mix);
if (populate) w.populate(populate[0], populate[1]);
else w.adopt();
for (let i = 0; i < Number(steps); i++) w.step();
process.stdout.write(JSON.stringify(w.counts) + '\n');
