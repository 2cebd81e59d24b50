/**
 * @module collector/rebuild/start
 * The start file: what the native client needs to start a rebuild's first commands itself,
 * before the rebuild server has even read the request (cli/client-run.c `fast_start`). Written
 * with the no-op shortcut (collector/rebuild/quick) when a rebuild found the target up to date:
 * for each command that depends on no planned command and reads nothing one writes (what
 * decide's `firstStartable` looks among first), latest first, its argv, environment and working
 * directory and the stamp of every input. A command with an input that no longer matches its
 * stamp (inode, size and mtime differ, and the size or the SHA-256 does) is stale on its own
 * account, whatever the rest of the plan decides — decide gives the same reason — so the client
 * may start it at once; the server, asked next, decides the rest while it runs.
 *
 * Only commands the client could run as they are recorded go in: run as the server's user, argv
 * whole, every input but temporaries stamped by the current run's stamp.
 * Format (`<name>.s` beside `<name>.q`, each field followed by a NUL): "PS1", target, the store
 * fingerprint, the number of commands, then per command: run id, exe, cwd, the argv as shown,
 * argc, argv…, envc, env…, the number of inputs, per input its path, inode, size, mtime (ns) and
 * SHA-256 ("-": not hashed, over the hash limit: any other inode, size or mtime is a change, as
 * decide's stamp check has it) — or four "-" for a temporary (deleted in the record): decide ignores it while it is
 * missing, and the client asks the server when it is not.
 */
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Plan } from './plan.js';
import type { StampFile } from './stamp.js';
import { envpFor, identityFor } from './run.js';
import { showArgv } from './show.js';

/** Where the start file for a target lives: beside its no-op shortcut (`quickPath`, `.json`). */
export function startPathOf(quickJsonPath: string): string {
  return quickJsonPath.replace(/\.json$/, '.s');
}

/** The start file's content for `plan` with `stamps` (null: no command qualifies). */
export function encodeStart(target: string, storeFiles: string, plan: Plan, stamps: StampFile): Buffer | null {
  const written = new Set<string>();
  for (const c of plan.commands) for (const o of c.outputs) written.add(o.path);
  const fields: string[] = [];
  let n = 0;
  for (let k = plan.commands.length - 1; k >= 0; k--) {
    const c = plan.commands[k]!;
    if (c.deps.length > 0 || c.argvTruncated || c.inputs.some((i) => written.has(i.path))) continue;
    try { if (identityFor(c).uid !== undefined) continue; } catch { continue; }
    const st = stamps.commands[c.key];
    if (st?.run !== c.run) continue;
    // A temporary (deleted in the record, a compiler's /tmp/cc*.s) counts only when it exists again.
    const inputs = c.inputs.map((i) => [i.path, i.deleted ? null : st.files[i.path]] as const);
    if (inputs.length === 0 || c.inputs.some((i) => !i.deleted && !st.files[i.path])) continue;
    const argv = [c.argv[0] ?? c.exe, ...c.argv.slice(1)];
    const envp = envpFor(c);
    fields.push(c.run, c.exe, c.cwd, showArgv(c.argv), String(argv.length), ...argv, String(envp.length), ...envp, String(inputs.length));
    for (const [path, s] of inputs) fields.push(...(s ? [path, String(s.ino), String(s.size), s.mtime, s.hash ?? '-'] : [path, '-', '-', '-', '-']));
    n++;
  }
  const all = ['PS1', target, storeFiles, String(n), ...fields];
  if (n === 0 || all.some((x) => x.includes('\0'))) return null;
  return Buffer.from(all.map((x) => `${x}\0`).join(''));
}

/** Write (or, with nothing to start, remove) the start file beside the shortcut at `quickJsonPath`. */
export function writeStart(quickJsonPath: string, body: Buffer | null): void {
  const path = startPathOf(quickJsonPath);
  if (!body) { rmSync(path, { force: true }); return; }
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, body, { mode: 0o600 });
  renameSync(tmp, path);
}
