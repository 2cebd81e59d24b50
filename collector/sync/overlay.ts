/**
 * @module collector/sync/overlay
 * The net change set between the checkpoint and now, as an overlay on SRC's namespace.
 *
 * A trie of the paths the events touched. A node either derives its state from its parent
 * (implicit: "whatever was at the same relative place at the checkpoint") or carries an
 * explicit state: absent, or present with the checkpoint path of the object now there
 * (`origin`, null for an object created since) and whether its contents or metadata changed
 * (`dirty`). A directory rename moves one trie node, so everything under it follows in O(depth);
 * chains of renames, temp files created, renamed and deleted, files renamed then modified all
 * collapse to the final state, and {@link Overlay.plan} turns that state into a change list.
 *
 * Any event that contradicts the model (renaming or modifying a path the model says is absent)
 * throws {@link GapError}: the record is not trustworthy for this tree, and the caller falls
 * back to a full comparison instead of guessing.
 */
import { depthOf, joinRel, splitRel } from './paths.js';

/** The record cannot be trusted for this tree: fall back to a full comparison. */
export class GapError extends Error {
  constructor(message: string) { super(message); this.name = 'GapError'; }
}

/** What is at a path now. */
export type NodeState =
  | { absent: true }
  | {
    absent: false;
    /** Checkpoint-relative path of the object now here (DST has it there); null = new object. */
    origin: string | null;
    /** Contents or metadata differ from what is at `origin` in DST: copy from SRC. */
    dirty: boolean;
    /** The whole subtree is unknown to the record (moved in from outside SRC): copy it all. */
    subtree: boolean;
  };

const ABSENT: NodeState = { absent: true };
const ROOT: NodeState = { absent: false, origin: '', dirty: false, subtree: false };

class TrieNode {
  children: Map<string, TrieNode> | undefined;
  st: NodeState | undefined;
  /** A directory whose entries changed (its mtime must be copied). */
  metaDirty = false;
  constructor(public name: string, public parent: TrieNode | null) {}

  child(name: string): TrieNode | undefined { return this.children?.get(name); }

  ensureChild(name: string): TrieNode {
    let c = this.children?.get(name);
    if (!c) {
      c = new TrieNode(name, this);
      (this.children ??= new Map()).set(name, c);
    }
    return c;
  }

  detach(): void {
    this.parent?.children?.delete(this.name);
    this.parent = null;
  }

  attach(parent: TrieNode, name: string): void {
    parent.child(name)?.detach();
    this.name = name;
    this.parent = parent;
    (parent.children ??= new Map()).set(name, this);
  }
}

/** The state a child called `name` inherits from a parent in state `st`. */
function derive(st: NodeState, name: string): NodeState {
  if (st.absent) return ABSENT;
  if (st.subtree) return { absent: false, origin: null, dirty: true, subtree: true };
  // A directory created since the checkpoint started empty: what is in it, the record names.
  if (st.origin === null) return ABSENT;
  return { absent: false, origin: joinRel(st.origin, name), dirty: false, subtree: false };
}

/** One step of the change list. Paths are relative to the tree roots. */
export type OriginOp =
  /** Move the object at `origin` in DST aside (to staging slot `slot`). */
  | { op: 'stage'; origin: string; slot: number }
  /** Remove what is at `origin` in DST (recursively). `replaced`: overwritten, not deleted. */
  | { op: 'delete'; origin: string; replaced: boolean };
export type FinalOp =
  /** Put staged object `slot` at `path`; then copy contents/metadata from SRC if `dirty`. */
  | { op: 'place'; slot: number; origin: string; path: string; dirty: boolean }
  /**
   * Rename the object at `origin` in DST straight to `path` (no staging: see {@link Overlay.plan}
   * for when that is safe); then copy contents/metadata from SRC if `dirty`.
   */
  | { op: 'move'; origin: string; path: string; dirty: boolean }
  /** Create `path` from SRC (a file, a directory, a symlink); `subtree`: copy all below. */
  | { op: 'create'; path: string; subtree: boolean }
  /** Copy contents/metadata of `path` from SRC over DST's. */
  | { op: 'update'; path: string };

/** The ordered change list for one sync. */
export interface Plan {
  /** Deepest origin first: a directory's children are moved aside before it moves or goes. */
  originOps: OriginOp[];
  /** Shallowest path first: parents exist before their children are placed or created. */
  finalOps: FinalOp[];
  /** Directories whose metadata (mode, mtime) is copied last, deepest first. */
  metaDirs: string[];
  /**
   * Paths the records leave empty where DST may still hold an object no step removes: one
   * created (and copied by a comparison that read SRC ahead of its records) and removed again,
   * or renamed away, within this plan's records, which cancel out. Whatever DST has at these
   * paths goes once the final side has run (with --delete).
   */
  clears: string[];
}

export class Overlay {
  private root = new TrieNode('', null);
  /** Checkpoint paths whose objects left the tree: true = replaced by a rename, false = deleted. */
  private gone = new Map<string, boolean>();
  /** Number of events that changed the overlay. */
  changes = 0;

  /** The state at `rel` now. */
  resolve(rel: string): NodeState {
    let st = this.root.st ?? ROOT;
    let node: TrieNode | undefined = this.root;
    for (const name of splitRel(rel)) {
      node = node?.child(name);
      st = node?.st ?? derive(st, name);
    }
    return st;
  }

  private node(rel: string): TrieNode {
    let n = this.root;
    for (const name of splitRel(rel)) n = n.ensureChild(name);
    return n;
  }

  private touchParent(rel: string): void {
    if (rel === '') return;
    const n = this.node(rel).parent;
    if (n) n.metaDirty = true;
  }

  private present(rel: string, what: string): NodeState & { absent: false } {
    const st = this.resolve(rel);
    if (st.absent) throw new GapError(`${what} of ${JSON.stringify(rel)}, which the record says does not exist`);
    return st;
  }

  private forget(st: NodeState, replaced: boolean): void {
    if (!st.absent && st.origin !== null) {
      // A deletion wins over a replacement: with --delete off only replacements are applied.
      if (!this.gone.has(st.origin) || !replaced) this.gone.set(st.origin, replaced);
    }
  }

  /** A new object at `rel` (create, mkdir, symlink, link; `subtree` for a move in from outside). */
  create(rel: string, subtree = false): void {
    if (rel === '') throw new GapError('the tree root itself was created');
    this.changes++;
    // The kernel creates only where nothing is, so nothing in DST is lost here; whatever DST
    // holds at this path is replaced when the new object is created there.
    const n = this.node(rel);
    n.st = { absent: false, origin: null, dirty: true, subtree };
    n.children = undefined;
    this.touchParent(rel);
  }

  /** Contents or metadata of the object at `rel` changed. */
  modify(rel: string): void {
    this.changes++;
    const st = this.present(rel, 'modification');
    if (st.dirty && this.node(rel).st) return;
    this.node(rel).st = { ...st, dirty: true };
  }

  /**
   * Where the object that was at `origin` (a path as of this overlay's start) is now, or null
   * when it left the tree or cannot be told (then nothing of it is in a plan). Used for a path
   * an earlier plan could not copy while this overlay was already taking records.
   */
  currentPathOf(origin: string): string | null {
    if (this.gone.has(origin)) return null;
    // The deepest object whose origin is `origin` or a directory above it: the object is there,
    // or below it at the same relative place.
    let best: { path: string; origin: string } | null = null;
    const walk = (n: TrieNode, path: string): void => {
      const st = n.st;
      if (st && !st.absent && st.origin !== null && (st.origin === origin || origin.startsWith(st.origin === '' ? '' : st.origin + '/'))) {
        if (!best || st.origin.length > best.origin.length) best = { path, origin: st.origin };
      }
      if (n.children) for (const [name, c] of n.children) walk(c, joinRel(path, name));
    };
    walk(this.root, '');
    const b = best as { path: string; origin: string } | null;
    const base = b ?? { path: '', origin: '' };
    const rest = base.origin === origin ? '' : base.origin === '' ? origin : origin.slice(base.origin.length + 1);
    const now = rest === '' ? base.path : joinRel(base.path, rest);
    const st = this.resolve(now);
    return !st.absent && st.origin === origin ? now : null;
  }

  /** The entries of directory `rel` changed without an event naming them (mtime only). */
  touchDir(rel: string): void {
    this.node(rel).metaDirty = true;
  }

  /** The object at `rel` was unlinked, removed, or moved out of the tree. */
  remove(rel: string): void {
    if (rel === '') throw new GapError('the tree root itself was removed or moved');
    this.changes++;
    const st = this.present(rel, 'removal');
    this.forget(st, false);
    const n = this.node(rel);
    n.st = ABSENT;
    n.children = undefined;
    this.touchParent(rel);
  }

  /** rename(from, to); `exchange` for RENAME_EXCHANGE. */
  rename(from: string, to: string, exchange = false): void {
    if (from === '' || to === '') throw new GapError('the tree root itself was renamed');
    if (from === to) return;
    if (to.startsWith(from + '/')) throw new GapError(`rename of ${JSON.stringify(from)} into itself`);
    this.changes++;
    const stFrom = this.present(from, 'rename');
    const fromNode = this.node(from);
    fromNode.st = stFrom; // freeze its origin before it moves
    if (exchange) {
      const stTo = this.present(to, 'exchange');
      const toNode = this.node(to);
      toNode.st = stTo;
      const fp = fromNode.parent!, fname = fromNode.name, tp = toNode.parent!, tname = toNode.name;
      fromNode.detach();
      toNode.detach();
      fromNode.attach(tp, tname);
      toNode.attach(fp, fname);
    } else {
      if (from.startsWith(to + '/')) throw new GapError(`rename of ${JSON.stringify(from)} over its own ancestor`);
      this.forget(this.resolve(to), true);
      const toParent = this.node(splitRel(to).slice(0, -1).join('/'));
      const toName = splitRel(to).at(-1)!;
      fromNode.detach();
      fromNode.attach(toParent, toName);
      this.node(from).st = ABSENT;
    }
    this.touchParent(from);
    this.touchParent(to);
  }

  /**
   * Turn the overlay into an ordered change list.
   *
   * A moved object goes through staging (two renames) only when it must. It is renamed straight
   * from its origin to its new path, in the final side, when nothing else touches its origin or
   * a directory above it: no other object is placed or created at its origin (so the origin still
   * holds it when its turn comes), no directory above its origin moves or goes, and nothing moved
   * in the trie lies below it (nothing inside it changed, so the origin side has no step inside it
   * that must come first). Every origin-side step has run by then, so whatever DST had at the new
   * path (a replaced object, one that moved away) is out of the way. Most renames qualify (a file
   * renamed within a tree whose directories stay), and cost one rename(2) instead of two.
   */
  plan(): Plan {
    const originOps: OriginOp[] = [];
    const finalOps: FinalOp[] = [];
    const metaDirs = new Set<string>();
    const liveOrigins = new Set<string>();
    const moves: Array<{ origin: string; path: string; dirty: boolean; leaf: boolean }> = [];
    /** Paths something is placed, created or updated at (now-paths). */
    const finals = new Set<string>();
    /** Paths made empty under a parent that stays, with the checkpoint object they would hold. */
    const emptied: Array<{ path: string; origin: string | null }> = [];
    const walk = (n: TrieNode, path: string, implied: NodeState, parentAbsent: boolean): void => {
      const st = n.st ?? implied;
      if (n.st?.absent && !parentAbsent) emptied.push({ path, origin: implied.absent ? null : implied.origin });
      if (n.st && !st.absent) {
        const impliedOrigin = implied.absent ? null : implied.origin;
        if (st.origin !== null) liveOrigins.add(st.origin);
        if (st.origin !== null && st.origin !== impliedOrigin) {
          moves.push({ origin: st.origin, path, dirty: st.dirty, leaf: !n.children || n.children.size === 0 });
          finals.add(path);
        } else if (st.origin === null) {
          finalOps.push({ op: 'create', path, subtree: st.subtree });
          finals.add(path);
        } else if (st.dirty) {
          finalOps.push({ op: 'update', path });
          finals.add(path);
        }
      }
      if (n.metaDirty && !st.absent) metaDirs.add(path);
      if (n.children) for (const [name, c] of n.children) walk(c, joinRel(path, name), derive(st, name), st.absent);
    };
    walk(this.root, '', ROOT, false);
    const deletes: string[] = [];
    for (const [origin, replaced] of this.gone) {
      if (!liveOrigins.has(origin)) { originOps.push({ op: 'delete', origin, replaced }); deletes.push(origin); }
    }
    // Checkpoint paths that leave their place in DST (moved or removed), and every directory
    // above them: an origin with one of these above it cannot be renamed from in the final side.
    const leaving = new Set<string>(deletes);
    for (const m of moves) leaving.add(m.origin);
    const hasLeavingAncestor = (origin: string): boolean => {
      for (let i = origin.lastIndexOf('/'); i > 0; i = origin.lastIndexOf('/', i - 1)) {
        if (leaving.has(origin.slice(0, i))) return true;
      }
      return false;
    };
    let slot = 0;
    for (const m of moves) {
      if (m.leaf && !finals.has(m.origin) && !hasLeavingAncestor(m.origin)) {
        finalOps.push({ op: 'move', origin: m.origin, path: m.path, dirty: m.dirty });
      } else {
        originOps.push({ op: 'stage', origin: m.origin, slot });
        finalOps.push({ op: 'place', slot, origin: m.origin, path: m.path, dirty: m.dirty });
        slot++;
      }
    }
    originOps.sort((a, b) => depthOf(b.origin) - depthOf(a.origin));
    finalOps.sort((a, b) => depthOf(a.path) - depthOf(b.path));
    const dirs = [...metaDirs].sort((a, b) => depthOf(b) - depthOf(a));
    // A checkpoint object removed or moved from this very path: its own step empties the path
    // (whatever DST holds there is that object). Anything else may be a copy made ahead.
    const clears = emptied.filter((e) => !(e.origin === e.path && (this.gone.has(e.path) || liveOrigins.has(e.path)))).map((e) => e.path);
    return { originOps, finalOps, metaDirs: dirs, clears };
  }
}
