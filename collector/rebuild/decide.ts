/**
 * @module collector/rebuild/decide
 * Which planned commands are stale, why, and the hazards of the record (reported, as rattle
 * does, never ignored).
 *
 * A command is stale when an input changed, an output is missing or modified, or a command it
 * depends on is stale. "Changed" is decided exactly from the stamp file when it vouches for
 * this recorded run (same inode, size and mtime, or the same content), otherwise from the
 * record: the file is a different inode than the version recorded, or its mtime is later than
 * the moment the command read it (inputs) or closed it (outputs), converted to wall time with
 * this boot's offset (cli/time.ts's rule). A file written within {@link SLACK_NS} after it
 * was read is not seen by that first check; the stamp makes later decisions exact.
 */
import type { Command, Plan, RecordedFile } from './plan.js';
import type { FileCache, StampFile } from './stamp.js';

/** Tolerance of the mtime check (clock offset estimate, coarse file-system timestamps): 10 ms. */
export const SLACK_NS = 10_000_000n;

export type HazardKind = 'multiple-writers' | 'read-before-write' | 'missing-input' | 'exe-changed' | 'network';

export interface Hazard {
  kind: HazardKind;
  message: string;
  /** Keys of the commands involved. */
  commands: string[];
  path?: string;
}

export interface Decision {
  cmd: Command;
  stale: boolean;
  reasons: string[];
  /** The reasons that are the command's own (not "a dependency runs"): none means it may be cut off. */
  own: string[];
}

export interface Decisions {
  plan: Plan;
  decisions: Decision[];
  hazards: Hazard[];
}

/**
 * Wall-clock ns minus monotonic ns. Sampled a few times, keeping the sample whose two
 * monotonic reads bracket the wall-clock read most tightly: on a loaded machine a preemption
 * between the reads would otherwise shift the offset by milliseconds.
 */
export function bootOffsetNs(): bigint {
  let best: { gap: bigint; off: bigint } | null = null;
  for (let i = 0; i < 5; i++) {
    const a = process.hrtime.bigint();
    const wall = BigInt(Date.now()) * 1_000_000n;
    const b = process.hrtime.bigint();
    const off = wall + 500_000n - (a + b) / 2n; // Date.now() truncates to the millisecond: +0.5 ms
    if (!best || b - a < best.gap) best = { gap: b - a, off };
  }
  return best!.off;
}

const short = (c: Command): string => c.argv.join(' ').slice(0, 80);

/** How a recorded file differs from what is on disk now (null: the same). */
function difference(f: RecordedFile, when: number, files: FileCache, stamp: StampFile['commands'][string] | undefined, offset: bigint, role: 'input' | 'output'): string | null {
  const id = files.ident(f.path);
  if (!id) return role === 'input' ? `input ${f.path} no longer exists` : `output ${f.path} is missing`;
  const s = stamp?.files[f.path];
  if (s) return files.matches(f.path, s) ? null : `${role} ${f.path} changed (content differs from the last build)`;
  const st = files.stat(f.path)!;
  // eBPF names a script's exec by the script's path but the interpreter's inode (bprm->file):
  // for an executable that is a #! script now, the inode cannot be compared; mtime still is.
  const inodeComparable = !(f.exe && files.isScript(f.path));
  if (inodeComparable && id.ino !== f.ino) return `${role} ${f.path} was replaced (inode ${id.ino}, recorded ${f.ino})`;
  const wall = BigInt(Math.round(when)) + offset;
  if (st.mtimeNs > wall + SLACK_NS) {
    return role === 'input' ? `input ${f.path} was modified after the command read it` : `output ${f.path} was modified after the command wrote it`;
  }
  return null;
}

/** Decide every command of the plan (in plan order, so dependencies are decided first). */
export function decide(plan: Plan, files: FileCache, stamps: StampFile): Decisions {
  return new Decider(plan, files, stamps).finish();
}

/**
 * {@link decide} one command at a time, in plan order, so a caller can start the first stale
 * command before the rest are decided ({@link firstStartable}) and finish deciding while it runs:
 * the same decisions either way, from the same file status (the FileCache keeps what it saw).
 */
export class Decider {
  private readonly offset = bootOffsetNs();
  private readonly byRun: Map<string, Command>;
  private readonly staleRuns = new Set<string>();
  private readonly hazards: Hazard[] = [];
  private readonly decisions: Decision[] = [];
  /** Which planned command produced each output path (to know what a stale dependency recreates). */
  private readonly producerOfPath: Map<string, Command>;
  private next = 0;

  constructor(private readonly plan: Plan, private readonly files: FileCache, private readonly stamps: StampFile) {
    ({ byRun: this.byRun, producerOfPath: this.producerOfPath } = planIndex(plan));
  }

  /**
   * A command that can start now whatever the rest decide: stale for a reason of its own, with
   * no dependency that could run (early cutoff only ever skips commands with no reason of their
   * own). Looked for first among the commands that depend on no planned command and read
   * nothing one writes, latest first (the one a person just edited the input of usually ran
   * last): their own reasons do not depend on any other decision, so the same reasons come out
   * when {@link finish} reaches them. Otherwise decided on in plan order until one turns up.
   * Null when no command is stale.
   */
  firstStartable(): Command | null {
    const cmds = this.plan.commands;
    for (let k = cmds.length - 1; k >= this.next; k--) {
      const cmd = cmds[k]!;
      if (cmd.deps.length > 0 || cmd.inputs.some((i) => this.producerOfPath.has(i.path))) continue;
      if (this.ownReasons(cmd, null).length > 0) return cmd;
    }
    while (this.next < cmds.length) {
      const d = this.decideNext();
      if (d.stale && d.own.length > 0 && d.reasons.length === d.own.length) return d.cmd;
    }
    return null;
  }

  /** Decide the commands not decided yet; every decision and hazard. */
  finish(): Decisions {
    while (this.next < this.plan.commands.length) this.decideNext();
    return { plan: this.plan, decisions: this.decisions, hazards: [...this.hazards, ...recordHazards(this.plan)] };
  }

  private decideNext(): Decision {
    const cmd = this.plan.commands[this.next++]!;
    const depReasons: string[] = [];
    for (const d of cmd.deps) if (this.staleRuns.has(d)) depReasons.push(`it depends on \`${short(this.byRun.get(d)!)}\`, which runs`);
    const reasons = this.ownReasons(cmd, this.hazards);
    if (cmd.sockets.length) this.hazards.push({ kind: 'network', message: `\`${short(cmd)}\` used ${cmd.sockets.length} socket(s) when recorded: its result may depend on the network`, commands: [cmd.key] });
    const stale = reasons.length + depReasons.length > 0;
    if (stale) this.staleRuns.add(cmd.run);
    const decision = { cmd, stale, reasons: [...depReasons, ...reasons], own: reasons };
    this.decisions.push(decision);
    return decision;
  }

  /** Why `cmd` is stale on its own account (its inputs and outputs); its hazards go to `hazards` when given. */
  private ownReasons(cmd: Command, hazards: Hazard[] | null): string[] {
    const { files, offset, staleRuns } = this;
    const reasons: string[] = [];
    const stamp = this.stamps.commands[cmd.key]?.run === cmd.run ? this.stamps.commands[cmd.key] : undefined;
    for (const i of cmd.inputs) {
      const diff = difference(i, i.ts, files, stamp, offset, 'input');
      if (!diff) continue;
      const missing = !files.ident(i.path);
      if (missing && i.deleted) continue; // a temporary, gone in the record too
      const remade = this.producerOfPath.get(i.path);
      if (missing && remade && staleRuns.has(remade.run)) continue; // recreated by a dependency first
      reasons.push(i.exe ? `executable ${i.path} changed since recording` : diff);
      if (i.exe) hazards?.push({ kind: 'exe-changed', message: `\`${short(cmd)}\`: executable ${i.path} changed since it was recorded`, commands: [cmd.key], path: i.path });
      if (missing) hazards?.push({ kind: 'missing-input', message: `\`${short(cmd)}\`: input ${i.path} no longer exists`, commands: [cmd.key], path: i.path });
    }
    for (const o of cmd.outputs) {
      const diff = difference(o, o.ts, files, stamp, offset, 'output');
      if (diff) reasons.push(diff);
    }
    return reasons;
  }
}
/**
 * What deciding `plan` works out from the plan alone, worked out now: the rebuild server calls
 * this while idle after its background ingest made the plan its next request will use.
 */
export function preparePlan(plan: Plan): void {
  planIndex(plan);
  recordHazards(plan);
}

/** The plan's commands by run and by the paths they wrote: made once per plan object (a server reuses its plans). */
const planIndexOf = new WeakMap<Plan, { byRun: Map<string, Command>; producerOfPath: Map<string, Command> }>();
function planIndex(plan: Plan): { byRun: Map<string, Command>; producerOfPath: Map<string, Command> } {
  let ix = planIndexOf.get(plan);
  if (!ix) {
    const producerOfPath = new Map<string, Command>();
    for (const c of plan.commands) for (const o of c.outputs) producerOfPath.set(o.path, c);
    ix = { byRun: new Map(plan.commands.map((c) => [c.run, c])), producerOfPath };
    planIndexOf.set(plan, ix);
  }
  return ix;
}

/** Hazards of the record itself, which depend on the plan alone: worked out once per plan object. */
const recordHazardsOf = new WeakMap<Plan, Hazard[]>();

/** Two planned commands writing one file; a file read before a planned command wrote it. */
function recordHazards(plan: Plan): Hazard[] {
  const known = recordHazardsOf.get(plan);
  if (known) return known;
  const hazards: Hazard[] = [];
  // Two planned commands writing the same file.
  const writers = new Map<string, Command[]>();
  for (const c of plan.commands) for (const o of c.outputs) {
    const k = `${o.dev}:${o.ino}`;
    const l = writers.get(k) ?? [];
    if (!l.includes(c)) l.push(c);
    writers.set(k, l);
  }
  const pathOfInode = new Map<string, string>();
  for (const c of plan.commands) for (const o of c.outputs) pathOfInode.set(`${o.dev}:${o.ino}`, o.path);
  for (const [k, l] of writers) {
    if (l.length > 1) hazards.push({ kind: 'multiple-writers', message: `${pathOfInode.get(k)} is written by ${l.length} commands: ${l.map((c) => `\`${short(c)}\``).join(', ')}`, commands: l.map((c) => c.key), path: pathOfInode.get(k) });
  }
  // A file read before a planned command wrote (a later version of) it.
  for (const a of plan.commands) for (const i of a.inputs) {
    for (const b of writers.get(`${i.dev}:${i.ino}`) ?? []) {
      if (b === a) continue;
      const later = b.outputs.find((o) => o.dev === i.dev && o.ino === i.ino && o.version > i.version && o.ts > i.ts);
      if (later) hazards.push({ kind: 'read-before-write', message: `\`${short(a)}\` read ${i.path} before \`${short(b)}\` wrote it (recorded order)`, commands: [a.key, b.key], path: i.path });
    }
  }
  recordHazardsOf.set(plan, hazards);
  return hazards;
}
