/**
 * @module ebpf/warm
 * A "warm" pid-tree capture for `prov rebuild`: loading and verifying prov's programs costs
 * 0.25–1.2 s and detaching them another 50–100 ms, more than the commands a rebuild usually
 * re-runs. So the first rebuild that runs something leaves its attach pinned (default
 * /sys/fs/bpf/prov-rebuild, in pid-tree mode with an empty `tracked` set: it records nothing
 * while idle), and each later rebuild only puts its own pid into `tracked` (its children join
 * at fork, exactly as with a fresh attach), drains the pinned ring into its journal while its
 * commands run, and takes its pid out again. Same programs, same settings, same records.
 *
 * Exclusive use: a rebuild holds an abstract unix socket named after the pin directory while it
 * uses the warm attach (the kernel releases it when the process dies, so a crash leaves no stale
 * lock); a second concurrent rebuild finds it busy and attaches privately, as before.
 * The kernel itself forgets a dead rebuild's pid (the exit program deletes it from `tracked`
 * and `excluded`). A process a rebuild's command left running stays tracked until it exits;
 * what it emits while no rebuild drains waits in the ring, and the next rebuild drops it unread
 * before tracking itself (a per-run attach would never have recorded it either).
 *
 * Clean-up: `prov capture stop`, `prov down` and `prov rebuild --cold` detach it
 * ({@link detachWarm}). While attached and idle it costs every traced syscall on the host two
 * hash-map lookups in BPF (≈ 0.2–0.3 µs, ebpf notes), nothing else.
 * A state file next to the capture daemon's (/run/prov/<pin name>.json) records which object and
 * ring size it was attached with; an attach from another build is replaced, not reused.
 */
import { createServer, type Server } from 'node:net';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openJournalWriter, type JournalWriterHandle } from '../collector/journal/writer.js';
import { CODEC } from '../collector/journal/api.js';
import type { DrainStats } from './drain.js';
import { RingReader } from './ring.js';
// ebpf/decode (and the event schema behind it) is loaded only when there is a loss to record.
import {
  attachCapture, attachedPrograms, defaultObjectPath, detachCapture, excludePid, forgetPid, isAttached, readCounters, trackPid,
} from './loader.js';
import { logger } from '../collector/log.js';
import { mark } from '../collector/rebuild/trace.js';

const log = logger('ebpf');

export const WARM_PIN_DIR = '/sys/fs/bpf/prov-rebuild';
export const WARM_STATE_DIR = '/run/prov';

export interface WarmOptions {
  journalDir: string;
  stream: string;
  /** bpffs directory of the warm attach (default $PROV_REBUILD_PIN_DIR or /sys/fs/bpf/prov-rebuild). */
  pinDir?: string;
  /** Where its state file lives (default /run/prov). */
  stateDir?: string;
  ringBytes?: number;
  objectPath?: string;
  /** Journal segment size for this stream (opening a writer re-reads its newest segment whole). */
  segmentBytes?: number;
}

export interface WarmHandle {
  pinDir: string;
  /** True when an attach left by an earlier rebuild was reused (no load, no verify). */
  reused: boolean;
  /** Stop recording this process tree, drain what it emitted into the journal, release the attach (it stays pinned). */
  stop(): Promise<DrainStats>;
}

interface WarmState {
  objectPath: string;
  objectSize: number;
  objectMtimeMs: number;
  ringBytes: number;
  programs: number;
}

/** The warm pin directory in effect (the environment can move it: tests use their own). */
export function warmPinDir(): string {
  return process.env.PROV_REBUILD_PIN_DIR || WARM_PIN_DIR;
}

const statePath = (pinDir: string, stateDir: string) => join(stateDir, `${basename(pinDir)}.json`);

/** Hold the abstract socket that says "a rebuild is using this warm attach"; null when another holds it. */
function lock(pinDir: string): Promise<Server | null> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' ? resolve(null) : reject(e)));
    server.listen(`\0prov-warm:${pinDir}`, () => { server.unref(); resolve(server); });
  });
}

function wantedState(objectPath: string, ringBytes: number): WarmState | null {
  try {
    const st = statSync(objectPath);
    return { objectPath, objectSize: st.size, objectMtimeMs: st.mtimeMs, ringBytes, programs: 0 };
  } catch {
    return null; // attachCapture says the object is missing
  }
}

/**
 * Start recording this process's future children into `journalDir`/`stream` through the warm
 * attach (attaching it first when there is none, or when it came from another build). Returns
 * null when another rebuild is using it right now (the caller attaches privately).
 */
export async function warmCapture(opts: WarmOptions): Promise<WarmHandle | null> {
  const pinDir = opts.pinDir ?? warmPinDir();
  const stateDir = opts.stateDir ?? WARM_STATE_DIR;
  const objectPath = opts.objectPath ?? defaultObjectPath();
  const ringBytes = opts.ringBytes ?? 16 << 20;
  const held = await lock(pinDir);
  if (!held) return null;
  mark('warm: lock held');
  let attachedNow = false;
  let drainer: InlineDrain | null = null;
  // The journal writer is opened by the drain's first poll, once the commands have started:
  // opening it walks the stream's newest segment, which need not delay them.
  const openWriter = (): JournalWriterHandle => openJournalWriter({ dir: opts.journalDir, stream: opts.stream, segmentBytes: opts.segmentBytes });
  try {
    const want = wantedState(objectPath, ringBytes);
    const sp = statePath(pinDir, stateDir);
    let have: WarmState | null = null;
    try { have = JSON.parse(readFileSync(sp, 'utf8')) as WarmState; } catch { /* none */ }
    const same = want && have && have.objectPath === want.objectPath && have.objectSize === want.objectSize
      && have.objectMtimeMs === want.objectMtimeMs && have.ringBytes === want.ringBytes && have.programs === attachedPrograms(pinDir).length;
    let reused = false;
    if (same && isAttached(pinDir)) {
      mark('warm: attach checked');
      drainer = new InlineDrain(pinDir, openWriter);
      mark('warm: ring opened');
      // Records still in the ring come from processes an earlier rebuild left running (tracked
      // since): not this rebuild's, and maybe not this journal's. Dropped before this process
      // is tracked, as a fresh attach would never have seen them.
      const stale = drainer.discardPending();
      if (stale) log.info(`dropped ${stale} records left in the warm ring by processes of an earlier rebuild`);
      excludePid(process.pid, pinDir);
      trackPid(process.pid, pinDir);
      reused = true;
    } else {
      if (existsSync(pinDir)) {
        log.info(`replacing the warm rebuild capture at ${pinDir} (another build or settings)`);
        detachCapture(pinDir);
      }
      const a = attachCapture({ pinDir, objectPath, ringBytes, pidTree: [process.pid] });
      attachedNow = true;
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      writeFileSync(sp, JSON.stringify({ ...want, programs: a.programs.length }), { mode: 0o600 });
    }
    drainer ??= new InlineDrain(pinDir, openWriter);
    const dr = drainer;
    let stopped: Promise<DrainStats> | null = null;
    return {
      pinDir, reused,
      stop() {
        stopped ??= (async () => {
          try {
            forgetPid(process.pid, pinDir);
            return await dr.stop();
          } finally {
            await dr.closeWriter();
            held.close();
          }
        })();
        return stopped;
      },
    };
  } catch (err) {
    try { forgetPid(process.pid, pinDir); } catch { /* not attached */ }
    drainer?.close();
    if (attachedNow) detachWarm({ pinDir, stateDir });
    await drainer?.closeWriter();
    held.close();
    throw err;
  }
}

/** Detach the warm rebuild capture (if any) and forget its state; returns how many programs were detached. */
export function detachWarm(opts: { pinDir?: string; stateDir?: string } = {}): { programs: number } {
  const pinDir = opts.pinDir ?? warmPinDir();
  const r = existsSync(pinDir) ? detachCapture(pinDir) : { programs: 0 };
  rmSync(statePath(pinDir, opts.stateDir ?? WARM_STATE_DIR), { force: true });
  return r;
}

/**
 * Drains the pinned ring into the journal from this thread, every `pollMs` and at stop, with the
 * same guarantees as ebpf/drain's worker: ring space is given back only once the journal says
 * the records are durable, and growth of the kernel's drop counter becomes a `lost` record.
 */
export class InlineDrain {
  readonly stats: DrainStats = { records: 0, bytes: 0, batches: 0, lost: 0 };
  private readonly ring: RingReader;
  private readonly timer: NodeJS.Timeout;
  private flushing: Promise<void> | null = null;
  private lastDropped: number;
  private lastCheck = Number(process.hrtime.bigint());
  private failure: Error | null = null;

  private writerHandle: JournalWriterHandle | null = null;

  /** `openWriter` is called by the first poll (or at stop), not here. */
  constructor(private readonly pinDir: string, private readonly openWriter: () => JournalWriterHandle, pollMs = 10) {
    this.ring = RingReader.open(join(pinDir, 'events'));
    this.lastDropped = readCounters(pinDir).dropped;
    this.timer = setInterval(() => this.pump(), pollMs);
    this.timer.unref();
  }

  /** Give back, unread, everything the ring holds now; returns how many records that was. */
  discardPending(): number {
    let n = 0;
    for (let b = this.ring.read(4 << 20); b; b = this.ring.read(4 << 20)) n += b.count;
    this.ring.commit(this.ring.position);
    this.lastDropped = readCounters(this.pinDir).dropped;
    return n;
  }

  /** Stop without draining (set-up failed). */
  close(): void {
    clearInterval(this.timer);
    this.ring.close();
  }

  private get writer(): JournalWriterHandle {
    return (this.writerHandle ??= this.openWriter());
  }

  /** Close the journal writer if it was opened. */
  async closeWriter(): Promise<void> {
    const w = this.writerHandle;
    this.writerHandle = null;
    await w?.close();
  }

  /** Append what the ring holds; start a flush that then gives the space back. */
  private pump(): void {
    if (this.failure) return;
    try {
      void this.writer; // opened on the first poll even when nothing was emitted yet
      for (let b = this.ring.read(4 << 20); b; b = this.ring.read(4 << 20)) {
        const payloads = new Array<Uint8Array>(b.count);
        for (let i = 0; i < b.count; i++) payloads[i] = b.bytes.subarray(b.offsets[i]!, b.offsets[i + 1]!);
        this.writer.appendEncoded(CODEC.ebpfRaw, payloads);
        this.stats.records += b.count;
        this.stats.bytes += b.bytes.byteLength;
        this.stats.batches++;
      }
    } catch (e) {
      this.failure = e as Error;
      log.error(`journal append failed, the ring keeps the records: ${(e as Error).message}`);
      return;
    }
    if (!this.flushing && this.ring.position > this.ring.committed) {
      const upTo = this.ring.position;
      this.flushing = this.writer.flush().then(() => { this.ring.commit(upTo); }, (e: Error) => { this.failure = e; })
        .finally(() => { this.flushing = null; });
    }
  }

  private async checkLoss(): Promise<void> {
    const dropped = readCounters(this.pinDir).dropped;
    const now = Number(process.hrtime.bigint());
    if (dropped > this.lastDropped) {
      const n = dropped - this.lastDropped;
      this.stats.lost += n;
      const { encodeLost } = await import('./decode.js');
      this.writer.appendEncoded(CODEC.ebpfRaw, [encodeLost(n, this.lastCheck, now)]);
      log.warn(`${n} events lost (ring buffer full)`);
    }
    this.lastDropped = dropped;
    this.lastCheck = now;
  }

  /** Drain to empty, make it durable, give the space back, close the mapping. */
  async stop(): Promise<DrainStats> {
    clearInterval(this.timer);
    try {
      await this.flushing;
      this.pump();
      await this.flushing;
      if (this.failure) throw this.failure;
      await this.checkLoss();
      await this.writer.flush();
      this.ring.commit(this.ring.position);
      return this.stats;
    } finally {
      this.ring.close();
    }
  }
}
