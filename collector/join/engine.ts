/**
 * @module collector/join/engine
 * The join engine: journal records in (already merged into one order by collector/merge.ts),
 * IngestBatches out, following DESIGN.md's provenance model. The pieces:
 * processes.ts (process table), fds.ts (fd tables and the release rule that decides who used or
 * generated what), files.ts (versions, names, the strict rule), namespace.ts, witness.ts (the
 * provfs/eBPF reconciliation). The state is plain data: {@link JoinEngine.snapshot} after
 * {@link JoinEngine.takeBatch} is what a restart resumes from.
 *
 * Bad records never throw out of {@link JoinEngine.apply}: they are rejected with a reason
 * (counted in stats, first few logged with their journal position); records that refer to
 * state the engine does not have (an unknown pid, fd or inode) are handled leniently and
 * counted.
 */
import type { ProvEvent } from '../events.js';
import type { JournalRecord } from '../journal/api.js';
import type { Checkpoint, IngestBatch } from '../../graph/model.js';
import { InputError } from '../../graph/errors.js';
import { logger } from '../log.js';
import { BatchBuilder } from './batch.js';
import { newHostState, newStats, reviveHost, type Ctx, type JoinState, type JoinStats } from './state.js';
import { onExec, onExit, onFork } from './processes.js';
import { onDup, onMsg, onPipe, onSocket } from './fds.js';
import { onNamespace } from './namespace.js';
import { onClose, onOpen, sweepPending } from './witness.js';

export type { JoinState, JoinStats } from './state.js';

const log = logger('join');

export interface JoinOptions {
  /** Also emit the Bento-prov strict rule's wasDerivedFrom edges (attrs.rule = 'strict'). Default false. */
  strict?: boolean;
}

/** How many rejections per reason are logged (all are counted). */
const LOG_PER_REASON = 5;
/** Pending two-witness opens are swept every this many records. */
const SWEEP_EVERY = 4096;

type Check = 'int' | 'num' | 'str' | 'bool' | 'arr' | 'file' | 'obj' | 'pair' | 'ints' | 'files' | 'strs' | 'name';
const REQUIRED: Record<string, Record<string, Check>> = {
  fork: { child: 'int', childTid: 'int', thread: 'bool' },
  exec: { filename: 'str', argv: 'arr', uid: 'int', gid: 'int' },
  exit: { code: 'int', group: 'bool' },
  pipe: { fds: 'pair', ino: 'int' },
  dup: { oldfd: 'int', newfd: 'int' },
  socket: { fd: 'int', ino: 'int' },
  accept: { fd: 'int', newfd: 'int', ino: 'int' },
  connect: { fd: 'int', ino: 'int' },
  sendmsg: { fd: 'int', sock: 'int' },
  recvmsg: { fd: 'int', sock: 'int' },
  open: { file: 'file', flags: 'int' },
  close: {},
  create: { file: 'file' },
  mkdir: { file: 'file' },
  symlink: { file: 'file', target: 'str' },
  link: { file: 'file' },
  rename: { file: 'file', from: 'obj', flags: 'int' },
  unlink: { file: 'file', deleted: 'bool' },
  rmdir: { file: 'file' },
  setattr: { file: 'file' },
  lost: { from: 'num', to: 'num', count: 'num' },
};

const WANT: Record<Check, string> = {
  int: 'an integer', num: 'a number', str: 'a string', bool: 'a boolean', arr: 'an array', obj: 'an object',
  file: 'a file reference {dev, ino}', pair: 'a pair of fds', ints: 'a list of integers', strs: 'a list of strings',
  files: 'a list of file references', name: 'a name {parent, name, path}',
};

/** Fields that may be absent but must have the right type when present. */
const OPTIONAL: Record<string, Record<string, Check>> = {
  fork: {},
  exec: { env: 'strs', cwd: 'str', exe: 'file' },
  pipe: {},
  dup: { cloexec: 'bool' },
  socket: { peer: 'int' },
  accept: { peer: 'int' },
  connect: { peer: 'int' },
  sendmsg: { peer: 'int', fds: 'ints', files: 'files' },
  recvmsg: { peer: 'int', fds: 'ints', files: 'files' },
  open: { fd: 'int', fh: 'int', created: 'bool' },
  close: { fd: 'int', fdMax: 'int', fh: 'int', file: 'file' },
  create: { fh: 'int', flags: 'int' },
  rename: { overwritten: 'file', overwrittenDeleted: 'bool', from: 'name' },
  setattr: { size: 'num' },
  lost: { reason: 'str' },
};

const REQUIRED_LIST = Object.fromEntries(Object.keys(REQUIRED).map((op) => [op, Object.entries(REQUIRED[op])]));
const OPTIONAL_LIST = Object.fromEntries(Object.keys(REQUIRED).map((op) => [op, Object.entries(OPTIONAL[op] ?? {})]));

function isName(v: unknown): boolean {
  const n = v as Record<string, unknown>;
  return typeof n === 'object' && n !== null
    && (n.path === undefined || typeof n.path === 'string')
    && (n.name === undefined || typeof n.name === 'string')
    && (n.parent === undefined || Number.isInteger(n.parent));
}

function ok(v: unknown, c: Check): boolean {
  switch (c) {
    case 'int': return Number.isInteger(v);
    case 'num': return typeof v === 'number' && Number.isFinite(v);
    case 'str': return typeof v === 'string';
    case 'bool': return typeof v === 'boolean';
    case 'arr': return Array.isArray(v);
    case 'obj': return typeof v === 'object' && v !== null;
    case 'pair': return Array.isArray(v) && v.length === 2 && v.every(Number.isInteger);
    case 'file': {
      const f = v as { dev?: unknown; ino?: unknown; type?: unknown } | null;
      return isName(f) && Number.isInteger(f!.dev) && Number.isInteger(f!.ino) && (f!.type === undefined || Number.isInteger(f!.type));
    }
    case 'name': return isName(v);
    case 'ints': return Array.isArray(v) && v.every(Number.isInteger);
    case 'strs': return Array.isArray(v) && v.every((x) => typeof x === 'string');
    case 'files': return Array.isArray(v) && v.every((x) => ok(x, 'file'));
  }
}

/** Why a record cannot be applied, or null. */
function invalid(ev: unknown): string | null {
  if (typeof ev !== 'object' || ev === null) return 'event is not an object';
  const e = ev as Record<string, unknown>;
  if (typeof e.op !== 'string' || !Object.hasOwn(REQUIRED, e.op)) return `unknown op ${JSON.stringify(e.op)}`;
  if (typeof e.ts !== 'number' || !Number.isFinite(e.ts)) return `${e.op}: field ts is not a number`;
  if (typeof e.host !== 'string' || e.host === '') return `${e.op}: field host missing`;
  if (!Number.isInteger(e.pid) || (e.pid as number) < 0) return `${e.op}: field pid is not a pid`;
  if (!Number.isInteger(e.tid) || (e.tid as number) < 0) return `${e.op}: field tid is not a tid`;
  if (e.pid === 0 && e.tid === 0 && e.op !== 'lost') return `${e.op}: neither pid nor tid`;
  for (const [field, c] of REQUIRED_LIST[e.op]) {
    if (!ok(e[field], c)) return `${e.op}: field ${field} is not ${WANT[c]}`;
  }
  for (const [field, c] of OPTIONAL_LIST[e.op]) {
    if (e[field] !== undefined && !ok(e[field], c)) return `${e.op}: field ${field} is not ${WANT[c]}`;
  }
  return null;
}

export class JoinEngine {
  private readonly out = new BatchBuilder();
  private state: JoinState;

  constructor(opts: JoinOptions = {}) {
    this.state = { v: 1, strict: Boolean(opts.strict), checkpoint: {}, hosts: {}, stats: newStats() };
  }

  /** An engine that continues from a snapshot (taken right after a takeBatch). */
  static restore(state: JoinState): JoinEngine {
    if (!state || state.v !== 1 || typeof state.hosts !== 'object') throw new InputError('not a version 1 snapshot', 'join state');
    const e = new JoinEngine({ strict: state.strict });
    e.state = structuredClone(state);
    // Snapshots from an earlier build may lack tables added since: start those empty.
    for (const [host, h] of Object.entries(e.state.hosts)) e.state.hosts[host] = reviveHost(h);
    e.state.stats = { ...newStats(), ...e.state.stats };
    return e;
  }

  /** Apply one record. Records at or below the checkpoint of their stream are skipped (replay). */
  apply(rec: JournalRecord): void {
    const st = this.state;
    const done = st.checkpoint[rec.stream] ?? 0;
    if (rec.seq <= done) {
      st.stats.replayed++;
      return;
    }
    st.checkpoint[rec.stream] = rec.seq;
    const why = invalid(rec.event);
    if (why) {
      this.reject(rec, why);
      return;
    }
    const ev = rec.event;
    const ctx: Ctx = {
      h: (st.hosts[ev.host] ??= newHostState()), host: ev.host, out: this.out, stats: st.stats,
      strict: st.strict, pos: rec.pos || `${rec.stream}:${rec.seq}`, ev,
    };
    try {
      dispatch(ctx, ev);
      st.stats.applied++;
    } catch (err) {
      // InputError: the record contradicts itself or what it names cannot be found. Anything
      // else is a bug in the join, reported as such (still never fatal to the collector).
      if (err instanceof InputError) this.reject(rec, `${ev.op}: ${err.message}`);
      else this.reject(rec, `${ev.op}: internal error: ${(err as Error)?.message ?? String(err)}`);
    }
    if ((st.stats.applied & (SWEEP_EVERY - 1)) === 0) sweepPending(ctx);
  }

  /** Everything produced since the last take, with the checkpoint reached. */
  takeBatch(): IngestBatch {
    const b = this.out.take(this.state.checkpoint);
    this.state.stats.nodes += b.nodes.length;
    this.state.stats.edges += b.edges.length;
    return b;
  }

  /** Nodes, edges, names and gaps waiting in the current batch. */
  get pending(): number { return this.out.size; }

  /** Per-stream last seq applied. */
  checkpoint(): Checkpoint { return { ...this.state.checkpoint }; }

  /** A deep, JSON-able copy of the whole state. Take it right after takeBatch so the two agree. */
  snapshot(): JoinState { return structuredClone(this.state); }

  stats(): JoinStats { return structuredClone(this.state.stats); }

  private reject(rec: JournalRecord, why: string): void {
    const s = this.state.stats;
    const n = (s.rejected[why] = (s.rejected[why] ?? 0) + 1);
    if (n <= LOG_PER_REASON) log.warn(`record ${rec.stream}:${rec.seq} rejected: ${why}`);
  }
}

function dispatch(ctx: Ctx, ev: ProvEvent): void {
  switch (ev.op) {
    case 'fork': return onFork(ctx, ev);
    case 'exec': return onExec(ctx, ev);
    case 'exit': return onExit(ctx, ev);
    case 'pipe': return onPipe(ctx, ev);
    case 'dup': return onDup(ctx, ev);
    case 'socket': case 'accept': case 'connect': return onSocket(ctx, ev);
    case 'sendmsg': case 'recvmsg': return onMsg(ctx, ev);
    case 'open': return onOpen(ctx, ev);
    case 'close': return onClose(ctx, ev);
    case 'lost': {
      const id = `gap:${ctx.host}:${ev.src}:${ev.from}-${ev.to}`;
      ctx.out.gap({ id, host: ctx.host, src: ev.src, from: ev.from, to: ev.to, count: ev.count, reason: ev.reason ?? 'lost' });
      ctx.stats.gaps++;
      return;
    }
    default: return onNamespace(ctx, ev);
  }
}
