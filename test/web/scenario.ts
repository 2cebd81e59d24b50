/**
 * @module test/web/scenario
 * A realistic lineage for the web explorer's tests and bench, written as the IngestBatches a
 * join engine would produce (recorded journals from the eBPF and join branches were not yet
 * available): a shell running make, a C build of three sources (one named with HTML in it)
 * compiled by cc and linked by ld, a static library archived from 500 object files (each from
 * its own cc), the binary relinked into a second version and run, a rename, a shell pipeline
 * `cat | grep | sort > errors.txt`, and 37 lost eBPF events in the middle of that pipeline.
 */
import type { GraphEdge, GraphNode, IngestBatch, NameRecord } from '../../graph/model.js';
import { fileIdentity, fileVersionId, processId } from '../../graph/model.js';
import type { GraphStore } from '../../graph/store.js';

const HOST = 'lab1';
const DEV = 2049;
/** CLOCK_MONOTONIC of the scenario's start: 5000 s after boot. */
export const T0 = 5_000_000_000_000;
const S = 1_000_000_000;
const MS = 1_000_000;

/** The file name that must render as text, never as markup. */
export const HTML_NAME = '<img src=x onerror=alert(1)>.c';
export const PROJ = '/home/ana/proj';

class Recorder {
  seq = 0;
  batches: IngestBatch[] = [];
  private cur: IngestBatch = this.fresh();
  private fresh(): IngestBatch { return { checkpoint: {}, nodes: [], edges: [], names: [], nameEnds: [], gaps: [] }; }
  node(n: GraphNode): string { this.cur.nodes.push(n); return n.id; }
  edge(kind: GraphEdge['kind'], from: string, to: string, ts: number, attrs?: Record<string, unknown>): void {
    const e: GraphEdge = { kind, from, to, ts, pos: `ebpf:${++this.seq}` };
    if (attrs) e.attrs = attrs;
    this.cur.edges.push(e);
  }
  name(r: Omit<NameRecord, 'host' | 'pos'>): void { this.cur.names.push({ ...r, host: HOST, pos: `ebpf:${++this.seq}` }); }
  nameEnd(file: string, path: string, until: number): void { this.cur.nameEnds.push({ file, path, until }); }
  gap(from: number, to: number, count: number, reason: string): void {
    this.cur.gaps.push({ id: `gap:${HOST}:ebpf:${from}`, host: HOST, src: 'ebpf', from, to, count, reason });
  }
  cut(): void {
    this.cur.checkpoint = { ebpf: this.seq };
    this.batches.push(this.cur);
    this.cur = this.fresh();
  }

  file(ino: number, path: string, ts: number, version = 0, attrs: Record<string, unknown> = {}): string {
    const id = fileVersionId(HOST, DEV, ino, version);
    this.node({ id, kind: 'file', host: HOST, label: path.slice(path.lastIndexOf('/') + 1), ts, attrs: { dev: DEV, ino, version, path, type: 'file', ...attrs } });
    if (version === 0) this.name({ file: fileIdentity(HOST, DEV, ino), path, since: ts });
    return id;
  }
  proc(pid: number, start: number, argv: string[], opts: { exe: string; end?: number; exitCode?: number; ppid?: number; cwd?: string; parent?: string; user?: string }): string {
    const id = processId(HOST, pid, start);
    const attrs: Record<string, unknown> = { pid, start, argv, exe: opts.exe, cwd: opts.cwd ?? PROJ, uid: 1000, gid: 1000, comm: opts.exe.slice(opts.exe.lastIndexOf('/') + 1) };
    if (opts.ppid !== undefined) attrs.ppid = opts.ppid;
    if (opts.end !== undefined) attrs.end = opts.end;
    if (opts.exitCode !== undefined) attrs.exitCode = opts.exitCode;
    this.node({ id, kind: 'process', host: HOST, label: argv.join(' '), ts: start, attrs });
    if (opts.parent) this.edge('wasInformedBy', id, opts.parent, start, { via: 'exec' });
    if (opts.user) this.edge('wasAssociatedWith', id, opts.user, start);
    return id;
  }
}

/** Ids and facts the tests assert on. */
export interface Scenario {
  batches: IngestBatch[];
  user: string;
  bash: string;
  make: string;
  cc: string;
  ld: string;
  relink: string;
  run: string;
  ar: string;
  libbig: string;
  mainC: string;
  utilH: string;
  htmlC: string;
  htmlO: string;
  mainO: string;
  appV0: string;
  appV1: string;
  notes: string;
  errors: string;
  grep: string;
  sort: string;
  bigObjects: string[];
  gap: { from: number; to: number; count: number };
  /** When the pipeline began: a time filter from here on leaves the build out. */
  pipelineStart: number;
}

/** Build the scenario's batches (deterministic). */
export function buildScenario(): Scenario {
  const r = new Recorder();
  const user = r.node({ id: `user:${HOST}:1000`, kind: 'user', host: HOST, label: 'ana (uid 1000)', ts: 0, attrs: { uid: 1000, name: 'ana' } });
  const ccBin = r.file(50, '/usr/bin/cc', 1 * S);
  const ldBin = r.file(51, '/usr/bin/ld', 1 * S);
  const arBin = r.file(52, '/usr/bin/ar', 1 * S);
  const bash = r.proc(100, T0, ['bash'], { exe: '/usr/bin/bash', ppid: 1, user });
  const make = r.proc(200, T0 + 1 * S, ['make', 'all'], { exe: '/usr/bin/make', ppid: 100, parent: bash, user, end: T0 + 19 * S, exitCode: 0 });
  const utilH = r.file(1004, `${PROJ}/include/util.h`, T0 - 100 * S);
  const draft = r.file(4000, `${PROJ}/draft.txt`, T0 - 50 * S);
  r.cut();

  // The C build: three sources, each compiled by its own cc, then linked by ld.
  const sources = ['main.c', 'util.c', HTML_NAME];
  const objects: string[] = [];
  const srcIds: string[] = [];
  let ccFirst = '';
  sources.forEach((name, i) => {
    const src = r.file(1001 + i, `${PROJ}/src/${name}`, T0 - 200 * S + i * S);
    srcIds.push(src);
    const start = T0 + 2 * S + i * 100 * MS;
    const obj = `obj/${name.replace(/\.c$/, '.o')}`;
    const cc = r.proc(300 + i, start, ['cc', '-c', '-Iinclude', `src/${name}`, '-o', obj], { exe: '/usr/bin/cc', ppid: 200, parent: make, user, end: start + 60 * MS, exitCode: 0 });
    if (i === 0) ccFirst = cc;
    r.edge('used', cc, ccBin, start + 1 * MS);
    r.edge('used', cc, src, start + 2 * MS);
    r.edge('used', cc, utilH, start + 3 * MS);
    const o = r.file(1101 + i, `${PROJ}/${obj}`, start + 50 * MS);
    r.edge('wasGeneratedBy', o, cc, start + 50 * MS);
    r.edge('wasDerivedFrom', o, src, start + 50 * MS, { rule: 'strict' });
    r.edge('wasDerivedFrom', o, utilH, start + 50 * MS, { rule: 'strict' });
    objects.push(o);
  });
  r.cut();

  // libbig.a from 500 objects, each compiled from its own source.
  const bigObjects: string[] = [];
  for (let k = 0; k < 500; k++) {
    const n = String(k).padStart(3, '0');
    const src = r.file(10_000 + k, `${PROJ}/src/big/f${n}.c`, T0 - 300 * S + k * MS);
    const start = T0 + 3 * S + k * 10 * MS;
    const cc = r.proc(1000 + k, start, ['cc', '-c', `src/big/f${n}.c`, '-o', `obj/big/f${n}.o`], { exe: '/usr/bin/cc', ppid: 200, parent: make, user, end: start + 8 * MS, exitCode: 0 });
    r.edge('used', cc, ccBin, start + 1 * MS);
    r.edge('used', cc, src, start + 2 * MS);
    const o = r.file(20_000 + k, `${PROJ}/obj/big/f${n}.o`, start + 7 * MS);
    r.edge('wasGeneratedBy', o, cc, start + 7 * MS);
    r.edge('wasDerivedFrom', o, src, start + 7 * MS, { rule: 'strict' });
    bigObjects.push(o);
    if (k % 100 === 99) r.cut();
  }
  const arStart = T0 + 9 * S;
  const ar = r.proc(900, arStart, ['ar', 'rcs', 'lib/libbig.a', 'obj/big/*.o'], { exe: '/usr/bin/ar', ppid: 200, parent: make, user, end: arStart + 400 * MS, exitCode: 0 });
  r.edge('used', ar, arBin, arStart + 1 * MS);
  for (const o of bigObjects) r.edge('used', ar, o, arStart + 2 * MS);
  const libbig = r.file(3000, `${PROJ}/lib/libbig.a`, arStart + 390 * MS);
  r.edge('wasGeneratedBy', libbig, ar, arStart + 390 * MS);
  r.cut();

  // Link, relink (a second version of app), run.
  const link = (pid: number, start: number, version: number): { proc: string; app: string } => {
    const proc = r.proc(pid, start, ['ld', '-o', 'app', 'obj/main.o', 'obj/util.o', `obj/${HTML_NAME.replace(/\.c$/, '.o')}`, 'lib/libbig.a'], { exe: '/usr/bin/ld', ppid: 200, parent: make, user, end: start + 300 * MS, exitCode: 0 });
    r.edge('used', proc, ldBin, start + 1 * MS);
    objects.forEach((o, i) => r.edge('used', proc, o, start + (2 + i) * MS));
    r.edge('used', proc, libbig, start + 10 * MS);
    const app = r.file(2000, `${PROJ}/app`, start + 290 * MS, version, { mode: 0o755 });
    r.edge('wasGeneratedBy', app, proc, start + 290 * MS);
    for (const o of objects) r.edge('wasDerivedFrom', app, o, start + 290 * MS, { rule: 'strict' });
    r.edge('wasDerivedFrom', app, libbig, start + 290 * MS, { rule: 'strict' });
    return { proc, app };
  };
  const first = link(400, T0 + 10 * S, 0);
  const second = link(401, T0 + 18 * S, 1);
  const run = r.proc(500, T0 + 25 * S, ['./app', '--check'], { exe: `${PROJ}/app`, ppid: 100, parent: bash, user, end: T0 + 26 * S, exitCode: 3 });
  r.edge('used', run, second.app, T0 + 25 * S + 1 * MS);
  // draft.txt becomes notes.txt: a name change, not a new file.
  r.nameEnd(fileIdentity(HOST, DEV, 4000), `${PROJ}/draft.txt`, T0 + 30 * S);
  r.name({ file: fileIdentity(HOST, DEV, 4000), path: `${PROJ}/notes.txt`, since: T0 + 30 * S });
  r.cut();

  // The pipeline, with lost events in the middle of grep's run.
  const p = T0 + 40 * S;
  const log = r.file(6000, '/var/log/app/access.log', T0 - 1000 * S);
  const cat = r.proc(600, p, ['cat', '/var/log/app/access.log'], { exe: '/usr/bin/cat', ppid: 100, parent: bash, user, end: p + 200 * MS, exitCode: 0 });
  const grep = r.proc(601, p + 1 * MS, ['grep', 'ERROR'], { exe: '/usr/bin/grep', ppid: 100, parent: bash, user, end: p + 1500 * MS, exitCode: 0 });
  const sort = r.proc(602, p + 2 * MS, ['sort'], { exe: '/usr/bin/sort', ppid: 100, parent: bash, user, end: p + 1600 * MS, exitCode: 0 });
  const pipe1 = r.node({ id: `pipe:${HOST}:7001`, kind: 'pipe', host: HOST, label: 'pipe:7001', ts: p, attrs: { ino: 7001 } });
  const pipe2 = r.node({ id: `pipe:${HOST}:7002`, kind: 'pipe', host: HOST, label: 'pipe:7002', ts: p, attrs: { ino: 7002 } });
  r.edge('used', cat, log, p + 5 * MS);
  r.edge('wasGeneratedBy', pipe1, cat, p + 190 * MS);
  r.edge('used', grep, pipe1, p + 10 * MS);
  r.edge('wasInformedBy', grep, cat, p + 10 * MS, { via: 'pipe' });
  r.edge('wasGeneratedBy', pipe2, grep, p + 700 * MS);
  r.edge('used', sort, pipe2, p + 20 * MS);
  r.edge('wasInformedBy', sort, grep, p + 700 * MS, { via: 'pipe' });
  const errors = r.file(5000, `${PROJ}/errors.txt`, p + 1590 * MS);
  r.edge('wasGeneratedBy', errors, sort, p + 1590 * MS);
  const gap = { from: p + 500 * MS, to: p + 900 * MS, count: 37 };
  r.gap(gap.from, gap.to, gap.count, 'ring buffer full');
  r.cut();

  return {
    batches: r.batches, user, bash, make, cc: ccFirst, ld: first.proc, relink: second.proc, run, ar, libbig,
    mainC: srcIds[0]!, utilH, htmlC: srcIds[2]!, htmlO: objects[2]!, mainO: objects[0]!, appV0: first.app, appV1: second.app,
    notes: draft, errors, grep, sort, bigObjects, gap, pipelineStart: p,
  };
}

/** Ingest the scenario into `store` and return its ids. */
export async function loadScenario(store: GraphStore): Promise<Scenario> {
  const s = buildScenario();
  for (const b of s.batches) await store.ingest(b);
  return s;
}
