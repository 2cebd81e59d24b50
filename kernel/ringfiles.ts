/**
 * @module kernel/ringfiles
 * The record rings of one mount as files: each prov daemon keeps its {@link EventRing} in
 * `<node log>.<pid>.ring` (0600, in the private runtime directory), so a daemon killed with
 * SIGKILL leaves behind exactly the records it had not yet made durable in the journal. The
 * daemon that recovers the mount appends those to the journal — skipping any whose stamped seq
 * the journal already holds, so none is doubled — before it serves, and removes the file once
 * that is durable. A file whose owner is gone and which holds nothing is simply removed.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { logger } from '../collector/log.js';
import { CODEC } from '../collector/journal/api.js';
import { isProvfsRecord } from '../collector/provfs-record.js';
import * as libc from './libc.js';
import { EventRing, type RingRecord } from './eventring.js';
import { running } from '../collector/proc.js';
import { hostname } from 'node:os';
import { SCHEMA_VERSION, type LostEvent } from '../collector/events.js';

const log = logger('provfs');

/** The ring file of the daemon `pid` of the mount whose node log is `nodeLog`. */
export function ringFilePath(nodeLog: string, pid: number = process.pid): string {
  return `${nodeLog}.${pid}.ring`;
}

/**
 * Make a ring file and map it. A file already there was left by a dead process that had this
 * pid: it is renamed aside (`<node log>.orphan-<ms>-<random>.ring`), not emptied, so the next recovery of
 * the mount still journals what it holds.
 */
export function openRingFile(path: string, bytes = 8 << 20): EventRing {
  let fd: number;
  try {
    fd = libc.open(path, libc.O.RDWR | libc.O.CREAT | libc.O.EXCL | libc.O.CLOEXEC, 0o600);
  } catch (e) {
    if (!(e instanceof libc.Errno && e.errno === libc.E.EEXIST)) throw e;
    renameSync(path, join(dirname(path), `${basename(path).replace(/\.\d+\.ring$/, '')}.orphan-${Date.now()}-${randomBytes(4).toString('hex')}.ring`));
    fd = libc.open(path, libc.O.RDWR | libc.O.CREAT | libc.O.EXCL | libc.O.CLOEXEC, 0o600);
  }
  try {
    const size = EventRing.fileBytes(bytes);
    // Every page allocated now: a sparse ring on a file system that fills up (the runtime
    // directory is a tmpfs) would kill the daemon with SIGBUS at its first write to a page that
    // can no longer be had, losing what the ring held. Refused here, the daemon keeps its ring
    // in memory instead and says so (kernel/serving).
    try {
      libc.fallocate(fd, 0, 0n, BigInt(size));
    } catch (e) {
      // A file system without fallocate: a sparse file, as before.
      if (e instanceof libc.Errno && e.errno === libc.E.EOPNOTSUPP) libc.ftruncate(fd, BigInt(size));
      else throw new Error(`cannot allocate the ${size >> 20 || 1} MiB record ring in ${dirname(path)}: ${(e as Error).message}`);
    }
    return EventRing.map(fd, size, true);
  } catch (e) {
    rmSync(path, { force: true });
    throw e;
  } finally {
    libc.close(fd);
  }
}

/** Ring files of this mount whose daemon is gone (oldest first). */
export function deadRingFiles(nodeLog: string): string[] {
  const dir = dirname(nodeLog), prefix = `${basename(nodeLog)}.`;
  let names: string[];
  try { names = readdirSync(dir); } catch { return []; }
  const found: Array<{ path: string; mtime: number }> = [];
  for (const n of names) {
    if (!n.startsWith(prefix) || !n.endsWith('.ring')) continue;
    // `<pid>.ring`, or `orphan-….ring` (set aside by a process that got a dead one's pid).
    const owner = n.slice(prefix.length, -'.ring'.length);
    const pid = Number(owner);
    if (!owner.startsWith('orphan-') && (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || running(pid))) continue;
    const path = join(dir, n);
    try { found.push({ path, mtime: statSync(path).mtimeMs }); } catch { /* gone meanwhile */ }
  }
  return found.sort((a, b) => a.mtime - b.mtime).map((f) => f.path);
}

/**
 * Append ring records to a journal in order, each run of binary provfs records
 * (collector/provfs-record) as codec provfsRaw, each run of JSON ones as JSON.
 */
export function appendRingRecords(append: RecoveryJournal['appendEncoded'], recs: readonly Uint8Array[]): void {
  for (let i = 0; i < recs.length;) {
    const binary = isProvfsRecord(recs[i]!);
    let j = i + 1;
    while (j < recs.length && isProvfsRecord(recs[j]!) === binary) j++;
    append(binary ? CODEC.provfsRaw : CODEC.json, i === 0 && j === recs.length ? recs : recs.slice(i, j));
    i = j;
  }
}

/**
 * The `lost` record a recovery appends where records of a dead daemon may be missing: count
 * unknown (0), from `since` (monotonic ns; 0 when unknown) to now.
 */
export function lostRecord(reason: string, since: number): LostEvent {
  const now = Number(process.hrtime.bigint());
  return { v: SCHEMA_VERSION, src: 'provfs', seq: 0, ts: now, host: hostname(), pid: 0, tid: 0, op: 'lost', count: 0, from: since, to: now, reason };
}

/** A journal as recovery uses it. */
export interface RecoveryJournal {
  readonly lastSeq: number;
  appendEncoded(codec: number, payloads: readonly Uint8Array[]): number;
}

/** What {@link recoverRings} did. */
export interface RingRecovery {
  /** Ring files read (remove them once the journal is durable: {@link removeRingFiles}). */
  files: string[];
  /** Records appended to the journal now. */
  appended: number;
  /** Records the journal already held (written, not yet marked committed in the ring). */
  skipped: number;
  /**
   * Why records may still be missing (a damaged ring, records that went around the ring by
   * message), or undefined when every record the dead daemons made is in the journal.
   */
  lost?: string;
}

/**
 * Append to `journal` every record the dead daemons of this mount left in their rings and the
 * journal does not hold yet, in ring order. Call before the new daemon appends anything.
 */
export function recoverRings(nodeLog: string, journal: RecoveryJournal): RingRecovery {
  const out: RingRecovery = { files: [], appended: 0, skipped: 0 };
  const lost: string[] = [];
  const had = journal.lastSeq;
  for (const path of deadRingFiles(nodeLog)) {
    let ring: EventRing;
    try {
      const fd = libc.open(path, libc.O.RDWR | libc.O.CLOEXEC);
      try { ring = EventRing.map(fd, statSync(path).size, false); } finally { libc.close(fd); }
    } catch (e) {
      lost.push(`${path}: ${(e as Error).message}`);
      continue;
    }
    try {
      const { recs, damaged } = ring.unjournaled();
      const todo: RingRecord[] = [];
      for (const r of recs) {
        if (r.seq > 0 && r.seq <= had) out.skipped++;
        else todo.push(r);
      }
      // Stamped anew first, as a live daemon does: should this daemon die before the journal has
      // them durable, whoever recovers next appends only what the journal then lacks.
      const base = journal.lastSeq;
      todo.forEach((r, i) => ring.stamp(r.off, base + 1 + i));
      appendRingRecords((codec, payloads) => journal.appendEncoded(codec, payloads), todo.map((r) => r.data));
      out.appended += todo.length;
      if (damaged) lost.push(`${path}: ${damaged}`);
      if (ring.overflow > 0) lost.push(`${path}: ${ring.overflow} records went around the ring (it was full) and may not have reached the journal`);
      out.files.push(path);
    } finally {
      ring.unmap();
    }
  }
  if (lost.length > 0) out.lost = lost.join('; ');
  if (out.files.length > 0) log.debug(`recovered ${out.appended} records from ${out.files.length} ring file(s) (${out.skipped} already journaled)`);
  return out;
}

/**
 * Remove the ring files of this mount's dead daemons that hold nothing (a standby that never
 * served); files still holding records stay for the next daemon of the mount point.
 */
export function sweepEmptyRingFiles(nodeLog: string): void {
  for (const path of deadRingFiles(nodeLog)) {
    try {
      const fd = libc.open(path, libc.O.RDWR | libc.O.CLOEXEC);
      let ring: EventRing;
      try { ring = EventRing.map(fd, statSync(path).size, false); } finally { libc.close(fd); }
      const empty = ring.empty && ring.overflow === 0;
      ring.unmap();
      if (empty) rmSync(path, { force: true });
    } catch (e) {
      log.warn(`${path}: ${(e as Error).message}`);
    }
  }
}

/** Remove ring files whose records are durable in the journal now. */
export function removeRingFiles(files: readonly string[]): void {
  for (const f of files) rmSync(f, { force: true });
}
