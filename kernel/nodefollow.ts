/**
 * @module kernel/nodefollow
 * A node table kept current from a node log (kernel/nodelog) while another daemon writes it:
 * the fd keeper's warm standby follows the serving daemon's log as it grows (at most every few
 * milliseconds), noting
 * each new node's file handle and dropping the ones the log says went, so that when the daemon
 * dies only the last few records are left to apply. Nodes are not opened here: the table opens
 * each by its handle on first use (NodeTable.addLazy), so neither the catch-ups nor the takeover
 * make a system call per node — and none waits for a file the dying daemon's exit is still
 * releasing (open_by_handle_at of an inode being evicted waits for the eviction; that cost a
 * standby 10–35 ms here). A cold recovery reads the whole log with the same code, once.
 *
 * A node whose file no longer exists when first used gets ESTALE, as the kernel expects.
 *
 * The log may be compacted (replaced by a new file under the same name, see NodeLog.step):
 * the follower reads its old file to the end (the writer appended to both until the switch),
 * then the new one from its start, applying records already seen again harmlessly.
 */
import { fstatSync, openSync, closeSync, readSync, statSync, constants as C } from 'node:fs';
import { dirname } from 'node:path';
import * as libc from './libc.js';
import { realtime } from './rtprio.js';
import { NodeTable } from './nodes.js';
import { FUSE_ROOT_ID } from './protocol.js';
import { applyRecord, parseNodeLog, type NodeLogFold } from './nodelog.js';

export class NodeLogFollower {
  readonly table: NodeTable;
  private fd: number;
  private ino: number;
  private off = 0;
  private buf = Buffer.allocUnsafe(64 << 10);
  /** Bytes of a record not yet whole, kept at the start of `buf`. */
  private carry = 0;
  private readonly mountFd: number;
  /** Made in this catch-up, not yet in the table (in order). */
  private readonly fresh = new Map<number, libc.FileHandle>();
  /**
   * What the log says so far (kernel/nodelog's applyRecord): a new node waits in `fresh`; a gone
   * one leaves both `fresh` and the table — after a compaction the node may be in the table (from
   * the old file) and again in `fresh` (its record read anew from the new one).
   */
  private readonly log: NodeLogFold = {
    nodes: {
      set: (id, h) => { if (id !== FUSE_ROOT_ID) this.fresh.set(id, h); },
      delete: (id) => { this.fresh.delete(id); this.table.removeRecovered(id); },
    },
    backings: new Map(),
    maxId: 1,
  };
  private bad = false;

  /** What INIT negotiated, from the log. */
  get init(): unknown {
    return this.log.init;
  }

  constructor(readonly path: string, rootFd: number) {
    this.table = new NodeTable(rootFd);
    // open_by_handle_at wants a real fd on the file system (an O_PATH one is refused).
    this.mountFd = libc.reopen(rootFd, libc.O.RDONLY | libc.O.DIRECTORY);
    this.fd = openSync(path, C.O_RDONLY);
    this.ino = fstatSync(this.fd).ino;
  }

  /**
   * Apply what the log gained since the last call; `checkSwitch` also looks whether the log was
   * replaced by a compacted one (a stat of its path). Returns the records applied.
   */
  catchUp(checkSwitch = true): number {
    let n = this.readTail();
    if (checkSwitch) {
      let now: number;
      try { now = statSync(this.path).ino; } catch { now = this.ino; }
      if (now !== this.ino) {
        // Compacted: the old file is complete up to the switch; the new one starts over.
        const fd = openSync(this.path, C.O_RDONLY);
        closeSync(this.fd);
        this.fd = fd;
        this.ino = fstatSync(fd).ino;
        this.off = 0;
        this.carry = 0;
        this.bad = false;
        n += this.readTail();
      }
    }
    this.addFresh();
    return n;
  }

  private readTail(): number {
    let n = 0;
    // A damaged record ends what can be used of this file (what came before it is applied).
    while (!this.bad) {
      if (this.carry === this.buf.length) {
        const bigger = Buffer.allocUnsafe(this.buf.length * 2);
        this.buf.copy(bigger, 0, 0, this.carry);
        this.buf = bigger;
      }
      const got = readSync(this.fd, this.buf, this.carry, this.buf.length - this.carry, this.off);
      if (got === 0) return n;
      this.off += got;
      const all = this.buf.subarray(0, this.carry + got);
      const { end, bad } = parseNodeLog(all, 0, (r) => { applyRecord(this.log, r); n++; });
      if (bad) { this.bad = true; this.carry = 0; break; }
      this.carry = all.length - end;
      if (this.carry > 0) all.copy(this.buf, 0, end);
    }
    return n;
  }

  /** The nodes made since the last catch-up and still there go into the table, to be opened on first use. */
  private addFresh(): void {
    for (const [id, h] of this.fresh) this.table.addLazy(id, h, this.mountFd);
    this.fresh.clear();
  }

  /**
   * The last catch-up and the table to serve with: backing ids still registered go on their
   * nodes, ids and handle numbers continue above the dead daemon's. The follower is done.
   */
  finish(): { table: NodeTable; init: unknown; damaged: boolean } {
    this.catchUp();
    for (const [id, bid] of this.log.backings) this.table.setRecoveredBacking(id, bid);
    this.table.resumeAfter(this.log.maxId);
    this.close();
    return { table: this.table, init: this.init, damaged: this.bad };
  }

  /** Close the log (the table keeps its fds and the mount fd it opens nodes with). */
  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}

/** The inotify fd of a standby that took over, left open by {@link waitForGo}: see {@link takeFollowWatch}. */
let watchToClose = -1;

/**
 * The fd the standby's wait left open, to be closed by a thread that serves no request (-1:
 * none); asked once.
 */
export function takeFollowWatch(): number {
  const fd = watchToClose;
  watchToClose = -1;
  return fd;
}

/** At most this often a standby catches up with the node log while it grows (ms). */
const FOLLOW_MS = 5;

/**
 * The standby's wait: keep `f` following its node log until the fd keeper writes its go word on
 * `goFd` (the daemon died: take over; resolves with the dead daemon's pid) or the wire breaks
 * (the keeper went away: null).
 *
 * It sleeps until the log's directory changes (inotify: an append, or a compacted log renamed in)
 * and then catches up at most every {@link FOLLOW_MS}, so a busy daemon's standby is as current
 * as with polling and an idle one wakes nobody (polling woke this real-time thread 200 times a
 * second, each wake taking the CPU from whatever ran there). Without inotify it polls.
 */
export function waitForGo(f: NodeLogFollower, goFd: number, trace: { mark(phase: string): void }): number | null {
  const word = Buffer.alloc(5);
  let watch = -1;
  try {
    watch = libc.inotifyWatch(dirname(f.path), libc.IN.MODIFY | libc.IN.CREATE | libc.IN.MOVED_TO);
  } catch { /* no inotify (instances exhausted): poll */ }
  // Real-time while waiting, catch-ups included (a catch-up is a read and a parse of a few
  // records, no system call per node): a go word that comes during one is not left to wait for
  // a CPU (ordinary scheduling for the catch-ups cost up to 5 ms here, on a loaded machine).
  realtime(true);
  try {
    for (;;) {
      const [go, changed] = libc.pollIn(watch >= 0 ? [goFd, watch] : [goFd], watch >= 0 ? -1 : FOLLOW_MS);
      if (go !== 0) {
        let got: number;
        try {
          got = libc.read(goFd, word);
        } catch (e) {
          if (e instanceof libc.Errno && (e.errno === libc.E.EAGAIN || e.errno === libc.E.EINTR)) continue;
          throw e;
        }
        if (got === 5 && word[0] === 1) {
          trace.mark('go');
          // Closing an inotify fd waits for an SRCU grace period (fsnotify_destroy_group): 10–14
          // ms measured here. The main thread closes it (kernel/loop: takeFollowWatch).
          watchToClose = watch;
          watch = -1;
          return word.readUInt32LE(1);
        }
        realtime(false);
        f.close();
        return null;
      }
      if (changed) libc.drainInotify(watch);
      f.catchUp();
      // The next catch-up no sooner than FOLLOW_MS from now; the go word ends this wait at once.
      if (watch >= 0) libc.pollIn([goFd], FOLLOW_MS);
    }
  } finally {
    if (watch >= 0) libc.close(watch);
  }
}
