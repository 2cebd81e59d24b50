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
const PROT_READ = 1, PROT_WRITE = 2, MAP_SHARED = 1;
const PAGE = 4096;

export interface RingBatch {
  /** One copy of the records read: payloads are consecutive (header stripped). */
  bytes: Uint8Array;
  /** Start offset of each payload in `bytes`, plus the end as the last entry. */
  offsets: Uint32Array;
  count: number;
}

export class RingReader {
  private readonly cons: BigUint64Array;
  private readonly prod: BigUint64Array;
  private readonly data: Uint8Array;
  private readonly dv: DataView;
  private readonly mask: number;
  private closed = false;

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

  /** Bytes written by the kernel and not consumed yet. */
  pending(): number {
    return Number(this.prod[0]! - this.cons[0]!);
  }

  /**
   * Copy out up to `maxBytes` of committed records and advance the consumer position past
   * them (the kernel may reuse that space from then on). Returns null when nothing is ready.
   */
  read(maxBytes = 8 << 20): RingBatch | null {
    let cons = Number(this.cons[0]!);
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
    this.cons[0] = BigInt(cons);
    return { bytes, offsets, count };
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
  const L = libbpf();
  const info = Buffer.alloc(96);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(info.length);
  if (getInfo()(fd, info, len) !== 0) throw new LoaderError('ring', `bpf_obj_get_info_by_fd: ${errText(lastErrno())}`);
  const type = info.readUInt32LE(0);
  if (type !== 27) throw new LoaderError('ring', `pinned map is of type ${type}, not a ring buffer (27)`);
  void L;
  return info.readUInt32LE(16);
}

let getInfoFn: ((fd: number, info: Buffer, len: Buffer) => number) | null = null;
function getInfo() {
  if (!getInfoFn) getInfoFn = koffi.load('libbpf.so.1').func('int bpf_obj_get_info_by_fd(int fd, void *info, void *len)') as never;
  return getInfoFn!;
}
