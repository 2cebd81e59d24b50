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

interface MountLine { point: string; type: string; source: string }

/** The mount that holds `realPath` (from /proc/self/mountinfo). */
function mountOf(realPath: string): MountLine | null {
  let text: string;
  try { text = fs.readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return null; }
  let best: MountLine | null = null;
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0 || f.length < sep + 3) continue;
    const point = unescape(f[4]!);
    const inside = point === '/' || realPath === point || realPath.startsWith(point + '/');
    // Later lines are mounted over earlier ones: take the longest, then the last.
    if (inside && (!best || point.length >= best.point.length)) best = { point, type: f[sep + 1]!, source: unescape(f[sep + 2]!) };
  }
  return best;
}

/** The file-system type of the mount that holds `realPath`. */
export function fsTypeOf(realPath: string): string | null {
  return mountOf(realPath)?.type ?? null;
}

/**
 * Where to read SRC's contents from. provfs is a passthrough over its backing directory (the
 * mount's source): reading there gives the same bytes and metadata without a FUSE round trip
 * per call. Events still name the mount's paths. Anywhere else: SRC itself.
 */
export function readRootFor(realPath: string): string {
  const m = mountOf(realPath);
  if (!m || !m.type.startsWith('fuse') || !m.type.includes('provfs') || !m.source.startsWith('/')) return realPath;
  const backing = m.source + realPath.slice(m.point === '/' ? 0 : m.point.length);
  try {
    const a = fs.statSync(realPath), b = fs.statSync(backing);
    // provfs reports the backing inode numbers: the same directory, seen both ways.
    if (b.isDirectory() && a.ino === b.ino) return fs.realpathSync(backing);
  } catch { /* fall back to the mount */ }
  return realPath;
}

/** The capture source whose file-system events describe `realPath`. */
export function witnessFor(realPath: string): EventSource {
  const t = fsTypeOf(realPath);
  return t !== null && t.startsWith('fuse') && t.includes('provfs') ? 'provfs' : 'ebpf';
}
