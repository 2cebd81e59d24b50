/**
 * @module ebpf/start-token
 * The start token of a resident rebuild server (cli/fast-start.c's fast start, collector/rebuild/start).
 * While the server is armed and idle (ebpf/warm) it leaves a token file (0600, in its own 0700
 * runtime directory) naming the pinned attach and the journal; a native client may take it
 * (rename: exactly one can) and then track itself in the pinned maps and start its first
 * commands before the server has read its request. From the moment the token is gone until that
 * client's request has been served, nothing may drop what is in the ring as "an earlier
 * rebuild's" (ebpf/warm's takeArmed and arm ask {@link selfStartPending}), the attach is not given
 * away (another rebuild asking attaches privately), and other requests wait for that one
 * (cli/rebuild-server); a client that took the token and never asked releases all this after
 * {@link START_TOKEN_MS}.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { logger } from '../collector/log.js';
import { mark } from '../collector/rebuild/trace.js';

const log = logger('ebpf');

let tokenPath: string | null = null;
/** Id of the token out now (written for the current arming), or null. */
let tokenOut: string | null = null;
/** A token a client took: its id, when that was seen, and whether requests stopped waiting for it. */
let tokenTaken: { id: string; since: number; abandoned?: boolean } | null = null;
/** How long a taken token whose request never came keeps records from being dropped. */
export const START_TOKEN_MS = 60_000;

/** Where a resident process leaves its start token (null: none). */
export function setStartToken(path: string | null): void {
  if (!path) reclaimToken();
  // One left by a predecessor (killed before it took its token back) names nothing armed now.
  else rmSync(path, { force: true });
  tokenPath = path;
}

/** Leave a token for the attach armed at `pinDir` (nothing when no token path is set). */
export function writeToken(pinDir: string, journalDir: string, stream: string): void {
  if (!tokenPath) return;
  const id = `${process.pid}-${Date.now()}-${Math.floor(Math.random() * 1e9)}`;
  const tmp = `${tokenPath}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, ['PT1', id, pinDir, journalDir, stream].map((x) => `${x}\0`).join(''), { mode: 0o600 });
    renameSync(tmp, tokenPath);
    tokenOut = id;
  } catch (e) {
    log.warn(`could not leave the start token ${tokenPath}: ${(e as Error).message}`);
  }
}

/** Whether a token is out (written, not taken back or found taken yet). */
export function tokenIsOut(): boolean {
  return tokenOut !== null;
}

/** Take the token back: true when it was still there (or none was out); false when a client took it. */
export function reclaimToken(): boolean {
  const id = tokenOut;
  if (!tokenPath || id === null) return true;
  tokenOut = null;
  try {
    renameSync(tokenPath, `${tokenPath}.${process.pid}.back`);
    rmSync(`${tokenPath}.${process.pid}.back`, { force: true });
    return true;
  } catch {
    tokenTaken = { id, since: Date.now() };
    mark('warm: start token taken by a client');
    return false;
  }
}

/**
 * Before serving a request whose client started nothing itself: take the start token back so no
 * client can take it while that request runs. False when a client has taken it and its request
 * has not been served yet (that one goes first).
 */
export function takeBackStartToken(): boolean {
  const back = reclaimToken();
  return (back && !selfStartPending()) || tokenTaken?.abandoned === true;
}

/**
 * A request waited long enough for the client that took the token (killed, or its server
 * connection failed): requests no longer wait for it; its records are still kept from being
 * dropped until it expires.
 */
export function stopWaitingForSelfStart(): void {
  if (tokenTaken) tokenTaken.abandoned = true;
}

/** Whether a client took the token and its request has not been served yet. */
export function selfStartPending(): boolean {
  if (tokenTaken && Date.now() - tokenTaken.since > START_TOKEN_MS) {
    log.warn(`a client took the start token ${tokenTaken.id} and never asked; its records are no longer kept from being dropped`);
    tokenTaken = null;
  }
  return tokenTaken !== null;
}

/** The request of the client that took token `id` has been served. */
export function selfStartServed(id: string): void {
  if (tokenTaken?.id === id) tokenTaken = null;
}
