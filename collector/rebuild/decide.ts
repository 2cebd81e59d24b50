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
  const offset = bootOffsetNs();
  const byRun = new Map(plan.commands.map((c) => [c.run, c]));
  const staleRuns = new Set<string>();
  const hazards: Hazard[] = [];
  const decisions: Decision[] = [];
  // Which planned command produced each output path (to know what a stale dependency recreates).
  const producerOfPath = new Map<string, Command>();
  for (const c of plan.commands) for (const o of c.outputs) producerOfPath.set(o.path, c);

  for (const cmd of plan.commands) {
    const depReasons: string[] = [];
    const reasons: string[] = [];
    for (const d of cmd.deps) if (staleRuns.has(d)) depReasons.push(`it depends on \`${short(byRun.get(d)!)}\`, which runs`);
    const stamp = stamps.commands[cmd.key]?.run === cmd.run ? stamps.commands[cmd.key] : undefined;
    for (const i of cmd.inputs) {
      const diff = difference(i, i.ts, files, stamp, offset, 'input');
      if (!diff) continue;
      const missing = !files.ident(i.path);
      if (missing && i.deleted) continue; // a temporary, gone in the record too
      const remade = producerOfPath.get(i.path);
      if (missing && remade && staleRuns.has(remade.run)) continue; // recreated by a dependency first
      reasons.push(i.exe ? `executable ${i.path} changed since recording` : diff);
      if (i.exe) hazards.push({ kind: 'exe-changed', message: `\`${short(cmd)}\`: executable ${i.path} changed since it was recorded`, commands: [cmd.key], path: i.path });
      if (missing) hazards.push({ kind: 'missing-input', message: `\`${short(cmd)}\`: input ${i.path} no longer exists`, commands: [cmd.key], path: i.path });
    }
    for (const o of cmd.outputs) {
      const diff = difference(o, o.ts, files, stamp, offset, 'output');
      if (diff) reasons.push(diff);
    }
    if (cmd.sockets.length) hazards.push({ kind: 'network', message: `\`${short(cmd)}\` used ${cmd.sockets.length} socket(s) when recorded: its result may depend on the network`, commands: [cmd.key] });
    const stale = reasons.length + depReasons.length > 0;
    if (stale) staleRuns.add(cmd.run);
    decisions.push({ cmd, stale, reasons: [...depReasons, ...reasons], own: reasons });
  }

  hazards.push(...recordHazards(plan));
  return { plan, decisions, hazards };
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
