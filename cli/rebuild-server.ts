/**
 * @module cli/rebuild-server
 * `prov rebuild-server`: a resident `prov rebuild`, as Bazel keeps a server. A command-line
 * rebuild spends most of its time before its commands start: node's start-up, loading the
 * modules, loading koffi and libbpf for the warm capture. This process pays that once and then
 * answers rebuild requests from the small native client (cli/prov-client.c, built as
 * dist/cli/prov) over a unix socket.
 *
 * Each request runs exactly what the command line runs (cli/fast-rebuild: the same parsing, the
 * no-op shortcut, the rebuild action with the same options) with the request's working
 * directory, arguments and environment; what the action writes to stdout and stderr goes back
 * as frames, then the exit code. A command line that is not a plain `prov rebuild` gets
 * "fallback" and the client runs `node dist/cli/main.js` itself. Requests are served one at a
 * time (the process's cwd, environment and standard streams are the request's while it runs,
 * and the journal's rebuild stream keeps one writer). A rebuild's background ingest, which the
 * command line hands to a process of its own (cli/rebuild-finish), runs here after the answer
 * went out and before the next request, holding the store's pending-ingest marker meanwhile;
 * so does the journal flush of what the commands did (the answer goes out once the outputs are
 * in place; ebpf/warm keeps the records in the pinned ring, named by a claim, until the flush is
 * durable, and this server journals what a killed predecessor left there when it starts).
 * The warm ring stays mapped between requests, the warm capture is armed for the next request
 * once a request's journal flush is done (ebpf/warm prearmWarm; let go when a command-line
 * rebuild asks for it), and the commands start with posix_spawn (collector/rebuild/spawn), not a
 * fork of this process. The request is read in the connection's own callback, and the server
 * steps off the CPU for 2 ms after each answer before its background work. A plain no-op never
 * reaches the server: the native client answers it from the no-op shortcut itself.
 *
 * Access: the socket lives in `<runtime>/rebuild/` (runtime = $PROV_RUNTIME_DIR or
 * /run/prov/provfs, as kernel/runtime), a 0700 directory owned by the server's user, the
 * socket itself 0600: only that user and root can connect. The server refuses to use a
 * directory someone else owns or others can enter. Each connection's peer is checked as well
 * (SO_PEERCRED): a process of any other uid — should the permissions ever be loosened — gets a
 * refusal (exit code 4) and nothing runs.
 * `prov up` starts it in the background ({@link startRebuildServer}; no idle exit) and
 * `prov down` stops it ({@link stopRebuildServer}); `prov rebuild-server` runs it in the
 * foreground. It exits after --idle-minutes without a request (default 30), on SIGTERM or
 * SIGINT, removing its socket and pid file.
 *
 * Wire format. Request: u32 little-endian length, then NUL-separated fields: "prov3" (or
 * "prov2"), cwd, three '0'/'1' for isatty(0/1/2), the umask (octal), '1' when the client already
 * looked at the no-op shortcut and found the target not up to date ('0' otherwise: the server
 * looks), argc, the arguments after `prov`, envc, the environment (NAME=value). "prov1" is
 * "prov2" without the shortcut field; "prov3" says the client can run the commands itself. The
 * commands a request re-runs get its umask, as they would from the command line. Reply frames:
 * one byte kind, u32 little-endian length, payload — 'o' stdout bytes, 'e' stderr bytes, 'x' the
 * exit code (decimal), 'f' fallback (nothing was run); to a prov3 client, 'c' and 'g' (the
 * commands to run, collector/rebuild/remote), after which the client sends its report 'R' and,
 * when every command succeeded, exits without waiting for the 'x' (unless it wants the server's
 * timeline: PROV_REBUILD_TRACE without PROV_REBUILD_TRACE_FILE).
 *
 * Who runs the commands: the client, when it speaks prov3 and the capture can track it (a pinned
 * attach: the warm one or a private one) and every command runs as this server's user; else this
 * server, as before (collector/rebuild/run). The client spawns and reaps them the way make does:
 * from node, each spawn cost 0.4–0.6 ms and each exit notice 0.35–0.5 ms more.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RUNTIME_DIR } from '../kernel/runtime.js';
import { InputError, CapabilityError, EXIT } from '../graph/errors.js';
import { abortRunning } from '../collector/rebuild/run.js';
import { running } from '../collector/proc.js';
import { replyFrame, type CommandClient } from '../collector/rebuild/remote.js';

/** Default minutes without a request after which the server exits. */
export const DEFAULT_IDLE_MINUTES = 30;
/** Re-arming after the armed capture was let go: every REARM_MS, at most REARM_TRIES times. */
const REARM_MS = 50, REARM_TRIES = 200;
/** Milliseconds between an answer and the background work after it (the client's turn). */
const ANSWER_GRACE_MS = 2;
/** How long a request waits for the request of a client that took the start token to be served first. */
const SELF_START_WAIT_MS = 500;
/** Largest request accepted (arguments and environment). */
const MAX_REQUEST = 4 << 20;

/** The rebuild server's socket (the client computes the same path from PROV_RUNTIME_DIR). */
export function rebuildSocketPath(runtimeDir = RUNTIME_DIR): string {
  return join(runtimeDir, 'rebuild', 'server.sock');
}

/** One decoded request. */
export interface ServeRequest {
  cwd: string;
  tty: { stdin: boolean; stdout: boolean; stderr: boolean };
  umask: number;
  /** The client already found the no-op shortcut does not apply (the server need not look again). */
  shortcutDeclined: boolean;
  /** The client runs the commands itself when sent them ("prov3", collector/rebuild/remote). */
  runsCommands: boolean;
  /**
   * "prov4": the client took the start token (`token`: its id) and started these commands of the
   * start file itself (run ids, in the order it started them; none: it took the token but did not
   * use it). Null: it did not take the token.
   */
  selfStarted: { token: string; runs: string[] } | null;
  argv: string[];
  env: Record<string, string>;
}

/** Decode a request body (without its length prefix); InputError says which field is wrong. */
export function decodeRequest(body: Buffer): ServeRequest {
  const all = body.toString('utf8').split('\0');
  if (all[0] !== 'prov1' && all[0] !== 'prov2' && all[0] !== 'prov3' && all[0] !== 'prov4') throw new InputError(`rebuild server: unknown request version "${all[0]?.slice(0, 20)}"`, 'request');
  const cwd = all[1] ?? '';
  const tty = all[2] ?? '';
  if (!cwd.startsWith('/') || !/^[01]{3}$/.test(tty)) throw new InputError('rebuild server: bad cwd or tty field', 'request');
  if (!/^[0-7]{1,4}$/.test(all[3] ?? '')) throw new InputError('rebuild server: bad umask field', 'request');
  const umask = parseInt(all[3]!, 8);
  let shortcutDeclined = false;
  let selfStarted: ServeRequest['selfStarted'] = null;
  let f = all;
  if (all[0] === 'prov4') {
    // The started field, "" or the token id then the run ids, newline-separated; then as prov3.
    const started = all[5] ?? '';
    if (started !== '') {
      const [token, ...runs] = started.split('\n');
      if (!token || runs.some((r) => r === '')) throw new InputError('rebuild server: bad started field', 'request');
      selfStarted = { token, runs };
    }
    f = [...all.slice(0, 5), ...all.slice(6)];
  }
  if (all[0] === 'prov2' || all[0] === 'prov3' || all[0] === 'prov4') {
    if (f[4] !== '0' && f[4] !== '1') throw new InputError('rebuild server: bad shortcut field', 'request');
    shortcutDeclined = f[4] === '1';
    f = [...f.slice(0, 4), ...f.slice(5)]; // the rest is laid out as in prov1
  }
  const argc = Number(f[4]);
  if (!Number.isInteger(argc) || argc < 0 || 5 + argc >= f.length) throw new InputError('rebuild server: bad argc', 'request');
  const argv = f.slice(5, 5 + argc);
  const envc = Number(f[5 + argc]);
  if (!Number.isInteger(envc) || envc < 0 || 6 + argc + envc > f.length) throw new InputError('rebuild server: bad envc', 'request');
  const env: Record<string, string> = {};
  for (const kv of f.slice(6 + argc, 6 + argc + envc)) {
    const eq = kv.indexOf('=');
    if (eq > 0) env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { cwd, tty: { stdin: tty[0] === '1', stdout: tty[1] === '1', stderr: tty[2] === '1' }, umask, shortcutDeclined, runsCommands: all[0] === 'prov3' || all[0] === 'prov4', selfStarted, argv, env };
}


/**
 * The connection as a client that can run the commands (collector/rebuild/remote): frames go
 * out on it, and what comes in after the request is its report ('R', u32 length, payload).
 * `rest`: bytes that came with the request.
 */
export function commandClient(c: Socket, rest: Buffer, peer: () => { pid: number; uid: number; gid: number }): CommandClient {
  let got = rest;
  let settle: ((b: Buffer | null) => void) | null = null;
  const report = new Promise<Buffer | null>((resolve) => { settle = resolve; });
  const take = (): void => {
    if (!settle || got.length < 5) return;
    const n = got.readUInt32LE(1);
    if (got[0] !== 0x52 /* R */ || n > MAX_REQUEST) { settle(null); settle = null; return; }
    if (got.length < 5 + n) return;
    settle(Buffer.from(got.subarray(5, 5 + n)));
    settle = null;
  };
  c.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); take(); });
  c.once('close', () => { settle?.(null); settle = null; });
  take();
  return {
    get pid() { return peer().pid; },
    get uid() { return peer().uid; },
    get gid() { return peer().gid; },
    send: (b) => { if (!c.destroyed) c.write(b); },
    report: () => report,
  };
}

/**
 * Make `<runtime>/rebuild` a 0700 directory of ours (created if missing); refuse one that is a
 * symbolic link, owned by someone else or open to others.
 */
function ownDir(dir: string): void {
  mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
  try { mkdirSync(dir, { mode: 0o700 }); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e; }
  const st = lstatSync(dir);
  const uid = process.getuid?.() ?? 0;
  if (!st.isDirectory() || st.uid !== uid) throw new CapabilityError(`${dir} is not a directory owned by uid ${uid}; refusing to put the rebuild server's socket there`, 'rebuild-server');
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
}

/** True when a server already answers on `sock`. */
function answering(sock: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(sock);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/** The credentials of a unix socket's peer (SO_PEERCRED), or null when they cannot be read. */
export async function peerCredentials(c: Socket): Promise<{ pid: number; uid: number; gid: number } | null> {
  const fd = (c as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  const getsockopt = await getsockoptFn();
  const cred = Buffer.alloc(12);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(cred.length);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0 || len.readUInt32LE(0) < 12) return null;
  return { pid: cred.readInt32LE(0), uid: cred.readUInt32LE(4), gid: cred.readUInt32LE(8) };
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
type GetSockOpt = (fd: number, level: number, name: number, value: Buffer, len: Buffer) => number;
type Recv = (fd: number, buf: Buffer, n: number, flags: number) => number;
let getsockoptBound: GetSockOpt | null = null;
let recvBound: Recv | null = null;
async function getsockoptFn(): Promise<GetSockOpt> {
  if (!getsockoptBound) {
    const libc = (await import('koffi')).default.load('libc.so.6');
    getsockoptBound = libc.func('int getsockopt(int fd, int level, int name, _Inout_ uint8_t *value, _Inout_ uint8_t *len)') as GetSockOpt;
    recvBound = libc.func('intptr_t recv(int fd, _Out_ uint8_t *buf, size_t n, int flags)') as Recv;
  }
  return getsockoptBound;
}

const MSG_DONTWAIT = 0x40;
/**
 * What a just-accepted connection has waiting, read at once (null: nothing yet, or the libc
 * binding is not loaded): the client writes its whole request right after connecting, so it is
 * usually there already, and reading it here saves the turn of the event loop node would take.
 * Bytes read here never reach the socket's 'data' events (the kernel hands each byte out once).
 */
function readWaiting(c: Socket): Buffer | null {
  const fd = (c as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (!recvBound || typeof fd !== 'number' || fd < 0) return null;
  const buf = Buffer.allocUnsafe(64 << 10);
  const n = recvBound(fd, buf, buf.length, MSG_DONTWAIT);
  return n > 0 ? Buffer.from(buf.subarray(0, n)) : null;
}

/** Why a peer may not use this server (null: it may): only root and the server's own user. */
export function refusalFor(peer: { uid: number; pid: number } | null, ownUid = process.geteuid?.() ?? 0): string | null {
  if (!peer) return 'the rebuild server cannot tell who is asking (SO_PEERCRED failed); refused';
  if (peer.uid === 0 || peer.uid === ownUid) return null;
  return `the rebuild server (uid ${ownUid}) serves only root and uid ${ownUid}; pid ${peer.pid} runs as uid ${peer.uid}: refused (run prov rebuild with PROV_NO_SERVER=1, or start your own server with PROV_RUNTIME_DIR set)`;
}

export interface ServerOptions {
  /** Minutes without a request before exiting (0: never). */
  idleMinutes?: number;
  /** Socket path (default {@link rebuildSocketPath}). */
  socketPath?: string;
  /** Called once the socket listens. */
  onListening?: (socketPath: string) => void;
}

type Write = typeof process.stdout.write;

let fast: typeof import('./fast-rebuild.js') | undefined;
let trace: typeof import('../collector/rebuild/trace.js') | undefined;

/** The environment the last request set (process.env is left as that request's until the next one). */
let lastEnv: Record<string, string> | null = null;

/**
 * Make process.env exactly `env`, touching only what differs (each change is a setenv). Nothing
 * at all when it is the last request's environment, as it usually is: reading process.env's
 * variables one by one cost the server 0.04–0.2 ms a request.
 */
function setEnv(env: Record<string, string>): void {
  if (lastEnv && sameEnv(lastEnv, env)) return;
  for (const k of Object.keys(process.env)) if (!(k in env) || env[k] === undefined) delete process.env[k];
  for (const [k, v] of Object.entries(env)) if (v !== undefined && process.env[k] !== v) process.env[k] = v;
  lastEnv = env;
}

function sameEnv(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) if (a[k] !== b[k]) return false;
  return true;
}

/**
 * Run one request in this process as the CLI would: cwd, environment and standard streams are
 * the request's until it returns (the environment until the next request). Returns the exit
 * code, or null when it is not a plain `prov rebuild` (the client runs the CLI instead).
 */
async function runRequest(req: ServeRequest, send: (b: Buffer) => void, times: Array<[string, number]>, answer: (code: number | null) => void,
  client: CommandClient | undefined): Promise<number | null> {
  const { parseRebuild, fastRebuild } = fast ??= await import('./fast-rebuild.js');
  if (!parseRebuild(req.argv)) return null;
  const { restartTrace, mark } = trace ??= await import('../collector/rebuild/trace.js');
  restartTrace(times[0]?.[1]);
  for (const [n, t] of times) mark(n, t);
  mark('request received');
  const savedCwd = process.cwd();
  const outWrite = process.stdout.write;
  const errWrite = process.stderr.write;
  const writer = (kind: 'o' | 'e'): Write => ((chunk: string | Uint8Array, enc?: unknown, cb?: unknown): boolean => {
    const b = typeof chunk === 'string' ? Buffer.from(chunk, typeof enc === 'string' ? enc as BufferEncoding : 'utf8') : Buffer.from(chunk);
    send(replyFrame(kind, b));
    const done = typeof enc === 'function' ? enc : cb;
    if (typeof done === 'function') queueMicrotask(() => (done as () => void)());
    return true;
  }) as Write;
  try {
    process.chdir(req.cwd);
  } catch (e) {
    send(replyFrame('e', `prov: cannot enter ${req.cwd}: ${(e as Error).message}\n`));
    return 2;
  }
  setEnv(req.env);
  process.stdout.write = writer('o');
  process.stderr.write = writer('e');
  const savedUmask = process.umask(req.umask);
  try {
    const code = await fastRebuild(['node', 'prov', ...req.argv], { progress: req.tty.stderr && !req.env.CI && !req.env.NO_COLOR, skipShortcut: req.shortcutDeclined, client,
      selfStarted: req.selfStarted?.runs });
    // The answer goes out before this process puts its own cwd and environment back.
    answer(code);
    return code;
  } finally {
    process.stdout.write = outWrite;
    process.stderr.write = errWrite;
    process.umask(savedUmask);
    // The environment stays the request's until the next one (the background work after the
    // answer is this request's): the next request then changes only what differs, usually nothing.
    process.chdir(savedCwd);
  }
}

/**
 * Listen and serve until idle, SIGTERM or SIGINT. Resolves with 0 when it stopped cleanly.
 */
export async function runRebuildServer(opts: ServerOptions = {}): Promise<number> {
  const sock = opts.socketPath ?? rebuildSocketPath();
  const idleMs = (opts.idleMinutes ?? DEFAULT_IDLE_MINUTES) * 60_000;
  ownDir(dirname(sock));
  if (await answering(sock)) throw new CapabilityError(`a rebuild server already answers on ${sock}`, 'rebuild-server');
  rmSync(sock, { force: true });
  const pidFile = join(dirname(sock), 'server.pid');
  // Load now what every request needs, so the first one is as quick as the rest.
  await Promise.all([import('./fast-rebuild.js'), import('./actions/rebuild.js'), import('../collector/rebuild/trace.js'),
    import('../ebpf/warm.js'), import('../ebpf/loader.js'), import('../collector/rebuild/run.js'), import('../collector/rebuild/cutoff.js'),
    import('../collector/rebuild/quick.js'), import('../collector/rebuild/index.js'), import('../collector/rebuild/remote.js'),
    import('../collector/rebuild/start.js'), import('../graph/sqlite/pending.js'),
    import('../graph/sqlite/checkpoint.js'), import('node:child_process')]);
  // The warm capture's ring stays mapped between requests; what an interrupted rebuild left in
  // it (this server killed before its journal flush) is journaled now.
  await getsockoptFn(); // binds recv too (readWaiting)
  const warm = await import('../ebpf/warm.js');
  warm.setWarmResident(true);
  // Armed and idle, it leaves a start token for the native client's fast start (ebpf/warm).
  warm.setStartToken(join(dirname(sock), 'start-token'));
  try { await warm.recoverWarm(); } catch (e) { process.stderr.write(`prov rebuild-server: ${(e as Error).message}\n`); }
  // The background ingest of a rebuild runs here after its answer went out, before the next request.
  const deferred: Array<() => Promise<void>> = [];
  (await import('./actions/rebuild.js')).setIngestDeferral((task) => { deferred.push(task); });
  let queue: Promise<void> = Promise.resolve();
  /** The connection whose request runs now. */
  let current: Socket | null = null;
  let idle: NodeJS.Timeout | null = null;
  let stopping: ((code: number) => void) | null = null;
  const finished = new Promise<number>((resolve) => { stopping = resolve; });
  const armIdle = (): void => {
    if (idle) clearTimeout(idle);
    if (idleMs > 0) idle = setTimeout(() => stop(0), idleMs);
  };
  // The armed capture was let go to a command-line rebuild that asked for it: armed again once
  // that one is done (tried between requests, every REARM_MS, for up to 10 s).
  let rearmTries = 0;
  const rearmLater = (): void => {
    if (stopped || rearmTries >= REARM_TRIES) return;
    rearmTries++;
    setTimeout(() => {
      queue = queue.then(async () => { if (!stopped && !(await warm.prearmWarm())) rearmLater(); else rearmTries = 0; });
    }, REARM_MS).unref();
  };
  warm.onWarmAsked(() => { rearmTries = 0; rearmLater(); });
  const serveOne = (c: Socket, body: Buffer, times: Array<[string, number]>, client: CommandClient | undefined, waitingSince: number | null = null): Promise<void> => {
    const send = (b: Buffer): void => { if (!c.destroyed) c.write(b); };
    return (async () => {
      if (c.destroyed) return; // its client went away while it waited its turn
      let decoded: ServeRequest | Error;
      try { decoded = decodeRequest(body); } catch (e) { decoded = e as Error; }
      // A request that started nothing itself first takes the start token back, so that no client
      // starts commands while it runs. When a client took it already, that client's request goes
      // first (it is on its way, or queued behind this one): the two would otherwise decide the
      // same stale commands and run them at once (ebpf/warm's start token).
      const startedItself = !(decoded instanceof Error) && decoded.selfStarted !== null;
      if (!startedItself && !warm.takeBackStartToken()) {
        const since = waitingSince ?? Date.now();
        if (Date.now() - since < SELF_START_WAIT_MS) {
          queue = queue.then(() => new Promise((r) => setTimeout(r, 1))).then(() => serveOne(c, body, times, client, since));
          return;
        }
        warm.stopWaitingForSelfStart(); // its request is not coming: the next ones need not wait either
      }
      if (idle) clearTimeout(idle);
      current = c;
      let answered = false;
      const answer = (code: number | null): void => {
        if (answered) return;
        answered = true;
        send(code === null ? replyFrame('f', '') : replyFrame('x', String(code)));
        c.end();
      };
      let code: number | null;
      let token: string | null = null;
      try {
        if (decoded instanceof Error) throw decoded;
        const req = decoded;
        token = req.selfStarted?.token ?? null;
        code = await runRequest(req, send, times, answer, req.runsCommands ? client : undefined);
      } catch (e) {
        if (!answered) send(replyFrame('e', `prov: ${(e as Error).message}\n`));
        // A client that ran the commands may have exited on its own answer already: said here too.
        if (c.destroyed || c.readableEnded) process.stderr.write(`prov rebuild-server: ${(e as Error).message}\n`);
        code = 2;
      }
      current = null;
      // Its commands ran (well or not) and were drained: what the ring holds may be dropped as
      // stale again. After an error before that, what the client started stays kept (ebpf/warm
      // lets it go after a minute) for whichever rebuild drains next.
      if (token !== null && (code === 0 || code === 1)) warm.selfStartServed(token);
      answer(code);
      if (deferred.length) {
        // Background work: the client that just got its answer (and whatever its user does next)
        // comes first. This process steps off the CPU for a moment first, so the client can read
        // its answer and exit on it at once (on a busy 2-CPU machine it otherwise waited up to
        // a scheduler slice, ~1 ms, for a CPU). Only root may raise its priority back
        // afterwards, so only root lowers it.
        await new Promise((r) => setTimeout(r, ANSWER_GRACE_MS));
        const nice = (process.geteuid?.() ?? 1) === 0;
        if (nice) try { setPriority(10); } catch { /* stays as it is */ }
        try {
          while (deferred.length) await deferred.shift()!().catch(() => { /* the task logs its own failure */ });
        } finally {
          if (nice) try { setPriority(0); } catch (e) { process.stderr.write(`prov rebuild-server: cannot restore its priority: ${(e as Error).message}\n`); }
        }
      }
      // The next rebuild's capture made ready now (ebpf/warm: lock, check, tracking, claim).
      if (!stopped) await warm.prearmWarm();
      armIdle();
    })();
  };
  const server: Server = createServer((c) => {
    const times: Array<[string, number]> = [['connection accepted', performance.now()]];
    // Who is asking, before anything is read: root and this server's user only.
    let peer = { pid: 0, uid: -1, gid: -1 };
    const checked = peerCredentials(c).then((p) => { if (p) peer = p; return refusalFor(p); }, (e: Error) => `the rebuild server cannot check its peer: ${e.message}; refused`);
    let got = Buffer.alloc(0);
    // The client went away before its answer (Ctrl-C, killed): interrupt its commands as Ctrl-C
    // would have with the command line, so nothing keeps running for nobody.
    c.once('close', () => { if (current === c) abortRunning('SIGINT'); });
    c.on('error', () => { /* the client went away: the request (if started) still completes */ });
    const take = (d: Buffer): void => {
      if (got.length === 0) times.push(['first bytes read', performance.now()]);
      got = Buffer.concat([got, d]);
      if (got.length < 4) return;
      const n = got.readUInt32LE(0);
      if (n > MAX_REQUEST) {
        c.removeAllListeners('data');
        c.end(Buffer.concat([replyFrame('e', `prov: rebuild server: request of ${n} bytes is over the ${MAX_REQUEST}-byte limit\n`), replyFrame('x', '2')]));
        return;
      }
      if (got.length < 4 + n) return;
      c.removeAllListeners('data');
      const body = got.subarray(4, 4 + n);
      const client = commandClient(c, got.subarray(4 + n), () => peer);
      void checked.then((refused) => {
        times.push(['peer checked', performance.now()]);
        if (refused) { c.end(Buffer.concat([replyFrame('e', `prov: ${refused}\n`), replyFrame('x', String(EXIT.capability))])); return; }
        queue = queue.then(() => serveOne(c, body, times, peer.pid > 0 ? client : undefined));
      });
    };
    c.on('data', take);
    const early = readWaiting(c);
    if (early) take(early);
  });
  let stopped = false;
  const stop = (code: number): void => {
    stopped = true;
    server.close();
    try { unlinkSync(sock); } catch { /* gone */ }
    try { unlinkSync(pidFile); } catch { /* gone */ }
    // Let a request under way finish first; then let the armed capture go (untracked, unlocked).
    void queue.then(() => warm.disarmWarm()).then(() => stopping?.(code));
  };
  process.once('SIGTERM', () => stop(0));
  process.once('SIGINT', () => stop(0));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () => resolve());
  });
  chmodSync(sock, 0o600);
  writeFileSync(pidFile, `${process.pid}\n`, { mode: 0o600 });
  armIdle();
  opts.onListening?.(sock);
  return finished;
}

/** Files of a server started in the background by `prov up`. */
function serverFiles(runtimeDir: string): { sock: string; pid: string } {
  const sock = rebuildSocketPath(runtimeDir);
  return { sock, pid: join(dirname(sock), 'server.pid') };
}

/** The pid of the rebuild server of `runtimeDir` when one runs (its pid file names a live `rebuild-server`), else null. */
export function runningRebuildServer(runtimeDir = RUNTIME_DIR): number | null {
  try {
    const pid = Number(readFileSync(serverFiles(runtimeDir).pid, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    // A reused pid must still be a rebuild server: check its command line.
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes('rebuild-server') ? pid : null;
  } catch {
    return null;
  }
}

/**
 * Start the rebuild server in the background for `runtimeDir` (`prov up`): detached, no idle
 * exit, its output appended to `logPath`. Returns once it listens (or the one already running).
 */
export async function startRebuildServer(opts: { runtimeDir?: string; logPath: string; timeoutMs?: number }): Promise<{ pid: number; started: boolean }> {
  const runtimeDir = opts.runtimeDir ?? RUNTIME_DIR;
  const existing = runningRebuildServer(runtimeDir);
  if (existing) return { pid: existing, started: false };
  mkdirSync(dirname(opts.logPath), { recursive: true, mode: 0o700 });
  const log = openSync(opts.logPath, 'a', 0o600);
  const main = fileURLToPath(new URL('./main.js', import.meta.url));
  let child;
  try {
    child = spawn(process.execPath, [main, 'rebuild-server', '--idle-minutes', '0'], {
      detached: true, stdio: ['ignore', log, log], env: { ...process.env, PROV_RUNTIME_DIR: runtimeDir, PROV_REBUILD_TRACE: '' },
    });
  } finally {
    closeSync(log);
  }
  child.unref();
  const pid = child.pid;
  let exited: number | null = null;
  child.once('exit', (code) => { exited = code ?? -1; });
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  const sock = serverFiles(runtimeDir).sock;
  for (;;) {
    if (pid !== undefined && runningRebuildServer(runtimeDir) === pid && await answering(sock)) return { pid, started: true };
    if (exited !== null || pid === undefined) throw new CapabilityError(`the rebuild server did not start (exit ${exited}); see ${opts.logPath}`, 'rebuild-server');
    if (Date.now() > deadline) throw new CapabilityError(`the rebuild server (pid ${pid}) did not listen within ${(opts.timeoutMs ?? 15_000) / 1000} s; see ${opts.logPath}`, 'rebuild-server');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Stop the rebuild server of `runtimeDir` (`prov down`): SIGTERM by its pid, then wait until it
 * has finished the request under way and its background ingest and exited. False when none ran.
 */
export async function stopRebuildServer(runtimeDir = RUNTIME_DIR, timeoutMs = 60_000): Promise<boolean> {
  const pid = runningRebuildServer(runtimeDir);
  if (!pid) return false;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A zombie (our own child that nobody reaped yet) has exited too.
    if (!running(pid)) return true;
    if (Date.now() > deadline) throw new CapabilityError(`the rebuild server (pid ${pid}) did not stop within ${timeoutMs / 1000} s of SIGTERM`, 'rebuild-server');
    await new Promise((r) => setTimeout(r, 20));
  }
}
