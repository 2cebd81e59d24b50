/**
 * @module collector/join/files
 * File versions and names. Identity is (dev, ino); a version begins when a writer opens the
 * file (O_WRONLY/O_RDWR, O_TRUNC, O_CREAT) and ends when the last writer description closes,
 * which emits `wasGeneratedBy` to every image that wrote it (ts = that image's close). A
 * reader uses the version current when it opened: the last one, or — while it is being written
 * by another process — the one in progress; a process reading a version it writes itself reads
 * the one before, so versions never form a cycle. Version 0 is the content as first seen (a
 * file that existed before capture); a file created under capture starts at 0 too. A writer
 * that begins a version without truncating (O_APPEND, an in-place write) keeps the old
 * content: it `used` the previous version (attrs.role = 'base'), so an appended log keeps its
 * history's lineage.
 *
 * Names belong to the inode and have a history (NameRecord / nameEnds).
 */
import type { FileRef } from '../events.js';
import { fileIdentity, fileVersionId } from '../../graph/model.js';
import {
  O_ACCMODE, O_DIRECTORY, O_PATH, O_TRUNC, O_WRONLY, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT,
  dict, type Ctx, type Desc, type ImageState, type InodeState, type ProcState,
} from './state.js';
import { newDesc } from './fds.js';
import { relateOnce } from './processes.js';

export function inodeOf(ctx: Ctx, dev: number, ino: number): InodeState {
  const key = `${dev}:${ino}`;
  let n = ctx.h.inodes[key];
  if (!n) {
    n = { dev, ino, cur: -1, writing: false, writers: 0, gens: dict(), derived: dict(), users: dict(), names: [], emitted: -1, since: ctx.ev.ts };
    ctx.h.inodes[key] = n;
  }
  return n;
}

function typeName(mode: number | undefined): string | undefined {
  if (mode === undefined) return undefined;
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir';
    case S_IFLNK: return 'symlink';
    case S_IFIFO: return 'fifo';
    case 0: return undefined;
    default: return 'file';
  }
}

/** The absolute path of a ref: given, or its parent directory's known path + its name. */
export function pathOf(ctx: Ctx, dev: number, ref: { path?: string; parent?: number; name?: string }): string | undefined {
  if (ref.path) return ref.path;
  if (ref.parent === undefined || ref.name === undefined) return undefined;
  const dir = ctx.h.dirPaths[`${dev}:${ref.parent}`];
  return dir === undefined ? undefined : (dir === '/' ? '' : dir) + '/' + ref.name;
}

/** The inode a ref names; eBPF cannot always give the victim's inode of an unlink/rename, so look its name up. */
export function resolveIno(ctx: Ctx, ref: FileRef): number | undefined {
  if (ref.ino > 0) return ref.ino;
  if (ref.parent !== undefined && ref.name !== undefined) {
    const ino = ctx.h.dentries[`${ref.dev}:${ref.parent}:${ref.name}`];
    if (ino !== undefined) return ino;
  }
  const p = pathOf(ctx, ref.dev, ref);
  const at = p === undefined ? undefined : ctx.h.paths[p];
  if (at && at.startsWith(`${ref.dev}:`)) return Number(at.slice(at.indexOf(':') + 1));
  return undefined;
}

/** Record what a ref tells about its inode (type, a name, its directory entry) and return the inode. */
export function learn(ctx: Ctx, ref: FileRef, ino = ref.ino): InodeState {
  const n = inodeOf(ctx, ref.dev, ino);
  const t = typeName(ref.type);
  if (t) n.type = t;
  if (ref.parent !== undefined && ref.name !== undefined) ctx.h.dentries[`${ref.dev}:${ref.parent}:${ref.name}`] = ino;
  const p = pathOf(ctx, ref.dev, ref);
  if (p !== undefined) {
    addName(ctx, n, p);
    if (n.type === 'dir') ctx.h.dirPaths[`${ref.dev}:${ino}`] = p;
  }
  return n;
}

/**
 * `ref` is being created (an open that created it, mkdir, symlink), before {@link learn}: when
 * the table already knows its inode number, the file that had it was deleted where capture did
 * not see it (by a process outside the traced tree, or before capture started) and the file
 * system gave the number to a new file. Nothing of the dead file carries over: its names end
 * (else the new file's first version would be labelled with the old path), a write of it that
 * never closed is no longer in progress, its type is forgotten. The dead file's versions keep
 * their ids; with `nextVersion` (mkdir, symlink: no writer will begin one) the new file starts
 * at the next version number, so no id is reused. Returns whether the inode was reused.
 */
export function reborn(ctx: Ctx, ref: FileRef, nextVersion = false): boolean {
  const n = ctx.h.inodes[`${ref.dev}:${ref.ino}`];
  if (!n) return false;
  const path = pathOf(ctx, ref.dev, ref);
  const stale = n.names.some((x) => x !== path) || n.writing || (n.cur >= 0 && !n.names.includes(path ?? ''));
  if (!stale) return false;
  ctx.stats.reusedInodes++;
  for (const old of [...n.names]) if (old !== path) endName(ctx, n, old);
  n.writing = false;
  n.writers = 0;
  n.gens = dict();
  n.derived = dict();
  n.type = undefined;
  n.target = undefined;
  delete ctx.h.dirPaths[`${ref.dev}:${ref.ino}`];
  if (nextVersion && n.cur >= 0) {
    n.cur++;
    n.since = ctx.ev.ts;
    n.vpath = path;
    n.deleted = undefined;
  }
  return true;
}

export function addName(ctx: Ctx, n: InodeState, path: string): void {
  if (n.names.includes(path)) return;
  n.names.push(path);
  ctx.h.paths[path] = `${n.dev}:${n.ino}`;
  ctx.out.name({ file: fileIdentity(ctx.host, n.dev, n.ino), host: ctx.host, path, since: ctx.ev.ts, pos: ctx.pos });
}

export function endName(ctx: Ctx, n: InodeState, path: string | undefined): void {
  if (path === undefined) return;
  const i = n.names.indexOf(path);
  if (i < 0) return;
  n.names.splice(i, 1);
  if (ctx.h.paths[path] === `${n.dev}:${n.ino}`) delete ctx.h.paths[path];
  ctx.out.nameEnd(fileIdentity(ctx.host, n.dev, n.ino), path, ctx.ev.ts);
}

/** Make `cur` exist: version 0, the content as first seen now, when nothing was seen before. */
export function firstSeen(ctx: Ctx, n: InodeState): void {
  if (n.cur >= 0) return;
  n.cur = 0;
  n.since = ctx.ev.ts;
  n.vpath = n.names[0];
}

/**
 * Emit the node of version `v` the first time, or an update of it when `attrs` says something
 * new. Label, ts and path stay those of the version's beginning (stores overwrite them on merge).
 */
export function fileVersionNode(ctx: Ctx, n: InodeState, v: number, attrs: Record<string, unknown> = {}): string {
  const id = fileVersionId(ctx.host, n.dev, n.ino, v);
  const first = v === 0 ? !n.v0 : v > n.emitted;
  if (!first && Object.keys(attrs).length === 0) return id;
  const isCur = v === n.cur;
  const path = isCur ? n.vpath : first ? n.names[0] : undefined;
  const shown = path ?? n.vpath ?? n.names[0];
  const label = shown ? shown.slice(shown.lastIndexOf('/') + 1) || shown : `${n.dev}:${n.ino}`;
  ctx.out.node(id, 'file', ctx.host, label, isCur ? n.since ?? ctx.ev.ts : ctx.ev.ts, {
    dev: n.dev, ino: n.ino, version: v, path, type: n.type ?? 'file', target: n.target, ...attrs,
  });
  if (first) {
    if (v === 0) n.v0 = true;
    if (v > n.emitted) n.emitted = v;
  }
  return id;
}

function holdsWriter(ctx: Ctx, proc: ProcState, n: InodeState): boolean {
  for (const e of Object.values(proc.fds)) {
    const d = ctx.h.descs[e.d];
    if (d?.kind === 'file' && d.write && d.dev === n.dev && d.ino === n.ino) return true;
  }
  return false;
}

/** The version a reader opening now reads (null: nothing to read yet). */
export function readVersion(ctx: Ctx, dev: number, ino: number, proc: ProcState): number | null {
  const n = inodeOf(ctx, dev, ino);
  firstSeen(ctx, n);
  if (n.writing && holdsWriter(ctx, proc, n)) return n.cur > 0 ? n.cur - 1 : null;
  return n.cur;
}

/** The version of an executable (exec's `used` edge with role 'exe'). */
export function exeVersion(ctx: Ctx, ref: FileRef): string {
  const n = learn(ctx, ref);
  firstSeen(ctx, n);
  const v = n.writing && n.cur > 0 ? n.cur - 1 : n.cur;
  return fileVersionNode(ctx, n, v);
}

/** A writer opens: join the version being written or begin the next one. */
function beginVersion(ctx: Ctx, n: InodeState, created: boolean): number {
  if (n.writing) return n.cur;
  n.cur = n.cur < 0 ? (created ? 0 : 1) : n.cur + 1;
  n.since = ctx.ev.ts;
  n.vpath = n.names[0];
  n.writing = true;
  n.writers = 0;
  n.gens = dict();
  n.derived = dict();
  n.users = dict();
  n.deleted = undefined;
  fileVersionNode(ctx, n, n.cur);
  return n.cur;
}

/** The last writer closed: the version is complete. */
function endVersion(ctx: Ctx, n: InodeState): void {
  const id = fileVersionNode(ctx, n, n.cur, { closedAt: ctx.ev.ts });
  for (const [img, g] of Object.entries(n.gens)) ctx.out.edge('wasGeneratedBy', id, img, g.ts, g.pos);
  n.writing = false;
  n.writers = 0;
  n.gens = dict();
  n.derived = dict();
}

/** A description for an open of a file (eBPF fd or provfs fh): starts a version when it writes. */
export function openFileDesc(ctx: Ctx, proc: ProcState, ref: FileRef, flags: number, created: boolean): Desc {
  if (created) reborn(ctx, ref);
  const n = learn(ctx, ref);
  const isDir = (flags & (O_DIRECTORY | O_PATH)) !== 0 || n.type === 'dir';
  if (isDir) return newDesc(ctx, { kind: 'dir', read: true, write: false, dev: ref.dev, ino: ref.ino });
  const acc = flags & O_ACCMODE;
  const write = acc !== 0 || (flags & O_TRUNC) !== 0 || created;
  const read = acc !== O_WRONLY && !created && (flags & O_TRUNC) === 0;
  const d = newDesc(ctx, { kind: 'file', read, write, dev: ref.dev, ino: ref.ino });
  if (read) d.ver = readVersion(ctx, ref.dev, ref.ino, proc);
  else if (write && !created && (flags & O_TRUNC) === 0 && !n.writing) {
    // Not truncated: the new version keeps the old content (an append, an in-place write).
    firstSeen(ctx, n);
    d.base = n.cur;
  }
  if (write) {
    d.wver = beginVersion(ctx, n, created);
    n.writers++;
  }
  return d;
}

/** The release rule decided that `img` relates to this file description. */
export function relateFile(ctx: Ctx, img: ImageState, d: Desc, since: number): void {
  if (d.dev === undefined || d.ino === undefined) return;
  const n = inodeOf(ctx, d.dev, d.ino);
  if (d.read && d.ver !== null && d.ver !== undefined) {
    const ownWrite = n.writing && d.ver === n.cur && n.gens[img.id];
    if (!ownWrite) {
      const id = fileVersionNode(ctx, n, d.ver);
      relateOnce(ctx, img, 'used', id, since);
      if (d.ver === n.cur) n.users[img.id] = 1;
    }
  }
  if (d.base !== undefined) relateOnce(ctx, img, 'used', fileVersionNode(ctx, n, d.base), since, { role: 'base' });
  if (d.write && n.writing && d.wver === n.cur && !n.users[img.id]) n.gens[img.id] = { ts: ctx.ev.ts, pos: ctx.pos };
}

/** The last fd to a file description closed. */
export function descEndFile(ctx: Ctx, d: Desc): void {
  if (!d.write || d.dev === undefined || d.ino === undefined) return;
  const n = inodeOf(ctx, d.dev, d.ino);
  if (!n.writing || d.wver !== n.cur) return;
  n.writers--;
  if (n.writers <= 0) endVersion(ctx, n);
}

/**
 * The strict (Bento-prov) rule: the version this writer writes derives from every file version
 * the same process has open for reading now (called at the writer's open and at its close).
 */
export function strictDerive(ctx: Ctx, proc: ProcState, writer: Desc): void {
  if (writer.dev === undefined || writer.ino === undefined) return;
  const n = inodeOf(ctx, writer.dev, writer.ino);
  if (!n.writing || writer.wver !== n.cur) return;
  const to = fileVersionId(ctx.host, n.dev, n.ino, n.cur);
  for (const e of Object.values(proc.fds)) {
    const r = ctx.h.descs[e.d];
    if (!r || r.kind !== 'file' || !r.read || r.ver === null || r.ver === undefined) continue;
    if (r.dev === undefined || r.ino === undefined) continue;
    const rn = inodeOf(ctx, r.dev, r.ino);
    const from = fileVersionId(ctx.host, rn.dev, rn.ino, r.ver);
    if (from === to || n.derived[from]) continue;
    n.derived[from] = 1;
    fileVersionNode(ctx, rn, r.ver);
    ctx.out.edge('wasDerivedFrom', to, from, ctx.ev.ts, ctx.pos, { rule: 'strict' });
  }
}

/** unlink/rmdir of the last name, or a rename over a file that lost its last link. */
export function invalidate(ctx: Ctx, n: InodeState, img: ImageState): void {
  firstSeen(ctx, n);
  const id = fileVersionNode(ctx, n, n.cur, { deleted: true });
  n.deleted = true;
  ctx.out.edge('wasInvalidatedBy', id, img.id, ctx.ev.ts, ctx.pos);
}

/**
 * truncate/ftruncate (a size change). Without an open writer: a new version written by the
 * caller at once. With the caller writing it: to size 0, the version being written keeps
 * nothing of the one before (FUSE without atomic O_TRUNC reports `open(O_TRUNC)` as OPEN
 * without O_TRUNC followed by SETATTR size 0).
 */
export function truncated(ctx: Ctx, n: InodeState, proc: ProcState, size: number): void {
  if (n.writing) {
    if (size !== 0) return;
    for (const e of Object.values(proc.fds)) {
      const d = ctx.h.descs[e.d];
      if (d?.kind === 'file' && d.write && d.dev === n.dev && d.ino === n.ino) d.base = undefined;
    }
    return;
  }
  beginVersion(ctx, n, false);
  n.gens[proc.image.id] = { ts: ctx.ev.ts, pos: ctx.pos };
  endVersion(ctx, n);
}
