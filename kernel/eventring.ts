/**
 * @module kernel/eventring
 * A single-producer single-consumer byte ring in a SharedArrayBuffer: the request loop (a worker
 * blocked in read(2) most of the time) drops provenance records in it without a system call or
 * a message, and the main thread drains it on a timer into the journal, which group-commits.
 * When the ring is full the producer reports it and the caller falls back to postMessage, so
 * nothing is dropped.
 */

const HEAD = 0; // next byte the consumer reads (Int32 index)
const TAIL = 1; // next byte the producer writes
const HDR_BYTES = 8;
const WRAP = 0xffffffff;

export class EventRing {
  private readonly ctl: Int32Array;
  private readonly data: Uint8Array;
  private readonly view: DataView;
  readonly capacity: number;

  constructor(readonly sab: SharedArrayBuffer) {
    this.ctl = new Int32Array(sab, 0, 2);
    this.capacity = sab.byteLength - HDR_BYTES;
    this.data = new Uint8Array(sab, HDR_BYTES);
    this.view = new DataView(sab, HDR_BYTES);
  }

  static create(bytes = 8 << 20): EventRing {
    return new EventRing(new SharedArrayBuffer(HDR_BYTES + bytes));
  }

  /** Producer: append one record; false when there is no room (nothing written). */
  push(record: Uint8Array): boolean {
    const need = 4 + record.length;
    const head = Atomics.load(this.ctl, HEAD);
    let tail = Atomics.load(this.ctl, TAIL);
    const free = head > tail ? head - tail - 1 : this.capacity - tail + head - 1;
    if (need + 4 > free) return false;
    if (tail + need > this.capacity) {
      // Not enough room before the end: mark the wrap and start again at 0 (needs room there).
      if (need >= head) return false;
      if (tail + 4 <= this.capacity) this.view.setUint32(tail, WRAP, true);
      tail = 0;
    }
    this.view.setUint32(tail, record.length, true);
    this.data.set(record, tail + 4);
    Atomics.store(this.ctl, TAIL, tail + need);
    return true;
  }

  /** Consumer: take every complete record. */
  drain(): Uint8Array[] {
    const out: Uint8Array[] = [];
    let head = Atomics.load(this.ctl, HEAD);
    const tail = Atomics.load(this.ctl, TAIL);
    while (head !== tail) {
      if (head + 4 > this.capacity || this.view.getUint32(head, true) === WRAP) { head = 0; continue; }
      const len = this.view.getUint32(head, true);
      out.push(this.data.slice(head + 4, head + 4 + len));
      head += 4 + len;
    }
    Atomics.store(this.ctl, HEAD, head);
    return out;
  }
}
