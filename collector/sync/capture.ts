/**
 * @module collector/sync/capture
 * Which witness is authoritative for SRC. A file on a provfs mount is seen by provfs (inside
 * the file system) and by eBPF (at the syscall); DESIGN.md makes provfs authoritative for
 * file-system operations on its mounts. Sync uses the events of one witness only, so one
 * operation is never applied twice: provfs when SRC is on a `fuse.provfs*` mount, else eBPF.
 */
import * as fs from 'node:fs';
import type { EventSource } from '../events.js';

/** Undo mountinfo's octal escapes (\040 for a space, …). */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The file-system type of the mount that holds `realPath` (from /proc/self/mountinfo). */
export function fsTypeOf(realPath: string): string | null {
  let text: string;
  try { text = fs.readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return null; }
  let best: { point: string; type: string } | null = null;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || f.length < sep + 2) continue;
    const point = unescape(f[4]!);
    const inside = point === '/' || realPath === point || realPath.startsWith(point + '/');
    // Later lines are mounted over earlier ones: take the longest, then the last.
    if (inside && (!best || point.length >= best.point.length)) best = { point, type: f[sep + 1]! };
  }
  return best?.type ?? null;
}

/** The capture source whose file-system events describe `realPath`. */
export function witnessFor(realPath: string): EventSource {
  const t = fsTypeOf(realPath);
  return t !== null && t.startsWith('fuse') && t.includes('provfs') ? 'provfs' : 'ebpf';
}
