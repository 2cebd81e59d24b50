/**
 * @module collector/sync/changes
 * Reads journal records and folds the file-system events under SRC into an {@link Overlay}.
 *
 * Which events count: those whose `path` (absolute, per the schema) lies under SRC's realpath.
 * An event on SRC's device without the path it needs cannot be placed, and a `lost` record or a
 * seq gap in a stream means events are missing: both are gaps ({@link GapError}).
 *
 * Writes: an open for writing (or O_TRUNC, or one that created the file) marks the file dirty
 * at once, and its close marks it dirty again (the writes happen in between and have no event of
 * their own). Write handles still open when a sync ends are carried in the sync state, so the
 * close that comes after the checkpoint is still recognised.
 */
import type { JournalRecord } from '../journal/api.js';
import type { EventSource, FileRef, ProvEvent } from '../events.js';
import { GapError, Overlay } from './overlay.js';
import { isReserved, relativeTo, splitRel } from './paths.js';

const O_ACCMODE = 3, O_WRONLY = 1, O_RDWR = 2, O_TRUNC = 0o1000;
const RENAME_EXCHANGE = 2;

/** A write handle (pid:fd for syscall sources, fh:N for provfs) and the file it writes. */
export interface WriteHandle { key: string; file: string; path: string }

/** Keys a handle the way both kinds of close name it. */
function handleKey(stream: string, ev: { pid: number; fd?: number; fh?: number }, fd?: number): string | null {
  if (ev.fh !== undefined) return `${stream}:fh:${ev.fh}`;
  const f = fd ?? ev.fd;
  if (f !== undefined) return `${stream}:${ev.pid}:${f}`;
  return null;
}

function fileKey(f: FileRef): string { return `${f.dev}:${f.ino}`; }

export class ChangeTracker {
  private current = new Overlay();
  /** The net changes since the checkpoint (or since the last {@link startOver}). */
  get overlay(): Overlay { return this.current; }
  /** Absorbs overlay changes in degraded mode (its contents are never used). */
  private scratch = new Overlay();
  /** Last seq seen per stream (starts at the checkpoint). */
  readonly positions: Record<string, number>;
  /**
   * After a gap the overlay is not trusted (the caller compares the trees in full), but write
   * handles are still followed, so a file kept open for writing across the full comparison is
   * copied again when its close comes.
   */
  degraded = false;
  /** Records read and records that concerned SRC. */
  records = 0;
  relevant = 0;
  /** Newest event time (ns) among the witness's records read. */
  maxTs = 0;
  private handles = new Map<string, WriteHandle>();
  /** provfs write handles flushed once in this window (see 'close'). */
  private flushed = new Map<string, WriteHandle>();
  /** dev:ino → current relative path, for closes that name only the handle. */
  private filePaths = new Map<string, string>();

  /**
   * @param root SRC's realpath.
   * @param dev SRC's st_dev: a path-less event on it is a gap.
   * @param checkpoint last applied seq per stream.
   * @param carried write handles open at the checkpoint.
   * @param witness use only this source's events (see capture.ts).
   */
  constructor(readonly root: string, readonly dev: number, checkpoint: Record<string, number>, carried: WriteHandle[] = [], readonly witness?: EventSource) {
    this.positions = { ...checkpoint };
    for (const h of carried) {
      this.handles.set(h.key, h);
      this.filePaths.set(h.file, h.path);
      // It may have been written after the checkpoint with no event yet: copy it again.
      this.safely(() => this.overlay.modify(h.path));
    }
  }

  /**
   * The changes folded so far have been applied: DST equals SRC as of the records read. Later
   * records are folded into a fresh overlay (positions and write handles carry on).
   */
  startOver(): void {
    this.current = new Overlay();
  }

  /**
   * Paths whose copy may be stale in DST (SRC lacked them when they were copied: see
   * Applier.vanished): copy them again if they exist when the next plan is applied. A path
   * the records have since removed needs nothing.
   */
  markChanged(paths: readonly string[]): void {
    this.markEach(paths, (p) => p);
  }

  /**
   * {@link markChanged} for paths named as they were when this overlay started (an earlier
   * plan's, applied while this overlay took records): each is marked where its object is now.
   */
  markChangedAtStart(paths: readonly string[]): void {
    this.markEach(paths, (p) => this.overlay.currentPathOf(p));
  }

  private markEach(paths: readonly string[], whereNow: (p: string) => string | null): void {
    for (const p of paths) {
      // From a state file: only clean relative paths, never sync's own names.
      let parts: string[];
      try { parts = splitRel(p); } catch { continue; }
      if (parts.some(isReserved)) continue;
      const now = whereNow(p);
      if (now !== null) this.safely(() => this.overlay.modify(now));
    }
  }

  /** Write handles still open (carried into the next sync's state). */
  openWriters(): WriteHandle[] {
    return [...this.handles.values()].map((h) => ({ ...h, path: this.filePaths.get(h.file) ?? h.path }));
  }

  /** Drop handles of processes that no longer exist (their closes may have been missed at exit). */
  dropHandles(alive: (pid: number) => boolean): void {
    for (const k of this.handles.keys()) {
      const m = /^[^:]+:(\d+):\d+$/.exec(k);
      if (m && !alive(Number(m[1]))) this.handles.delete(k);
    }
  }

  private safely(f: () => void): void {
    try { f(); } catch (e) { if (!(e instanceof GapError)) throw e; }
  }

  /** Relative path under SRC, null when outside; throws a gap when it cannot tell. */
  private rel(ref: { path?: string } | undefined, dev: number | undefined, what: string, where: string): string | null {
    if (ref?.path === undefined) {
      if (dev === undefined || dev === this.dev) throw new GapError(`${where}: ${what} without a path on SRC's device`);
      return null;
    }
    const r = relativeTo(this.root, ref.path);
    if (r === null) return null;
    // Names sync itself creates (probes, staging) are never synced.
    if (r !== '' && splitRel(r).some(isReserved)) return null;
    return r;
  }

  /** Fold one record in. Throws {@link GapError} when the record cannot be trusted for SRC. */
  add(rec: JournalRecord): void {
    const skipped = rec.skipped ?? 0;
    const last = this.positions[rec.stream] ?? 0;
    this.records += rec.seq > last ? Math.min(rec.seq - last, 1 + skipped) : 1;
    if (rec.seq <= last) return; // already applied (a reader that re-delivers)
    const ts = rec.event.ts;
    if (ts > this.maxTs && (!this.witness || rec.event.src === this.witness)) this.maxTs = ts;
    if (this.degraded) {
      this.positions[rec.stream] = rec.seq;
      if (this.witness && rec.event.src !== this.witness) return;
      try { this.event(rec.event, rec.stream, rec.pos); } catch (e) { if (!(e instanceof GapError)) throw e; }
      return;
    }
    if (this.witness && rec.event.src !== this.witness) {
      // The other witness's records (and its losses) say nothing sync uses.
      this.positions[rec.stream] = rec.seq;
      return;
    }
    // The records passed over right before this one are seqs seq - skipped .. seq - 1 (some may
    // already be counted, taken as a passed-over tail by passOver).
    if (rec.seq - skipped > last + 1) throw new GapError(`stream ${rec.stream}: seq ${last + 1}..${rec.seq - 1 - skipped} missing`);
    this.positions[rec.stream] = rec.seq;
    this.event(rec.event, rec.stream, rec.pos);
  }

  /**
   * Streams the reader read to their end past records the prefilter passed over (see
   * RecordFeed.passedOver): they are read up to `seq` with nothing missing.
   */
  passOver(reached: Record<string, number>): void {
    for (const [stream, seq] of Object.entries(reached)) {
      const last = this.positions[stream] ?? 0;
      if (seq <= last) continue;
      this.records += seq - last;
      this.positions[stream] = seq;
    }
  }

  /** Keys of the write handles followed now (`stream:pid:fd`, `stream:fh:N`). */
  handleKeys(): string[] {
    return [...this.handles.keys()];
  }

  private event(ev: ProvEvent, stream: string, where: string): void {
    const o = this.degraded ? this.scratch : this.overlay;
    switch (ev.op) {
      case 'lost':
        if (this.degraded) return;
        throw new GapError(`${where}: ${ev.count} events lost (${ev.reason})`);
      case 'open': {
        const write = (ev.flags & O_ACCMODE) === O_WRONLY || (ev.flags & O_ACCMODE) === O_RDWR || (ev.flags & O_TRUNC) !== 0;
        const k0 = handleKey(stream, ev);
        // The descriptor number is taken again: whatever handle it named before is closed.
        if (k0) { this.handles.delete(k0); this.flushed.delete(k0); }
        if (!write && !ev.created) return;
        const r = this.rel(ev.file, ev.file.dev, 'open for writing', where);
        if (r === null) return;
        this.relevant++;
        if (ev.created) o.create(r); else o.modify(r);
        this.filePaths.set(fileKey(ev.file), r);
        const k = handleKey(stream, ev);
        if (k) this.flushed.delete(k);
        if (k && write) this.handles.set(k, { key: k, file: fileKey(ev.file), path: r });
        return;
      }
      case 'close': {
        const keys: string[] = [];
        if (ev.fdMax !== undefined && ev.fd !== undefined) {
          for (const h of this.handles.keys()) {
            const m = h.split(':');
            if (m[0] === stream && m[1] === String(ev.pid) && Number(m[2]) >= ev.fd && Number(m[2]) <= ev.fdMax) keys.push(h);
          }
        } else {
          const k = handleKey(stream, ev);
          if (k) keys.push(k);
        }
        for (const k of keys) {
          // provfs records FLUSH (once per close(2), also of dup'd descriptors) but not RELEASE:
          // a handle flushed before may still be written through another descriptor.
          const h = this.handles.get(k) ?? this.flushed.get(k);
          if (!h) continue;
          this.handles.delete(k);
          if (ev.fh !== undefined) this.flushed.set(k, h);
          let r: string | null = this.filePaths.get(h.file) ?? h.path;
          if (ev.file?.path !== undefined) r = this.rel(ev.file, ev.file.dev, 'close', where);
          if (r === null) continue;
          this.relevant++;
          // Closed after being unlinked: nothing left to copy.
          if (!o.resolve(r).absent) o.modify(r);
        }
        return;
      }
      case 'dup': {
        const h = this.handles.get(`${stream}:${ev.pid}:${ev.oldfd}`);
        if (h) this.handles.set(`${stream}:${ev.pid}:${ev.newfd}`, { ...h, key: `${stream}:${ev.pid}:${ev.newfd}` });
        return;
      }
      case 'fork': {
        if (ev.thread) return;
        // The child inherits the descriptors: its writes and closes name its own pid.
        const prefix = `${stream}:${ev.pid}:`;
        for (const [k, h] of [...this.handles]) {
          if (!k.startsWith(prefix)) continue;
          const ck = `${stream}:${ev.child}:${k.slice(prefix.length)}`;
          this.handles.set(ck, { ...h, key: ck });
        }
        return;
      }
      case 'create': case 'mkdir': case 'symlink': case 'link': {
        const r = this.rel(ev.file, ev.file.dev, ev.op, where);
        if (r === null) return;
        this.relevant++;
        o.create(r);
        this.filePaths.set(fileKey(ev.file), r);
        if (ev.op === 'create' && ev.fh !== undefined) {
          const k = handleKey(stream, ev);
          if (k) this.handles.set(k, { key: k, file: fileKey(ev.file), path: r });
        }
        return;
      }
      case 'setattr': {
        const r = this.rel(ev.file, ev.file.dev, 'setattr', where);
        if (r === null) return;
        this.relevant++;
        o.modify(r);
        return;
      }
      case 'unlink': case 'rmdir': {
        const r = this.rel(ev.file, ev.file.dev, ev.op, where);
        if (r === null) return;
        this.relevant++;
        o.remove(r);
        if (ev.op === 'rmdir' || (ev.op === 'unlink' && ev.deleted)) this.filePaths.delete(fileKey(ev.file));
        return;
      }
      case 'rename': {
        const to = this.rel(ev.file, ev.file.dev, 'rename target', where);
        const from = this.rel(ev.from, ev.file.dev, 'rename source', where);
        if (to === null && from === null) return;
        this.relevant++;
        if (from !== null && to !== null) {
          o.rename(from, to, (ev.flags & RENAME_EXCHANGE) !== 0);
          this.filePaths.set(fileKey(ev.file), to);
          if (ev.flags & RENAME_EXCHANGE && ev.overwritten) this.filePaths.set(fileKey(ev.overwritten), from);
        } else if (from !== null) {
          o.remove(from);
          if (ev.flags & RENAME_EXCHANGE) o.create(from, true);
        } else if (to !== null) {
          o.create(to, true);
          this.filePaths.set(fileKey(ev.file), to);
        }
        return;
      }
      case 'exit':
        // The kernel closes what the process still had open: that is the close of its writes.
        if (ev.group) {
          for (const [k, h] of [...this.handles]) {
            if (!k.startsWith(`${stream}:${ev.pid}:`)) continue;
            this.handles.delete(k);
            const r = this.filePaths.get(h.file) ?? h.path;
            if (!o.resolve(r).absent) o.modify(r);
          }
        }
        return;
      default:
        return;
    }
  }
}
