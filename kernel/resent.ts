/**
 * @module kernel/resent
 * Exactly-once records for requests a crash left half done. The kernel resends what the dead
 * daemon read but never answered (FUSE_NOTIFY_RESEND); some of those it had already carried out
 * and recorded — the record goes into the ring before the reply is written, and the kill landed
 * in between. The new daemon carries such a request out again (kernel/dispatch: a CREATE with
 * O_EXCL is retried without it) and would record it a second time. So while it serves a resent
 * request, each record it makes is first looked up among the dead daemon's last records (its
 * ring file, read once, lazily: only a takeover with a resent request pays for it): the same
 * operation, by the same thread, on the same file and name, was recorded already and is not
 * recorded again. A request the dead daemon carried out but had not yet recorded is recorded now.
 */
import { statSync } from 'node:fs';
import * as libc from './libc.js';
import { EventRing } from './eventring.js';

/** What makes two records the same operation: op, thread, file identity and name. */
export function recordKey(json: string): string {
  try {
    const e = JSON.parse(json) as { op?: string; tid?: number; file?: { dev?: number; ino?: number | string; name?: string; parent?: number | string } };
    return `${e.op}|${e.tid}|${e.file?.dev}:${e.file?.ino}|${e.file?.parent}|${e.file?.name}`;
  } catch {
    return '';
  }
}

/** How many of the dead daemon's newest records are compared (a resent request is among its last). */
const TAIL = 256;

/** The keys of the last records in the ring file at `path` (none when it cannot be read). */
export function deadRecordKeys(path: string): Set<string> {
  const out = new Set<string>();
  let ring: EventRing;
  try {
    const fd = libc.open(path, libc.O.RDWR);
    try { ring = EventRing.map(fd, statSync(path).size, false); } finally { libc.close(fd); }
  } catch {
    return out;
  }
  try {
    const dec = new TextDecoder();
    const { recs } = ring.unjournaled();
    for (const r of recs.slice(-TAIL)) out.add(recordKey(dec.decode(r.data)));
  } finally {
    ring.unmap();
  }
  return out;
}

/**
 * Fault injection for tests (PROV_PROVFS_CRASH_AFTER_RECORD=NAME): the first daemon of a mount
 * that records an operation on a file named NAME kills itself right after the record is in its
 * ring and before the reply is written — the window this module is about. Once per mount (a
 * marker file beside the node log); never set outside tests.
 */
export function crashAfterRecordHook(nodeLog: string | undefined): ((json: string) => void) | null {
  const name = process.env.PROV_PROVFS_CRASH_AFTER_RECORD;
  if (!name || !nodeLog) return null;
  const needle = `"name":${JSON.stringify(name)}`;
  return (json) => {
    if (!json.includes(needle)) return;
    try {
      libc.close(libc.open(`${nodeLog}.crashed`, libc.O.WRONLY | libc.O.CREAT | libc.O.EXCL, 0o600));
    } catch {
      return; // crashed once already
    }
    process.kill(process.pid, 'SIGKILL');
  };
}
