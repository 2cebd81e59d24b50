/**
 * @module collector/rebuild/plan
 * From a file's current version to the recorded commands that produced it, at the grain a
 * person would name them.
 *
 * The grain rule. The producers of a file version are the images that generated it (for a C
 * object, `as`; for a binary, `ld`). Walking up their fork/exec chain reaches the root of the
 * recorded process tree. Going back down from that root, an image is passed through when it
 * is not a runnable command or when it is a *driver*, and the first other exec'd image on the
 * way to a producer is the *command*:
 * - only exec'd images are commands (a fork that never exec'd, or an image running before
 *   capture, has no argv of its own to re-run);
 * - a driver is an exec'd image with at least two exec'd children (through fork images or its
 *   own exec) whose subtrees left durable outputs (file versions not deleted afterwards), all
 *   of them self-contained: make, a shell script running several steps. The compiler driver
 *   `cc` is not one: of cc1, as, collect2, only one child leaves a durable file (cc1's .s is a
 *   temporary the driver deletes), so `cc -c foo.c -o foo.o` is the command and cc1, as, ld are
 *   its helpers;
 * - self-contained: re-running the image's argv alone reproduces its outputs. Not so when it
 *   wrote a file its parent opened for it (a shell redirect: the version began before the image
 *   started), read a file it inherited at exec (`< in`), or shared a pipe with an image outside
 *   its subtree (a member of `a | b`). A driver with such a child is re-run as a whole.
 * A driver that ran a single working step (a make that only re-linked) is itself the command.
 *
 * A command's inputs are the file versions its subtree used (executables included; not /dev,
 * /proc, /sys) that it did not generate itself; its outputs are the last version of each file
 * its subtree wrote, unless its own subtree deleted it. The command that makes an input is the
 * producer of the latest recorded version of the input's file (what is there now), which is the
 * producer of the version read unless a later run re-made it.
 */
import type { GraphEdge, GraphNode } from '../../graph/model.js';
import type { GraphStore } from '../../graph/store.js';
import { NotFoundError } from '../../graph/errors.js';

/** A file a command read or wrote, as recorded. */
export interface RecordedFile {
  /** File version id. */
  id: string;
  path: string;
  dev: number;
  ino: number;
  version: number;
  /** When the command first read it (inputs) or closed it (outputs), monotonic ns. */
  ts: number;
  /** Deleted in the record (a temporary). */
  deleted?: boolean;
  /** Input is the executable of one of the command's images. */
  exe?: boolean;
}

/** One re-runnable recorded command. */
export interface Command {
  /** Stable across re-recordings: hash-free key of argv + cwd. */
  key: string;
  /** The image id of the recorded run. */
  run: string;
  argv: string[];
  exe: string;
  cwd: string;
  env?: string[];
  /** The recorded argv was cut at capture's size limit: the command cannot be re-run faithfully. */
  argvTruncated?: boolean;
  /** The recorded environment was cut at capture's size limit (its last entry may be partial). */
  envTruncated?: boolean;
  uid: number;
  gid: number;
  start: number;
  end?: number;
  exitCode?: number;
  inputs: RecordedFile[];
  outputs: RecordedFile[];
  /** Keys of the commands whose outputs this one reads (dependencies). */
  deps: string[];
  /** Images in the command's subtree, for hazards and explanations. */
  images: number;
  /** The command talked over a socket (recorded socket activity). */
  sockets: string[];
}

export interface Plan {
  target: string;
  targetVersion: string;
  /** In a dependency order (dependencies first). */
  commands: Command[];
  /** Versions of files in the closure that no recorded command produced (sources). */
  sources: number;
}

interface Info {
  node: GraphNode;
  out: Array<{ edge: GraphEdge; node: GraphNode }>;
  in: Array<{ edge: GraphEdge; node: GraphNode }>;
}

/** Walks the store with a per-plan cache of node details. */
class Walker {
  private cache = new Map<string, Promise<Info | null>>();
  constructor(private store: GraphStore) {}

  info(id: string): Promise<Info | null> {
    let p = this.cache.get(id);
    if (!p) {
      p = this.store.node(id, { edgeLimit: 100_000 }).then((d) => d && { node: d.node, out: d.out, in: d.in });
      this.cache.set(id, p);
    }
    return p;
  }

  /**
   * The processes that generated a file version (its `wasGeneratedBy` edges), without loading
   * every process that used it (a header read by every compile): a few edges first, all of them
   * only when the version's own outgoing edges did not fit.
   */
  async producers(id: string): Promise<GraphNode[] | null> {
    const full = this.cache.get(id);
    let out: Info['out'];
    if (full) {
      const i = await full;
      if (!i) return null;
      out = i.out;
    } else {
      const d = await this.store.node(id, { edgeLimit: Walker.FEW });
      if (!d) return null;
      out = d.out.length < Walker.FEW ? d.out : (await this.info(id))?.out ?? [];
    }
    return out.filter((x) => x.edge.kind === 'wasGeneratedBy' && x.node.kind === 'process').map((x) => x.node);
  }

  private static readonly FEW = 16;

  /** The image that forked or exec'd this one (null at a root). */
  async parent(id: string): Promise<GraphNode | null> {
    const i = await this.info(id);
    const e = i?.out.find((x) => x.edge.kind === 'wasInformedBy' && (x.edge.attrs?.via === 'fork' || x.edge.attrs?.via === 'exec'));
    return e?.node ?? null;
  }

  /** Images this one forked or exec'd. */
  async children(id: string): Promise<GraphNode[]> {
    const i = await this.info(id);
    return (i?.in ?? []).filter((x) => x.edge.kind === 'wasInformedBy' && (x.edge.attrs?.via === 'fork' || x.edge.attrs?.via === 'exec')).map((x) => x.node);
  }

  /** Every image of the subtree rooted at id (id included). */
  async subtree(id: string): Promise<GraphNode[]> {
    const root = (await this.info(id))?.node;
    if (!root) return [];
    const out: GraphNode[] = [root];
    for (let i = 0; i < out.length; i++) out.push(...(await this.children(out[i]!.id)));
    return out;
  }

  /** Nearest exec'd descendants (through fork images; an exec'd child ends the descent). */
  async execChildren(id: string): Promise<GraphNode[]> {
    const res: GraphNode[] = [];
    const queue = await this.children(id);
    while (queue.length) {
      const c = queue.shift()!;
      if (c.attrs.image === 'exec') res.push(c);
      else queue.push(...(await this.children(c.id)));
    }
    return res;
  }
}

const isFileVersion = (n: GraphNode): boolean => n.kind === 'file' && n.attrs.type !== 'dir';
/** Device and kernel files are neither inputs nor outputs (/dev/null, /proc/self/…). */
const PSEUDO = /^\/(dev|proc|sys)\//;

/** Facts about the subtree of an image: durable outputs, inputs, pipes and sockets crossing. */
interface SubtreeFacts {
  images: Set<string>;
  outputs: Map<string, { node: GraphNode; ts: number }>;
  inputs: Map<string, { node: GraphNode; ts: number; exe: boolean }>;
  selfContained: boolean;
  sockets: Set<string>;
}

async function facts(w: Walker, rootImage: GraphNode, scope?: Set<string>): Promise<SubtreeFacts> {
  const imgs = await w.subtree(rootImage.id);
  const images = new Set(imgs.map((n) => n.id));
  const outputs = new Map<string, { node: GraphNode; ts: number }>();
  const inputs = new Map<string, { node: GraphNode; ts: number; exe: boolean }>();
  const generated = new Set<string>();
  const sockets = new Set<string>();
  let selfContained = true;
  const start = Number(rootImage.attrs.start ?? rootImage.ts);
  for (const img of imgs) {
    const i = await w.info(img.id);
    if (!i) continue;
    for (const { edge, node } of i.in) {
      if (edge.kind !== 'wasGeneratedBy') continue;
      if (node.kind === 'file' && isFileVersion(node)) {
        generated.add(node.id);
        // A version that began before the command started was opened for it by its parent.
        if (img.id === rootImage.id && node.ts < start) selfContained = false;
        outputs.set(node.id, { node, ts: edge.ts });
      } else if (node.kind === 'pipe') {
        if (!(await pipeInside(w, node.id, images))) selfContained = false;
      } else if (node.kind === 'socket') sockets.add(node.id);
    }
    for (const { edge, node } of i.out) {
      if (edge.kind !== 'used') continue;
      if (node.kind === 'file' && isFileVersion(node)) {
        const exe = edge.attrs?.role === 'exe';
        if (img.id === rootImage.id && !exe && edge.ts <= start && edge.attrs?.role !== 'base') selfContained = false;
        const prev = inputs.get(node.id);
        if (!prev || edge.ts < prev.ts) inputs.set(node.id, { node, ts: edge.ts, exe: exe || Boolean(prev?.exe) });
      } else if (node.kind === 'pipe') {
        if (!(await pipeInside(w, node.id, images))) selfContained = false;
      } else if (node.kind === 'socket') sockets.add(node.id);
    }
  }
  for (const id of generated) inputs.delete(id);
  // Only the last version the subtree wrote of each inode is an output, and only if it was not
  // deleted (mkstemp's empty file, then cc1's .s, then unlinked: a temporary).
  const last = new Map<string, { node: GraphNode; ts: number }>();
  for (const o of outputs.values()) {
    const k = `${o.node.attrs.dev}:${o.node.attrs.ino}`;
    const prev = last.get(k);
    if (!prev || Number(o.node.attrs.version) > Number(prev.node.attrs.version)) last.set(k, o);
  }
  outputs.clear();
  for (const o of last.values()) if (!(await deletedInRecord(w, o.node, scope ?? images))) outputs.set(o.node.id, o);
  return { images, outputs, inputs, selfContained, sockets };
}

/**
 * Did the command's own subtree delete this version (a temporary: cc1's .s)? A later command
 * deleting it (as replacing foo.o on a rebuild) does not make it a temporary.
 */
async function deletedInRecord(w: Walker, v: GraphNode, images: Set<string>): Promise<boolean> {
  const i = await w.info(v.id);
  const by = (i?.out ?? []).filter((x) => x.edge.kind === 'wasInvalidatedBy');
  if (by.length) return by.some((x) => images.has(x.node.id));
  return Boolean(v.attrs.deleted ?? i?.node.attrs.deleted);
}

async function pipeInside(w: Walker, pipeId: string, images: Set<string>): Promise<boolean> {
  const p = await w.info(pipeId);
  if (!p) return true;
  for (const { node } of [...p.in, ...p.out]) if (node.kind === 'process' && !images.has(node.id)) return false;
  return true;
}

function fileOf(n: GraphNode, ts: number, names: Map<string, string>, extra: Partial<RecordedFile> = {}): RecordedFile {
  return {
    id: n.id, path: String(n.attrs.path ?? names.get(n.id) ?? ''), dev: Number(n.attrs.dev), ino: Number(n.attrs.ino),
    version: Number(n.attrs.version), ts, deleted: n.attrs.deleted ? true : undefined, ...extra,
  };
}

/** The key of a command: what identifies "the same command" across recordings. */
export function commandKey(argv: string[], cwd: string): string {
  return JSON.stringify([cwd, argv]);
}

/**
 * Plan the rebuild of `path`: its current version's producing commands and, recursively, the
 * commands producing their inputs. Throws NotFoundError when the store does not know the file.
 */
export async function planRebuild(store: GraphStore, path: string, previous?: Plan): Promise<Plan> {
  const target = await store.resolvePath(path);
  // A version's producers never change once recorded: a command of an earlier plan that made a
  // version we reach again is taken as it was, without walking its processes again.
  const known = new Map<string, Command>();
  for (const c of previous?.commands ?? []) for (const o of c.outputs) known.set(o.id, c);
  if (!target) throw new NotFoundError(`${path}: no recorded version (was it written under capture and ingested?)`);
  const w = new Walker(store);
  const commands = new Map<string, Command>(); // by run image id
  const byVersion = new Map<string, string>(); // output version id → command run id
  const decided = new Map<string, Promise<GraphNode | null>>(); // producer image → command image
  const names = new Map<string, string>();
  let sources = 0;

  /** Is this exec'd image a driver whose steps are all self-contained (to be descended)? */
  const driverCache = new Map<string, Promise<boolean>>();
  const isDriver = (img: GraphNode): Promise<boolean> => {
    let p = driverCache.get(img.id);
    if (!p) {
      p = (async () => {
        let working = 0;
        // What the driver's own subtree deleted is a temporary of it (cc deletes cc1's .s).
        const scope = new Set((await w.subtree(img.id)).map((n) => n.id));
        for (const c of await w.execChildren(img.id)) {
          const f = await facts(w, c, scope);
          if (f.outputs.size === 0) continue;
          if (!f.selfContained) return false;
          working++;
        }
        return working >= 2;
      })();
      driverCache.set(img.id, p);
    }
    return p;
  };

  /** The command image a producer belongs to, by the grain rule. */
  const commandOf = (producer: GraphNode): Promise<GraphNode | null> => {
    let p = decided.get(producer.id);
    if (!p) {
      p = (async () => {
        const chain: GraphNode[] = [producer];
        for (let up = await w.parent(producer.id); up; up = await w.parent(up.id)) chain.unshift(up);
        let last: GraphNode | null = null;
        for (const img of chain) {
          if (img.attrs.image !== 'exec') continue;
          last = img;
          if (img.id === producer.id || !(await isDriver(img))) return img;
        }
        return last;
      })();
      decided.set(producer.id, p);
    }
    return p;
  };

  const current = new Map<string, string>(); // version read → latest version of that path
  const latestByPath = new Map<string, Promise<GraphNode | null>>();
  const currentOf = async (f: RecordedFile): Promise<string> => {
    let p = latestByPath.get(f.path);
    if (!p) {
      p = store.resolvePath(f.path);
      latestByPath.set(f.path, p);
    }
    const node = await p;
    if (!node || node.kind !== 'file') return f.id;
    const latest = node.id;
    // A later version of the same inode stands in for the one read...
    if (latest.startsWith(`file:${f.id.split(':')[1]}:${f.dev}:${f.ino}:`)) return Number(latest.slice(latest.lastIndexOf(':') + 1)) > f.version ? latest : f.id;
    // ...and so does another file the path names now, when it appeared after the read: a tool
    // that replaces its output (as unlinks foo.o and creates it anew, often on another inode)
    // re-made it, and a dependent cut off since still names the file it read.
    return node.ts > f.ts ? latest : f.id;
  };
  const pending: string[] = [target.id];
  const seen = new Set<string>();
  while (pending.length) {
    const vid = pending.pop()!;
    if (seen.has(vid)) continue;
    seen.add(vid);
    const prior = known.get(vid);
    if (prior) {
      byVersion.set(vid, prior.run);
      if (!commands.has(prior.run)) {
        const cmd: Command = { ...prior, deps: [] };
        commands.set(prior.run, cmd);
        for (const i of cmd.inputs) {
          const cur = await currentOf(i);
          if (cur !== i.id) current.set(i.id, cur);
          pending.push(cur);
        }
      }
      continue;
    }
    const producers = await w.producers(vid);
    if (!producers) continue;
    if (producers.length === 0) { sources++; continue; }
    for (const prod of producers) {
      const cmdImg = await commandOf(prod);
      if (!cmdImg) continue;
      byVersion.set(vid, cmdImg.id);
      if (commands.has(cmdImg.id)) continue;
      const f = await facts(w, cmdImg);
      for (const id of [...f.inputs.keys(), ...f.outputs.keys()]) {
        if (names.has(id)) continue;
        const n = (f.inputs.get(id) ?? f.outputs.get(id))!.node;
        if (!n.attrs.path) {
          const d = await store.node(id, { edgeLimit: 0 });
          if (d?.names[0]) names.set(id, d.names[d.names.length - 1]!.path);
        }
      }
      const a = cmdImg.attrs;
      const argv = (a.argv as string[] | undefined) ?? [];
      const cwd = String(a.cwd ?? '/');
      const cmd: Command = {
        key: commandKey(argv, cwd), run: cmdImg.id, argv, exe: String(a.exe ?? argv[0] ?? ''), cwd,
        env: a.env as string[] | undefined, envTruncated: a.envTruncated ? true : undefined,
        argvTruncated: a.argvTruncated ? true : undefined, uid: Number(a.uid ?? 0), gid: Number(a.gid ?? 0),
        start: Number(a.start ?? cmdImg.ts), end: a.end === undefined ? undefined : Number(a.end),
        exitCode: a.exitCode === undefined ? undefined : Number(a.exitCode),
        inputs: [...f.inputs.values()].map((x) => fileOf(x.node, x.ts, names, x.exe ? { exe: true } : {})).filter((x) => x.path !== '' && !PSEUDO.test(x.path)),
        outputs: [...f.outputs.values()].map((x) => fileOf(x.node, Number(x.node.attrs.closedAt ?? x.ts), names)).filter((x) => x.path !== '' && !PSEUDO.test(x.path)),
        deps: [], images: f.images.size, sockets: [...f.sockets],
      };
      commands.set(cmdImg.id, cmd);
      // What makes an input now is the producer of its path's latest version, not necessarily
      // of the version this run read: after a re-run whose dependent was cut off (identical
      // output), the dependent's record still names the older version.
      for (const i of cmd.inputs) {
        const cur = await currentOf(i);
        if (cur !== i.id) current.set(i.id, cur);
        pending.push(cur);
      }
    }
  }
  // Dependencies: an input version some other planned command generated.
  for (const cmd of commands.values()) {
    const deps = new Set<string>();
    for (const i of cmd.inputs) {
      const by = byVersion.get(current.get(i.id) ?? i.id);
      if (by && by !== cmd.run) deps.add(by);
    }
    cmd.deps = [...deps];
  }
  return { target: path, targetVersion: target.id, commands: topoOrder([...commands.values()]), sources };
}

/** Dependencies first; ties in recorded start order. */
export function topoOrder(cmds: Command[]): Command[] {
  const byRun = new Map(cmds.map((c) => [c.run, c]));
  const out: Command[] = [];
  const state = new Map<string, 1 | 2>();
  const visit = (c: Command): void => {
    if (state.get(c.run) === 2) return;
    if (state.get(c.run) === 1) return; // a cycle in the record: reported as a hazard elsewhere
    state.set(c.run, 1);
    for (const d of c.deps) { const dc = byRun.get(d); if (dc) visit(dc); }
    state.set(c.run, 2);
    out.push(c);
  };
  for (const c of [...cmds].sort((a, b) => a.start - b.start)) visit(c);
  return out;
}
