/**
 * @module collector/join/testkit
 * Builders for the join engine's tests: a Scenario writes event sequences as the capture
 * sources would (eBPF records by pid, provfs records by tid with pid 0), keeps the clock, and
 * knows the image ids the engine is expected to give (fork/exec/lazy). Plus helpers that turn a
 * batch into sorted, readable sets of nodes and edges for exact comparison.
 */
import type { FileRef, ProvEvent } from '../events.js';
import type { JournalRecord } from '../journal/api.js';
import type { IngestBatch } from '../../graph/model.js';
import { JoinEngine, type JoinOptions } from './engine.js';
import { O_CLOEXEC } from './state.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export { O_CLOEXEC };
export const WRITE_NEW = O_WRONLY | O_CREAT | O_TRUNC;

/** The device of the ordinary file system in the tests, and of a provfs mount. */
export const DISK = 0xfe01;
export const FUSE = 0x2d;

type Fields<E> = E extends ProvEvent ? Omit<E, 'v' | 'src' | 'seq' | 'ts' | 'host' | 'pid' | 'tid'> : never;

export class Scenario {
  readonly host = 'h';
  readonly records: JournalRecord[] = [];
  /** Current clock (ns); every event advances it by 1 ms. */
  t = 1_000_000_000;
  private seqs: Record<string, number> = {};
  /** pid → the image id the engine should have for it now. */
  private images = new Map<number, string>();
  /** Threads: tid → tgid. */
  private threads = new Map<number, number>();

  /** Append an eBPF record by `pid` (tid defaults to pid); returns its ts. */
  ebpf(pid: number, fields: Fields<ProvEvent>, tid = pid): number {
    return this.push('ebpf', 'ebpf', pid, tid, fields);
  }

  /** Append a provfs record: FUSE knows only the caller's tid (pid 0). */
  provfs(tid: number, fields: Fields<ProvEvent>): number {
    return this.push('provfs-1', 'provfs', 0, tid, fields);
  }

  private push(stream: string, src: 'ebpf' | 'provfs', pid: number, tid: number, fields: Fields<ProvEvent>): number {
    this.t += 1_000_000;
    const seq = (this.seqs[stream] = (this.seqs[stream] ?? 0) + 1);
    const ev = { v: 1, src, seq, ts: this.t, host: this.host, pid, tid, ...fields } as ProvEvent;
    this.records.push({ stream, seq, pos: `${stream}:${seq}`, segment: '0', offset: 0, event: ev });
    const who = pid || this.threads.get(tid) || tid;
    if (!this.images.has(who) && ev.op !== 'lost') this.images.set(who, `proc:${this.host}:${who}:${this.t}`);
    return this.t;
  }

  /** The image id `pid` has now (as the engine should name it). */
  img(pid: number): string {
    const id = this.images.get(pid);
    if (!id) throw new Error(`test bug: pid ${pid} has no image yet`);
    return id;
  }

  fork(parent: number, child: number): string {
    const ts = this.ebpf(parent, { op: 'fork', child, childTid: child, thread: false });
    const id = `proc:${this.host}:${child}:${ts}`;
    this.images.set(child, id);
    return id;
  }
  thread(pid: number, tid: number): void {
    this.ebpf(pid, { op: 'fork', child: pid, childTid: tid, thread: true });
    this.threads.set(tid, pid);
  }
  exec(pid: number, argv: string[], opts: { uid?: number; exe?: FileRef } = {}): string {
    const ts = this.ebpf(pid, {
      op: 'exec', filename: opts.exe?.path ?? `/bin/${argv[0]}`, argv, uid: opts.uid ?? 1000, gid: 1000, cwd: '/w', exe: opts.exe,
    });
    const id = `proc:${this.host}:${pid}:${ts}`;
    this.images.set(pid, id);
    return id;
  }
  exit(pid: number, code = 0): number { return this.ebpf(pid, { op: 'exit', code, group: true }); }
  open(pid: number, fd: number, file: FileRef, flags: number, created = false): number {
    return this.ebpf(pid, { op: 'open', file, flags, fd, created });
  }
  close(pid: number, fd: number, fdMax?: number): number { return this.ebpf(pid, { op: 'close', fd, fdMax }); }
  dup(pid: number, oldfd: number, newfd: number, cloexec = false): number {
    return this.ebpf(pid, { op: 'dup', oldfd, newfd, cloexec });
  }
  pipe(pid: number, r: number, w: number, ino: number): number {
    return this.ebpf(pid, { op: 'pipe', fds: [r, w], ino });
  }
  lost(src: 'ebpf' | 'provfs', from: number, to: number, count: number): number {
    return this.push(src === 'ebpf' ? 'ebpf' : 'provfs-1', src, 0, 0, { op: 'lost', from, to, count, reason: 'ring buffer full' });
  }

  /** Run every record through a fresh engine; returns the engine and one batch with everything. */
  run(opts: JoinOptions = {}): { engine: JoinEngine; batch: IngestBatch } {
    const engine = new JoinEngine(opts);
    for (const r of this.records) engine.apply(r);
    return { engine, batch: engine.takeBatch() };
  }
}

/** A file on the test disk (or on the provfs mount with dev = FUSE). */
export function file(ino: number, path: string, dev = DISK): FileRef {
  return { dev, ino, path, name: path.slice(path.lastIndexOf('/') + 1) };
}

/** Id of version `v` of a test file. */
export function ver(f: FileRef, v: number, host = 'h'): string {
  return `file:${host}:${f.dev}:${f.ino}:${v}`;
}

/** Edges as sorted `kind from -> to` lines (optionally only some kinds). */
export function edges(b: IngestBatch, kinds?: string[]): string[] {
  return b.edges
    .filter((e) => !kinds || kinds.includes(e.kind))
    .map((e) => `${e.kind} ${e.from} -> ${e.to}${e.attrs?.rule ? ` [${String(e.attrs.rule)}]` : ''}${e.attrs?.role ? ` [${String(e.attrs.role)}]` : ''}`)
    .sort();
}

/** Nodes as sorted `kind id` lines. */
export function nodes(b: IngestBatch, kinds?: string[]): string[] {
  return b.nodes.filter((n) => !kinds || kinds.includes(n.kind)).map((n) => `${n.kind} ${n.id}`).sort();
}

/** Build expected edge lines. */
export function E(kind: string, from: string, to: string, tag?: string): string {
  return `${kind} ${from} -> ${to}${tag ? ` [${tag}]` : ''}`;
}

/** Every node reachable from `start` by following edges forward (its ancestors), with the start. */
export function ancestors(b: IngestBatch, start: string): Set<string> {
  const seen = new Set([start]);
  const todo = [start];
  while (todo.length) {
    const at = todo.pop()!;
    for (const e of b.edges) if (e.from === at && !seen.has(e.to)) { seen.add(e.to); todo.push(e.to); }
  }
  return seen;
}
