/**
 * @module kernel/eventring
 * A single-producer single-consumer byte ring: the request loop (a worker blocked in read(2)
 * most of the time) drops provenance records in it without a system call or a message, and the
 * main thread drains it on a timer into the journal, which group-commits.
 *
 * Crash survival: the ring can live in a shared file mapping ({@link EventRing.map}, a 0600 file
 * in the private runtime directory) instead of a SharedArrayBuffer, so that its contents outlive
 * a daemon killed with SIGKILL. Space is freed only up to the *committed* position — records the
 * journal has made durable — not up to what was drained, so a successor finds every record that
 * was not yet durable still in the ring ({@link EventRing.unjournaled}). Before the main thread
 * appends a record to the journal it stamps the record with the journal seq it is about to get:
 * a successor appends only records whose stamp the journal does not already hold, so a crash
 * between the journal write and the commit mark doubles nothing.
 *
 * An idle consumer stops polling: it raises a flag in the header ({@link sleepIfEmpty}) and the
 * producer, after publishing a record, lowers it and wakes the consumer ({@link wakeNeeded}),
 * as io_uring's SQ thread does with IORING_SQ_NEED_WAKEUP. Flag and tail are both sequentially
 * consistent atomics, each side storing one before loading the other, so either the consumer
 * sees the record or the producer sees the flag.
 *
 * Layout: a 64-byte header of Int32 words (committed, tail, drained, magic, records the loop
 * could not put in the ring, consumer asleep, consumer's journal stalled), then records `u32 length, f64 journal seq (0: not yet; -1: staged,
 * not published), bytes`.
 * A length of 0xffffffff (or no room for a record header before the end) means "wrapped to 0".
 */
import koffi from 'koffi';
import { PROVFS_HEADER_BYTES, writeProvfsFile, writeProvfsHeader } from '../collector/provfs-record.js';
import { copyBytes } from '../collector/copy-bytes.js';

const HEAD = 0; // committed: bytes before it (from the last wrap) are durable in the journal
const TAIL = 1; // next byte the producer writes
const DRAINED = 2; // next byte the consumer reads
const MAGIC_AT = 3;
const OVERFLOW = 4; // records the producer could not put here (they went by message)
const ASLEEP = 5; // 1: the consumer stopped polling; the next record published must wake it
const STALLED = 6; // 1: the consumer's journal cannot be written; a full ring will not drain soon
const HDR_BYTES = 64;
/** Bytes before each record's own: u32 length, f64 journal seq (kernel/linlog keeps records the same way). */
export const RECORD_HEADER_BYTES = 12;
const REC_HDR = RECORD_HEADER_BYTES;
const WRAP = 0xffffffff;
const MAGIC = 0x50524e47; // 'PRNG'
/** The journal-seq slot of a staged record (written, not published: see EventRing.stageString). */
const STAGED = -1;

const PROT_RW = 3, MAP_SHARED = 1;
type CFn = (...args: unknown[]) => unknown;
let mm: { mmap: CFn; munmap: CFn } | null = null;
function libcMm(): NonNullable<typeof mm> {
  if (!mm) {
    const lib = koffi.load('libc.so.6');
    mm = {
      mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as CFn,
      munmap: lib.func('int munmap(void *addr, size_t len)') as CFn,
    };
  }
  return mm;
}

/** Where a file-backed ring is, for another thread of this process to view the same memory. */
export interface MappedRing { addr: bigint; bytes: number }

/** A ring a loop thread is handed: a SharedArrayBuffer, or a mapping of this process. */
export type RingRef = SharedArrayBuffer | MappedRing;

/** One record left in a ring: its bytes and the journal seq it was stamped with (0: none). */
export interface RingRecord { data: Uint8Array; seq: number; /** For {@link EventRing.stamp}. */ off: number }

export class EventRing {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly view: DataView;
  readonly capacity: number;
  private readonly enc = new TextEncoder();
  /** Where the last record written starts and ends (see writeString, endRecord). */
  private writtenAt = 0;
  private writtenEnd = 0;
  /** The record being written in place ({@link begin}): where it starts, where its next byte goes. */
  private recAt = -1;
  private cur = 0;
  /** Where the staged record starts and ends (-1: none staged). */
  private stagedAt = -1;
  private stagedEnd = 0;
  /** Set for a mapping this object made (see {@link unmap}). */
  private mapped: MappedRing | null = null;

  constructor(readonly buffer: ArrayBufferLike) {
    this.ctl = new Int32Array(buffer, 0, 8);
    this.capacity = buffer.byteLength - HDR_BYTES;
    this.data = new Uint8Array(buffer, HDR_BYTES);
    this.view = new DataView(buffer, HDR_BYTES);
  }

  /** A ring in process memory (lost with the process). */
  static create(bytes = 8 << 20): EventRing {
    const r = new EventRing(new SharedArrayBuffer(HDR_BYTES + bytes));
    Atomics.store(r.ctl, MAGIC_AT, MAGIC);
    return r;
  }

  /**
   * A ring in a shared mapping of the open file `fd` (sized here when `fresh`, else as it is):
   * its memory outlives this process while the file exists. The fd may be closed afterwards.
   */
  static map(fd: number, fileBytes: number, fresh: boolean): EventRing {
    const { mmap } = libcMm();
    const got = mmap(null, fileBytes, PROT_RW, MAP_SHARED, fd, 0) as bigint | number | null;
    const addr = BigInt.asUintN(64, BigInt(got ?? 0));
    if (addr === 0n || addr === BigInt.asUintN(64, -1n)) throw new Error('mmap of the event ring failed');
    const ring = EventRing.view({ addr, bytes: fileBytes });
    ring.mapped = { addr, bytes: fileBytes };
    if (fresh) Atomics.store(ring.ctl, MAGIC_AT, MAGIC);
    else if (Atomics.load(ring.ctl, MAGIC_AT) !== MAGIC) { ring.unmap(); throw new Error('not an event ring (bad magic)'); }
    return ring;
  }

  /** The same memory as a ring of this process (another thread's view of {@link ref}). */
  static view(m: MappedRing): EventRing {
    return new EventRing(koffi.view(m.addr, m.bytes));
  }

  /** What a loop thread needs to reach this ring. */
  get ref(): RingRef {
    return this.mapped ?? (this.buffer as SharedArrayBuffer);
  }

  /** File size that holds a ring of `bytes` record bytes. */
  static fileBytes(bytes = 8 << 20): number {
    return HDR_BYTES + bytes;
  }

  /** Release a mapping made by {@link map} (no view of it may be used afterwards). */
  unmap(): void {
    if (!this.mapped) return;
    libcMm().munmap(this.mapped.addr, this.mapped.bytes);
    this.mapped = null;
  }

  private room(need: number): number {
    const head = Atomics.load(this.ctl, HEAD);
    let tail = Atomics.load(this.ctl, TAIL);
    const free = head > tail ? head - tail - 1 : this.capacity - tail + head - 1;
    if (need + 4 > free) return -1;
    if (tail + need > this.capacity) {
      // Not enough room before the end: mark the wrap and start again at 0 (needs room there).
      if (need >= head) return -1;
      if (tail + 4 <= this.capacity) this.view.setUint32(tail, WRAP, true);
      tail = 0;
    }
    return tail;
  }

  /** Producer: append one record; false when there is no room (nothing written). */
  push(record: Uint8Array): boolean {
    const need = REC_HDR + record.length;
    const tail = this.room(need);
    if (tail < 0) return false;
    this.view.setUint32(tail, record.length, true);
    this.view.setFloat64(tail + 4, 0, true);
    this.data.set(record, tail + REC_HDR);
    Atomics.store(this.ctl, TAIL, tail + need);
    return true;
  }

  /**
   * Producer: append a string as UTF-8 without an intermediate buffer (room is reserved for the
   * worst case of 3 bytes per UTF-16 unit); false when there is no room.
   */
  pushString(text: string): boolean {
    const end = this.writeString(text, 0);
    if (end < 0) return false;
    Atomics.store(this.ctl, TAIL, end);
    return true;
  }

  /**
   * Producer: write a record where the next one goes without publishing it (the consumer does
   * not see it): the record of an operation about to be carried out, published with
   * {@link publishStaged} once it succeeded, or left to be overwritten by the next record. A
   * successor finds a dead producer's staged record with {@link stagedRecord}. False when there
   * is no room (nothing written).
   */
  stageString(text: string): boolean {
    const end = this.writeString(text, STAGED);
    if (end < 0) return false;
    this.stagedAt = this.writtenAt;
    this.stagedEnd = end;
    return true;
  }

  /** Write `text` as a record with `seq` in its seq slot where the next record goes; its end, or -1 without room. */
  private writeString(text: string, seq: number): number {
    const max = text.length * 3;
    const at = this.room(REC_HDR + max);
    if (at < 0) return -1;
    this.unstage(at);
    const { written } = this.enc.encodeInto(text, this.data.subarray(at + REC_HDR, at + REC_HDR + max));
    this.view.setUint32(at, written, true);
    this.view.setFloat64(at + 4, seq, true);
    this.writtenAt = at;
    this.writtenEnd = at + REC_HDR + written;
    return this.writtenEnd;
  }

  /**
   * Producer: start writing a record of at most `max` bytes in place, piece by piece
   * ({@link putProvfsHeader}, {@link putProvfsFile}, {@link putBytes}), then {@link endRecord}: no string, no encoding,
   * no intermediate buffer (the provfs recorder's binary records, collector/provfs-record).
   * False when there is no room (nothing written).
   */
  begin(max: number): boolean {
    const at = this.room(REC_HDR + max);
    if (at < 0) return false;
    this.unstage(at);
    this.recAt = at;
    this.cur = at + REC_HDR;
    return true;
  }

  /** Producer: the header of a binary provfs record (collector/provfs-record) in the record begun. */
  putProvfsHeader(op: number, bits: number, tid: number, ts: number, mode: number, flags: number, fh: number): void {
    writeProvfsHeader(this.view, this.cur, op, bits, tid, ts, mode, flags, fh);
    this.cur += PROVFS_HEADER_BYTES;
  }

  /** Producer: a file's part (collector/provfs-record) in the record begun, after its header. */
  putProvfsFile(dev: number, ino: number, parent: number, type: number, name: Uint8Array, prefix: Uint8Array, host: Uint8Array): void {
    this.cur = writeProvfsFile(this.view, this.data, this.cur, dev, ino, parent, type, name, prefix, host);
  }

  /** Producer: bytes of the record begun (tens of bytes a piece: collector/copy-bytes). */
  putBytes(b: Uint8Array): void {
    this.cur = copyBytes(this.data, this.cur, b);
  }

  /**
   * Producer: finish the record begun: publish it, or with `staged` stage it as
   * {@link stageString} does (published later by {@link publishStaged}).
   */
  endRecord(staged: boolean): void {
    const at = this.recAt, end = this.cur;
    this.recAt = -1;
    this.view.setUint32(at, end - at - REC_HDR, true);
    this.view.setFloat64(at + 4, staged ? STAGED : 0, true);
    this.writtenAt = at;
    this.writtenEnd = end;
    if (staged) {
      this.stagedAt = at;
      this.stagedEnd = end;
    } else Atomics.store(this.ctl, TAIL, end);
  }

  /**
   * Producer: the bytes of the record written last ({@link pushString}, {@link stageString},
   * {@link endRecord}), a view into the ring valid until the next record is written.
   */
  lastWritten(): Uint8Array {
    return this.data.subarray(this.writtenAt + REC_HDR, this.writtenEnd);
  }

  /**
   * Before a record's bytes go where the next one goes: that place may still hold the header of
   * a staged record whose operation failed (left to be overwritten), and a producer killed
   * while writing must not leave that header in front of the new bytes for a successor to take
   * as staged ({@link stagedRecord}).
   */
  private unstage(at: number): void {
    if (at + REC_HDR <= this.capacity) this.view.setFloat64(at + 4, 0, true);
  }

  /** Producer: publish the record {@link stageString} wrote. */
  publishStaged(): void {
    if (this.stagedAt < 0) return;
    this.view.setFloat64(this.stagedAt + 4, 0, true);
    Atomics.store(this.ctl, TAIL, this.stagedEnd);
    this.stagedAt = -1;
  }

  /**
   * A successor's view of a dead producer's staged record (see {@link stageString}): the
   * operation it was carrying out when it died, which may or may not have taken effect.
   */
  stagedRecord(): Uint8Array | null {
    let at = Atomics.load(this.ctl, TAIL);
    if (at < 0 || at > this.capacity) return null;
    if (at + REC_HDR > this.capacity || this.view.getUint32(at, true) === WRAP) at = 0;
    if (this.view.getFloat64(at + 4, true) !== STAGED) return null;
    const len = this.view.getUint32(at, true);
    if (at + REC_HDR + len > this.capacity) return null;
    return this.data.slice(at + REC_HDR, at + REC_HDR + len);
  }

  /** Producer: count a record that went around the ring (by message). */
  countOverflow(): void {
    Atomics.add(this.ctl, OVERFLOW, 1);
  }

  /**
   * Consumer: say whether its journal is stalled (its disk is full). The producer waits for room
   * in a full ring only while it is not: a stalled journal frees none until the disk has room.
   */
  set journalStalled(stalled: boolean) {
    Atomics.store(this.ctl, STALLED, stalled ? 1 : 0);
  }

  get journalStalled(): boolean {
    return Atomics.load(this.ctl, STALLED) === 1;
  }

  /** Records that went around the ring since it was made. */
  get overflow(): number {
    return Atomics.load(this.ctl, OVERFLOW);
  }

  /**
   * Consumer: take every record not yet taken, with their offsets (for {@link stamp}) and the
   * position after the last (for {@link commit}). Their space stays in use until committed.
   * With `views` the records are views into the ring (shared memory), valid until committed:
   * for a consumer that copies them at once (the journal's framing). A copy each cost the
   * journaling thread a third of its time on an open/read/close workload.
   */
  take(views = false): { recs: Uint8Array[]; offs: number[]; end: number } {
    const recs: Uint8Array[] = [], offs: number[] = [];
    let at = Atomics.load(this.ctl, DRAINED);
    const tail = Atomics.load(this.ctl, TAIL);
    while (at !== tail) {
      if (at + REC_HDR > this.capacity || this.view.getUint32(at, true) === WRAP) { at = 0; continue; }
      const len = this.view.getUint32(at, true);
      offs.push(at);
      recs.push(views ? this.data.subarray(at + REC_HDR, at + REC_HDR + len) : this.data.slice(at + REC_HDR, at + REC_HDR + len));
      at += REC_HDR + len;
    }
    Atomics.store(this.ctl, DRAINED, at);
    return { recs, offs, end: at };
  }

  /**
   * Every record published but not taken yet (from the consumer's position to the producer's),
   * oldest first, as `fn(bytes, from, to)` over the ring's record area: for the producer, whose
   * own records they are and which writes none meanwhile (the consumer may take them, which
   * leaves their bytes where they are until the producer reuses the space).
   */
  forEachUntaken(fn: (bytes: Uint8Array, from: number, to: number) => void): void {
    let at = Atomics.load(this.ctl, DRAINED);
    const tail = Atomics.load(this.ctl, TAIL);
    while (at !== tail) {
      if (at + REC_HDR > this.capacity || this.view.getUint32(at, true) === WRAP) { at = 0; continue; }
      const len = this.view.getUint32(at, true);
      fn(this.data, at + REC_HDR, at + REC_HDR + len);
      at += REC_HDR + len;
    }
  }

  /**
   * The records of a {@link take}, headers included, as runs of adjacent bytes in this ring
   * (one, or two where the ring wrapped): `fn(bytes, from, to)`, oldest first. For a consumer
   * that keeps them in the ring's own layout (kernel/linlog) with one copy per run.
   */
  forEachRun(t: { recs: Uint8Array[]; offs: number[] }, fn: (bytes: Uint8Array, from: number, to: number) => void): void {
    let from = -1, to = -1;
    const { recs, offs } = t;
    for (let i = 0; i < offs.length; i++) {
      const at = offs[i]!;
      if (at !== to) {
        if (from >= 0) fn(this.data, from, to);
        from = at;
      }
      to = at + REC_HDR + recs[i]!.length;
    }
    if (from >= 0) fn(this.data, from, to);
  }

  /** Consumer: the journal seq record `off` (from {@link take}) gets; written before it is appended. */
  stamp(off: number, seq: number): void {
    this.view.setFloat64(off + 4, seq, true);
  }

  /** Consumer: everything before `pos` (an `end` of {@link take}) is durable; the producer may reuse it. */
  commit(pos: number): void {
    Atomics.store(this.ctl, HEAD, pos);
  }

  /**
   * Consumer: stop polling if nothing is left to take. True: asleep, the producer wakes it
   * ({@link wakeNeeded}); false: records arrived meanwhile, go on polling.
   */
  sleepIfEmpty(): boolean {
    Atomics.store(this.ctl, ASLEEP, 1);
    if (Atomics.load(this.ctl, DRAINED) === Atomics.load(this.ctl, TAIL)) return true;
    Atomics.store(this.ctl, ASLEEP, 0);
    return false;
  }

  /** Consumer: polling again (also what a new consumer of an old ring file says first). */
  awake(): void {
    Atomics.store(this.ctl, ASLEEP, 0);
  }

  /** Producer, after publishing: whether the consumer was asleep (it is marked awake now; wake it). */
  wakeNeeded(): boolean {
    return Atomics.load(this.ctl, ASLEEP) === 1 && Atomics.compareExchange(this.ctl, ASLEEP, 1, 0) === 1;
  }

  /** Bytes in use (not yet committed). */
  get used(): number {
    const head = Atomics.load(this.ctl, HEAD), tail = Atomics.load(this.ctl, TAIL);
    return tail >= head ? tail - head : this.capacity - head + tail;
  }

  /** Whether everything put here was committed. */
  get empty(): boolean {
    return Atomics.load(this.ctl, HEAD) === Atomics.load(this.ctl, TAIL);
  }

  /** Consumer: take every record and free its space at once (no durability tracking). */
  drain(): Uint8Array[] {
    const t = this.take();
    this.commit(t.end);
    return t.recs;
  }

  /**
   * A successor's view of a dead producer's ring: every record not committed, in order, with its
   * stamp. Stops (and says where) at anything that is not a whole record.
   */
  /**
   * Consumer: copies of the records not yet committed up to `end` (a {@link take}'s end),
   * oldest first: what a consumer whose journal failed for good must keep some other way.
   */
  uncommitted(end: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    this.walkUnjournaled((at, e) => { out.push(this.data.slice(at + REC_HDR, e)); }, end);
    return out;
  }

  /**
   * Clear the journal-seq stamps of every record not yet committed: a journal closed before it
   * made them durable may give those seqs to other records, and whoever recovers this ring must
   * then append them, not take them for journaled. Returns how many there are.
   */
  unstampUncommitted(): number {
    let n = 0;
    this.walkUnjournaled((at) => {
      if (this.view.getFloat64(at + 4, true) > 0) this.view.setFloat64(at + 4, 0, true);
      n++;
    });
    return n;
  }

  unjournaled(): { recs: RingRecord[]; damaged?: string } {
    const recs: RingRecord[] = [];
    const damaged = this.walkUnjournaled((at, end) => {
      recs.push({ data: this.data.slice(at + REC_HDR, end), seq: this.view.getFloat64(at + 4, true), off: at });
    });
    return damaged === undefined ? { recs } : { recs, damaged };
  }

  /**
   * The newest `n` records not yet journaled, oldest first, copied into one buffer (`ends[i]`:
   * where record i ends in it) for one byte search across them all; only the record headers of
   * the others are read (a takeover's first resent request waits for this).
   */
  lastUnjournaled(n: number): { bytes: Buffer; ends: number[] } {
    const spans: Array<[number, number]> = [];
    this.walkUnjournaled((at, end) => {
      spans.push([at + REC_HDR, end]);
      if (spans.length > 2 * n) spans.splice(0, spans.length - n);
    });
    const last = spans.slice(-n);
    const bytes = Buffer.allocUnsafe(last.reduce((a, [b, e]) => a + e - b, 0));
    const ends: number[] = [];
    let o = 0;
    for (const [b, e] of last) {
      bytes.set(this.data.subarray(b, e), o);
      o += e - b;
      ends.push(o);
    }
    return { bytes, ends };
  }

  /** Each record from the journaled position to the tail, by its offset and end; why it stopped early (a damaged ring), if it did. */
  private walkUnjournaled(each: (at: number, end: number) => void, until?: number): string | undefined {
    let at = Atomics.load(this.ctl, HEAD);
    const tail = until ?? Atomics.load(this.ctl, TAIL);
    if (at < 0 || at > this.capacity || tail < 0 || tail > this.capacity) return `positions out of range (committed ${at}, tail ${tail}) at ring offset ${at}`;
    for (let wraps = 0; at !== tail;) {
      if (at + REC_HDR > this.capacity || this.view.getUint32(at, true) === WRAP) {
        if (++wraps > 1) return `a second wrap before the tail at ring offset ${at}`;
        at = 0;
        continue;
      }
      const len = this.view.getUint32(at, true);
      const end = at + REC_HDR + len;
      if (end > this.capacity || (at < tail && end > tail)) return `a record of ${len} bytes running past the end at ring offset ${at}`;
      each(at, end);
      at = end;
    }
    return undefined;
  }
}
