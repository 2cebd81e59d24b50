/**
 * @module collector/rebuild/cutoff
 * Early cutoff: a command that is stale only because a dependency re-runs is skipped when every
 * such dependency re-made outputs byte-identical to the ones it had before (a comment added to a
 * header: the objects do not change, so the link need not run) or was cut off itself. "Before"
 * is the content the stamp file holds for the dependency's replaced run; without one there is no
 * cutoff. A skipped command is stamped anew: its inputs now hold the content it consumed. The
 * native client applies the same rule when it runs the commands (cli/client-run.c).
 */
import type { Decisions } from './decide.js';
import type { Command } from './plan.js';
import { FileCache, type StampFile } from './stamp.js';

/** Why a command was cut off (the native client prints the same words). */
export const CUT_OFF_WHY = 'the commands it depends on re-made byte-identical outputs';

export class Cutoff {
  /** Re-runs whose outputs differ from before (or could not be compared). */
  private changed = new Set<string>();
  private finishedOk = new Set<string>();
  /** Commands cut off (their outputs are as they were). */
  private cut = new Set<string>();
  private readonly staleRuns: Set<string>;
  private readonly own = new Map<string, string[]>();
  /** Runs some stale command could be cut off for (one with no reason of its own depends on them). */
  private readonly asked = new Set<string>();

  constructor(d: Decisions, private readonly stamps: StampFile) {
    this.staleRuns = new Set(d.decisions.filter((x) => x.stale).map((x) => x.cmd.run));
    for (const x of d.decisions) {
      this.own.set(x.cmd.run, x.own);
      if (x.stale && x.own.length === 0) for (const dep of x.cmd.deps) this.asked.add(dep);
    }
  }

  /**
   * A re-run ended well: compare its outputs with the stamped content of the run it replaces.
   * Only when the answer can cut something off: the last command of a build (the link) is not
   * hashed on the way to the answer.
   */
  finished(cmd: Command): boolean {
    this.finishedOk.add(cmd.run);
    if (!this.asked.has(cmd.run)) { this.changed.add(cmd.run); return false; }
    const st = this.stamps.commands[cmd.key];
    const files = new FileCache();
    let same = st?.run === cmd.run && cmd.outputs.length > 0;
    for (const o of same ? cmd.outputs : []) {
      const old = st!.files[o.path]?.hash;
      if (!old || files.hash(o.path) !== old) { same = false; break; }
    }
    if (!same) this.changed.add(cmd.run);
    return same;
  }

  /** A reason to skip `cmd` (for runCommands' `skip`), or null to run it. */
  skip(cmd: Command): string | null {
    const own = this.own.get(cmd.run);
    if (!own || own.length > 0) return null;
    const deps = cmd.deps.filter((d) => this.staleRuns.has(d));
    // A dependency cut off itself left its outputs as they were: as good as re-made identical.
    if (deps.length === 0 || deps.some((d) => !(this.finishedOk.has(d) || this.cut.has(d)) || this.changed.has(d))) return null;
    this.cut.add(cmd.run);
    this.stampSkipped(cmd);
    return CUT_OFF_WHY;
  }

  /**
   * Stamp a command cut off (here, or by the client that ran the rebuild: collector/rebuild/remote)
   * anew: its inputs now hold the content it consumed, its outputs are still what it made.
   */
  stampSkipped(cmd: Command): void {
    const files = new FileCache();
    const entry: StampFile['commands'][string] = { run: cmd.run, files: {} };
    for (const f of [...cmd.inputs, ...cmd.outputs]) {
      const s = files.stampOf(f.path);
      if (s) entry.files[f.path] = s;
    }
    this.stamps.commands[cmd.key] = entry;
  }
}
