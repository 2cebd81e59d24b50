/**
 * @module collector/join/processes
 * The process table: which image (PROV activity) a pid runs now, threads mapped to their
 * thread group, fork/exec/exit, pid reuse, and images created lazily for processes that were
 * running before capture started.
 *
 * A fork starts an image `proc:<host>:<child>:<forkTs>` informed by the parent's image; an exec
 * ends the current image and starts `proc:<host>:<pid>:<execTs>` informed by it. A fork of a
 * pid the table still holds means the old process's exit was lost: the old entry is ended
 * there (pid reuse) and the new one starts fresh.
 */
import type { ExecEvent, ExitEvent, ForkEvent } from '../events.js';
import { processId } from '../../graph/model.js';
import { dict, type Ctx, type ImageState, type ProcState } from './state.js';
import { install, releaseAll, removeFd } from './fds.js';
import { exeVersion } from './files.js';

/** How many hand-over steps an fd remembers (see the hand-off rule in fds.ts). */
const CHAIN_MAX = 8;

/** The thread group of the event's caller: `pid` when set, else the tid mapped through the table (FUSE knows only the tid). */
export function callerPid(ctx: Ctx): number {
  const ev = ctx.ev;
  if (ev.pid > 0) return ev.pid;
  const tgid = ctx.h.tids[String(ev.tid)];
  if (tgid !== undefined) return tgid;
  if (!ctx.h.procs[String(ev.tid)]) ctx.stats.unknownTids++;
  return ev.tid;
}

/** The live process `pid`, given a lazy image (running before capture, or its fork was lost) when unknown. */
export function procOf(ctx: Ctx, pid: number): ProcState {
  const known = ctx.h.procs[String(pid)];
  if (known) return known;
  ctx.stats.unknownPids++;
  const ts = ctx.ev.ts;
  const image: ImageState = {
    id: processId(ctx.host, pid, ts), pid, start: ts, kind: 'lazy', comm: ctx.ev.comm, acq: dict(), rel: dict(),
  };
  const proc: ProcState = { pid, image, fds: dict(), threads: [] };
  ctx.h.procs[String(pid)] = proc;
  emitImage(ctx, image, { lazy: true, ppid: ctx.ev.pid === pid ? ctx.ev.ppid : undefined });
  return proc;
}

/**
 * Emit (or update) an image's node. Attribute `image` says how it began: 'exec' (ran a
 * program: what rebuild re-runs), 'fork' (a copy of its parent that has not exec'd), 'lazy'
 * (running before capture).
 */
export function emitImage(ctx: Ctx, img: ImageState, extra: Record<string, unknown> = {}): void {
  const label = img.argv?.length ? img.argv.join(' ').slice(0, 120) : img.comm ?? `pid ${img.pid}`;
  ctx.out.node(img.id, 'process', ctx.host, label, img.start, {
    pid: img.pid, start: img.start, comm: img.comm, argv: img.argv, exe: img.exe, cwd: img.cwd,
    uid: img.uid, gid: img.gid, image: img.kind, ...extra,
  });
}

/** Emit a relation of an image once per (kind, other end) over the image's life. */
export function relateOnce(
  ctx: Ctx, img: ImageState, kind: 'used' | 'wasGeneratedBy', entity: string, ts: number, attrs?: Record<string, unknown>,
): boolean {
  const key = `${kind}|${entity}`;
  if (img.rel[key]) return false;
  img.rel[key] = 1;
  if (kind === 'used') ctx.out.edge('used', img.id, entity, ts, ctx.pos, attrs);
  else ctx.out.edge('wasGeneratedBy', entity, img.id, ts, ctx.pos, attrs);
  return true;
}

export function onFork(ctx: Ctx, ev: ForkEvent): void {
  const parent = procOf(ctx, callerPid(ctx));
  if (ev.thread) {
    if (ev.childTid !== parent.pid) {
      ctx.h.tids[String(ev.childTid)] = parent.pid;
      parent.threads.push(ev.childTid);
    }
    return;
  }
  const old = ctx.h.procs[String(ev.child)];
  if (old) {
    ctx.stats.pidReused++;
    endProcess(ctx, old, { lostExit: true });
  }
  const p = parent.image;
  const image: ImageState = {
    id: processId(ctx.host, ev.child, ev.ts), pid: ev.child, start: ev.ts, kind: 'fork',
    comm: p.comm ?? ev.comm, argv: p.argv, exe: p.exe, cwd: p.cwd, uid: p.uid, gid: p.gid, acq: dict(), rel: dict(),
  };
  const child: ProcState = { pid: ev.child, image, fds: dict(), threads: [] };
  ctx.h.procs[String(ev.child)] = child;
  if (ev.childTid !== ev.child) {
    ctx.h.tids[String(ev.childTid)] = ev.child;
    child.threads.push(ev.childTid);
  }
  emitImage(ctx, image, { ppid: parent.pid });
  ctx.out.edge('wasInformedBy', image.id, p.id, ev.ts, ctx.pos, { via: 'fork' });
  for (const [key, entry] of Object.entries(parent.fds)) {
    const given = p.acq[entry.d];
    install(ctx, child, key, entry.d, entry.cloexec, {
      ts: ev.ts, via: 'fork', chain: [p.id, ...(given?.chain ?? [])].slice(0, CHAIN_MAX),
    });
  }
}

export function onExec(ctx: Ctx, ev: ExecEvent): void {
  const pid = callerPid(ctx);
  const known = ctx.h.procs[String(pid)];
  if (!known) ctx.stats.unknownPids++;
  // First sight of a pid at its exec: the image before is unknown, the new one has no informer.
  const proc = known ?? (ctx.h.procs[String(pid)] = { pid, image: { id: '', pid, start: ev.ts, kind: 'lazy', acq: dict(), rel: dict() }, fds: dict(), threads: [] });
  const prev = proc.image;
  // close-on-exec: the old image lets these go (same rules as any close).
  for (const [key, entry] of Object.entries(proc.fds)) if (entry.cloexec) removeFd(ctx, proc, key, true);
  const image: ImageState = {
    id: processId(ctx.host, proc.pid, ev.ts), pid: proc.pid, start: ev.ts, kind: 'exec',
    comm: ev.comm ?? prev.comm, argv: ev.argv, exe: ev.exe?.path ?? ev.filename, cwd: ev.cwd ?? prev.cwd,
    uid: ev.uid, gid: ev.gid, acq: dict(), rel: dict(),
  };
  // fds that survive exec pass to the new image: the old one handed them on, it did not use them.
  for (const [d, a] of Object.entries(prev.acq)) image.acq[d] = { ts: ev.ts, via: 'exec', chain: a.chain };
  proc.image = image;
  forgetThreads(ctx, proc); // exec leaves one thread
  if (known) emitImage(ctx, prev, { end: ev.ts });
  let exeFile: string | undefined;
  if (ev.exe && Number.isInteger(ev.exe.dev) && Number.isInteger(ev.exe.ino) && ev.exe.ino > 0) {
    exeFile = exeVersion(ctx, ev.exe);
  }
  emitImage(ctx, image, { env: ev.env, ppid: ev.ppid, exeFile, argvTruncated: ev.argvTruncated, envTruncated: ev.envTruncated });
  if (known) ctx.out.edge('wasInformedBy', image.id, prev.id, ev.ts, ctx.pos, { via: 'exec' });
  if (exeFile) ctx.out.edge('used', image.id, exeFile, ev.ts, ctx.pos, { role: 'exe' });
  const user = `user:${ctx.host}:${ev.uid}`;
  if (!ctx.h.users[String(ev.uid)]) {
    ctx.h.users[String(ev.uid)] = 1;
    ctx.out.node(user, 'user', ctx.host, `uid ${ev.uid}`, ev.ts, { uid: ev.uid });
  }
  ctx.out.edge('wasAssociatedWith', image.id, user, ev.ts, ctx.pos);
}

export function onExit(ctx: Ctx, ev: ExitEvent): void {
  const pid = callerPid(ctx);
  if (!ev.group) {
    if (ev.tid !== pid) {
      delete ctx.h.tids[String(ev.tid)];
      const proc = ctx.h.procs[String(pid)];
      if (proc) proc.threads = proc.threads.filter((t) => t !== ev.tid);
    }
    return;
  }
  const proc = ctx.h.procs[String(pid)];
  if (!proc) {
    ctx.stats.unknownPids++;
    return;
  }
  endProcess(ctx, proc, { exitCode: ev.code });
}

/** The process is gone: its fds close (the image may relate to what it still held), its image ends. */
function endProcess(ctx: Ctx, proc: ProcState, extra: Record<string, unknown>): void {
  releaseAll(ctx, proc);
  emitImage(ctx, proc.image, { end: ctx.ev.ts, ...extra });
  delete ctx.h.procs[String(proc.pid)];
  forgetThreads(ctx, proc);
}

function forgetThreads(ctx: Ctx, proc: ProcState): void {
  for (const tid of proc.threads) if (ctx.h.tids[String(tid)] === proc.pid) delete ctx.h.tids[String(tid)];
  proc.threads = [];
}
