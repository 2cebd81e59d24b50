/**
 * @module ebpf/ring
 * A BPF ring buffer read directly from its memory mapping (no libbpf callback per record):
 * the consumer page (read-write), then the producer page and the data area mapped twice in a
 * row by the kernel, so a record that wraps is still contiguous. Record header: u32 length
 * (bit 31 busy, bit 30 discarded) + u32 page offset, then the payload, padded to 8 bytes.
 *
 * The consumer position lives in the kernel's map, not here: a reader that reopens the pinned
 * map resumes exactly where the previous one stopped.
 */
import koffi from 'koffi';
import { libbpf, lastErrno, errText } from './libbpf.js';
import { LoaderError } from './loader.js';

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const HDR = 8;
/** Where a record's `ts` sits (struct prov_hdr in prov.h: kind u16, size u16, uid u32, ts u64). */
const TS_OFFSET = 8;
const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
const PAGE = 4096;

export interface RingBatch {
  /** One copy of the records read: payloads are consecutive (header stripped). */
  bytes: Uint8Array;
  /** Start offset of each payload in `bytes`, plus the end as the last entry. */
  offsets: Uint32Array;
  count: number;
  /** Ring position just past this batch: pass it to {@link RingReader.commit} once the batch is safe. */
  end: number;
}

/** Records copied out with one bulk copy: payload i is bytes[starts[i], ends[i]). */
export interface RingSpans {
  /** The ring's bytes from the first record to past the last, headers and padding included. */
  bytes: Uint8Array;
  starts: Uint32Array;
  ends: Uint32Array;
  count: number;
  /** Payload bytes (headers, padding and discarded records left out). */
  payloadBytes: number;
  /** Ring position just past this batch (see {@link RingBatch.end}). */
  end: number;
}

export class RingReader {
  private readonly cons: BigUint64Array;
  private readonly prod: BigUint64Array;
  private readonly data: Uint8Array;
  private readonly dv: DataView;
  private readonly mask: number;
  private closed = false;
  /** How far this reader has copied out (ahead of the kernel's consumer position until commit). */
  private readPos: number;

  private constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly consPtr: bigint,
    private readonly prodPtr: bigint,
  ) {
    this.cons = new BigUint64Array(koffi.view(consPtr, 8));
    this.prod = new BigUint64Array(koffi.view(prodPtr, 8));
    const ab = koffi.view(prodPtr + BigInt(PAGE), 2 * size);
    this.data = new Uint8Array(ab);
    this.dv = new DataView(ab);
    this.mask = size - 1;
    this.readPos = Number(this.cons[0]!);
  }

  /** Map the ring pinned at `path`. */
  static open(path: string): RingReader {
    const L = libbpf();
    const fd = L.bpf_obj_get(path) as number;
    if (fd < 0) throw new LoaderError('ring', `${path}: ${errText(lastErrno())}`);
    const size = ringSize(fd);
    const consPtr = L.mmap(null, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) as bigint;
    if (consPtr === -1n || consPtr === 0n || koffi.address(consPtr) === 0xffffffffffffffffn) {
      L.close(fd);
      throw new LoaderError('ring', `mmap consumer page: ${errText(lastErrno())}`);
    }
    const prodPtr = L.mmap(null, PAGE + 2 * size, PROT_READ, MAP_SHARED, fd, PAGE) as bigint;
    if (prodPtr === -1n || koffi.address(prodPtr) === 0xffffffffffffffffn) {
      L.munmap(consPtr, PAGE);
      L.close(fd);
      throw new LoaderError('ring', `mmap data pages: ${errText(lastErrno())}`);
    }
    return new RingReader(fd, size, consPtr, prodPtr);
  }

  /** Bytes written by the kernel and not committed by the consumer yet. */
  pending(): number {
    return Number(this.prod[0]! - this.cons[0]!);
  }

  /**
   * The kernel's timestamp (bpf_ktime_get_ns: CLOCK_MONOTONIC ns, as process.hrtime) of the
   * oldest record not copied out yet; null when there is none or it is still being written.
   */
  oldestUnread(): bigint | null {
    if (this.readPos >= Number(this.prod[0]!)) return null;
    const at = this.readPos & this.mask;
    const len = this.dv.getUint32(at, true);
    if (len & (BUSY | DISCARD)) return null;
    return this.dv.getBigUint64(at + HDR + TS_OFFSET, true);
  }

  /** The position up to which records were copied out. */
  get position(): number { return this.readPos; }

  /** The kernel's consumer position (what a new reader would start from). */
  get committed(): number { return Number(this.cons[0]!); }

  /**
   * Copy out up to `maxBytes` of records the kernel has finished writing, from where the last
   * read stopped. The space stays reserved in the ring until {@link commit}: a reader that dies
   * before its copies are safe leaves them for the next one.
   */
  read(maxBytes = 8 << 20): RingBatch | null {
    let cons = this.readPos;
    const prod = Number(this.prod[0]!);
    if (cons >= prod) return null;
    // First pass: find how far committed records reach, and their count.
    const start = cons;
    let count = 0;
    let payloadBytes = 0;
    while (cons < prod && cons - start < maxBytes) {
      const off = cons & this.mask;
      const len = this.dv.getUint32(off, true);
      if (len & BUSY) break;
      const n = len & ~(BUSY | DISCARD);
      if (!(len & DISCARD)) { count++; payloadBytes += n; }
      cons += (n + HDR + 7) & ~7;
    }
    if (cons === start) return null;
    const bytes = new Uint8Array(payloadBytes);
    const offsets = new Uint32Array(count + 1);
    let p = start, k = 0, w = 0;
    while (p < cons) {
      const off = p & this.mask;
      const len = this.dv.getUint32(off, true);
      const n = len & ~(BUSY | DISCARD);
      if (!(len & DISCARD)) {
        offsets[k++] = w;
        bytes.set(this.data.subarray(off + HDR, off + HDR + n), w);
        w += n;
      }
      p += (n + HDR + 7) & ~7;
    }
    offsets[k] = w;
    this.readPos = cons;
    return { bytes, offsets, count, end: cons };
  }

  /**
   * Like {@link read}, with one bulk copy of the ring's bytes instead of one per record (the
   * data area is mapped twice in a row, so a batch that wraps is still contiguous): the drain
   * worker's hot path.
   */
  readSpans(maxBytes = 8 << 20): RingSpans | null {
    const start = this.readPos;
    const prod = Number(this.prod[0]!);
    if (start >= prod) return null;
    const dv = this.dv, mask = this.mask;
    const limit = Math.min(prod, start + maxBytes);
    // Bound the index arrays by the smallest record (8-byte header + 8-byte payload).
    const cap = Math.min(((limit - start) >>> 4) + 1, 1 << 20);
    const starts = new Uint32Array(cap), ends = new Uint32Array(cap);
    let cons = start, count = 0, payloadBytes = 0;
    while (cons < limit && count < cap) {
      const len = dv.getUint32(cons & mask, true);
      if (len & BUSY) break;
      const n = len & ~(BUSY | DISCARD);
      if (!(len & DISCARD)) {
        const o = cons - start + HDR;
        starts[count] = o;
        ends[count] = o + n;
        count++;
        payloadBytes += n;
      }
      cons += (n + HDR + 7) & ~7;
    }
    if (cons === start) return null;
    const from = start & mask;
    const bytes = this.data.slice(from, from + (cons - start));
    this.readPos = cons;
    return { bytes, starts: starts.subarray(0, count), ends: ends.subarray(0, count), count, payloadBytes, end: cons };
  }

  /** Give the ring space up to `pos` back to the kernel (the records before it are safe elsewhere). */
  commit(pos: number): void {
    if (pos > this.readPos) pos = this.readPos;
    if (pos > Number(this.cons[0]!)) this.cons[0] = BigInt(pos);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const L = libbpf();
    L.munmap(this.consPtr, PAGE);
    L.munmap(this.prodPtr, PAGE + 2 * this.size);
    L.close(this.fd);
  }
}

/** max_entries of a map fd, from bpf_obj_get_info_by_fd (struct bpf_map_info). */
function ringSize(fd: number): number {
  const info = Buffer.alloc(96);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  if (getInfo()(fd, info, len) !== 0) throw new LoaderError('ring', `bpf_obj_get_info_by_fd: ${errText(lastErrno())}`);
  const type = info.readUInt32LE(0);
  if (type !== 27) throw new LoaderError('ring', `pinned map is of type ${type}, not a ring buffer (27)`);
  return info.readUInt32LE(16);
}

function getInfo(): (fd: number, info: Buffer, len: Buffer) => number {
  return libbpf().bpf_obj_get_info_by_fd as (fd: number, info: Buffer, len: Buffer) => number;
}
