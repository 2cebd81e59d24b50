/**
 * @module collector/rebuild/run
 * Re-run stale commands: dependency order, independent ones in parallel (up to `jobs`), each
 * with its recorded argv (spawned directly, never through a shell string), cwd and environment,
 * as the user who ran it when recorded (setuid/setgid when we are root; never with more
 * privilege than that user had, and refused when we are not root and not that user). Stops
 * starting commands at the first failure and returns its output. Commands that run as this
 * process's user start with posix_spawn (collector/rebuild/spawn: no fork of a large node
 * process); PROV_REBUILD_NODE_SPAWN=1 uses node's spawn for all.
 */
import { spawn } from 'node:child_process';
import { CapabilityError, InputError } from '../../graph/errors.js';
import type { Command } from './plan.js';
import { envpOf, spawnFast } from './spawn.js';
import { mark } from './trace.js';

export interface RunOutcome {
  cmd: Command;
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunResult {
  ran: RunOutcome[];
  failed: RunOutcome | null;
  /** Commands not run after all (early cutoff), with why. */
  skipped: Array<{ cmd: Command; why: string }>;
  /**
   * The native client ran the commands (collector/rebuild/remote) and has shown their output and
   * the summary itself; the outcomes carry no output.
   */
  byClient?: boolean;
}

export interface RunOptions {
  jobs: number;
  /** Called when a command starts and ends (progress). */
  onStart?: (c: Command, running: number) => void;
  onEnd?: (o: RunOutcome) => void;
  /**
   * Asked when a command's dependencies are done: a reason not to run it after all (its
   * dependencies re-made byte-identical outputs: early cutoff), or null to run it.
   */
  skip?: (c: Command) => string | null;
  /**
   * Commands started already (a rebuild starts its first stale command while it decides the
   * rest): waited for as if started here; onStart is not called for them again.
   */
  started?: Array<{ cmd: Command; outcome: Promise<RunOutcome> }>;
}

/**
 * The environment to run with: the recorded one; when capture cut it short, its last (maybe
 * partial) entry is dropped and variables it lacks come from the current environment; when it
 * was not recorded at all, the current environment.
 */
export function envFor(cmd: Command): NodeJS.ProcessEnv {
  if (!cmd.env) return process.env;
  const rec = cmd.envTruncated ? cmd.env.slice(0, -1) : cmd.env;
  const o: NodeJS.ProcessEnv = {};
  for (const kv of rec) {
    const eq = kv.indexOf('=');
    if (eq > 0) o[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  // The recorded variables first, in their order, then what the current environment adds: a
  // re-run is recorded again, and capture keeps the front of an environment it has to cut.
  if (cmd.envTruncated) for (const [k, v] of Object.entries(process.env)) if (!(k in o)) o[k] = v;
  return o;
}

/** Who the command runs as: check we may, and never more than the recorded user. */
export function identityFor(cmd: Command, me = process.getuid?.() ?? 0, myGid = process.getgid?.() ?? 0): { uid?: number; gid?: number } {
  if (me === 0) return cmd.uid === 0 && cmd.gid === myGid ? {} : { uid: cmd.uid, gid: cmd.gid };
  if (cmd.uid !== me) throw new CapabilityError(`\`${cmd.argv.join(' ')}\` was recorded as uid ${cmd.uid}; rebuild runs it only as that user (run prov rebuild as uid ${cmd.uid} or as root)`, 'setuid');
  return {};
}

/** Commands running now (this process's children), for {@link abortRunning}. */
const liveChildren = new Set<{ kill(signal: NodeJS.Signals): boolean; exited(): boolean }>();
let abortedBy: NodeJS.Signals | null = null;

/**
 * Interrupt the rebuild in progress as Ctrl-C would: `signal` to every command it started (its
 * own children, by pid) and no new command starts; it then stops as at a failure. Used by the
 * rebuild server when the client that asked went away. Cleared when the next run starts.
 */
export function abortRunning(signal: NodeJS.Signals = 'SIGINT'): number {
  abortedBy = signal;
  let n = 0;
  for (const c of liveChildren) if (!c.exited() && c.kill(signal)) n++;
  return n;
}

/** Recorded environments as posix_spawn takes them, per planned command (a plan is reused while it holds). */
const envpByCommand = new WeakMap<Command, string[]>();

/**
 * {@link envFor} as `NAME=value` strings. Kept per command when it depends on the record alone
 * (not cut short): a header change re-runs every compile, and building each environment again
 * cost about 0.07 ms a command in the rebuild server.
 */
export function envpFor(cmd: Command): string[] {
  const known = envpByCommand.get(cmd);
  if (known) return known;
  const envp = envpOf(envFor(cmd));
  if (cmd.env && !cmd.envTruncated) envpByCommand.set(cmd, envp);
  return envp;
}

export function runOne(cmd: Command): Promise<RunOutcome> {
  const t0 = performance.now();
  const identity = identityFor(cmd);
  if (identity.uid === undefined && !process.env.PROV_REBUILD_NODE_SPAWN) {
    const fast = spawnFast(cmd.exe, [cmd.argv[0] ?? cmd.exe, ...cmd.argv.slice(1)], envpFor(cmd), cmd.cwd);
    if (fast) {
      mark('posix_spawn returned');
      liveChildren.add(fast);
      return fast.done.then((o) => {
        liveChildren.delete(fast);
        return { cmd, ...o, ms: performance.now() - t0 };
      });
    }
  }
  return new Promise((resolve) => {
    const child = spawn(cmd.exe, cmd.argv.slice(1), {
      argv0: cmd.argv[0] ?? cmd.exe, cwd: cmd.cwd, env: envFor(cmd), stdio: ['ignore', 'pipe', 'pipe'], shell: false, ...identity,
    });
    const live = { kill: (s: NodeJS.Signals) => child.kill(s), exited: () => child.exitCode !== null || child.signalCode !== null };
    liveChildren.add(live);
    child.once('close', () => liveChildren.delete(live));
    let stdout = '', stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', (e) => { stderr += `${e.message}\n`; });
    child.on('close', (code, signal) => resolve({ cmd, code, signal, stdout, stderr, ms: performance.now() - t0 }));
  });
}

/** Refuse, before anything runs, commands that cannot be re-run as recorded or as their user. */
export function preflight(cmds: Command[]): void {
  // Asked once, not per command: two system calls each, a tenth of a millisecond per 100 commands.
  const me = process.getuid?.() ?? 0, myGid = process.getgid?.() ?? 0;
  for (const c of cmds) {
    identityFor(c, me, myGid);
    if (c.argvTruncated) throw new InputError(`\`${c.argv.join(' ').slice(0, 120)}…\`: its recorded argv was cut at capture's size limit, so it cannot be re-run as it ran`, c.run);
  }
}

/** Run `cmds` (already in dependency order; only the stale ones) respecting their deps. */
export async function runCommands(cmds: Command[], opts: RunOptions): Promise<RunResult> {
  preflight(cmds);
  abortedBy = null;
  const todo = new Set(cmds.map((c) => c.run));
  const done = new Set<string>();
  const ran: RunOutcome[] = [];
  const skipped: RunResult['skipped'] = [];
  let failed: RunOutcome | null = null;
  const running = new Map<string, Promise<void>>();
  const ready = (c: Command) => c.deps.every((d) => !todo.has(d) || done.has(d));
  const jobs = Math.max(1, opts.jobs);
  const track = (c: Command, outcome: Promise<RunOutcome>): void => {
    running.set(c.run, outcome.then((o) => {
      ran.push(o);
      opts.onEnd?.(o);
      if (o.code !== 0 && !failed) failed = o;
      done.add(c.run);
      running.delete(c.run);
    }));
  };
  for (const s of opts.started ?? []) {
    if (!todo.has(s.cmd.run)) throw new Error(`internal: a command started ahead is not among those to run: ${s.cmd.argv.join(' ').slice(0, 80)}`);
    track(s.cmd, s.outcome);
  }
  while (!failed && !abortedBy && (done.size < cmds.length)) {
    for (const c of cmds) {
      if (failed || abortedBy || running.size >= jobs) break;
      if (done.has(c.run) || running.has(c.run) || !ready(c)) continue;
      const why = opts.skip?.(c) ?? null;
      if (why !== null) {
        skipped.push({ cmd: c, why });
        done.add(c.run);
        continue;
      }
      opts.onStart?.(c, running.size + 1);
      track(c, runOne(c));
    }
    if (running.size === 0) {
      if (!failed && done.size < cmds.length && cmds.some((c) => !done.has(c.run) && ready(c))) continue; // skips made more ready
      break; // nothing runnable: dependencies failed or a cycle
    }
    await Promise.race(running.values());
  }
  await Promise.all(running.values());
  if (!failed && abortedBy) {
    // Interrupted between commands: the first one not run stands as the failure.
    const next = cmds.find((c) => !done.has(c.run));
    if (next) failed = { cmd: next, code: null, signal: abortedBy, stdout: '', stderr: 'interrupted before it started\n', ms: 0 };
  }
  return { ran, failed, skipped };
}
