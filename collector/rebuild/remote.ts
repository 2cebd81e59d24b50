/**
 * @module collector/rebuild/remote
 * The rebuild's commands run by the native client that asked (cli/prov-client.c with
 * cli/client-run.c, protocol "prov3"), not by the rebuild server: the server decides what is
 * stale and sends the commands; the client starts them with posix_spawn, reaps them, applies
 * early cutoff by hashing outputs against the stamps, prints what the command line prints and
 * reports what ran. Measured in the server: a posix_spawn from node cost 0.4–0.6 ms (from C
 * 0.05–0.1) and noticing each exit 0.35–0.5 ms, against make's 0.55 ms between two commands.
 *
 * Capture: the client's pid is put in the capture's `tracked` and `excluded` sets before the
 * first command is sent, so its commands are recorded from their fork on and the client itself
 * (reading the frames, hashing outputs) is not — as with the server, which tracks and excludes
 * itself. The kernel forgets the client's pid when it exits.
 *
 * A "prov4" client may have started the first commands itself, from the start file, before the
 * server read its request (cli/fast-start.c, collector/rebuild/start): those are adopted and
 * take the first indexes, with no frame sent for them.
 *
 * Frames to the client (kind byte, u32 little-endian length, NUL-terminated fields):
 * - 'c' a command: index (the order sent, from 0), start now (1: the first stale command, sent
 *   while the server still decides), conditional (1: stale only because a dependency re-runs),
 *   exe, cwd, the argv as shown, argc, argv…, envc, env…, ndeps, indexes of the stale commands
 *   it depends on (always sent before it).
 * - 'g' the list is complete: jobs, progress (1: lines on the client's stderr), number of
 *   commands, number of planned commands, the target as typed, the number of cutoff entries, then
 *   per entry: index, n, n × (output path, SHA-256 the stamps hold for it).
 * Report from the client, frame 'R': count, then per event in the order it happened 5 fields —
 * 'r' (ran) or 'k' (cut off), index, exit code (-1: none), signal number (0: none), microseconds.
 */
import { InputError } from '../../graph/errors.js';
import { excludePid, trackPid } from '../../ebpf/loader.js';
import type { Decisions } from './decide.js';
import type { Command } from './plan.js';
import { envpFor, identityFor, type RunOutcome, type RunResult } from './run.js';
import { CUT_OFF_WHY, type Cutoff } from './cutoff.js';
import type { StampFile } from './stamp.js';
import { showArgv } from './show.js';
import { signalName } from './spawn.js';
import { mark } from './trace.js';

/** The client that asked, as the rebuild server sees it. */
export interface CommandClient {
  /** Its pid (SO_PEERCRED): tracked by the capture while it runs the commands. */
  pid: number;
  /** Its user and group (SO_PEERCRED): it runs commands only as this process would have. */
  uid: number;
  gid: number;
  send(frame: Buffer): void;
  /** Its report ('R' frame payload), or null when it went away without one. */
  report(): Promise<Buffer | null>;
}

/** A frame to the client (cli/rebuild-server's wire format): kind byte, u32 little-endian length, payload. */
export function replyFrame(kind: string, payload: Buffer | string): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const h = Buffer.alloc(5);
  h.write(kind, 0, 'latin1');
  h.writeUInt32LE(p.length, 1);
  return Buffer.concat([h, p]);
}

/** A frame of NUL-terminated fields. */
export function clientFrame(kind: string, fields: ReadonlyArray<string | number>): Buffer {
  return replyFrame(kind, fields.map((f) => `${f}\0`).join(''));
}

/**
 * The fields of a command that do not depend on the run (exe, cwd, shown argv, argv, env), kept
 * per planned command while its plan is reused: a header change sends every compile.
 */
const fixedFields = new WeakMap<Command, string[]>();
function fixedOf(c: Command): string[] {
  let f = fixedFields.get(c);
  if (!f) {
    const argv = [c.argv[0] ?? c.exe, ...c.argv.slice(1)];
    const envp = envpFor(c);
    f = [c.exe, c.cwd, showArgv(c.argv), String(argv.length), ...argv, String(envp.length), ...envp];
    if (c.env && !c.envTruncated) fixedFields.set(c, f);
  }
  return f;
}

/** One rebuild's commands sent to the client and its report turned into a {@link RunResult}. */
export class RemoteRun {
  private readonly index = new Map<string, number>();
  private readonly sent: Command[] = [];
  private adoptedRuns = 0;

  constructor(readonly client: CommandClient) {}

  /**
   * Whether the client can run all of `cmds`: it is this process's user and group (a root client
   * of a server of another user would run them with more privilege than the server gives them),
   * and each command runs as that user with its argv whole (a change of user, or a refusal, is
   * the server's to handle).
   */
  canRun(cmds: readonly Command[]): boolean {
    if (this.client.uid !== (process.getuid?.() ?? -1) || this.client.gid !== (process.getgid?.() ?? -1)) return false;
    try {
      return cmds.every((c) => !c.argvTruncated && identityFor(c).uid === undefined);
    } catch {
      return false;
    }
  }

  /** Record what the client's commands do, not what it does itself (see the module comment). */
  track(pinDir: string): void {
    excludePid(this.client.pid, pinDir);
    trackPid(this.client.pid, pinDir);
    mark('client tracked');
  }

  private commandFrame(c: Command, now: boolean, conditional: boolean): Buffer {
    if (this.index.has(c.run)) throw new Error(`internal: ${showArgv(c.argv).slice(0, 80)} sent twice`);
    const deps: number[] = [];
    for (const d of c.deps) {
      const i = this.index.get(d);
      if (i !== undefined) deps.push(i);
    }
    const i = this.sent.length;
    this.index.set(c.run, i);
    this.sent.push(c);
    return clientFrame('c', [i, now ? 1 : 0, conditional ? 1 : 0, ...fixedOf(c), deps.length, ...deps]);
  }

  /**
   * Commands the client started itself from the start file (collector/rebuild/start), by run id,
   * in the order it started them: they take the first indexes, and no frame is sent for them.
   * Throws when one is not in `plan` (the plan changed since the start file was written).
   */
  adopt(runs: readonly string[], plan: { commands: readonly Command[] }): void {
    for (const run of runs) {
      const c = plan.commands.find((x) => x.run === run);
      if (!c) throw new InputError(`the prov client started a command the plan no longer has (run ${run.slice(0, 40)}); it ran, under capture: run prov rebuild again`, 'request');
      if (this.index.has(run)) throw new InputError(`the prov client reported starting run ${run.slice(0, 40)} twice`, 'request');
      this.index.set(run, this.sent.length);
      this.sent.push(c);
      this.adoptedRuns++;
    }
    if (runs.length) mark(`adopted ${runs.length} command(s) the client started`);
  }

  /** How many commands the client started itself ({@link adopt}). */
  get adopted(): number {
    return this.adoptedRuns;
  }

  /** Have the client start `cmd` now (stale for a reason of its own, nothing it depends on re-runs). */
  startNow(cmd: Command): void {
    this.client.send(this.commandFrame(cmd, true, false));
    mark(`sent ${cmd.argv.slice(0, 3).join(' ')}`);
  }

  /**
   * Send the rest of `stale` (dependency order) and the go frame, call `whileRunning`, wait for
   * the report. Commands cut off by the client are stamped anew here, as collector/rebuild/cutoff
   * stamps its own.
   */
  async finish(stale: readonly Command[], d: Decisions, stamps: StampFile, cutoff: Cutoff, o: { jobs: number; progress: boolean; file: string },
    whileRunning: (() => void) | null): Promise<RunResult> {
    const own = new Map(d.decisions.map((x) => [x.cmd.run, x.own]));
    // A command the client started that the decision does not find stale ran all the same.
    const extra = this.sent.filter((c) => !stale.includes(c));
    stale = [...extra, ...stale];
    const staleRuns = new Set(stale.map((c) => c.run));
    const frames: Buffer[] = [];
    for (const c of stale) {
      for (const dep of c.deps) if (staleRuns.has(dep) && !this.index.has(dep)) throw new Error(`internal: ${showArgv(c.argv).slice(0, 80)} comes before a command it depends on`);
      if (!this.index.has(c.run)) frames.push(this.commandFrame(c, false, (own.get(c.run)?.length ?? 1) === 0));
    }
    if (this.sent.length !== stale.length) throw new Error('internal: a command sent ahead is not among those to run');
    // What the client compares after a command that a conditional one depends on (Cutoff.finished).
    const asked = new Set<string>();
    for (const c of stale) if ((own.get(c.run)?.length ?? 1) === 0) for (const dep of c.deps) asked.add(dep);
    const entries: Array<string | number> = [];
    let n = 0;
    for (const c of this.sent) {
      if (!asked.has(c.run)) continue;
      const st = stamps.commands[c.key];
      if (st?.run !== c.run || c.outputs.length === 0) continue;
      const hashes = c.outputs.map((f) => st.files[f.path]?.hash);
      if (hashes.some((h) => !h)) continue;
      entries.push(this.index.get(c.run)!, c.outputs.length);
      c.outputs.forEach((f, k) => entries.push(f.path, hashes[k]!));
      n++;
    }
    frames.push(clientFrame('g', [o.jobs, o.progress ? 1 : 0, stale.length, d.decisions.length, o.file, n, ...entries]));
    this.client.send(Buffer.concat(frames));
    mark('commands sent');
    whileRunning?.();
    const report = await this.client.report();
    mark('report received');
    return this.resultOf(report, cutoff);
  }

  private resultOf(report: Buffer | null, cutoff: Cutoff): RunResult {
    const ran: RunOutcome[] = [];
    const skipped: RunResult['skipped'] = [];
    let failed: RunOutcome | null = null;
    if (report === null) {
      // Killed or interrupted (Ctrl-C reaches its commands too): what ran is not known here.
      const first = this.sent[0]!;
      failed = { cmd: first, code: null, signal: null, stdout: '', stderr: 'the prov client running the commands went away before it said what ran\n', ms: 0 };
      return { ran, failed, skipped, byClient: true };
    }
    const f = report.toString('utf8').split('\0');
    const count = Number(f[0]);
    if (!Number.isInteger(count) || count < 0 || f.length !== 2 + 5 * count || f[f.length - 1] !== '') throw new InputError('the prov client sent a malformed report of what ran', 'report');
    for (let k = 0; k < count; k++) {
      const [kind, idx, code, signo, micros] = f.slice(1 + 5 * k, 6 + 5 * k);
      const cmd = this.sent[Number(idx)];
      if (!cmd || (kind !== 'r' && kind !== 'k')) throw new InputError(`the prov client reported an unknown command (${kind} ${idx})`, 'report');
      if (kind === 'k') {
        cutoff.stampSkipped(cmd);
        skipped.push({ cmd, why: CUT_OFF_WHY });
        continue;
      }
      const c = Number(code), s = Number(signo);
      const out: RunOutcome = { cmd, code: c >= 0 ? c : null, signal: s > 0 ? signalName(s) : null, stdout: '', stderr: '', ms: Number(micros) / 1000 };
      ran.push(out);
      if (out.code !== 0 && !failed) failed = out;
    }
    return { ran, failed, skipped, byClient: true };
  }
}
