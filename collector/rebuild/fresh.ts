/**
 * @module collector/rebuild/fresh
 * Stamping the commands a decision found up to date (apart from collector/rebuild/index so the
 * no-op path of `prov rebuild` need not load the planner).
 */
import type { Decisions } from './decide.js';
import type { FileCache, StampFile } from './stamp.js';

/**
 * Remember the content of every file of the commands found fresh, vouching for their recorded
 * run; returns how many commands were stamped anew. Existing stamps for the same run are kept.
 */
export function stampFresh(d: Decisions, files: FileCache, stamps: StampFile): number {
  let n = 0;
  for (const { cmd, stale } of d.decisions) {
    if (stale) continue;
    const old = stamps.commands[cmd.key];
    if (old?.run === cmd.run) continue;
    const entry: StampFile['commands'][string] = { run: cmd.run, files: {} };
    for (const f of [...cmd.inputs, ...cmd.outputs]) {
      const s = files.stampOf(f.path, old?.files[f.path]);
      if (s) entry.files[f.path] = s;
    }
    stamps.commands[cmd.key] = entry;
    n++;
  }
  return n;
}
