/**
 * @module collector/sync/state
 * The checkpoint of one SRC/DST pair: the journal position (last applied seq per stream) up to
 * which DST is known to equal SRC, plus the write handles open at that point. One JSON file per
 * pair under `<state dir>/sync/`, named by a hash of the pair's realpaths; the directory is 0700
 * and the file 0600, written to a temp file and renamed.
 * A missing or unreadable state file means "no checkpoint": the next sync is a full comparison.
 *
 * Durability (what sync promises): every DST file is replaced atomically (temp + rename), so at
 * any moment, also after a crash, a file is wholly old or wholly new. Nothing is fsync'd (like
 * rsync without --fsync): the writes of a sync may not survive a power loss. A checkpoint is only
 * trusted on the boot it was written in (it records the kernel's boot id): after a crash and
 * reboot, the next sync compares in full. So neither the state file nor DST needs an fsync
 * for sync to stay exact; a crash only costs one full comparison.
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import type { WriteHandle } from './changes.js';

export interface SyncState {
  version: 1;
  src: string;
  dst: string;
  checkpoint: Record<string, number>;
  openWriters: WriteHandle[];
  /** Writer session of the stream that recorded the last barrier probe (see engine.ts). */
  sessions?: Record<string, string>;
  /** ISO time of the sync that wrote this state. */
  at: string;
  /** Kernel boot id when it was written (see the module comment). */
  bootId?: string;
  /** Paths to copy again at the next sync (SRC lacked them when this sync copied; see Applier.vanished). */
  changed?: string[];
  /**
   * Directories this sync copied whole from SRC as it was then, ahead of the records (see
   * Applier.ahead): the next sync compares them whole again.
   */
  recheck?: string[];
  /** When the newest of them was copied (monotonic ns; the boot id says the clock is this one). */
  recheckAt?: number;
}

/** This boot's id (/proc/sys/kernel/random/boot_id), or '' when the kernel does not say. */
export function bootId(): string {
  try { return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(); } catch { return ''; }
}

/** The prov state directory: PROV_HOME, default /var/lib/prov. */
export function provHome(): string {
  return process.env.PROV_HOME || '/var/lib/prov';
}

export class StateFile {
  readonly path: string;

  /** @param dir the directory for sync states (default `<PROV_HOME>/sync`). */
  constructor(readonly src: string, readonly dst: string, dir = `${provHome()}/sync`) {
    const key = createHash('sha256').update(`${src}\0${dst}`).digest('hex').slice(0, 32);
    this.path = `${dir}/${key}.json`;
  }

  /** The stored state, or null with the reason it is unusable. */
  load(): { state: SyncState | null; why?: string } {
    let text: string;
    try { text = fs.readFileSync(this.path, 'utf8'); } catch { return { state: null, why: 'no checkpoint for this SRC/DST pair (first sync)' }; }
    try {
      const s = JSON.parse(text) as SyncState;
      if (s.version !== 1 || s.src !== this.src || s.dst !== this.dst || typeof s.checkpoint !== 'object' || !Array.isArray(s.openWriters)) {
        return { state: null, why: `${this.path}: state for another pair or version` };
      }
      for (const [k, v] of Object.entries(s.checkpoint)) {
        if (!Number.isSafeInteger(v) || v < 0) return { state: null, why: `${this.path}: checkpoint of stream ${k} is not a seq` };
      }
      for (const key of ['changed', 'recheck'] as const) {
        const v = s[key];
        if (v !== undefined && (!Array.isArray(v) || v.some((p) => typeof p !== 'string'))) return { state: null, why: `${this.path}: "${key}" is not a list of paths` };
      }
      if (s.recheckAt !== undefined && !Number.isSafeInteger(s.recheckAt)) return { state: null, why: `${this.path}: "recheckAt" is not a time in ns` };
      if (s.bootId !== bootId()) {
        return { state: null, why: 'the machine restarted since the last sync (or the checkpoint predates boot ids): its writes to DST may not have reached the disk' };
      }
      return { state: s };
    } catch (e) {
      return { state: null, why: `${this.path}: unreadable (${(e as Error).message})` };
    }
  }

  save(checkpoint: Record<string, number>, openWriters: WriteHandle[], sessions?: Record<string, string>, changed: readonly string[] = [], recheck: ReadonlyArray<{ path: string; at: number }> = []): void {
    const dir = this.path.slice(0, this.path.lastIndexOf('/'));
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const s: SyncState = { version: 1, src: this.src, dst: this.dst, checkpoint, openWriters, ...(sessions ? { sessions } : {}), at: new Date().toISOString(), bootId: bootId(), ...(changed.length ? { changed: [...changed] } : {}), ...(recheck.length ? { recheck: recheck.map((e) => e.path), recheckAt: Math.max(...recheck.map((e) => e.at)) } : {}) };
    const tmp = `${this.path}.${process.pid}.tmp`;
    // No fsync: a state lost or torn by a crash is caught by the boot id (module comment).
    fs.writeFileSync(tmp, JSON.stringify(s), { mode: 0o600 });
    fs.renameSync(tmp, this.path);
  }

  /** Forget the checkpoint (the next sync compares in full). */
  clear(): void {
    try { fs.unlinkSync(this.path); } catch { /* none */ }
  }
}
