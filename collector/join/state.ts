/**
 * @module collector/join/state
 * The join engine's whole memory as plain JSON-able data, so that a snapshot is a deep copy and
 * a restart resumes from the checkpoint without replaying the journal. Every handler in the
 * join works on a {@link Ctx}: the state of the event's host, the batch being built and the
 * record being applied.
 */
import type { ProvEvent } from '../events.js';
import type { BatchBuilder } from './batch.js';

/** open(2) flag bits the join reads (x86-64/arm64 generic values). */
export const O_ACCMODE = 0o3;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_TRUNC = 0o1000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;
/** st_mode file-type bits. */
export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const S_IFIFO = 0o010000;

/** How an image came to hold an open file description. */
export type Via = 'open' | 'fork' | 'exec' | 'scm';

/** An image's hold on one open file description. */
export interface Acq {
  /** When the image got it (the `used` edge's ts). */
  ts: number;
  via: Via;
  /** The images it was handed through on its way here (nearest first, bounded), for the hand-off rule. */
  chain: string[];
}

/** One process image (a PROV activity). */
export interface ImageState {
  id: string;
  pid: number;
  start: number;
  /** fork: a forked copy that has not exec'd; exec: runs a program it exec'd; lazy: seen before capture. */
  kind: 'fork' | 'exec' | 'lazy';
  comm?: string;
  argv?: string[];
  exe?: string;
  cwd?: string;
  uid?: number;
  gid?: number;
  /** desc id → how this image holds it. */
  acq: Record<string, Acq>;
  /** Relations already emitted by this image (`kind|to`), so each is emitted once. */
  rel: Record<string, 1>;
}

/** A live process (thread group) with its current image and its fd table. */
export interface ProcState {
  pid: number;
  image: ImageState;
  /**
   * fd table, shared by all threads: key is the fd number as text, or `fh:<dev>:<fh>` for a
   * file held only as provfs saw it (no eBPF witness of the fd).
   */
  fds: Record<string, FdEntry>;
  /** Its threads other than the leader (their tids are in HostState.tids). */
  threads: number[];
}

export interface FdEntry { d: string; cloexec: boolean }

/** An open file description (what dup and fork share, what SCM_RIGHTS passes). */
export interface Desc {
  id: string;
  /** 'dir' stands for every description that moves no data: directories and O_PATH handles. */
  kind: 'file' | 'dir' | 'pipe' | 'socket';
  read: boolean;
  write: boolean;
  /** fd entries + in-flight SCM_RIGHTS copies referring to it. */
  refs: number;
  /** pid → number of its fd entries referring to it. */
  holders: Record<string, number>;
  dev?: number;
  ino?: number;
  /** The version this description reads (null when there is none to read). */
  ver?: number | null;
  /** The version this description writes. */
  wver?: number;
  /** The version a non-truncating writer's new version builds on. */
  base?: number;
  /** Pipe inode or socket inode. */
  obj?: number;
  peer?: number;
  /** True once eBPF witnessed the fd (then eBPF's closes drive it, provfs's FLUSH is ignored). */
  ebpf?: boolean;
  /** `pid:dev:ino` under which it waits for its second witness (witness.ts). */
  waitKey?: string;
  /** provfs file handle, once provfs witnessed the open. */
  fh?: number;
  /**
   * Images that handed this description on to an image that then related to it (the chain of
   * every image the release rule related): their own release later is a hand-off too.
   */
  through?: Record<string, 1>;
}

/** A writer image of a version, recorded at its release; becomes a wasGeneratedBy edge at the version's end. */
export interface Gen { ts: number; pos: string }

/** Everything known about one inode (dev, ino). */
export interface InodeState {
  dev: number;
  ino: number;
  /** Latest version number (-1: none seen yet). */
  cur: number;
  /** True while `cur` is being written (a writer description is open). */
  writing: boolean;
  /** Open writer descriptions of `cur`. */
  writers: number;
  /** image id → its release of a writer description of `cur`. */
  gens: Record<string, Gen>;
  /** Strict-rule derivations already emitted for `cur`. */
  derived: Record<string, 1>;
  /** image ids that used `cur` (a writer among them must not generate it: no cycles). */
  users: Record<string, 1>;
  type?: string;
  target?: string;
  /** Current names (absolute paths). */
  names: string[];
  /** Highest version whose node was emitted. */
  emitted: number;
  /** Whether version 0's node was emitted (it can come after a later one: a file first seen opened for writing). */
  v0?: boolean;
  /** When `cur` began (its node's ts, kept on every update because stores overwrite ts on merge). */
  since: number;
  /** The name `cur` had when it began (its `path` attribute). */
  vpath?: string;
  deleted?: boolean;
}

/** An SCM_RIGHTS copy in flight on a socket flow. */
export interface InFlight { d: string; chain: string[]; dev?: number; ino?: number }

/** An open witnessed by one source and waiting for the other witness (provfs devs only). */
export interface PendingOpen { d: string; ts: number }

/** All state for one host. */
export interface HostState {
  procs: Record<string, ProcState>;
  /** tid → tgid for threads that are not their group's leader. */
  tids: Record<string, number>;
  descs: Record<string, Desc>;
  nextDesc: number;
  inodes: Record<string, InodeState>;
  /** `dev:ino` of directories → path. */
  dirPaths: Record<string, string>;
  /** `dev:parent:name` → ino, and path → `dev:ino`, to name the victim of an unlink/rename. */
  dentries: Record<string, number>;
  paths: Record<string, string>;
  /** Devices provfs reported (it is authoritative for namespace ops and versions there). */
  provfsDevs: Record<string, 1>;
  /** `dev:fh` → desc id. */
  fhs: Record<string, string>;
  /** `pid:dev:ino` → eBPF-first opens waiting for provfs, and provfs-first opens waiting for eBPF. */
  waitProvfs: Record<string, PendingOpen[]>;
  waitEbpf: Record<string, PendingOpen[]>;
  /** uids whose user node was emitted. */
  users: Record<string, 1>;
  /** Socket flows whose node was emitted (both peers name the same flow: emitted once, its ts stays). */
  flows: Record<string, 1>;
  /** socket flow id → SCM_RIGHTS copies in flight, oldest first. */
  inflight: Record<string, InFlight[]>;
}

/** Counters the engine reports. */
export interface JoinStats {
  applied: number;
  /** Records at or below the checkpoint (a replay), skipped. */
  replayed: number;
  rejected: Record<string, number>;
  /** Events by pids the engine had not seen (given an image lazily). */
  unknownPids: number;
  /** FUSE tids with no known thread group (taken as their own pid). */
  unknownTids: number;
  /** fds the engine did not know (opened before capture or lost). */
  unknownFds: number;
  /** The second witness of an operation provfs already reported. */
  duplicateWitness: number;
  /** Opens seen by one witness only on a provfs device. */
  singleWitnessOpens: number;
  pidReused: number;
  /** Inode numbers seen again at a creation: the file that had one was deleted unseen. */
  reusedInodes: number;
  gaps: number;
  nodes: number;
  edges: number;
}

/** A snapshot of the engine: JSON-able, restored with JoinEngine.restore. */
export interface JoinState {
  v: 1;
  strict: boolean;
  checkpoint: Record<string, number>;
  hosts: Record<string, HostState>;
  stats: JoinStats;
}

/** What every handler gets. */
export interface Ctx {
  h: HostState;
  host: string;
  out: BatchBuilder;
  stats: JoinStats;
  strict: boolean;
  pos: string;
  ev: ProvEvent;
}

/**
 * An empty object used as a dictionary. Null-prototype objects start in V8's dictionary mode,
 * so keys that are ids (desc ids, image ids, paths) do not grow hidden-class transition trees;
 * they stay plain data for JSON and structuredClone.
 */
export function dict<T>(from?: Record<string, T>): Record<string, T> {
  const d = Object.create(null) as Record<string, T>;
  if (from) Object.assign(d, from);
  return d;
}

export function newHostState(): HostState {
  return {
    procs: dict(), tids: dict(), descs: dict(), nextDesc: 1, inodes: dict(), dirPaths: dict(), dentries: dict(), paths: dict(),
    provfsDevs: dict(), fhs: dict(), waitProvfs: dict(), waitEbpf: dict(), users: dict(), flows: dict(), inflight: dict(),
  };
}

export function newStats(): JoinStats {
  return {
    applied: 0, replayed: 0, rejected: {}, unknownPids: 0, unknownTids: 0, unknownFds: 0,
    duplicateWitness: 0, singleWitnessOpens: 0, pidReused: 0, reusedInodes: 0, gaps: 0, nodes: 0, edges: 0,
  };
}

/** Restored state (plain objects from JSON) back into dictionaries, with tables added since filled in. */
export function reviveHost(h: Partial<HostState>): HostState {
  const fresh = newHostState();
  const r: HostState = { ...fresh, ...h } as HostState;
  for (const k of Object.keys(fresh) as Array<keyof HostState>) {
    if (k !== 'nextDesc') (r as unknown as Record<string, unknown>)[k] = dict((r[k] ?? {}) as Record<string, unknown>);
  }
  for (const p of Object.values(r.procs)) {
    p.fds = dict(p.fds);
    p.threads ??= [];
    p.image.acq = dict(p.image.acq);
    p.image.rel = dict(p.image.rel);
  }
  for (const d of Object.values(r.descs)) {
    d.holders = dict(d.holders);
    if (d.through) d.through = dict(d.through);
  }
  for (const n of Object.values(r.inodes)) {
    n.gens = dict(n.gens);
    n.derived = dict(n.derived);
    n.users = dict(n.users);
  }
  return r;
}
