/**
 * @module collector/rebuild/quick
 * The no-op shortcut: when a rebuild found every command of a target up to date (each one
 * stamped, so the decision rested on stamps and file status alone), it writes a small file with
 * the status (inode, size, mtime) of every file those commands read or wrote, and the store's
 * fingerprint the plan belongs to. While the store's files and every one of those files are as
 * they were, the same decision follows again: `prov rebuild` answers "up to date" from this file
 * without loading the stamps, the plan or the decision code. Any difference, and the full path
 * decides as usual.
 *
 * The same content is also written NUL-separated next to it (`<name>.q`, {@link encodeQ}) for
 * the native client (cli/prov-client.c), which checks it itself and answers a no-op without
 * asking the rebuild server: "PQ1", target, storeFiles, commands, the number of hazard lines,
 * each line, the number of files, then per file its path and either inode, size and mtime (ns)
 * or "-" (it did not exist) — every field followed by a NUL.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** A file as the decision saw it, or [path] alone when it did not exist (a temporary). */
type Entry = [path: string, ino: number, size: number, mtimeNs: string] | [path: string];

export interface QuickStamp {
  version: 1;
  target: string;
  /** collector/rebuild/fingerprint of the store the plan was made from. */
  storeFiles: string;
  /** How many recorded commands the plan has (for the message). */
  commands: number;
  /** Hazard lines of that decision (printed again: hazards are never silenced). */
  hazards: string[];
  files: Entry[];
}

/** A short, stable name for a target path (a collision only costs the shortcut). */
function nameOf(target: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < target.length; i++) h = Math.imul(h ^ target.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

/** Where the shortcut for `target` lives under prov's home. */
export function quickPath(home: string, target: string): string {
  return join(home, 'rebuild', 'quick', `${nameOf(target)}.json`);
}

/** The shortcut when it still holds (store and every file unchanged), else null. */
export function quickCheck(path: string, target: string, storeFiles: string): QuickStamp | null {
  let q: QuickStamp;
  try { q = JSON.parse(readFileSync(path, 'utf8')) as QuickStamp; } catch { return null; }
  if (q?.version !== 1 || q.target !== target || q.storeFiles !== storeFiles || !Array.isArray(q.files)) return null;
  for (const e of q.files) {
    const st = statSync(e[0], { bigint: true, throwIfNoEntry: false });
    if (e.length === 1) {
      if (st) return null;
      continue;
    }
    if (!st || Number(st.ino) !== e[1] || Number(st.size) !== e[2] || String(st.mtimeNs) !== e[3]) return null;
  }
  return q;
}

type StatOf = (path: string) => { ino: bigint | number; size: bigint | number; mtimeNs: bigint } | null;

/** The shortcut for a decision that found all `commands` up to date, from the status it used. */
export function quickOf(target: string, storeFiles: string, commands: Array<{ inputs: Array<{ path: string }>; outputs: Array<{ path: string }> }>, statOf: StatOf, hazards: string[]): QuickStamp {
  const seen = new Set<string>();
  const files: Entry[] = [];
  for (const c of commands) {
    for (const f of [...c.inputs, ...c.outputs]) {
      if (seen.has(f.path)) continue;
      seen.add(f.path);
      const st = statOf(f.path);
      files.push(st ? [f.path, Number(st.ino), Number(st.size), String(st.mtimeNs)] : [f.path]);
    }
  }
  return { version: 1, target, storeFiles, commands: commands.length, hazards, files };
}

/** The native client's form of a shortcut (see the module comment). */
export function encodeQ(q: QuickStamp): Buffer {
  const f: string[] = ['PQ1', q.target, q.storeFiles, String(q.commands), String(q.hazards.length), ...q.hazards, String(q.files.length)];
  for (const e of q.files) f.push(...(e.length === 1 ? [e[0], '-'] : [e[0], String(e[1]), String(e[2]), e[3]]));
  // A field holding a NUL cannot be written in this form: the client then finds no file and asks the server.
  if (f.some((x) => x.includes('\0'))) return Buffer.alloc(0);
  return Buffer.from(f.map((x) => `${x}\0`).join(''));
}

export function writeQuick(path: string, q: QuickStamp): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const qPath = path.replace(/\.json$/, '.q');
  const bin = encodeQ(q);
  for (const [p, body] of [[path, JSON.stringify(q)], [qPath, bin]] as const) {
    if (p === qPath && (bin.length === 0 || p === path)) { rmSync(qPath, { force: true }); continue; }
    const tmp = `${p}.${process.pid}.tmp`;
    writeFileSync(tmp, body, { mode: 0o600 });
    renameSync(tmp, p);
  }
}
