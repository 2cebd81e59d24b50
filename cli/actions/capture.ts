/**
 * @module cli/actions/capture
 * `prov capture start|stop|status`: attach the eBPF programs and leave a collector daemon
 * draining them into the journal (start returns at once; capture outlives the command),
 * detach and stop it (with the idle attach `prov rebuild` leaves, ebpf/warm), or show what is
 * attached, the event rate, drops and the daemon.
 * Exit codes: 0 ok, 2 bad option, 3 nothing attached (stop), 4 a capability is missing.
 */
import { startCapture, stopCapture, captureStatus, DEFAULT_STATE_DIR } from '../../ebpf/capture.js';
import { DEFAULT_PIN_DIR } from '../../ebpf/loader.js';
import { EXIT, InputError, NotFoundError, exitCodeOf } from '../../graph/errors.js';

export interface CaptureCliOptions {
  /** Journal directory (start; default ./.prov/journal). */
  journal?: string;
  /** Journal stream (default ebpf). */
  stream?: string;
  pinDir?: string;
  stateDir?: string;
  /** Only this cgroup v2 id. */
  cgroup?: number | string;
  /** Only these pids and their descendants. */
  pid?: (number | string)[] | number | string;
  /** File events only under this absolute path. */
  prefix?: string;
  /** Ring buffer size in MiB (power of two; default 1/64 of RAM, 16–256). */
  ringMib?: number | string;
  /** Nice of the collector while its ring is calm. */
  nice?: number | string;
  /** Older spelling of ringMib. */
  ringMb?: number | string;
  /** Do not record environments at exec. */
  noEnv?: boolean;
  env?: boolean;
  json?: boolean;
}

function num(v: unknown, what: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InputError(`${what} must be a non-negative integer (got ${String(v)})`, `--${what}`);
  return n;
}

function niceValue(v: unknown): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < -20 || n > 19) throw new InputError(`nice must be an integer from -20 to 19 (got ${String(v)})`, '--nice');
  return n;
}

function out(opts: CaptureCliOptions, obj: unknown, text: string): void {
  process.stdout.write(opts.json ? JSON.stringify(obj) + '\n' : text + '\n');
}

/** Run `prov capture <sub>`; prints the outcome and returns the exit code. */
export default async function capture(sub: 'start' | 'stop' | 'status', opts: CaptureCliOptions = {}): Promise<number> {
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  const stateDir = opts.stateDir ?? DEFAULT_STATE_DIR;
  try {
    if (sub === 'start') {
      const pids = opts.pid === undefined ? [] : (Array.isArray(opts.pid) ? opts.pid : [opts.pid]).map((p) => num(p, 'pid'));
      const ringMiB = opts.ringMib ?? opts.ringMb;
      const ringBytes = ringMiB === undefined ? undefined : num(ringMiB, 'ring-mib') * 1024 * 1024;
      const s = await startCapture({
        journalDir: opts.journal ?? '.prov/journal', stream: opts.stream, pinDir, stateDir,
        cgroupId: opts.cgroup === undefined ? undefined : num(opts.cgroup, 'cgroup'),
        pidTree: pids.length ? pids : undefined, pathPrefix: opts.prefix,
        ringBytes, env: !(opts.noEnv || opts.env === false), calmNice: opts.nice === undefined ? undefined : niceValue(opts.nice),
      });
      out(opts, s, s.resumed
        ? `capture was attached without a collector: new collector pid ${s.daemonPid} resumes from the pinned ring → ${s.journalDir}/${s.stream}`
        : `capture started: ${s.programs.length} programs attached (${pinDir})${s.skipped?.length ? `, ${s.skipped.length} left out (tracepoints missing on this kernel: ${s.skipped.join(' ')})` : ''}, collector pid ${s.daemonPid} → ${s.journalDir}/${s.stream}`);
      return EXIT.ok;
    }
    if (sub === 'stop') {
      // The idle attach `prov rebuild` leaves for later rebuilds goes with the host's capture.
      let warm = { programs: 0 };
      if (opts.pinDir === undefined) {
        const w = await import('../../ebpf/warm.js');
        // What an interrupted rebuild still owes its journal goes there before the ring is gone.
        await w.recoverWarm({ stateDir }).catch((e: Error) => process.stderr.write(`prov capture stop: ${e.message}\n`));
        warm = w.detachWarm({ stateDir });
      }
      const warmText = warm.programs ? `; the warm rebuild attach (${warm.programs} programs) detached` : '';
      let r: Awaited<ReturnType<typeof stopCapture>>;
      try {
        r = await stopCapture({ pinDir, stateDir });
      } catch (e) {
        if (!(e instanceof NotFoundError) || !warm.programs) throw e;
        out(opts, { programs: 0, records: 0, lost: 0, daemonStopped: false, rebuildPrograms: warm.programs }, `no capture attached at ${pinDir}${warmText}`);
        return EXIT.ok;
      }
      out(opts, { ...r, rebuildPrograms: warm.programs }, `capture stopped: ${r.programs} programs detached; collector drained ${r.records} records${r.lost ? `, ${r.lost} lost` : ''}${warmText}`);
      return EXIT.ok;
    }
    if (sub === 'status') {
      const s = await captureStatus({ pinDir, stateDir });
      const lines = s.attached
        ? [
          `capture attached at ${s.pinDir}: ${s.programs.length} programs`,
          `  events: ${s.eventsPerSec}/s now, ${s.emitted} since attach, ${s.dropped} dropped (ring full)`,
          ...(s.ring ? [`  ring: ${s.ring.bytes / 2 ** 20} MiB, ${(100 * s.ring.pending / s.ring.bytes).toFixed(1)} % waiting to be drained`] : []),
          s.daemon
            ? `  collector pid ${s.daemon.pid} ${s.daemon.alive ? 'running' : 'NOT running (events wait in the ring; prov capture start resumes)'}: ${s.daemon.records} records → ${s.daemon.journal}${s.daemon.lost ? `, ${s.daemon.lost} lost` : ''}${s.daemon.stalled ? `, journal stalled (${s.daemon.stalled}): events wait in the ring until it can be written` : ''}${s.daemon.error ? `, error: ${s.daemon.error}` : ''}`
            : '  no collector daemon (drained by another process)',
          `  programs: ${s.programs.join(' ')}`,
        ]
        : [`capture not attached (${s.pinDir})`];
      out(opts, s, lines.join('\n'));
      return EXIT.ok;
    }
    throw new InputError(`unknown subcommand "${String(sub)}" (start, stop, status)`, 'prov capture');
  } catch (e) {
    const code = exitCodeOf(e);
    if (opts.json) process.stdout.write(JSON.stringify({ ok: false, error: (e as Error).message }) + '\n');
    else process.stderr.write(`prov capture ${sub}: ${(e as Error).message}\n`);
    return code;
  }
}
