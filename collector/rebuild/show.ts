/**
 * @module collector/rebuild/show
 * A recorded argv as one line a person can read and paste into a shell: plain words as they are,
 * anything else JSON-quoted. Shown by `prov rebuild` (plans, progress, failures), by the server
 * and by the native client that runs the commands (collector/rebuild/remote).
 */

/** `argv` as one readable line. */
export function showArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
}
