/**
 * @module collector/join/namespace
 * Namespace operations: create, mkdir, symlink, link, rename, unlink, rmdir, setattr. They
 * change names (NameRecord / nameEnds), not identity; losing the last link invalidates the
 * current version (`wasInvalidatedBy` the caller's image). On a device provfs reports, only
 * provfs's record of these is applied (see witness.ts for the whole reconciliation).
 */
import { InputError } from '../../graph/errors.js';
import type {
  CreateEvent, LinkEvent, MkdirEvent, ProvEvent, RenameEvent, RmdirEvent, SetattrEvent, SymlinkEvent, UnlinkEvent,
} from '../events.js';
import { O_CREAT, type Ctx } from './state.js';
import { callerPid, procOf } from './processes.js';
import { addName, endName, fileVersionNode, firstSeen, inodeOf, invalidate, learn, pathOf, reborn, resolveIno, truncated } from './files.js';
import { CREATE_FLAGS, onOpen } from './witness.js';

type NsEvent = CreateEvent | MkdirEvent | SymlinkEvent | LinkEvent | RenameEvent | UnlinkEvent | RmdirEvent | SetattrEvent;

/** False (and counted) when this is eBPF's copy of an op on a device provfs reports. */
function authoritative(ctx: Ctx, ev: NsEvent): boolean {
  const dev = String(ev.file.dev);
  if (ev.src === 'provfs') {
    ctx.h.provfsDevs[dev] = 1;
    return true;
  }
  if (ctx.h.provfsDevs[dev]) {
    ctx.stats.duplicateWitness++;
    return false;
  }
  return true;
}

export function onNamespace(ctx: Ctx, ev: NsEvent): void {
  if (!authoritative(ctx, ev)) return;
  const img = () => procOf(ctx, callerPid(ctx)).image;
  switch (ev.op) {
    case 'create': {
      reborn(ctx, ev.file);
      learn(ctx, { ...ev.file, type: ev.file.type ?? 0o100000 });
      if (ev.fh !== undefined) {
        // FUSE CREATE is create + open in one request.
        const open: ProvEvent = {
          ...ev, op: 'open', file: ev.file, flags: (ev.flags ?? CREATE_FLAGS) | O_CREAT, fh: ev.fh, created: true,
        };
        onOpen(ctx, open);
      }
      return;
    }
    case 'mkdir':
    case 'symlink': {
      reborn(ctx, ev.file, true);
      const n = learn(ctx, { ...ev.file, type: ev.file.type ?? (ev.op === 'mkdir' ? 0o040000 : 0o120000) });
      if (ev.op === 'symlink') n.target = ev.target;
      if (ev.op === 'mkdir') {
        const p = pathOf(ctx, ev.file.dev, ev.file);
        if (p !== undefined) ctx.h.dirPaths[`${ev.file.dev}:${ev.file.ino}`] = p;
      }
      firstSeen(ctx, n);
      fileVersionNode(ctx, n, n.cur, ev.op === 'symlink' ? { target: ev.target } : {});
      return;
    }
    case 'link':
      learn(ctx, ev.file, resolveIno(ctx, ev.file) ?? ev.file.ino);
      return;
    case 'rename': {
      const ino = resolveIno(ctx, ev.file);
      if (ino === undefined) throw new InputError('rename of an inode that cannot be resolved');
      const n = inodeOf(ctx, ev.file.dev, ino);
      const fromPath = pathOf(ctx, ev.file.dev, ev.from);
      const toPath = pathOf(ctx, ev.file.dev, ev.file);
      const exchange = (ev.flags & 2) !== 0;
      const ow = ev.overwritten;
      const owIno = ow ? resolveIno(ctx, ow) : undefined;
      if (ow && owIno !== undefined && owIno !== ino) {
        const o = inodeOf(ctx, ow.dev, owIno);
        endName(ctx, o, toPath);
        if (exchange && fromPath !== undefined) addName(ctx, o, fromPath);
        if (!exchange && ev.overwrittenDeleted) invalidate(ctx, o, img());
      }
      endName(ctx, n, fromPath);
      if (ev.from.parent !== undefined && ev.from.name !== undefined) {
        const dkey = `${ev.file.dev}:${ev.from.parent}:${ev.from.name}`;
        if (ctx.h.dentries[dkey] === ino) delete ctx.h.dentries[dkey];
      }
      learn(ctx, ev.file, ino);
      if (n.type === 'dir' && toPath !== undefined) {
        ctx.h.dirPaths[`${ev.file.dev}:${ino}`] = toPath;
        if (fromPath !== undefined && fromPath !== toPath) moveTree(ctx, ev.file.dev, fromPath, toPath);
      }
      return;
    }
    case 'unlink':
    case 'rmdir': {
      const ino = resolveIno(ctx, ev.file);
      if (ino === undefined) throw new InputError(`${ev.op} of an inode that cannot be resolved`);
      const n = inodeOf(ctx, ev.file.dev, ino);
      endName(ctx, n, pathOf(ctx, ev.file.dev, ev.file));
      if (ev.file.parent !== undefined && ev.file.name !== undefined) delete ctx.h.dentries[`${ev.file.dev}:${ev.file.parent}:${ev.file.name}`];
      if (ev.op === 'rmdir' || ev.deleted) invalidate(ctx, n, img());
      if (ev.op === 'rmdir') delete ctx.h.dirPaths[`${ev.file.dev}:${ino}`];
      return;
    }
    case 'setattr': {
      const ino = resolveIno(ctx, ev.file);
      if (ino === undefined) throw new InputError('setattr of an inode that cannot be resolved');
      const n = learn(ctx, ev.file, ino);
      if (ev.size !== undefined) truncated(ctx, n, procOf(ctx, callerPid(ctx)), ev.size);
      return;
    }
  }
}

/**
 * A directory moved: every name known below it changes too (names are absolute paths). This
 * scans the known names once per directory rename, which is rare next to file operations.
 */
function moveTree(ctx: Ctx, dev: number, from: string, to: string): void {
  const prefix = from + '/';
  const moved: Array<[string, string]> = [];
  for (const [path, key] of Object.entries(ctx.h.paths)) {
    if (path.startsWith(prefix) && key.startsWith(`${dev}:`)) moved.push([path, key]);
  }
  for (const [path, key] of moved) {
    const n = ctx.h.inodes[key];
    if (!n) continue;
    const next = to + path.slice(from.length);
    endName(ctx, n, path);
    addName(ctx, n, next);
    if (n.type === 'dir') ctx.h.dirPaths[key] = next;
  }
}
