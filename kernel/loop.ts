/**
 * @module kernel/loop
 * The FUSE request loop, run in a worker thread off the main event loop: read one request from
 * /dev/fuse (blocking), dispatch it, write the one reply — all synchronous, so no request waits
 * behind the libuv thread pool. The loop ends when the kernel says the file system is gone
 * (ENODEV after umount) or when the main thread asks it to stop taking requests (quiesce, for
 * a live upgrade): it then reports the state a successor needs.
 *
 * Provenance records go through a shared {@link EventRing} to the main thread, which appends
 * them to the journal; the loop itself never waits on the journal (only for ring space, when
 * the journal is megabytes behind). A record is in the ring before its request is answered.
 */
import { parentPort, workerData, receiveMessageOnPort, Worker } from 'node:worker_threads';
import * as v8 from 'node:v8';
import { readFileSync, writeFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir, getPriority, setPriority } from 'node:os';
import * as libc from './libc.js';
import { E } from './libc.js';
import { ProvFs, type ProvFsState } from './ops.js';
import { Dispatcher, passthroughDevice, type Timeouts, type Negotiated } from './dispatch.js';
import { Recorder, type RecordWriter } from './recorder.js';
import { LinLog } from './linlog.js';
import { provfsRecordText } from '../collector/provfs-record.js';
import { EventRing, type RingRef } from './eventring.js';
import { NodeLog } from './nodelog.js';
import { NodeLogFollower, takeFollowWatch, waitForGo } from './nodefollow.js';
import { TakeoverTrace } from './takeovertrace.js';
import { deadRecordKeys, crashAfterRecordHook, crashBeforeRecordHook, unrecordedResend, type DeadRecords } from './resent.js';
import { realtime } from './rtprio.js';
import { ringFilePath } from './ringfiles.js';
import { warmRequestPath } from './warmup.js';
import { Colocator } from './colocate.js';
import { SnapshotWriter, readSnapshot } from './snapshot.js';
import type { SlowControl } from './slowops.js';
import { NodeTable, RENEW_EVERY, type NodeTableDelta } from './nodes.js';
import { SIZE, NOTIFY, OP_NAME, FUSE_UNIQUE_RESEND } from './protocol.js';
import { logger } from '../collector/log.js';
import type { ProvEvent } from '../collector/events.js';

const log = logger('provfs');

/** Everything a successor's loop needs from its predecessor (JSON-able). */
export type TransferState = ProvFsState & { negotiated: Negotiated; devFd: number };

/** What the main thread hands the worker. */
export interface LoopConfig {
  devFd: number;
  rootFd: number;
  mode: 'plain' | 'prov';
  passthrough: boolean;
  timeouts: Timeouts;
  maxWrite: number;
  /** st_dev of the mount (for records). */
  dev: number;
  mountpoint: string;
  /** The record ring (in a file mapping of this process when it must outlive a crash). */
  ring: RingRef;
  /** prov mode: the `.lin` log the main thread fills from the ring (kernel/linlog). */
  lin?: SharedArrayBuffer;
  /**
   * Int32 control words: [0] = 1 asks the loop to quiesce (finish the request in hand, take no
   * new one, report its whole state: state version 1); [0] = 2 asks it to quiesce and write the
   * changes since its snapshot to the successor (state version 2), then wait for [3]: 1 handed
   * over (end), 2 serve again. [1] = 1 releases a warm successor waiting for its transfer.
   * [2] = 1 asks for a snapshot (the {@link SnapshotRequest} comes as a message) and starts
   * tracking changes; [2] = 3 stops tracking (the upgrade was abandoned); [2] = 4 (state version
   * 3) sends the changes so far to the successor ahead of the quiesce and tracks anew.
   */
  control: SharedArrayBuffer;
  /** Resume from a state file this process wrote (after a rejected upgrade: same fds). */
  stateFile?: string;
  /** Where to write the state when quiescing. */
  statePath?: string;
  /** Start warm and wait (Atomics) for a {@link TransferMessage} before serving. */
  awaitTransfer?: boolean;
  /** Crash survival: append new nodes to this node log (`fresh`: a new mount empties it). */
  nodeLog?: { path: string; fresh: boolean };
  /** Restart after a crash: rebuild the table from the node log and have the kernel resend. */
  recover?: boolean;
  /**
   * The fd keeper's warm standby (devFd and rootFd already in this process): follow the node log
   * while waiting, take over when a byte arrives on `goFd` (kernel/nodefollow).
   */
  follow?: { goFd: number };
  /** A cold recovery: the pid of the daemon that died (its ring file holds its last records; kernel/resent). */
  deadPid?: number;
}

/**
 * Sent to a warm successor's loop: where the predecessor's loop wrote its state (v8-serialized,
 * 0600) and the predecessor's pid, whose fds this loop takes with pidfd_getfd. The state goes
 * from loop thread to loop thread through the file: no copy through either main thread.
 */
export interface TransferMessage {
  statePath: string;
  oldPid: number;
  /**
   * State version 2: `statePath` is a snapshot taken while the predecessor still serves; this
   * loop copies it and its fds ahead, reports `prepared`, then blocks on this FIFO for the
   * predecessor's last word (a {@link Delta}, written at quiesce) and serves.
   */
  fifo?: string;
  /** 3: the snapshot is {@link SnapshotWriter}'s binary form and catch-up deltas may precede the last. */
  version?: 2 | 3;
}

/** Sent to a serving loop with control word [2] = 1: where to write the snapshot, where the delta goes. */
export interface SnapshotRequest {
  statePath: string;
  fifo: string;
  /** 3: write the binary snapshot in slices between requests (see kernel/snapshot). */
  version?: 2 | 3;
}

/** The predecessor's last word in state version 2, through the FIFO (length-prefixed v8). */
export interface Delta {
  version: 2 | 3;
  table: NodeTableDelta;
  /** State version 3: a catch-up while the predecessor serves on; more deltas follow. */
  more?: boolean;
}

/** CLOCK_MONOTONIC ns now. */
const nowNs = (): number => Number(process.hrtime.bigint());

/** Write `payload` (length-prefixed) to the successor's FIFO; fails at once when nobody reads it. */
function writeDelta(fifo: string, payload: Buffer): void {
  const fd = libc.open(fifo, libc.O.WRONLY | libc.O.NONBLOCK | libc.O.CLOEXEC); // ENXIO: the successor is gone
  try {
    libc.setNonblock(fd, false);
    const msg = Buffer.allocUnsafe(4 + payload.length);
    msg.writeUInt32LE(payload.length, 0);
    payload.copy(msg, 4);
    for (let off = 0; off < msg.length;) {
      const rest = off === 0 ? msg : Buffer.from(msg.subarray(off));
      off += libc.write(fd, rest, rest.length);
    }
  } finally {
    libc.close(fd);
  }
}

function readFull(fd: number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  const chunk = Buffer.allocUnsafe(Math.min(n, 1 << 20));
  for (let off = 0; off < n;) {
    const got = libc.read(fd, chunk, Math.min(chunk.length, n - off));
    if (got === 0) throw new Error('the predecessor closed the handover FIFO');
    chunk.copy(out, off, 0, got);
    off += got;
  }
  return out;
}

function readDelta(fd: number): Delta {
  for (;;) {
    try {
      const len = readFull(fd, 4).readUInt32LE(0);
      return v8.deserialize(readFull(fd, len)) as Delta;
    } catch (e) {
      if (e instanceof libc.Errno && e.errno === E.EINTR) continue;
      throw e;
    }
  }
}

/** Every fd number a transfer state names (a successor fetches each one). */
export function stateFds(s: TransferState): number[] {
  const fds = new Set<number>([s.devFd]);
  for (const n of s.table.nodes) { fds.add(n.fd); if (n.backing && n.backing.fd >= 0) fds.add(n.backing.fd); }
  for (const h of s.table.handles) if (h.fd >= 0) fds.add(h.fd);
  return [...fds];
}

/** Write a state where a successor (or this process again) can read it. */
function writeState(path: string, st: TransferState): void {
  writeFileSync(path, v8.serialize(st), { mode: 0o600 });
}

function readState(path: string): TransferState {
  return v8.deserialize(readFileSync(path)) as TransferState;
}

/** Messages from the worker. */
export type LoopMessage =
  | { type: 'warm' }
  | { type: 'tid'; /** This loop thread's id (the fd keeper watches it: a killed daemon's loop thread is gone long before the whole process). */ tid: number }
  | { type: 'ready'; passthrough: boolean; minor: number; /** CLOCK_MONOTONIC ns when the loop began to read. */ at: number; devFd: number; rootFd: number;
      /** A successor: CLOCK_MONOTONIC ns when the last delta was read and when it was applied. */ deltaIn?: number; applied?: number }
  | { type: 'rejected'; reason: string }
  | { type: 'events'; events: ProvEvent[] }
  /** A record went into the ring while the main thread had stopped draining it (kernel/eventring). */
  | { type: 'wake' }
  /** An fd whose close may block for milliseconds (the standby's inotify fd): the main thread closes it. */
  | { type: 'close'; fd: number }
  | { type: 'stopped'; reason: string; counts: Record<string, number> }
  | { type: 'quiesced'; statePath: string; fds: number[]; version: number; /** version 2: the delta could not be written. */ failed?: string;
      /** CLOCK_MONOTONIC ns: the loop saw the request (after the request in hand), built the delta, wrote it. */ seen?: number; built?: number; written?: number;
      /** The request answered last before the quiesce was seen (STATFS: the loop was idle and nudged). */ inHand?: string }
  | { type: 'caught-up'; /** Nodes and handles in a catch-up delta (state version 3); on the successor's side, applied. */ nodes: number; handles: number }
  | { type: 'snapshot'; statePath: string }
  | { type: 'prepared' }
  | { type: 'answered'; /** CLOCK_MONOTONIC ns when a successor wrote its first reply. */ at: number };

/** How long the loop opens a crash's lazily known nodes at a time between requests (ms). */
const LAZY_OPEN_MS = 0.2;
/** How long after a crash's takeover that opening waits (ms). */
const LAZY_OPEN_AFTER_MS = 500;

/**
 * The FSYNC helper thread `tid` (kernel/slowops) real-time, as a handover's loop is; returns the
 * undo. After a crash the applications' resent fsyncs waited 3–4 ms in its message queue for a
 * CPU the applications held. A no-op for tid 0 (not started yet), without the right, or with
 * PROV_HANDOVER_RT=0.
 */
function raiseHelper(tid: number): () => void {
  const on = tid > 0 && process.env.PROV_HANDOVER_RT !== '0' && realtime(true, true, tid);
  return () => { if (on) realtime(false, true, tid); };
}

/**
 * This thread's scheduling priority raised for the moments of a handover (the old loop from its
 * snapshot on, the successor's from waiting for the delta to its first reply, a standby's from
 * its wait to its first requests), so that on a busy machine none waits for a CPU inside the
 * stall: nice -10 and, where allowed, real-time (kernel/rtprio; PROV_HANDOVER_RT=0: nice only).
 * Returns the undo; a no-op without the right.
 */
function boost(helperTid = 0): () => void {
  const rt = process.env.PROV_HANDOVER_RT !== '0' && realtime(true);
  const unhelp = rt ? raiseHelper(helperTid) : (): void => undefined;
  try {
    const tid = libc.gettid();
    const was = getPriority(tid);
    setPriority(tid, -10);
    return () => { if (rt) realtime(false); unhelp(); try { setPriority(tid, was); } catch { /* keep */ } };
  } catch {
    return () => { if (rt) realtime(false); unhelp(); };
  }
}

/** A successor's table copied from its predecessor's snapshot, waiting for the delta. */
interface Precopy {
  state: TransferState;
  table: NodeTable;
  devFd: number;
  pidfd: number;
  fifoFd: number;
  /** The state version of the handover (2 or 3). */
  version: 2 | 3;
}

/**
 * Copy the predecessor's snapshot and every fd it names while the predecessor still serves. An
 * fd closed meanwhile (its node or handle went) stays -1 here; the delta says it is gone.
 */
function prepareFromSnapshot(t: TransferMessage, post: (m: LoopMessage) => void): Precopy | null {
  const t0 = performance.now();
  let pidfd = -1, devFd = -1, fifoFd = -1;
  const fetched: number[] = [];
  try {
    fifoFd = libc.open(t.fifo!, libc.O.RDWR | libc.O.CLOEXEC);
    const st = t.version === 3 ? readSnapshot(t.statePath) : readState(t.statePath);
    if (st.version !== 1) throw new Error(`snapshot table version ${String(st.version)} is not 1`);
    pidfd = libc.pidfdOpen(t.oldPid);
    devFd = libc.pidfdGetfd(pidfd, st.devFd);
    const table = NodeTable.fromState(st.table, (fd) => {
      try {
        const mine = libc.pidfdGetfd(pidfd, fd);
        fetched.push(mine);
        return mine;
      } catch {
        return -1;
      }
    }, true);
    log.debug(`snapshot of ${st.table.nodes.length} nodes copied in ${(performance.now() - t0).toFixed(1)} ms`);
    return { state: st, table, devFd, pidfd, fifoFd, version: t.version ?? 2 };
  } catch (e) {
    for (const fd of fetched) libc.close(fd);
    for (const fd of [devFd, pidfd, fifoFd]) if (fd >= 0) libc.close(fd);
    post({ type: 'rejected', reason: (e as Error).message });
    return null;
  }
}

/**
 * Apply a catch-up delta (state version 3) while the predecessor still serves: an fd it closed
 * since (a node forgotten, a handle released) cannot be copied and stays -1 — the next delta
 * says the node or handle is gone (ids are never reused, and a node keeps its fd for life), so
 * the last delta, taken with the predecessor quiesced, leaves none behind (applyDelta checks
 * that then). Directory offsets are left alone: the predecessor's fds share them and it may be
 * listing those directories right now; the last delta sets them.
 */
function applyCatchUp(table: NodeTable, d: NodeTableDelta, pidfd: number): void {
  for (const h of d.handles) delete h.dirPos;
  try {
    table.applyDelta(d, (fd) => { try { return libc.pidfdGetfd(pidfd, fd); } catch { return -1; } });
  } catch (e) {
    // applyDelta's last step checks that no fd is missing, after the table is updated: here
    // that is expected (see above), anything else is not.
    if (!/was not handed over/.test((e as Error).message)) throw e;
  }
}

export function runLoop(cfg: LoopConfig, post: (m: LoopMessage) => void, receive: () => unknown = () => undefined): void {
  post({ type: 'tid', tid: libc.gettid() });
  const ring = cfg.ring instanceof SharedArrayBuffer ? new EventRing(cfg.ring) : EventRing.view(cfg.ring);
  const control = new Int32Array(cfg.control);
  // prov mode: the read-only `.lin` file at the mount root shows the log the main thread fills
  // as it drains the ring, and what the ring holds beyond it (kernel/linlog).
  const lin = cfg.lin ? new LinLog(cfg.lin) : null;
  // A record is in the ring before its request is answered (the recorder runs before the reply
  // is written), so it survives this process. A full ring (the journal is behind by megabytes)
  // holds the request back up to 200 ms for room; only then does the record go by message. Not
  // when the journal is stalled (its disk is full): no room comes, and the requests would crawl.
  // Every record, however the recorder builds it, goes through pushJson.
  const pause = new Int32Array(new SharedArrayBuffer(4));
  const crashHook = crashAfterRecordHook(cfg.nodeLog?.path);
  const crashBefore = crashBeforeRecordHook(cfg.nodeLog?.path);
  /** After a crash: whether the request in hand was resent, and the dead daemon's last records (kernel/resent). */
  let resent: { inHand: boolean; known: () => DeadRecords; left: number } | null = null;
  /** Records pushed so far (to tell whether a resent request made one). */
  let pushed = 0;
  /** Requests served (for {@link RENEW_EVERY}). */
  let requests = 0;
  /**
   * Between Recorder.ahead's begin and end (`active`): the record staged in the ring (its text
   * for the crash hook, '' without one), and any others held back (empty outside). One object
   * for the thread's life: one per removal cost the loop an allocation each.
   */
  const staging = { active: false, staged: null as string | null, held: [] as string[] };
  const stage = {
    begin: (): void => { staging.active = true; staging.staged = null; },
    end: (ok: boolean): void => {
      staging.active = false;
      if (!ok) { if (staging.held.length > 0) staging.held.length = 0; return; } // the operation failed: its record never happened
      if (staging.staged !== null) {
        crashHook?.(staging.staged);
        ring.publishStaged();
        published();
        pushed++;
      }
      if (staging.held.length === 0) return;
      const held = staging.held.splice(0);
      for (const json of held) pushJson(json);
    },
  };
  /** Whether a staged operation's record may still go into the ring (none staged nor held yet). */
  const stageFree = (): boolean => staging.staged === null && staging.held.length === 0;
  /** After a record went into the ring: wake the main thread if it stopped draining (kernel/eventring). */
  const published = (): void => { if (ring.wakeNeeded()) post({ type: 'wake' }); };
  const pushJson = (json: string): void => {
    // Serving a request resent after a crash: not again what the dead daemon recorded already.
    if (resent && resent.inHand && resent.known().hasExact(json)) return;
    crashBefore?.(json);
    if (staging.active) {
      if (stageFree() && ring.stageString(json)) {
        staging.staged = json;
      } else staging.held.push(json); // no room, or a second record: after the operation, as usual
      return;
    }
    pushed++;
    if (ring.pushString(json)) {
      published();
      crashHook?.(json);
      return;
    }
    for (let i = 0; i < 200 && !ring.journalStalled; i++) {
      Atomics.wait(pause, 0, 0, 1);
      if (ring.pushString(json)) { published(); return; }
    }
    ring.countOverflow();
    post({ type: 'events', events: [JSON.parse(json) as ProvEvent] });
  };
  const sink = (ev: ProvEvent): void => pushJson(JSON.stringify(ev));
  const sinkJson = pushJson;
  // Records written in binary in the ring (kernel/recorder's RecordWriter) where pushJson's rules
  // allow it without the string: not while a resent request is in hand (what the dead daemon
  // recorded is compared as text), not with the test hook that kills before a record (it reads
  // the text before the record exists), not as a second record of a staged operation or into a
  // full ring (those wait as strings, as above). The hook that kills after a record reads it
  // back as text, so the crash tests leave binary records in the dead daemon's ring.
  const bytesOk = !crashBefore;
  const writer: RecordWriter = {
    begin: (max) => bytesOk && !resent?.inHand && (!staging.active || stageFree()) && ring.begin(max),
    bytes: (b) => ring.putBytes(b),
    header: (op, bits, tid, ts, mode, flags, fh) => ring.putProvfsHeader(op, bits, tid, ts, mode, flags, fh),
    file: (dev, ino, parent, type, name, prefix, host) => ring.putProvfsFile(dev, ino, parent, type, name, prefix, host),
    end: () => {
      if (staging.active) {
        ring.endRecord(true);
        staging.staged = crashHook ? provfsRecordText(ring.lastWritten()) : ''; // only the crash hook reads its text
        return;
      }
      ring.endRecord(false);
      pushed++;
      published();
      crashHook?.(provfsRecordText(ring.lastWritten()));
    },
  };
  let state: TransferState | undefined;
  let fdMap: ((fd: number) => number) | undefined;
  // FSYNC goes to a helper thread that answers it; `inflight` counts what it still owes. A
  // successor starts it (a new isolate: tens of ms of CPU) and warms it now, not inside the stall.
  // [0] what it still owes, [1] its thread id (for boost).
  const inflight = new Int32Array(new SharedArrayBuffer(8));
  let slow: Worker | null = null;
  if (cfg.awaitTransfer) {
    slow = new Worker(new URL('./slowops.js', import.meta.url), { workerData: { provfsSlowOps: { devFd: -1, inflight: inflight.buffer } } });
    try {
      const scratch = join(tmpdir(), `provfs-warm-fsync-${process.pid}`);
      const fd = libc.open(scratch, libc.O.WRONLY | libc.O.CREAT | libc.O.TRUNC, 0o600);
      unlinkSync(scratch);
      slow.postMessage({ warm: fd } satisfies SlowControl);
    } catch { /* warm-up only */ }
  }
  let precopy: Precopy | null = null;
  let follower: NodeLogFollower | null = null;
  /** Takeover phases of a recovering loop (kernel/takeovertrace). */
  const trace = new TakeoverTrace(cfg.nodeLog?.path, 'loop');
  /** Undoes a raised priority (see {@link boost}). */
  let unboost: (() => void) | null = null;
  if (cfg.stateFile) state = readState(cfg.stateFile);
  if (cfg.awaitTransfer) {
    // Compile the request path now, not in the first requests after the handover.
    try {
      const w0 = performance.now();
      const n = warmRequestPath({ timeouts: cfg.timeouts, prov: cfg.mode === 'prov', maxWrite: cfg.maxWrite });
      log.debug(`request path warmed with ${n} requests in ${(performance.now() - w0).toFixed(1)} ms`);
    } catch (e) {
      log.warn(`warm-up of the request path failed (serving cold): ${(e as Error).message}`);
    }
    post({ type: 'warm' });
  }
  if (cfg.awaitTransfer && cfg.follow) {
    // The fd keeper's standby: everything is built below around a table that follows the node
    // log; the wait for the keeper's word comes last, just before FUSE_NOTIFY_RESEND. (Its FSYNC
    // helper is raised at the word, not for the whole wait.)
    unboost = boost();
    follower = new NodeLogFollower(cfg.nodeLog!.path, cfg.rootFd);
    follower.catchUp();
    cfg.recover = true;
    // The look into a dead daemon's ring (kernel/resent) compiled now, on this standby's own
    // ring: the first resent request after a takeover paid 1–2 ms for it cold.
    deadRecordKeys(ringFilePath(cfg.nodeLog!.path, process.pid)).hasExact('{"file":{"name":""}}');
  } else if (cfg.awaitTransfer) {
    while (Atomics.load(control, 1) === 0) Atomics.wait(control, 1, 0);
    const t = receive() as TransferMessage | undefined;
    if (!t) throw new Error('released without a transfer message');
    if (t.fifo) {
      precopy = prepareFromSnapshot(t, post);
      if (!precopy) return;
    }
    const fetched = new Map<number, number>();
    const t0 = performance.now();
    log.debug(`transfer at ${(Number(process.hrtime.bigint()) / 1e6).toFixed(1)} ms (monotonic)`);
    if (!precopy) try {
      const st = readState(t.statePath);
      log.debug(`state read in ${(performance.now() - t0).toFixed(1)} ms`);
      if (st.version !== 1) throw new Error(`state version ${String(st.version)} is not 1`);
      const pidfd = libc.pidfdOpen(t.oldPid);
      try {
        for (const fd of stateFds(st)) fetched.set(fd, libc.pidfdGetfd(pidfd, fd));
      } finally {
        libc.close(pidfd);
      }
      state = st;
      log.debug(`fds fetched by ${(performance.now() - t0).toFixed(1)} ms`);
    } catch (e) {
      for (const fd of fetched.values()) libc.close(fd);
      post({ type: 'rejected', reason: (e as Error).message });
      return;
    }
    fdMap = (fd) => {
      const m = fetched.get(fd);
      if (m === undefined) throw new Error(`transfer state names fd ${fd}, which was not handed over`);
      return m;
    };
  }
  /** When the idle-time opening of a crash's lazily known nodes may start (performance.now()). */
  let lazyFrom = 0;
  let recovered: { follower: NodeLogFollower; damaged: boolean; nodes: number; /** The dead daemon's ring file, when known. */ deadRing?: string } | null = null;
  let fs: ProvFs;
  if (cfg.recover) {
    if (!cfg.nodeLog) throw new Error('recovery needs the node log');
    // A standby's table follows the log (below: until the daemon dies); a cold start reads it all.
    const f = follower ?? new NodeLogFollower(cfg.nodeLog.path, cfg.rootFd);
    recovered = { follower: f, damaged: false, nodes: 0 };
    fs = new ProvFs(cfg.rootFd, null, f.table);
  } else if (precopy) {
    fs = new ProvFs(-1, null, precopy.table);
  } else {
    fs = state ? ProvFs.updateTransfer(state, null, fdMap) : new ProvFs(cfg.rootFd, null);
  }
  let nodeLog: NodeLog | null = null;
  if (cfg.nodeLog) {
    const nl = new NodeLog(cfg.nodeLog.path, cfg.nodeLog.fresh && !state && !cfg.recover, { compactMin: Number(process.env.PROV_PROVFS_NODELOG_COMPACT_MIN) || undefined });
    nodeLog = nl;
    fs.useNodeLog(nl, (e) => log.warn(`crash survival off: the backing file system gives no file handles (${e.message})`));
  }
  if (cfg.mode === 'prov') {
    fs.recorder = new Recorder({ dev: cfg.dev, mountpoint: cfg.mountpoint, nodes: fs.nodes, sink, sinkJson, writer, stage });
  }
  const devFd = precopy ? precopy.devFd : state && fdMap ? fdMap(state.devFd) : cfg.devFd;
  const send = (buf: Buffer, len: number): void => {
    try {
      libc.write(devFd, buf, len);
    } catch (e) {
      // ENOENT: the request was interrupted and is gone; nothing else to do.
      if (!(e instanceof libc.Errno && e.errno === E.ENOENT)) throw e;
    }
  };
  if (slow) slow.postMessage({ devFd } satisfies SlowControl);
  else slow = new Worker(new URL('./slowops.js', import.meta.url), { workerData: { provfsSlowOps: { devFd, inflight: inflight.buffer } } });
  const offloadFsync = (unique: Uint8Array, fd: number, dataOnly: boolean): void => {
    Atomics.add(inflight, 0, 1);
    slow.postMessage({ unique, fd, dataOnly });
  };
  log.debug(`table ready at ${(Number(process.hrtime.bigint()) / 1e6).toFixed(1)} ms (monotonic)`);
  // What the request loop needs, made before any wait for a handover or a crash: allocating (and
  // faulting in) the request buffer after it took the first request 0.15–0.3 ms more.
  const buf = Buffer.alloc(cfg.maxWrite + 4096 + 4096);
  // The request header as 32-bit words (buf has its own ArrayBuffer at offset 0): opcode at word
  // 1, the caller's thread id at word 8 — read per request without Buffer's checked reads.
  const hdr32 = new Uint32Array(buf.buffer, buf.byteOffset, SIZE.in_header >> 2);
  // Follow a single-threaded caller's CPU (see kernel/colocate); PROV_FUSE_COLOCATE=0: never pin.
  // Made before the wait as well: it reads /proc, a quarter of a millisecond the first time.
  const colocator = process.env.PROV_FUSE_COLOCATE === '0' ? null : new Colocator();
  // prov mode: the main thread drains the ring into the journal; kept off the pinned CPU.
  // PROV_FUSE_KEEP_DRAIN_OFF=0: not (to measure it).
  if (colocator && cfg.mode === 'prov' && process.env.PROV_FUSE_KEEP_DRAIN_OFF !== '0') colocator.keepOff = process.pid;
  const d = new Dispatcher(fs, { timeouts: cfg.timeouts, passthrough: cfg.passthrough, devFd, maxWrite: cfg.maxWrite, offloadFsync }, send);
  d.lin = lin ? { snapshot: () => lin.snapshot(ring) } : null;
  if (recovered) {
    if (cfg.follow) {
      const dead = waitForGo(recovered.follower, cfg.follow.goFd, trace);
      if (dead === null) {
        post({ type: 'stopped', reason: 'the fd keeper went away', counts: {} });
        endSlow(slow, inflight);
        return;
      }
      recovered.deadRing = ringFilePath(cfg.nodeLog!.path, dead);
      // The FSYNC helper now too: its thread id was not known yet when this standby's loop was
      // raised, and the applications' resent fsyncs come first.
      const unhelp = raiseHelper(Atomics.load(inflight, 1));
      const mine = unboost;
      unboost = () => { mine?.(); unhelp(); };
    } else if (cfg.deadPid) {
      recovered.deadRing = ringFilePath(cfg.nodeLog!.path, cfg.deadPid);
    }
    // The log's last records (a standby), or all of it (a cold start).
    const r = recovered.follower.finish();
    lazyFrom = performance.now() + LAZY_OPEN_AFTER_MS;
    trace.mark('table');
    if (!r.init) throw new Error(`node log ${cfg.nodeLog!.path} has no INIT record: cannot resume this connection`);
    recovered.damaged = r.damaged;
    recovered.nodes = r.table.size + r.table.lazyCount;
    d.negotiated = r.init as Negotiated;
    if (d.negotiated.passthrough) fs.passthrough = passthroughDevice(devFd);
    // Requests the crashed daemon read but never answered: have the kernel queue them again.
    const notify = Buffer.alloc(SIZE.out_header);
    notify.writeUInt32LE(SIZE.out_header, 0);
    notify.writeInt32LE(NOTIFY.RESEND, 4);
    try { libc.write(devFd, notify); } catch (e) { log.warn(`FUSE_NOTIFY_RESEND: ${(e as Error).message}`); }
    trace.mark('resend');
    post({ type: 'ready', passthrough: d.negotiated.passthrough, minor: d.negotiated.minor, at: Number(process.hrtime.bigint()), devFd, rootFd: fs.nodes.get(1).fd });
  } else if (precopy) {
    d.negotiated = precopy.state.negotiated;
    if (precopy.state.passthrough) fs.passthrough = passthroughDevice(devFd);
    // Everything is built: now wait for the predecessor's last word (this is the stall).
    (globalThis as { gc?: () => void }).gc?.();
    unboost = boost(Atomics.load(inflight, 1));
    post({ type: 'prepared' });
    let deltaIn = 0, applied = 0;
    const want = precopy.version;
    try {
      for (;;) {
        const delta = readDelta(precopy.fifoFd);
        deltaIn = nowNs();
        log.debug(`delta in at ${(deltaIn / 1e6).toFixed(1)} ms (monotonic): ${delta.table.nodes.length} nodes, ${delta.table.counts.length / 2} counts, ${delta.table.gone.length} gone, ${delta.table.handles.length} handles${delta.more ? ' (catch-up)' : ''}`);
        if (delta.version !== want) throw new Error(`delta version ${String(delta.version)} is not ${want}`);
        if (delta.more && want < 3) throw new Error('a catch-up delta in state version 2');
        if (delta.more) applyCatchUp(fs.nodes, delta.table, precopy.pidfd);
        else fs.nodes.applyDelta(delta.table, (fd) => libc.pidfdGetfd(precopy!.pidfd, fd));
        applied = nowNs();
        if (!delta.more) break;
        // A catch-up while the predecessor serves on: collect its garbage now, not in the stall.
        (globalThis as { gc?: () => void }).gc?.();
        post({ type: 'caught-up', nodes: delta.table.nodes.length, handles: delta.table.handles.length });
      }
      log.debug(`delta applied at ${(applied / 1e6).toFixed(1)} ms (monotonic)`);
    } catch (e) {
      post({ type: 'rejected', reason: (e as Error).message });
      endSlow(slow, inflight);
      return;
    } finally {
      libc.close(precopy.fifoFd);
      libc.close(precopy.pidfd);
    }
    post({ type: 'ready', passthrough: precopy.state.passthrough, minor: d.negotiated.minor, at: nowNs(), devFd, rootFd: fs.nodes.get(1).fd, deltaIn, applied });
  } else if (state) {
    d.negotiated = state.negotiated;
    // Re-arm passthrough on the same connection: backing ids belong to it and survive.
    if (state.passthrough) fs.passthrough = passthroughDevice(devFd);
    post({ type: 'ready', passthrough: state.passthrough, minor: state.negotiated.minor, at: Number(process.hrtime.bigint()), devFd, rootFd: fs.nodes.get(1).fd });
  }
  // A predecessor may have compacted the node log after this loop opened it.
  nodeLog?.reopenIfReplaced();
  let reason = 'unmounted';
  // Every node holds an fd: when they approach the fd limit, ask the kernel to forget the least
  // recently used idle nodes (FUSE_NOTIFY_PRUNE, 7.45); its FORGETs then close them.
  const fdLimit = libc.nofileLimit();
  const pruneHigh = Math.floor(fdLimit * 0.6), pruneLow = Math.floor(fdLimit * 0.3);
  d.nodeCap = Math.floor(fdLimit * 0.8);
  let lastPrune = 0, sizeAtPrune = 0;
  const prune = (): void => {
    const now = Date.now();
    // Again when the table grew by a quarter of the margin since, or after 20 ms.
    if ((now - lastPrune < 20 && fs.nodes.size - sizeAtPrune < (pruneHigh - pruneLow) / 4) || !d.negotiated || d.negotiated.minor < 45) return;
    lastPrune = now;
    sizeAtPrune = fs.nodes.size;
    const ids = fs.nodes.leastRecentlyUsed(fs.nodes.size - pruneLow);
    for (let i = 0; i < ids.length; i += 256) {
      const batch = ids.slice(i, i + 256);
      const msg = Buffer.alloc(SIZE.out_header + 16 + 8 * batch.length);
      msg.writeUInt32LE(msg.length, 0);
      msg.writeInt32LE(NOTIFY.PRUNE, 4);
      msg.writeUInt32LE(batch.length, SIZE.out_header);
      batch.forEach((id, j) => msg.writeBigUInt64LE(BigInt(id), SIZE.out_header + 16 + 8 * j));
      try { libc.write(devFd, msg); } catch (e) { log.warn(`FUSE_NOTIFY_PRUNE: ${(e as Error).message}`); return; }
    }
  };
  let snapshotFifo: string | null = null;
  /** Opcode of the last request read: at a quiesce, the one in hand when it was asked (STATFS: idle, nudged). */
  let lastOp = 0;
  let snapshotVersion: 2 | 3 = 2;
  let snapWriter: SnapshotWriter | null = null;
  let firstAnswer = Boolean(state || precopy || recovered);
  /** After a crash takeover, the first requests answered go in the trace too (opcode, when). */
  let traced = recovered ? 12 : 0;
  if (recovered?.deadRing) {
    const path = recovered.deadRing;
    // A cold start reads them now (its ring files go once journaled, maybe before a resent
    // request comes); a standby when a resent request first records something.
    let keys: DeadRecords | null = cfg.follow ? null : deadRecordKeys(path);
    // Resent requests come first after FUSE_NOTIFY_RESEND: looked for among the first 4096.
    resent = { inHand: false, known: () => (keys ??= deadRecordKeys(path)), left: 4096 };
  }
  let boosted = 0;
  /** A new loop's raised priority ends after this (performance.now() ms; 0: not raised or over). */
  let boostUntil = 0;
  let handedOverV2 = false;
  for (;;) {
    const cmd = Atomics.load(control, 2);
    if (cmd !== 0) {
      Atomics.store(control, 2, 0);
      if (cmd === 1) {
        // A successor gets fds: every node not opened yet since a crash is opened now.
        while (fs.nodes.openLazy() > 0);
        // State version 2, first part: a snapshot the successor copies while we serve on.
        const req = receive() as SnapshotRequest | undefined;
        if (req) {
          // The handover's priority, not the colocator's SCHED_IDLE (kernel/colocate), from now on.
          colocator?.ordinary();
          unboost ??= boost(Atomics.load(inflight, 1));
          fs.nodes.startTracking();
          v8.serialize(fs.nodes.delta()); // compiled now, not at quiesce
          snapshotFifo = req.fifo;
          snapshotVersion = req.version ?? 2;
          if (snapshotVersion === 3) {
            // The live table read, encoded and written a slice at a time between requests (below).
            snapWriter = new SnapshotWriter(req.statePath, { mode: fs.recorder ? 'prov' : 'plain', passthrough: fs.passthrough !== null, negotiated: d.negotiated!, devFd },
              { ...fs.nodes.counters, records: fs.nodes.liveRecords(), handles: () => fs.nodes.handleRecords() });
          } else {
            writeState(req.statePath, { ...fs.updatePrepare(), negotiated: d.negotiated!, devFd });
            post({ type: 'snapshot', statePath: req.statePath });
          }
        }
      } else if (cmd === 3) {
        unboost?.();
        unboost = null;
        fs.nodes.stopTracking();
        snapshotFifo = null;
        snapWriter?.abort();
        snapWriter = null;
      } else if (cmd === 4 && snapshotFifo && fs.nodes.tracking && !snapWriter) {
        // State version 3: the changes so far, to the successor while we serve on; track anew.
        const delta: Delta = { version: 3, table: fs.nodes.delta(), more: true };
        fs.nodes.startTracking();
        let ok = true;
        try {
          writeDelta(snapshotFifo, v8.serialize(delta));
        } catch (e) {
          log.warn(`catch-up delta not written: ${(e as Error).message}`);
          ok = false;
        }
        // -1: not written (the successor is gone); the main thread abandons the upgrade.
        post({ type: 'caught-up', nodes: ok ? delta.table.nodes.length : -1, handles: ok ? delta.table.handles.length : -1 });
      }
    }
    if (snapWriter) {
      // Slices of the snapshot while no request waits; one slice between requests otherwise.
      let done: boolean;
      try {
        do done = snapWriter.step(0.3); while (!done && libc.pollIn([devFd], 0)[0] === 0);
      } catch (e) {
        log.warn(`snapshot not written: ${(e as Error).message}`);
        snapWriter.abort();
        done = true;
      }
      if (done) {
        log.debug(`snapshot written in ${snapWriter.slices} slices`);
        post({ type: 'snapshot', statePath: snapWriter.path });
        snapWriter = null;
      }
    }
    if (fs.nodes.lazyCount > 0 && performance.now() > lazyFrom && libc.pollIn([devFd], 0)[0] === 0) {
      // After a crash: the nodes of the node log opened a few at a time while no request waits,
      // for at most LAZY_OPEN_MS at a time, and not in the takeover's first moments: an
      // open_by_handle_at can wait for the disk, and 64 of them at once between requests right
      // after a kill held the applications' resent fsyncs back (Figure 5 (b): a 7–13 ms pause,
      // 3–4 ms without them). A request for a node not opened yet opens it, as before.
      const until = performance.now() + LAZY_OPEN_MS;
      do fs.nodes.openLazy(undefined, 4); while (fs.nodes.lazyCount > 0 && performance.now() < until && libc.pollIn([devFd], 0)[0] === 0);
    }
    if (nodeLog?.due) {
      // The node log compacted a slice at a time while no request waits (kernel/nodelog).
      try {
        let done: boolean;
        do done = nodeLog.step(0.2); while (!done && libc.pollIn([devFd], 0)[0] === 0);
      } catch (e) {
        log.warn(`node log compaction given up for now: ${(e as Error).message}`);
      }
    }
    const q = Atomics.load(control, 0);
    if (q === 2) {
      // State version 2, last part: the changes since the snapshot, straight to the successor's loop.
      let failed: string | undefined;
      let seen = 0, built = 0, written = 0;
      try {
        seen = nowNs();
        if (!snapshotFifo || !fs.nodes.tracking || snapWriter) throw new Error('no snapshot was taken');
        const delta: Delta = { version: snapshotVersion, table: fs.nodes.delta() };
        const payload = v8.serialize(delta);
        built = nowNs();
        writeDelta(snapshotFifo, payload);
        written = nowNs();
        log.debug(`quiesce seen at ${(seen / 1e6).toFixed(1)}, delta written at ${(written / 1e6).toFixed(1)} ms (monotonic)`);
      } catch (e) {
        failed = e instanceof libc.Errno && e.errno === E.ENXIO ? 'the successor is gone (nobody reads the handover FIFO)' : (e as Error).message;
      }
      // The table's fds are closed by this thread once handed over (below): none to list here,
      // and no work competing with the successor for the CPU inside the stall.
      post({ type: 'quiesced', statePath: '', fds: [], version: snapshotVersion, failed, seen, built, written, inHand: OP_NAME[lastOp] ?? String(lastOp) });
      while (Atomics.load(control, 3) === 0) Atomics.wait(control, 3, 0);
      const verdict = Atomics.load(control, 3);
      Atomics.store(control, 3, 0);
      Atomics.store(control, 0, 0);
      if (verdict === 1) { reason = 'quiesced'; handedOverV2 = true; break; }
      // The successor failed or rejected the state: serve on, as if nothing happened.
      unboost?.();
      unboost = null;
      fs.nodes.stopTracking();
      snapshotFifo = null;
      continue;
    }
    if (q === 1) {
      // Nothing is in flight: every request read has been answered (the loop is synchronous).
      while (fs.nodes.openLazy() > 0);
      const st: TransferState = { ...fs.updatePrepare(), negotiated: d.negotiated!, devFd };
      const statePath = cfg.statePath ?? join(tmpdir(), `provfs-state-${process.pid}-${Date.now()}.bin`);
      writeState(statePath, st);
      post({ type: 'quiesced', statePath, fds: stateFds(st), version: st.version });
      reason = 'quiesced';
      break;
    }
    let n: number;
    try {
      n = libc.read(devFd, buf);
    } catch (e) {
      if (e instanceof libc.Errno) {
        if (e.errno === E.EINTR || e.errno === E.ENOENT || e.errno === E.EAGAIN) continue;
        if (e.errno === E.ENODEV) break;
      }
      reason = `read /dev/fuse: ${e instanceof Error ? e.message : String(e)}`;
      log.error(reason);
      break;
    }
    lastOp = hdr32[1]!;
    if (firstAnswer) trace.mark('firstRead');
    if (resent) {
      resent.inHand = (buf.readBigUInt64LE(8) & FUSE_UNIQUE_RESEND) !== 0n;
      if (--resent.left === 0) resent = null;
    }
    const h0 = traced > 0 ? performance.now() : 0;
    const pushedBefore = pushed;
    d.handle(buf, n);
    if (resent?.inHand && pushed === pushedBefore && cfg.mode === 'prov') {
      // A resent request answered without a record: a gap unless the dead daemon recorded it.
      const parent = fs.nodes.find(Number(buf.readBigUInt64LE(16))); // in_header: nodeid at 16, pid (the thread) at 32
      const lost = unrecordedResend(lastOp, buf.subarray(SIZE.in_header, n), buf.readUInt32LE(32), parent ? Number(parent.ino) : undefined, resent.known);
      if (lost) pushJson(lost);
    }
    if (traced > 0) {
      trace.mark(`reply${12 - traced}:${OP_NAME[lastOp] ?? lastOp}:${(performance.now() - h0).toFixed(2)}`);
      if (--traced === 0) trace.write();
    }
    if (firstAnswer) {
      firstAnswer = false;
      if (recovered) {
        trace.mark('firstReply');
        trace.write();
        if (recovered.damaged) log.warn(`recovery: the node log ${cfg.nodeLog!.path} is damaged; nodes after the damage get ESTALE`);
        log.debug(`recovery: ${recovered.nodes} nodes in the table (opened on first use)`);
      }
      post({ type: 'answered', at: Number(process.hrtime.bigint()) });
      const watch = takeFollowWatch();
      if (watch >= 0) post({ type: 'close', fd: watch });
      // A new loop (successor or after a crash) keeps its priority for its first 256 requests or
      // 100 ms: meanwhile the old daemon winds down, both main threads hand the journal over and
      // this process compiles its hot code, all on the CPUs the applications wait for.
      if (unboost) boostUntil = performance.now() + 100;
    } else if (boostUntil > 0 && (++boosted >= 256 || performance.now() > boostUntil)) {
      boostUntil = 0;
      unboost?.();
      unboost = null;
      if (recovered) realtime(false); // a standby: real-time since its wait (kernel/nodefollow)
    }
    if (fs.nodes.size > pruneHigh) prune();
    if ((++requests & (RENEW_EVERY - 1)) === 0) fs.renewMaps();
    if (colocator) {
      colocator.allowIdle = unboost === null; // never SCHED_IDLE while a handover's boost holds
      colocator.note(hdr32[8]!); // the caller's thread id (in_header.pid)
    }
    if (!state && !recovered && d.negotiated && lastOp === 26) {
      nodeLog?.init(d.negotiated);
      post({ type: 'ready', passthrough: d.negotiated.passthrough, minor: d.negotiated.minor, at: Number(process.hrtime.bigint()), devFd, rootFd: fs.nodes.get(1).fd });
    }
  }
  colocator?.release();
  // Every fsync accepted is answered before this thread (and its fds) go.
  for (let v; (v = Atomics.load(inflight, 0)) > 0;) Atomics.wait(inflight, 0, v, 1000);
  endSlow(slow, inflight);
  nodeLog?.close();
  if (reason !== 'quiesced' || handedOverV2) {
    // The connection is gone, or the successor holds copies of every fd: release the table's
    // fds (the root fd and the connection belong to the main thread).
    const root = fs.nodes.get(1).fd;
    for (const fd of fs.nodes.fds()) if (fd !== root) libc.close(fd);
  }
  const counts: Record<string, number> = {};
  for (const [op, c] of d.counts) counts[op] = c;
  post({ type: 'stopped', reason, counts });
}

if (parentPort && workerData?.provfsLoop) {
  const port = parentPort;
  runLoop(workerData.provfsLoop as LoopConfig, (m) => port.postMessage(m), () => receiveMessageOnPort(port)?.message);
}

/**
 * End the FSYNC helper thread. Not while it is still loading the native FFI module (its thread id
 * in `inflight[1]` comes right after): a worker terminated inside an addon's initialisation
 * aborts the whole process (node's FATAL ERROR napi_throw), which is how a daemon unmounted just
 * after it started died without its clean-up. It starts in tens of ms; wait up to 2 s for it.
 */
function endSlow(slow: Worker, inflight: Int32Array): void {
  for (let i = 0; i < 2000 && Atomics.load(inflight, 1) === 0; i++) Atomics.wait(inflight, 1, 0, 1);
  void slow.terminate();
}
