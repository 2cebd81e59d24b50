/**
 * @module collector/join/witness
 * One operation, two witnesses: open and close as provfs (from inside the file system, FUSE
 * OPEN/CREATE/FLUSH, caller known by tid, `fh` set) and eBPF (at the syscall, `fd` set) report
 * them.
 *
 * Reconciliation, exactly:
 * - A device is a provfs device once any provfs record names it.
 * - Namespace ops (create, mkdir, symlink, link, rename, unlink, rmdir, setattr) on a provfs
 *   device are taken from provfs only; eBPF's copies are dropped and counted as
 *   `duplicateWitness` (see namespace.ts). On every other device eBPF's are applied.
 * - An open is one open file description, whichever witness reports it first: the first report
 *   creates the description and begins the file version if it writes; the second report of the
 *   same (process, dev, ino) within {@link PAIR_WINDOW_NS} attaches to it (eBPF adds its fd,
 *   provfs its fh) and is counted as `duplicateWitness` — never a second open, never a second
 *   version. A provfs-first description sits in the fd table under `fh:<dev>:<fh>` until eBPF's
 *   report moves it to its fd.
 * - Closes: once eBPF witnessed a description, eBPF's closes drive it (fd tables know dup and
 *   fork; FUSE FLUSH comes once per close() of any dup and cannot tell the last one) and
 *   provfs's FLUSH is dropped as `duplicateWitness`. A description only provfs saw (eBPF not
 *   running, or its record lost) is closed by the FLUSH of the process holding it.
 * - Processes, fds, pipes and sockets come from eBPF only.
 * An open one witness reported and the other never matched is counted in `singleWitnessOpens`.
 */
import { InputError } from '../../graph/errors.js';
import type { CloseEvent, OpenEvent } from '../events.js';
import { O_CLOEXEC, O_CREAT, O_TRUNC, O_WRONLY, type Ctx, type Desc, type PendingOpen } from './state.js';
import { callerPid, procOf } from './processes.js';
import { closeFds, install, removeFd } from './fds.js';
import { openFileDesc, strictDerive } from './files.js';

/** How far apart (ns) the two witnesses of one open may be. */
export const PAIR_WINDOW_NS = 1_000_000_000;

/** Flags of a FUSE CREATE that reports none: it creates and opens for writing. */
export const CREATE_FLAGS = O_WRONLY | O_CREAT | O_TRUNC;

function takePending(ctx: Ctx, map: Record<string, PendingOpen[]>, key: string): PendingOpen | undefined {
  const q = map[key];
  if (!q) return undefined;
  while (q.length > 0 && q[0].ts < ctx.ev.ts - PAIR_WINDOW_NS) {
    q.shift();
    ctx.stats.singleWitnessOpens++;
  }
  const p = q.shift();
  if (q.length === 0) delete map[key];
  return p;
}

/** A description closed before its second witness came: it will not come. */
export function unpair(ctx: Ctx, d: Desc): void {
  if (d.waitKey === undefined) return;
  for (const map of [ctx.h.waitEbpf, ctx.h.waitProvfs]) {
    const q = map[d.waitKey];
    if (!q) continue;
    const i = q.findIndex((p) => p.d === d.id);
    if (i < 0) continue;
    q.splice(i, 1);
    ctx.stats.singleWitnessOpens++;
    if (q.length === 0) delete map[d.waitKey];
  }
}

/** Drop pending opens older than the window (called now and then so unmatched ones do not pile up). */
export function sweepPending(ctx: Ctx): void {
  for (const map of [ctx.h.waitEbpf, ctx.h.waitProvfs]) {
    for (const [key, q] of Object.entries(map)) {
      while (q.length > 0 && q[0].ts < ctx.ev.ts - PAIR_WINDOW_NS) {
        q.shift();
        ctx.stats.singleWitnessOpens++;
      }
      if (q.length === 0) delete map[key];
    }
  }
}

/** An open from either witness (a provfs CREATE with an fh comes here too, `created` set). */
export function onOpen(ctx: Ctx, ev: OpenEvent): void {
  const pid = callerPid(ctx);
  const proc = procOf(ctx, pid);
  const { dev, ino } = ev.file;
  const key = `${pid}:${dev}:${ino}`;
  if (ev.src === 'provfs') {
    ctx.h.provfsDevs[String(dev)] = 1;
    const first = takePending(ctx, ctx.h.waitProvfs, key);
    const seen = first && ctx.h.descs[first.d];
    if (seen) {
      ctx.stats.duplicateWitness++;
      if (ev.fh !== undefined) {
        seen.fh = ev.fh;
        ctx.h.fhs[`${dev}:${ev.fh}`] = seen.id;
      }
      return;
    }
    const d = openFileDesc(ctx, proc, ev.file, ev.flags, Boolean(ev.created));
    const fh = ev.fh ?? -ctx.h.nextDesc;
    d.fh = fh;
    ctx.h.fhs[`${dev}:${fh}`] = d.id;
    install(ctx, proc, `fh:${dev}:${fh}`, d.id, false);
    (ctx.h.waitEbpf[key] ??= []).push({ d: d.id, ts: ev.ts });
    d.waitKey = key;
    if (d.write && ctx.strict) strictDerive(ctx, proc, d);
    return;
  }
  if (ev.fd === undefined) throw new InputError('eBPF open without fd');
  if (ev.fd < 0) throw new InputError('open with a negative fd (a failed call)');
  const cloexec = (ev.flags & O_CLOEXEC) !== 0;
  const first = ctx.h.provfsDevs[String(dev)] ? takePending(ctx, ctx.h.waitEbpf, key) : undefined;
  const seen = first && ctx.h.descs[first.d];
  if (seen) {
    ctx.stats.duplicateWitness++;
    seen.ebpf = true;
    // The syscall's flags are the real ones: FUSE drops O_TRUNC from OPEN (no atomic O_TRUNC).
    if ((ev.flags & O_TRUNC) !== 0) seen.base = undefined;
    // Move the provfs-only hold to the fd eBPF names, without a release (it is the same open).
    const vkey = `fh:${dev}:${seen.fh}`;
    if (proc.fds[vkey]?.d === seen.id) {
      delete proc.fds[vkey];
      seen.refs--;
      seen.holders[String(pid)]--;
      if (seen.holders[String(pid)] <= 0) delete seen.holders[String(pid)];
    }
    install(ctx, proc, String(ev.fd), seen.id, cloexec);
    return;
  }
  const d = openFileDesc(ctx, proc, ev.file, ev.flags, Boolean(ev.created));
  d.ebpf = true;
  install(ctx, proc, String(ev.fd), d.id, cloexec);
  if (ctx.h.provfsDevs[String(dev)]) {
    (ctx.h.waitProvfs[key] ??= []).push({ d: d.id, ts: ev.ts });
    d.waitKey = key;
  }
  if (d.write && ctx.strict) strictDerive(ctx, proc, d);
}

/** close/close_range (eBPF) or FUSE FLUSH (provfs). */
export function onClose(ctx: Ctx, ev: CloseEvent): void {
  const pid = callerPid(ctx);
  if (ev.src !== 'provfs') {
    if (ev.fd === undefined) throw new InputError('eBPF close without fd');
    closeFds(ctx, procOf(ctx, pid), ev.fd, ev.fdMax);
    return;
  }
  if (ev.fh === undefined || !ev.file) throw new InputError('provfs close without file and fh');
  ctx.h.provfsDevs[String(ev.file.dev)] = 1;
  const fkey = `${ev.file.dev}:${ev.fh}`;
  const id = ctx.h.fhs[fkey];
  const d = id === undefined ? undefined : ctx.h.descs[id];
  if (!d || d.ebpf) {
    // eBPF witnessed this open and drives its closes (or it is already closed).
    ctx.stats.duplicateWitness++;
    if (!d) delete ctx.h.fhs[fkey];
    return;
  }
  const proc = ctx.h.procs[String(pid)];
  const vkey = `fh:${ev.file.dev}:${ev.fh}`;
  if (proc?.fds[vkey]) removeFd(ctx, proc, vkey);
  else {
    // FLUSH from a process we do not see holding it: close the first holder's copy.
    const holder = Object.keys(d.holders).map((p) => ctx.h.procs[p]).find((p) => p?.fds[vkey]);
    if (holder) removeFd(ctx, holder, vkey);
    else ctx.stats.unknownFds++;
  }
  if (!ctx.h.descs[d.id]) delete ctx.h.fhs[fkey];
}
