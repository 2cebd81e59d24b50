/**
 * @module ebpf/warm
 * A "warm" pid-tree capture for `prov rebuild`: loading and verifying prov's programs costs
 * 0.25–1.2 s and detaching them another 50–100 ms, more than the commands a rebuild usually
 * re-runs. So the first rebuild that runs something leaves its attach pinned (default
 * /sys/fs/bpf/prov-rebuild, in pid-tree mode with an empty `tracked` set: it records nothing
 * while idle), and each later rebuild only puts its own pid into `tracked` (its children join
 * at fork, exactly as with a fresh attach), drains the pinned ring into its journal while its
 * commands run, and takes its pid out again. Same programs, same settings, same records.
 *
 * Exclusive use: a rebuild holds an abstract unix socket named after the pin directory while it
 * uses the warm attach (the kernel releases it when the process dies, so a crash leaves no stale
 * lock); a second concurrent rebuild finds it busy and attaches privately, as before.
 * The kernel itself forgets a dead rebuild's pid (the exit program deletes it from `tracked`
 * and `excluded`). A process a rebuild's command left running stays tracked until it exits;
 * what it emits while no rebuild drains waits in the ring, and the next rebuild drops it unread
 * before tracking itself (a per-run attach would never have recorded it either).
 *
 * Nothing drained is lost by a crash: ring space is given back only once the journal holds the
 * records durably, and before each give-back a claim file next to the state file
 * (`<pin name>.inflight.json`) says which journal stream the drained records go to and which
 * journal seq the record at the ring's consumer position gets. A rebuild that dies before its
 * last flush (or a resident server that answered first and flushes after, {@link WarmHandle.drain})
 * leaves the claim and the records in the pinned ring; the next user of the warm attach (or
 * {@link recoverWarm}, which the rebuild server runs at start) journals what the stream lacks,
 * exactly once, before anything else — only records no claim covers are dropped as stale.
 *
 * A resident process ({@link setWarmResident}: the rebuild server) keeps the ring mapped between
 * rebuilds: mapping the 2 × 16 MiB data area costs about 10 ms each time. It also arms the
 * attach for its next rebuild while idle ({@link prearmWarm}: lock, check, tracking, claim), and
 * listens on its lock meanwhile: another rebuild that finds the attach locked asks there, and an
 * armed (idle) holder lets it go at once; a holder whose rebuild runs does not.
 *
 * Clean-up: `prov capture stop`, `prov down` and `prov rebuild --cold` detach it
 * ({@link detachWarm}). While attached and idle it costs every traced syscall on the host two
 * hash-map lookups in BPF (≈ 0.2–0.3 µs, ebpf notes), nothing else.
 * A state file next to the capture daemon's (/run/prov/<pin name>.json) records which object and
 * ring size it was attached with; an attach from another build is replaced, not reused.
 */
import { constants as osc } from 'node:os';
import { createServer, connect } from 'node:net';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { openJournalWriter, type JournalWriterHandle } from '../collector/journal/writer.js';
import { CODEC } from '../collector/journal/api.js';
import type { DrainStats } from './drain.js';
import { RingReader } from './ring.js';
// ebpf/decode (and the event schema behind it) is loaded only when there is a loss to record.
import {
  attachCapture, attachedPrograms, defaultObjectPath, detachCapture, excludePid, forgetPid, isAttached, readCounters, trackPid,
} from './loader.js';
import { logger } from '../collector/log.js';
import { mark } from '../collector/rebuild/trace.js';
import { reclaimToken, selfStartPending, tokenIsOut, writeToken } from './start-token.js';

export { setStartToken, takeBackStartToken, selfStartServed, stopWaitingForSelfStart } from './start-token.js';

const log = logger('ebpf');

export const WARM_PIN_DIR = '/sys/fs/bpf/prov-rebuild';
export const WARM_STATE_DIR = '/run/prov';

export interface WarmOptions {
  journalDir: string;
  stream: string;
  /** bpffs directory of the warm attach (default $PROV_REBUILD_PIN_DIR or /sys/fs/bpf/prov-rebuild). */
  pinDir?: string;
  /** Where its state file lives (default /run/prov). */
  stateDir?: string;
  ringBytes?: number;
  objectPath?: string;
  /** Journal segment size for this stream (opening a writer re-reads its newest segment whole). */
  segmentBytes?: number;
  /** Append what waits in the ring at least this often while the commands run (ms; default 1000 in a resident process, else 10). */
  pumpMs?: number;
}

export interface WarmHandle {
  pinDir: string;
  /** True when an attach left by an earlier rebuild was reused (no load, no verify). */
  reused: boolean;
  /** Stop recording this process tree, drain what it emitted into the journal, release the attach (it stays pinned). */
  stop(): Promise<DrainStats>;
  /**
   * The first half of {@link stop}: stop recording this process tree and append everything it
   * emitted to the journal writer, without waiting for the disk. The records are in the journal
   * only once `stop()` (called next, e.g. after answering) has flushed them; until then the ring
   * keeps them and the claim names them, so a crash in between loses nothing. The attach stays
   * held until `stop()`.
   */
  drain(): Promise<DrainStats>;
}

/** What a drain in progress has promised (see the module comment); JSON in `<pin name>.inflight.json`. */
export interface WarmClaim {
  journalDir: string;
  stream: string;
  segmentBytes?: number;
  /**
   * Ring position of a record (at or after the consumer position) and the journal seq it gets;
   * seq null: nothing of this drain is in the journal yet, every record from `ring` on is owed.
   */
  ring: number;
  seq: number | null;
  /** Where this drain stopped: records from here on are not its (processes it left running). */
  ringTo?: number;
}

interface WarmState {
  objectPath: string;
  objectSize: number;
  objectMtimeMs: number;
  ringBytes: number;
  programs: number;
}

/** The warm pin directory in effect (the environment can move it: tests use their own). */
export function warmPinDir(): string {
  return process.env.PROV_REBUILD_PIN_DIR || WARM_PIN_DIR;
}

const statePath = (pinDir: string, stateDir: string) => join(stateDir, `${basename(pinDir)}.json`);
const claimPath = (pinDir: string, stateDir: string) => join(stateDir, `${basename(pinDir)}.inflight.json`);

function readClaim(path: string): WarmClaim | null {
  try {
    const c = JSON.parse(readFileSync(path, 'utf8')) as WarmClaim;
    return typeof c.journalDir === 'string' && typeof c.stream === 'string' && Number.isSafeInteger(c.ring) && (c.seq === null || Number.isSafeInteger(c.seq)) ? c : null;
  } catch {
    return null;
  }
}

function writeClaim(path: string, c: WarmClaim): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(c), { mode: 0o600 });
  renameSync(tmp, path);
}

/** Keep the ring mapped between uses (a resident process); see {@link setWarmResident}. */
let resident = false;
/** The mapped ring a resident process keeps, and the pinned file it maps (inode: a new attach is a new file). */
let kept: { pinDir: string; ino: number; ring: RingReader } | null = null;

/**
 * In a long-lived process (the rebuild server) keep the warm ring mapped between rebuilds
 * instead of mapping it anew each time (≈ 10 ms for 16 MiB). Off: the mapping is released.
 */
export function setWarmResident(on: boolean): void {
  resident = on;
  if (!on) { void disarmWarm(); lastResident = null; dropKept(); }
}

function dropKept(pinDir?: string): void {
  if (kept && (pinDir === undefined || kept.pinDir === pinDir)) { kept.ring.close(); kept = null; }
}

function eventsIno(pinDir: string): number {
  return statSync(join(pinDir, 'events')).ino;
}

/** The pinned ring, mapped (a kept mapping when it is still the pinned one and fully committed). */
function openRing(pinDir: string): RingReader {
  if (kept && kept.pinDir === pinDir) {
    const k = kept;
    kept = null;
    let same = false;
    try { same = eventsIno(pinDir) === k.ino; } catch { /* gone */ }
    // Another process (a command-line rebuild) may have drained and given back more since: read
    // on from the consumer position, as a fresh mapping would.
    if (same && resync(k.ring)) return k.ring;
    k.ring.close();
  }
  return RingReader.open(join(pinDir, 'events'));
}

/**
 * Make a kept reader read on from the kernel's consumer position (what RingReader.open starts
 * from). RingReader keeps its read position private; ebpf/ring has no resync of its own, so
 * this sets it where it is known to live and refuses (the caller maps anew) if it is not there.
 */
function resync(ring: RingReader): boolean {
  const r = ring as unknown as { readPos?: unknown };
  if (typeof r.readPos !== 'number' || r.readPos > ring.committed) return false;
  r.readPos = ring.committed;
  return ring.position === ring.committed;
}

/** Give a ring back after use: kept mapped in a resident process, else unmapped. */
function releaseRing(pinDir: string, ring: RingReader, reusable: boolean): void {
  if (resident && reusable && ring.position === ring.committed) {
    try {
      dropKept();
      kept = { pinDir, ino: eventsIno(pinDir), ring };
      return;
    } catch { /* unpinned meanwhile */ }
  }
  ring.close();
}

/**
 * Journal what a claim left in the ring says a crashed drain owed its stream: the records from
 * the consumer position up to the claim's end whose seq the stream does not reach yet, then
 * flush and give the ring space back. Returns how many records were journaled (0 when the
 * stream already had them all) or null when the claim does not fit the ring (nothing done).
 */
async function journalClaim(ring: RingReader, claim: WarmClaim): Promise<number | null> {
  const cons = ring.committed;
  if (cons > claim.ring) {
    // The claim is written before every give-back, so the consumer never passes it while it holds,
    // except after the drain's last give-back (then it reached ringTo: nothing is owed).
    return claim.ringTo !== undefined && cons >= claim.ringTo ? 0 : null;
  }
  const end = claim.ringTo ?? Number.MAX_SAFE_INTEGER;
  // Every record from the consumer position on, with its ring position (header included).
  const recs: Array<{ p: Uint8Array; pos: number }> = [];
  for (let b = ring.readSpans(4 << 20); b; b = ring.readSpans(4 << 20)) {
    const base = b.end - b.bytes.length;
    for (let i = 0; i < b.count; i++) recs.push({ p: b.bytes.subarray(b.starts[i]!, b.ends[i]!), pos: base + b.starts[i]! - 8 });
  }
  // The record at claim.ring gets claim.seq; the ones before it (not given back yet) count down.
  const before = recs.filter((r) => r.pos < claim.ring).length;
  if (before < recs.length && recs[before]!.pos !== claim.ring && claim.ring < (recs.at(-1)?.pos ?? 0)) return null;
  // Without a seq nothing was appended yet (the anchored claim is written before the first append).
  if (claim.seq === null && cons !== claim.ring) return null;
  const writer = openJournalWriter({ dir: claim.journalDir, stream: claim.stream, segmentBytes: claim.segmentBytes });
  try {
    const firstSeq = claim.seq === null ? writer.lastSeq + 1 : claim.seq - before;
    const have = writer.lastSeq;
    if (have < firstSeq - 1) log.warn(`journal stream ${claim.stream} in ${claim.journalDir} ends at seq ${have}, before the ${firstSeq - 1} the warm ring's claim expects: journaling the ring's records after it`);
    const owed: Uint8Array[] = [];
    for (let i = 0; i < recs.length && recs[i]!.pos < end; i++) if (firstSeq + i > have) owed.push(recs[i]!.p);
    if (owed.length) writer.appendEncoded(CODEC.ebpfRaw, owed);
    await writer.flush();
    return owed.length;
  } finally {
    await writer.close();
  }
}

/** Give back, unread, everything the ring holds now; returns how many records that was. */
function dropAll(ring: RingReader): number {
  let n = 0;
  for (let b = ring.read(4 << 20); b; b = ring.read(4 << 20)) n += b.count;
  ring.commit(ring.position);
  return n;
}

/**
 * Before this process uses the warm ring: journal what a claim says a crashed drain owed, then
 * drop (unread) whatever else the ring holds — records of processes an earlier rebuild left
 * running, which a fresh attach would never have seen. The claim is removed afterwards.
 */
async function settleRing(ring: RingReader, pinDir: string, stateDir: string): Promise<void> {
  const cp = claimPath(pinDir, stateDir);
  const claim = readClaim(cp);
  if (claim && ring.pending() > 0) {
    try {
      const n = await journalClaim(ring, claim);
      if (n === null) log.warn(`the warm ring's claim (${cp}) does not match the ring (consumer at ${ring.committed}, claim at ${claim.ring}); its records are dropped`);
      else if (n > 0) log.info(`journaled ${n} records an interrupted rebuild left in the warm ring (stream ${claim.stream} of ${claim.journalDir})`);
      // Durable now: give that space back (the rest is dropped by the caller).
      if (n !== null) ring.commit(Math.min(claim.ringTo ?? ring.position, ring.position));
    } catch (e) {
      // Leave the claim and the ring as they are: the next user tries again.
      throw new Error(`could not journal the records an interrupted rebuild left in the warm ring (${cp}): ${(e as Error).message}`);
    }
  }
  rmSync(cp, { force: true });
}

/**
 * Journal what an interrupted rebuild left in the warm ring (see the module comment), when no
 * rebuild is using the attach now. The rebuild server calls it at start. Returns false when the
 * attach was busy (its user does this itself) or absent.
 */
export async function recoverWarm(opts: { pinDir?: string; stateDir?: string } = {}): Promise<boolean> {
  const pinDir = opts.pinDir ?? warmPinDir();
  const stateDir = opts.stateDir ?? WARM_STATE_DIR;
  if (!isAttached(pinDir) || !existsSync(claimPath(pinDir, stateDir))) return false;
  const held = await lock(pinDir);
  if (!held) return false;
  try {
    const ring = openRing(pinDir);
    try {
      await settleRing(ring, pinDir, stateDir);
      dropAll(ring);
    } finally {
      releaseRing(pinDir, ring, true);
    }
    return true;
  } finally {
    await held.close();
  }
}

/** A held lock; closing releases the name (for a listening holder once its server has closed). */
interface Lock { close(): Promise<void> }

/**
 * Hold the abstract socket that says "a rebuild is using this warm attach"; null when another
 * holds it. A bind alone claims the name, done synchronously through libc — node's listen takes
 * a turn of the event loop, a few hundred µs on the way to a rebuild's first command. With
 * `onAsk` (a resident holder) it also listens, for other rebuilds asking ({@link askToYield}).
 */
async function lock(pinDir: string, onAsk?: () => void): Promise<Lock | null> {
  const L = lockLibc ??= await bindLockLibc();
  const name = Buffer.from(`\0prov-warm:${pinDir}`);
  if (name.length > 107) throw new Error(`warm attach ${pinDir}: its lock name is over the 107 bytes of a unix socket address`);
  // The whole zero-padded sockaddr_un, as node's listen binds an abstract name (its length is
  // part of the name: any other length would be another lock).
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  let fd = L.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`warm attach lock: socket: ${await errnoText(L.errno())}`);
  if (L.bind(fd, addr, addr.length) !== 0) {
    const e = L.errno();
    L.close(fd);
    if (e === osc.errno.EADDRINUSE) return null;
    throw new Error(`warm attach lock ${pinDir}: bind: ${await errnoText(e)}`);
  }
  if (onAsk) {
    // A resident holder listens on its lock: a connection is another rebuild asking for the
    // attach ({@link askToYield}); closing the server closes the descriptor, releasing the name.
    const server = createServer((c) => { c.destroy(); onAsk(); });
    server.on('error', (err) => log.warn(`warm attach lock ${pinDir}: ${err.message}`));
    server.listen({ fd });
    server.unref();
    let closed: Promise<void> | null = null;
    return { close: () => (closed ??= new Promise<void>((resolve) => server.close(() => resolve()))) };
  }
  return { close: async () => { if (fd >= 0) L.close(fd); fd = -1; } };
}

/**
 * The warm attach is locked: ask its holder to let it go, which a resident process (the rebuild
 * server) does while it only holds it armed for its next rebuild. True when the holder took the
 * question (then try the lock again); false at once when the holder does not listen (a rebuild
 * running from the command line: it keeps the attach until it is done).
 */
function askToYield(pinDir: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(`\0prov-warm:${pinDir}`);
    const timer = setTimeout(() => { c.destroy(); resolve(false); }, 200);
    c.on('error', () => { clearTimeout(timer); resolve(false); });
    c.on('close', (hadError) => { clearTimeout(timer); resolve(!hadError); });
  });
}

const AF_UNIX = 1, SOCK_STREAM = 1, SOCK_CLOEXEC = 0o2000000;
/** The project's errno names (kernel/libc), loaded only for an error: binding its calls costs ms. */
const errnoText = async (e: number): Promise<string> => (await import('../kernel/libc.js')).errnoName(e);
interface LockLibc {
  socket: (domain: number, type: number, proto: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  close: (fd: number) => number;
  errno: () => number;
}
let lockLibc: LockLibc | undefined;
async function bindLockLibc(): Promise<LockLibc> {
  const koffi = (await import('koffi')).default;
  const L = koffi.load('libc.so.6');
  return {
    socket: L.func('int socket(int domain, int type, int protocol)') as LockLibc['socket'],
    bind: L.func('int bind(int fd, const uint8_t *addr, uint32_t len)') as LockLibc['bind'],
    close: L.func('int close(int fd)') as LockLibc['close'],
    errno: () => koffi.errno(),
  };
}

function wantedState(objectPath: string, ringBytes: number): WarmState | null {
  try {
    const st = statSync(objectPath);
    return { objectPath, objectSize: st.size, objectMtimeMs: st.mtimeMs, ringBytes, programs: 0 };
  } catch {
    return null; // attachCapture says the object is missing
  }
}

/** An attach made ready for a rebuild: lock held, ring mapped, this process tracked, claim written. */
interface Armed {
  pinDir: string;
  stateDir: string;
  /** The options it was armed with (a later rebuild with other options arms anew). */
  key: string;
  reused: boolean;
  held: Lock;
  drainer: InlineDrain;
  /** Inode of the pinned ring it maps (a detach and new attach meanwhile is another file). */
  ino: number;
}

const armKey = (o: WarmOptions, pinDir: string, stateDir: string): string => JSON.stringify([pinDir, stateDir, o.journalDir, o.stream, o.ringBytes ?? null, o.segmentBytes ?? null, o.objectPath ?? null, o.pumpMs ?? null]);

/**
 * Start recording this process's future children into `journalDir`/`stream` through the warm
 * attach (attaching it first when there is none, or when it came from another build). Returns
 * null when another rebuild is using it right now (the caller attaches privately). In a
 * resident process the attach may be armed ahead already ({@link prearmWarm}).
 */
export async function warmCapture(opts: WarmOptions): Promise<WarmHandle | null> {
  const pinDir = opts.pinDir ?? warmPinDir();
  const stateDir = opts.stateDir ?? WARM_STATE_DIR;
  const key = armKey(opts, pinDir, stateDir);
  if (resident) lastResident = { opts, key };
  let a = await takeArmed(key) ?? await arm(opts, pinDir, stateDir, key);
  if (!a && await askToYield(pinDir)) {
    // A resident holder lets an armed attach go as it reads the question: a few tries while it does.
    for (let i = 0; i < 25 && !a; i++) {
      await new Promise((r) => setTimeout(r, 2));
      a = await arm(opts, pinDir, stateDir, key);
    }
  }
  return a ? activate(a) : null;
}

/**
 * Everything a rebuild needs before its first command can start: the lock, the attach checked
 * (or made), the ring mapped and settled, this process tracked, the claim written (nothing
 * recorded yet is owed to anyone before it). Null when another process holds the lock.
 */
async function arm(opts: WarmOptions, pinDir: string, stateDir: string, key: string): Promise<Armed | null> {
  const objectPath = opts.objectPath ?? defaultObjectPath();
  const ringBytes = opts.ringBytes ?? 16 << 20;
  // A resident process lets an armed attach go when another rebuild asks for it.
  // Not while a client that took the start token may have started commands into the ring: the
  // asker would drop their records as an earlier rebuild's (it attaches privately instead).
  const held = await lock(pinDir, resident ? () => {
    if (armed?.held !== held || !reclaimToken() || selfStartPending()) return;
    void disarmWarm().then(() => afterAsked?.());
  } : undefined);
  if (!held) return null;
  mark('warm: lock held');
  let attachedNow = false;
  let drainer: InlineDrain | null = null;
  let ring: RingReader | null = null;
  const cp = claimPath(pinDir, stateDir);
  try {
    const want = wantedState(objectPath, ringBytes);
    const sp = statePath(pinDir, stateDir);
    let have: WarmState | null = null;
    try { have = JSON.parse(readFileSync(sp, 'utf8')) as WarmState; } catch { /* none */ }
    const same = want && have && have.objectPath === want.objectPath && have.objectSize === want.objectSize
      && have.objectMtimeMs === want.objectMtimeMs && have.ringBytes === want.ringBytes && have.programs === attachedPrograms(pinDir).length;
    let reused = false;
    if (same && isAttached(pinDir)) {
      mark('warm: attach checked');
      ring = openRing(pinDir);
      mark('warm: ring mapped');
      // What an interrupted drain owed its journal is journaled first; anything else still in the
      // ring comes from processes an earlier rebuild left running (tracked since): not this
      // rebuild's, and maybe not this journal's. Dropped before this process is tracked, as a
      // fresh attach would never have seen them.
      if (ring.pending() > 0 || existsSync(cp)) {
        await settleRing(ring, pinDir, stateDir);
        // Not while a client's self-started commands may be among them: they are owed to its rebuild.
        const stale = selfStartPending() ? 0 : dropAll(ring);
        if (stale) log.info(`dropped ${stale} records left in the warm ring by processes of an earlier rebuild`);
      }
      excludePid(process.pid, pinDir);
      trackPid(process.pid, pinDir);
      mark('warm: pid tracked');
      reused = true;
    } else {
      if (existsSync(pinDir)) {
        log.info(`replacing the warm rebuild capture at ${pinDir} (another build or settings)`);
        dropKept(pinDir);
        detachCapture(pinDir);
      }
      rmSync(cp, { force: true });
      const a = attachCapture({ pinDir, objectPath, ringBytes, pidTree: [process.pid] });
      attachedNow = true;
      mkdirSync(stateDir, { recursive: true, mode: 0o700 });
      writeFileSync(sp, JSON.stringify({ ...want, programs: a.programs.length }), { mode: 0o600 });
      ring = openRing(pinDir);
    }
    // The journal writer is opened when there is something to append (for a short rebuild: after
    // its commands): opening it walks the stream's newest segment, which need not delay them.
    const openWriter = (): JournalWriterHandle => openJournalWriter({ dir: opts.journalDir, stream: opts.stream, segmentBytes: opts.segmentBytes});
    drainer = new InlineDrain(pinDir, ring, openWriter, {
      claim: (ringPos, seq, ringTo) => writeClaim(cp, { journalDir: opts.journalDir, stream: opts.stream, segmentBytes: opts.segmentBytes, ring: ringPos, seq, ringTo }),
    }, 10, opts.pumpMs ?? (resident ? undefined : EAGER_PUMP_MS), false, resident ? Math.min(ringBytes >> 1, Math.max(PUMP_BYTES, ringBytes >> 2)) : PUMP_BYTES);
    return { pinDir, stateDir, key, reused, held, drainer, ino: eventsIno(pinDir) };
  } catch (err) {
    try { forgetPid(process.pid, pinDir); } catch { /* not attached */ }
    drainer?.close();
    if (!drainer) ring?.close();
    if (attachedNow) detachWarm({ pinDir, stateDir });
    await held.close();
    throw err;
  }
}

/** Start draining an armed attach; the handle the rebuild uses. */
function activate(a: Armed): WarmHandle {
  const { pinDir, held } = a;
  const dr = a.drainer;
  const cp = claimPath(pinDir, a.stateDir);
  dr.start();
  let drained: Promise<DrainStats> | null = null;
  let stopped: Promise<DrainStats> | null = null;
  const drain = (): Promise<DrainStats> => (drained ??= (async () => {
    forgetPid(process.pid, pinDir);
    return dr.drain();
  })());
  return {
    pinDir, reused: a.reused,
    drain,
    stop() {
      stopped ??= (async () => {
        let ok = false;
        try {
          await drain();
          const stats = await dr.finish();
          // Everything owed is durable and given back: no claim stands.
          rmSync(cp, { force: true });
          ok = true;
          return stats;
        } finally {
          await dr.closeWriter().catch((e: Error) => { log.error(`closing the journal writer: ${e.message}`); });
          releaseRing(pinDir, dr.ring, ok);
          await held.close();
        }
      })();
      return stopped;
    },
  };
}

/** The attach a resident process armed ahead of its next rebuild, and the options of its last one. */
let armed: Armed | null = null;
let lastResident: { opts: WarmOptions; key: string } | null = null;

/**
 * The armed attach, when it was armed with these options and is still the pinned one; else
 * it is let go (null: the caller arms as usual). Records that came into the ring since it was
 * armed (processes an earlier rebuild left running: nothing of this process runs while it
 * waits) are dropped, as arming now would have dropped them — unless a client took the start
 * token meanwhile: then they may be its commands', and are journaled with this rebuild.
 */
async function takeArmed(key: string): Promise<Armed | null> {
  const a = armed;
  if (!a) return null;
  armed = null;
  const drop = reclaimToken() && !selfStartPending();
  let ok = a.key === key;
  try { ok &&= isAttached(a.pinDir) && eventsIno(a.pinDir) === a.ino; } catch { ok = false; }
  if (!ok) { await letGo(a); return null; }
  try {
    if (drop) a.drainer.rebase();
  } catch (e) {
    log.warn(`the armed warm attach could not be used: ${(e as Error).message}`);
    await letGo(a);
    return null;
  }
  mark('warm: armed ahead');
  return a;
}

/** Release an armed attach unused: untrack this process, no claim, lock released, ring kept mapped. */
async function letGo(a: Armed): Promise<void> {
  try { forgetPid(process.pid, a.pinDir); } catch { /* detached meanwhile */ }
  rmSync(claimPath(a.pinDir, a.stateDir), { force: true });
  releaseRing(a.pinDir, a.drainer.ring, true);
  await a.held.close();
}

/**
 * In a resident process (the rebuild server), between rebuilds: arm the warm attach for the next
 * one with the last one's options, so its first command starts without the lock, the attach
 * check, the tracking and the claim (about half a millisecond). While armed this process holds
 * the attach: another rebuild process attaches privately meanwhile (as while a rebuild runs),
 * and nothing of this process is recorded (it is excluded; it starts no process while idle).
 * Returns whether it is armed.
 */
export async function prearmWarm(): Promise<boolean> {
  if (armed && resident && lastResident && !tokenIsOut() && !selfStartPending()) {
    // Still armed (a request that ran nothing took its token back): leave a new one.
    writeToken(armed.pinDir, lastResident.opts.journalDir, lastResident.opts.stream);
  }
  if (!resident || armed || !lastResident) return Boolean(armed);
  const { opts, key } = lastResident;
  const pinDir = opts.pinDir ?? warmPinDir();
  const stateDir = opts.stateDir ?? WARM_STATE_DIR;
  if (!isAttached(pinDir)) return false; // detached (prov capture stop): the next rebuild attaches anew
  try {
    armed = await arm(opts, pinDir, stateDir, key);
    if (armed && !selfStartPending()) writeToken(armed.pinDir, opts.journalDir, opts.stream);
  } catch (e) {
    log.warn(`could not arm the warm attach ahead: ${(e as Error).message}`);
    armed = null;
  }
  return armed !== null;
}

/** Called after an armed attach was let go to another process that asked (the owner re-arms later). */
let afterAsked: (() => void) | null = null;
/** Set what a resident process does once it let its armed attach go to a process that asked. */
export function onWarmAsked(f: (() => void) | null): void {
  afterAsked = f;
}

/** Let the armed attach go (a rebuild that captures otherwise, the resident process exiting). */
export async function disarmWarm(): Promise<void> {
  reclaimToken();
  const a = armed;
  armed = null;
  if (a) await letGo(a);
}

/** Detach the warm rebuild capture (if any) and forget its state; returns how many programs were detached. */
export function detachWarm(opts: { pinDir?: string; stateDir?: string } = {}): { programs: number } {
  const pinDir = opts.pinDir ?? warmPinDir();
  if (armed?.pinDir === pinDir) void disarmWarm(); // its pins go now; the lock a moment later
  dropKept(pinDir);
  const r = existsSync(pinDir) ? detachCapture(pinDir) : { programs: 0 };
  const stateDir = opts.stateDir ?? WARM_STATE_DIR;
  rmSync(statePath(pinDir, stateDir), { force: true });
  rmSync(claimPath(pinDir, stateDir), { force: true });
  return r;
}

/**
 * Unread bytes in the ring that make a poll append them (and flush) during the run. A resident
 * server waits for a quarter of the ring instead: the pinned ring keeps its records through a
 * crash of the server anyway (ebpf/warm's claim), and each append and flush during the commands
 * took CPU from them — a header change on the 100-file project (`--jobs 2`) made two.
 */
const PUMP_BYTES = 1 << 20;
/** Or this long since the last append, while anything is unread: long runs stay durable as they go. */
const PUMP_MS = 1000;
/**
 * A command-line rebuild appends as the records come instead: it answers only once everything
 * is durable, so work left for the end is waited for, while work done during the commands
 * overlaps them (the lazy policy is for the resident server, which answers first).
 */
const EAGER_PUMP_MS = 10;

/**
 * Drains the pinned ring into the journal from this thread, with the same guarantees as
 * ebpf/drain's worker: ring space is given back only once the journal says the records are
 * durable (and the claim that names them is written), and growth of the kernel's drop counter
 * becomes a `lost` record. Lazily: a poll every `pollMs` only looks at how much is unread and
 * appends (opening the journal writer the first time, flushing after) once a megabyte waits or a
 * second has passed — each append and flush costs this process about a millisecond of CPU,
 * which a rebuild's commands would otherwise share their cores with. Short rebuilds leave
 * everything to {@link finish}.
 */
export class InlineDrain {
  readonly stats: DrainStats = { records: 0, bytes: 0, batches: 0, lost: 0 };
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> | null = null;
  private lastDropped: number;
  private lastCheck = Number(process.hrtime.bigint());
  private failure: Error | null = null;
  private writerHandle: JournalWriterHandle | null = null;
  /** Where this drain's own records end (set by drain()). */
  private ringTo: number | undefined;
  /** Seq the next ring record gets in the journal (set when the writer opens). */
  private nextSeq = 0;
  private lastPump = performance.now();

  /** `openWriter` is called when there is something to append, not here. */
  constructor(private readonly pinDir: string, readonly ring: RingReader, private readonly openWriter: () => JournalWriterHandle,
    private readonly hooks: { claim?: (ringPos: number, seq: number | null, ringTo?: number) => void } = {}, private readonly pollMs = 10,
    private readonly pumpMs = PUMP_MS, start = true, private readonly pumpBytes = PUMP_BYTES) {
    this.lastDropped = readCounters(pinDir).dropped;
    // Before any record of this drain can be in the ring: from here on, everything is owed.
    this.claim(ring.position, null);
    if (start) this.start();
  }

  /** Start polling (a drain made ahead of its rebuild starts when that rebuild does). */
  start(): void {
    if (this.timer) return;
    // A drain armed ahead waited since then: its first poll is not "a second since the last append".
    this.lastPump = performance.now();
    this.timer = setInterval(() => this.tick(), this.pollMs);
    this.timer.unref();
  }

  /**
   * Before a drain made ahead is started: give back, unread, what came into the ring since it
   * was made (nothing of its own process ran meanwhile) and claim from the new position. Nothing
   * is done when nothing came.
   */
  rebase(): void {
    if (this.writerHandle || this.timer) throw new Error('rebase of a drain already in use');
    if (this.ring.pending() === 0) return;
    const n = dropAll(this.ring);
    if (n) log.info(`dropped ${n} records that came into the warm ring while idle (processes of an earlier rebuild)`);
    this.lastDropped = readCounters(this.pinDir).dropped;
    this.lastCheck = Number(process.hrtime.bigint());
    this.claim(this.ring.position, null);
  }

  /** Stop without draining (set-up failed). */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.ring.close();
  }

  private get writer(): JournalWriterHandle {
    if (this.writerHandle) return this.writerHandle;
    const w = this.openWriter();
    this.writerHandle = w;
    this.nextSeq = w.lastSeq + 1;
    // Before anything is appended: the record at the ring's read position gets the next seq.
    this.claim(this.ring.position, this.nextSeq);
    return w;
  }

  /** Close the journal writer if it was opened. */
  async closeWriter(): Promise<void> {
    const w = this.writerHandle;
    this.writerHandle = null;
    await w?.close();
  }

  /** Bytes written by the kernel that this reader has not read yet. */
  private unread(): number {
    return this.ring.pending() - (this.ring.position - this.ring.committed);
  }

  private tick(): void {
    const unread = this.unread();
    if (unread >= this.pumpBytes || (unread > 0 && performance.now() - this.lastPump >= this.pumpMs)) this.pump();
  }

  /** Append what the ring holds (up to `limit`); start a flush that then gives the space back. */
  private pump(limit = Number.MAX_SAFE_INTEGER): void {
    if (this.failure) return;
    this.lastPump = performance.now();
    mark('warm: append');
    try {
      const w = this.writer;
      for (let b = this.ring.read(Math.min(4 << 20, limit - this.ring.position)); b && this.ring.position <= limit; b = this.ring.position < limit ? this.ring.read(Math.min(4 << 20, limit - this.ring.position)) : null) {
        const payloads = new Array<Uint8Array>(b.count);
        for (let i = 0; i < b.count; i++) payloads[i] = b.bytes.subarray(b.offsets[i]!, b.offsets[i + 1]!);
        w.appendEncoded(CODEC.ebpfRaw, payloads);
        this.nextSeq += b.count;
        this.stats.records += b.count;
        this.stats.bytes += b.bytes.byteLength;
        this.stats.batches++;
      }
    } catch (e) {
      this.failure = e as Error;
      log.error(`journal append failed, the ring keeps the records: ${(e as Error).message}`);
      return;
    }
    this.startFlush();
  }

  /** Flush what was appended; then (claim first) give the ring space back up to where it was read. */
  private startFlush(): void {
    // A stalled writer retries by itself: a later pump flushes once it writes again.
    if (this.flushing || this.ring.position <= this.ring.committed || !this.writerHandle || this.writerHandle.stalled) return;
    const upTo = this.ring.position;
    const seq = this.nextSeq;
    this.flushing = this.writerHandle.flush().then(() => {
      this.claim(upTo, seq);
      this.ring.commit(upTo);
    }, (e: Error) => {
      // A stalled writer (its disk is full) keeps the records and retries: see above.
      if (!this.writerHandle?.stalled) this.failure = e;
    }).finally(() => { this.flushing = null; });
  }

  private async checkLoss(): Promise<void> {
    const dropped = readCounters(this.pinDir).dropped;
    const now = Number(process.hrtime.bigint());
    if (dropped > this.lastDropped) {
      const n = dropped - this.lastDropped;
      this.stats.lost += n;
      const { encodeLost } = await import('./decode.js');
      this.writer.appendEncoded(CODEC.ebpfRaw, [encodeLost(n, this.lastCheck, now)]);
      log.warn(`${n} events lost (ring buffer full)`);
    }
    this.lastDropped = dropped;
    this.lastCheck = now;
  }

  /**
   * Stop polling and mark where this drain's records end (the ring's producer position now): the
   * claim says so, and the records stay in the ring until {@link finish} journals them.
   */
  async drain(): Promise<DrainStats> {
    if (this.timer) clearInterval(this.timer);
    if (this.failure) throw this.failure;
    this.ringTo = this.ring.committed + this.ring.pending();
    this.claim(this.anchor.ring, this.anchor.seq);
    return this.stats;
  }

  /** The last claim written: the record at ring position `ring` has journal seq `seq` (null: none appended yet). */
  private anchor: { ring: number; seq: number | null } = { ring: 0, seq: null };
  private claim(ring: number, seq: number | null): void {
    this.anchor = { ring, seq };
    this.hooks.claim?.(ring, seq, this.ringTo);
  }

  /** After {@link drain}: journal this drain's records, make them durable and give the ring space back. */
  async finish(): Promise<DrainStats> {
    try {
      await this.flushing;
      if (this.failure) throw this.failure;
      const to = this.ringTo ?? this.ring.committed + this.ring.pending();
      if (to > this.ring.position) this.pump(to);
      await this.flushing;
      if (this.failure) throw this.failure;
      await this.checkLoss();
      // Nothing recorded and nothing lost: the journal is not even opened.
      if (this.writerHandle) await this.writerHandle.flush();
      this.ring.commit(this.ring.position);
      return this.stats;
    } catch (e) {
      throw this.failure ?? e;
    }
  }
}
