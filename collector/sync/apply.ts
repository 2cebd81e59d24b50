/**
 * @module collector/sync/apply
 * Makes a local (or mounted) DST match SRC, either from a {@link Plan} (the incremental path)
 * or by walking both trees (the full comparison, used when the record has a gap).
 *
 * Order of the incremental path, always valid whatever the plan holds:
 * 1. origin side, deepest first: objects that moved are renamed aside into a staging directory
 *    inside DST (same file system, so a rename), deleted objects are removed. A directory's
 *    children have left it before it moves or goes.
 * 2. final side, shallowest first: staged objects are renamed into their new place (parents
 *    exist by then), new objects are created from SRC, changed ones copied. Renames are renames:
 *    a moved file or directory is never re-copied unless it also changed.
 * 3. the staging directory is removed (it holds only what SRC no longer has);
 * 4. directory metadata (mode, mtime), after every entry in them changed.
 * Contents are always read from SRC as it is now, so a file changed again after the events
 * were read is copied in its newer state; the events after the checkpoint bring it again next
 * time, which is harmless.
 *
 * Regular files are not copied where their step comes: they are queued and copied together at
 * the end of step 2 (or of the full comparison), {@link COPY_CONCURRENCY} at a time on libuv's
 * thread pool (copy_file_range, utimensat, rename). That is safe because a file's copy needs only
 * its parent directory, which exists once every shallower step is done, and no later step moves
 * or removes a directory a queued file is in (later steps are deeper, and files have no children).
 */
import * as fs from 'node:fs';
import { createHash } from 'node:crypto';
import type { FinalOp, Plan } from './overlay.js';
import { RESERVED_PREFIX, depthRuns, isReserved, joinRel, parentRel } from './paths.js';
import type { BigStats, SafeTree } from './safefs.js';
import { logger } from '../log.js';

const log = logger('sync');

export interface ApplyOptions {
  /** Remove from DST what was deleted from SRC (overwritten files are always replaced). */
  delete: boolean;
  /** Only describe what would be done. */
  dryRun: boolean;
  /** Full comparison by content hash instead of size + mtime. */
  checksum?: boolean;
  /** Called after each step with (done, total) of the plan, for progress on a TTY. */
  progress?: (done: number, total: number) => void;
}

/** Run `work` on every item, at most `limit` at once; every started call has ended when it settles (the first failure is thrown). */
async function pool<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!);
  };
  const results = await Promise.allSettled(Array.from({ length: Math.min(limit, items.length) }, worker));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

/** What one sync did (or would do, in a dry run). */
export interface ApplyCounts {
  /** Regular files written (created or updated). */
  files: number;
  bytes: number;
  dirs: number;
  symlinks: number;
  /** Objects moved by rename (not re-copied). */
  renames: number;
  deletes: number;
  /** Entries whose metadata only was set. */
  metadata: number;
  /** Entries of a kind sync does not copy (devices, FIFOs, sockets). */
  skipped: number;
}

export function emptyCounts(): ApplyCounts {
  return { files: 0, bytes: 0, dirs: 0, symlinks: 0, renames: 0, deletes: 0, metadata: 0, skipped: 0 };
}

const S_IFMT = 0o170000n;
/** Files copied at once: enough to keep libuv's 4 threads busy, few enough to stay polite. */
export const COPY_CONCURRENCY = 8;
const typeOf = (st: BigStats): bigint => st.mode & S_IFMT;

/** rename(2) failed because `to` holds an entry of another kind or a non-empty directory. */
function occupied(e: unknown): boolean {
  const c = (e as NodeJS.ErrnoException).code;
  return c === 'EISDIR' || c === 'ENOTEMPTY' || c === 'EEXIST' || c === 'ENOTDIR';
}

export class Applier {
  readonly counts = emptyCounts();
  /** In a dry run: what would be done, one line each. */
  readonly actions: string[] = [];
  private metaDirs = new Set<string>();
  private stageDir: string | null = null;
  /** Regular files to copy (see the module comment), with SRC's lstat. */
  private queued: Array<{ rel: string; st: BigStats }> = [];
  /**
   * Paths the plan said to copy that SRC no longer had when their turn came (changed again after
   * the records were read). What DST has there may be stale, and the records that follow (a
   * rename of a parent, say) need not say so: the caller marks them changed in the next plan.
   */
  readonly vanished: string[] = [];
  /**
   * Directories copied whole from SRC as it is now, ahead of the records read (a directory DST
   * lacked, one moved in from outside, parents made as SRC has them). An object SRC held then and
   * removed before the next records were read is in DST but in no record that removes it (its
   * creation and removal cancel out in the next plan): the caller has the next plan compare these
   * directories whole again ({@link applyPlan}'s `recheck`), until one compares equal.
   */
  readonly ahead: string[] = [];
  /** Inside a whole-directory comparison (its subdirectories are not pushed to `ahead` again). */
  private comparing = 0;

  constructor(readonly src: SafeTree, readonly dst: SafeTree, readonly opts: ApplyOptions) {}

  private say(line: string): void { this.actions.push(line); }

  /**
   * Apply an incremental plan; then compare the directories of `recheck` (an earlier plan's
   * {@link ahead}, where they are now) whole, shallowest first.
   */
  async applyPlan(plan: Plan, recheck: readonly string[] = []): Promise<void> {
    const total = plan.originOps.length + plan.finalOps.length + plan.metaDirs.length;
    let done = 0;
    const tick = (): void => { done++; if (this.opts.progress && (done & 255) === 0) this.opts.progress(done, total); };
    const missing = new Set<number>();
    const t0 = performance.now();
    // Origin side, deepest first. The steps of one depth touch distinct paths none of which is
    // inside another, and their parents (shallower) are not moved until a later depth: they run
    // together on libuv's pool.
    for (const level of depthRuns(plan.originOps, (op) => op.origin)) {
      await pool(level, COPY_CONCURRENCY, async (op) => {
        tick();
        if (op.op === 'stage') {
          if (this.opts.dryRun) return;
          // DST lacks it: the final side copies it from SRC instead.
          if (!(await this.dst.renameAsync(op.origin, this.slotPath(op.slot)))) missing.add(op.slot);
        } else if (op.replaced || this.opts.delete) {
          if (this.opts.dryRun) { this.say(`delete ${op.origin}`); this.counts.deletes++; return; }
          // A replaced path is mostly one a rename went to that DST never had: a cheap lstat on
          // this thread says so without a round trip through the pool.
          if (op.replaced && !this.dst.lstat(op.origin)) return;
          if (await this.dst.removeAsync(op.origin)) this.counts.deletes++;
        }
      });
    }
    const t1 = performance.now();
    // Final side, shallowest first. Within one depth the paths are distinct and none is inside
    // another: the plain moves back from staging (most of a plan's renames) run together.
    for (const level of depthRuns(plan.finalOps, (op) => op.path)) {
      const moves: Array<{ slot: number; path: string }> = [];
      const direct: Array<{ origin: string; path: string }> = [];
      for (const op of level) {
        tick();
        if (op.op === 'place' && !op.dirty && !missing.has(op.slot) && !this.opts.dryRun) { moves.push(op); continue; }
        if (op.op === 'move' && !op.dirty && !this.opts.dryRun) { direct.push(op); continue; }
        try {
          this.finalOp(op, missing);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
          // A parent DST lacks (its creation found SRC changed meanwhile): make it, try again.
          // SRC lacks a parent too (moved on since the records were read): what the step was
          // to put there is copied again where the records that follow take it.
          if (!this.ensureParents(op.path)) { this.vanished.push(op.path); continue; }
          this.finalOp(op, missing);
        }
      }
      await pool(moves, COPY_CONCURRENCY, (m) => this.placeAsync(m.slot, m.path));
      await pool(direct, COPY_CONCURRENCY, (m) => this.moveAsync(m.origin, m.path));
    }
    // Paths the records leave empty (Plan.clears): what DST still has there was copied ahead.
    if (this.opts.delete) {
      await pool(plan.clears, COPY_CONCURRENCY, async (rel) => {
        if (!this.dst.lstat(rel)) return; // nearly always: a cheap lstat on this thread says so
        if (this.opts.dryRun) { this.say(`delete ${rel}`); this.counts.deletes++; return; }
        if (await this.dst.removeAsync(rel)) this.counts.deletes++;
      });
    }
    if (!this.opts.dryRun) {
      for (const rel of [...recheck].sort((a, b) => a.split('/').length - b.split('/').length)) {
        const st = this.src.lstat(rel);
        if (!st?.isDirectory() || (rel !== '' && !this.ensureParents(rel))) continue;
        this.copy(rel, st, true);
      }
    }
    const t2 = performance.now();
    await this.copyQueued();
    const t3 = performance.now();
    if (this.stageDir !== null) {
      this.dst.remove(this.stageDir);
      this.stageDir = null; // a next plan on this applier stages anew
      this.metaDirs.add('');
    }
    for (const d of plan.metaDirs) this.metaDirs.add(d);
    this.finishDirs(() => tick());
    this.opts.progress?.(total, total);
    const t4 = performance.now();
    log.debug(`apply: origin side ${(t1 - t0).toFixed(1)} ms (${plan.originOps.length} steps), final side ${(t2 - t1).toFixed(1)} ms (${plan.finalOps.length}), copies ${(t3 - t2).toFixed(1)} ms, staging removal + directories ${(t4 - t3).toFixed(1)} ms (${plan.metaDirs.length})`);
  }

  /** One step of the final side of a plan. */
  private finalOp(op: FinalOp, missing: Set<number>): void {
    if (op.op === 'move') {
      if (this.opts.dryRun) {
        this.say(`rename ${op.origin} -> ${op.path}${op.dirty ? ' (then update)' : ''}`);
        this.counts.renames++;
        return;
      }
      // Dirty (clean moves go through moveAsync): moved, then copied from SRC as it is now.
      const st = this.src.lstat(op.path);
      if (!st) { this.vanished.push(op.path); this.dst.remove(op.origin); return; } // gone from SRC since
      const have = this.dst.lstat(op.origin);
      if (!have || typeOf(have) !== typeOf(st)) {
        if (have) this.dst.remove(op.origin);
        this.copy(op.path, st, true);
        return;
      }
      this.place(op.origin, op.path);
      this.counts.renames++;
      this.copy(op.path, st, false);
      return;
    }
    if (op.op === 'place') {
      if (this.opts.dryRun) {
        this.say(`rename ${op.origin} -> ${op.path}${op.dirty ? ' (then update)' : ''}`);
        this.counts.renames++;
        return;
      }
      // A clean move needs nothing from SRC: the record says where the object went. (Had it
      // moved again since the events were read, the next sync's events move it on.)
      const st = op.dirty || missing.has(op.slot) ? this.src.lstat(op.path) : null;
      // DST never had it (an earlier plan found SRC had moved it on): copy it from SRC, or, if
      // SRC has moved it on again, where the records that follow take it.
      if (missing.has(op.slot)) { if (st) this.copy(op.path, st, true); else this.vanished.push(op.path); return; }
      if (op.dirty && !st) { this.vanished.push(op.path); return; } // gone from SRC since: it stays staged and is dropped
      if (st) {
        const staged = this.dst.lstat(this.slotPath(op.slot));
        if (!staged || typeOf(staged) !== typeOf(st)) { this.copy(op.path, st, true); return; }
      }
      this.place(this.slotPath(op.slot), op.path);
      this.counts.renames++;
      if (st) this.copy(op.path, st, false);
    } else {
      if (this.opts.dryRun) { this.say(`${op.op} ${op.path}${op.op === 'create' && op.subtree ? ' (whole subtree)' : ''}`); return; }
      const st = this.src.lstat(op.path);
      if (!st) { this.vanished.push(op.path); return; } // gone from SRC since the events were read
      // An update of a directory DST lacks: an earlier plan dropped it with all it held (SRC had
      // moved it on), and only the records' changes under it are marked: copy all of it.
      const deep = op.op === 'create' ? op.subtree : st.isDirectory() && !this.dst.lstat(op.path)?.isDirectory();
      this.copy(op.path, st, deep);
    }
  }

  /** Every change counted so far (a comparison that changed nothing leaves it as it was). */
  private changeCount(): number {
    const c = this.counts;
    return c.files + c.dirs + c.symlinks + c.renames + c.deletes + c.metadata;
  }

  /** Create the directories DST lacks on the way to `rel`, as SRC has them; false if SRC lacks one. */
  private ensureParents(rel: string): boolean {
    const parts = rel.split('/');
    let cur = '';
    let made = false;
    for (let i = 0; i < parts.length - 1; i++) {
      cur = joinRel(cur, parts[i]!);
      const s = this.src.lstat(cur);
      if (!s?.isDirectory()) return false;
      const d = this.dst.lstat(cur);
      if (d?.isDirectory()) continue;
      if (d) this.dst.remove(cur);
      this.dst.mkdir(cur, Number(s.mode & 0o7777n));
      this.counts.dirs++;
      this.metaDirs.add(cur);
      if (!made) { made = true; this.ahead.push(cur); }
    }
    return true;
  }

  /** Remove the staging directory of an interrupted plan (its objects are re-copied by the caller). */
  abandon(): void {
    if (this.stageDir !== null && !this.opts.dryRun) { try { this.dst.remove(this.stageDir); } catch { /* best effort */ } }
    this.stageDir = null;
    this.queued = [];
    this.metaDirs.clear();
  }

  private slotPath(slot: number): string {
    if (this.stageDir === null) {
      this.stageDir = `${RESERVED_PREFIX}stage-${process.pid}-${Date.now()}`;
      this.dst.mkdir(this.stageDir, 0o700);
    }
    return joinRel(this.stageDir, String(slot));
  }

  /** A clean move back from staging ({@link place} on libuv's pool). */
  private async placeAsync(slot: number, path: string): Promise<void> {
    this.metaDirs.add(parentRel(path));
    const from = this.slotPath(slot);
    if (!(await this.renameOver(from, path))) {
      // A parent DST lacks (its creation found SRC changed meanwhile): make it, try again; if
      // SRC lacks it too, the object stays staged and goes with the staging directory, and is
      // copied again where the records that follow take it.
      if (!this.ensureParents(path)) { this.vanished.push(path); return; }
      this.place(from, path);
    }
    this.counts.renames++;
  }

  /**
   * A clean direct move (see Overlay.plan): rename DST's `origin` to `path`. DST lacking the
   * object: copied from SRC instead. SRC lacking the new parent (it changed since the records
   * were read): the object leaves DST, as a staged one would.
   */
  private async moveAsync(origin: string, path: string): Promise<void> {
    this.metaDirs.add(parentRel(path));
    if (await this.renameOver(origin, path)) { this.counts.renames++; return; }
    if (!this.dst.lstat(origin)) {
      const st = this.src.lstat(path);
      if (st) { if (this.ensureParents(path)) this.copy(path, st, true); } else this.vanished.push(path);
      return;
    }
    if (!this.ensureParents(path)) { this.dst.remove(origin); this.vanished.push(path); return; }
    this.place(origin, path);
    this.counts.renames++;
  }

  /** {@link place} on libuv's pool; false when `from` or `to`'s parent is missing. */
  private async renameOver(from: string, to: string): Promise<boolean> {
    try {
      return await this.dst.renameAsync(from, to);
    } catch (e) {
      if (!occupied(e)) throw e;
      this.dst.remove(to);
      this.dst.rename(from, to);
      return true;
    }
  }

  /** rename `from` over `to`, removing whatever stale entry is at `to`. */
  private place(from: string, to: string): void {
    this.metaDirs.add(parentRel(to));
    try {
      this.dst.rename(from, to);
    } catch (e) {
      if (!occupied(e)) throw e;
      this.dst.remove(to);
      this.dst.rename(from, to);
    }
  }

  /** Make DST's `rel` a copy of SRC's (`st` = SRC's lstat); `deep`: the directory's whole subtree. */
  copy(rel: string, st: BigStats, deep: boolean): void {
    const mode = Number(st.mode & 0o7777n);
    if (st.isFile()) {
      if (this.opts.dryRun) { this.say(`copy ${rel} (${st.size} bytes)`); this.counts.files++; this.counts.bytes += Number(st.size); return; }
      this.queued.push({ rel, st });
      this.counts.files++;
      this.counts.bytes += Number(st.size);
      this.metaDirs.add(parentRel(rel)); // the temp file + rename changes the directory's mtime
    } else if (st.isSymbolicLink()) {
      if (this.opts.dryRun) { this.say(`symlink ${rel}`); this.counts.symlinks++; return; }
      this.dst.writeSymlink(rel, this.src.readlink(rel), st.mtimeNs);
      this.counts.symlinks++;
      this.metaDirs.add(parentRel(rel));
    } else if (st.isDirectory()) {
      const have = this.opts.dryRun && !this.dst.lstat(parentRel(rel)) ? null : this.dst.lstat(rel);
      if (this.opts.dryRun) {
        if (!have?.isDirectory()) { this.say(`mkdir ${rel}`); this.counts.dirs++; }
        if (deep) this.compareDir(rel);
        return;
      }
      if (have && !have.isDirectory()) { this.dst.remove(rel); }
      if (!have || !have.isDirectory()) { this.dst.mkdir(rel, mode); this.counts.dirs++; }
      else if ((have.mode & 0o7777n) !== (st.mode & 0o7777n)) { this.dst.chmodDir(rel, mode); this.counts.metadata++; }
      this.metaDirs.add(rel);
      if (deep) {
        const before = this.changeCount();
        this.comparing++;
        try { this.compareDir(rel); } finally { this.comparing--; }
        if (this.comparing === 0 && (this.changeCount() !== before || !have)) this.ahead.push(rel);
      }
    } else {
      this.counts.skipped++;
    }
  }

  /**
   * Copy the queued files, COPY_CONCURRENCY at a time. A file gone from SRC since it was
   * queued is left out (uncounted); a parent DST lacks is made as SRC has it, then tried again.
   */
  private async copyQueued(): Promise<void> {
    const q = this.queued;
    this.queued = [];
    await pool(q, COPY_CONCURRENCY, async ({ rel, st }) => {
      try {
        await this.dst.writeFileFromAsync(rel, this.src.abs(rel), st.mtimeNs);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        const now = this.src.lstat(rel);
        if (now?.isFile() && this.ensureParents(rel)) {
          await this.dst.writeFileFromAsync(rel, this.src.abs(rel), now.mtimeNs);
          this.counts.bytes += Number(now.size) - Number(st.size);
          return;
        }
        this.counts.files--;
        this.counts.bytes -= Number(st.size);
        this.vanished.push(rel);
      }
    });
  }

  /** Full comparison of the whole tree (the fallback when the record has a gap). */
  async fullCompare(): Promise<void> {
    const root = this.src.lstat('')!;
    const have = this.dst.lstat('');
    if (have && (have.mode & 0o7777n) !== (root.mode & 0o7777n)) {
      if (this.opts.dryRun) this.say('chmod .'); else this.dst.chmodDir('', Number(root.mode & 0o7777n));
      this.counts.metadata++;
    }
    this.metaDirs.add('');
    this.compareDir('');
    await this.copyQueued();
    this.finishDirs(() => {});
  }

  /** Compare directory `rel` in both trees, entry by entry, recursing into directories. */
  private compareDir(rel: string): void {
    const srcNames = this.src.readdir(rel).filter((n) => !isReserved(n));
    const dstNames = this.opts.dryRun && !this.dst.lstat(rel) ? [] : this.dst.readdir(rel).filter((n) => !isReserved(n));
    const inSrc = new Set(srcNames);
    for (const name of dstNames) {
      if (inSrc.has(name) || !this.opts.delete) continue;
      const r = joinRel(rel, name);
      if (this.opts.dryRun) this.say(`delete ${r}`); else this.dst.remove(r);
      this.counts.deletes++;
    }
    for (const name of srcNames) {
      const r = joinRel(rel, name);
      const s = this.src.lstat(r);
      if (!s) continue;
      const d = this.opts.dryRun && !this.dst.lstat(rel) ? null : this.dst.lstat(r);
      if (!d || typeOf(d) !== typeOf(s)) { this.copy(r, s, true); continue; }
      if (s.isDirectory()) { this.copy(r, s, true); continue; }
      if (s.isFile()) {
        const same = s.size === d.size && (this.opts.checksum ? this.sameContent(r) : s.mtimeNs === d.mtimeNs);
        if (!same) { this.copy(r, s, false); continue; }
        if ((s.mode & 0o7777n) !== (d.mode & 0o7777n) || s.mtimeNs !== d.mtimeNs) {
          // Same contents, other metadata: rewrite the file (atomically) rather than chmod through a path.
          this.copy(r, s, false);
        }
      } else if (s.isSymbolicLink()) {
        if (this.src.readlink(r) !== this.dst.readlink(r) || s.mtimeNs !== d.mtimeNs) this.copy(r, s, false);
      } else this.counts.skipped++;
    }
  }

  private sameContent(rel: string): boolean {
    const h = (p: string): string => createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    return h(this.src.abs(rel)) === h(this.dst.abs(rel));
  }

  /** Copy mode and mtime of every directory touched, deepest first. */
  /**
   * Set when a plan met a directory DST has and SRC no longer has at that path (it moved or went
   * since the records the plan came from); the sync then ends with {@link repairDirTimes}.
   */
  dirTimesUncertain = false;

  /**
   * Give every directory both trees have SRC's mode and mtime: a walk of SRC's directories
   * only (no file is read or stat'ed), run when an earlier plan could not place some directory's
   * times because it had moved on in SRC.
   */
  repairDirTimes(): void {
    this.dirTimesUncertain = false;
    const walk = (rel: string): void => {
      this.metaDirs.add(rel);
      let names: fs.Dirent[];
      try { names = fs.readdirSync(this.src.abs(rel), { withFileTypes: true }); } catch { return; }
      for (const e of names) if (e.isDirectory() && !isReserved(e.name)) walk(joinRel(rel, e.name));
    };
    walk('');
    this.finishDirs(() => {});
  }

  private finishDirs(tick: () => void): void {
    const dirs = [...this.metaDirs];
    this.metaDirs.clear();
    // lstat and utimensat of a directory are cheap calls: on this thread they cost less than a
    // round trip through the thread pool (measured), so this step stays synchronous.
    for (const d of dirs) {
      tick();
      if (this.opts.dryRun) continue;
      const s = this.src.lstat(d);
      const have = this.dst.lstat(d);
      // DST has a directory SRC no longer has at that path: a record not yet read moves or
      // removes it (an early plan runs ahead of the records), and its times can only be set
      // where it ends up: see repairDirTimes.
      if (have?.isDirectory() && !s?.isDirectory()) this.dirTimesUncertain = true;
      if (!s?.isDirectory() || !have?.isDirectory()) continue;
      if ((have.mode & 0o7777n) !== (s.mode & 0o7777n)) { this.dst.chmodDir(d, Number(s.mode & 0o7777n)); this.counts.metadata++; }
      if (have.mtimeNs !== s.mtimeNs) this.dst.setMtime(d, s.mtimeNs);
    }
  }
}
