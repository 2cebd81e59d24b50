/**
 * @module collector/sync/workload
 * A seeded random workload on a real directory, like Bento's sync benchmark: creates, appends,
 * truncates, chmods, renames of files and of directories (also over existing files), deletes
 * of files and whole directories, symlinks, and editor-style temp files (create, write, rename
 * over or delete). Used by the tests and the benchmark.
 *
 * With `emit` set, every operation also produces the event records a capture source would
 * write for it (paths absolute, as the schema says), so the core can be tested on event
 * sequences without a capture source; with real capture running, `emit` is left out and the
 * capture source records the same operations itself.
 */
import * as fs from 'node:fs';
import { hostname } from 'node:os';
import type { ProvEvent } from '../events.js';
import { joinRel } from './paths.js';
import { rng } from '../../test/rng.js';
export { rng };


const O_WRONLY = 1, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000;

/** Distribution of operations (weights, need not sum to 1). */
export const DEFAULT_MIX = {
  create: 10, append: 12, truncate: 3, chmod: 3, renameFile: 10, renameOver: 3, renameDir: 4,
  deleteFile: 8, deleteDir: 2, mkdir: 4, symlink: 2, tempSave: 5, tempDiscard: 3, touch: 2,
};
export type Mix = typeof DEFAULT_MIX;

export class Workload {
  readonly files: string[] = [];
  readonly dirs: string[] = [];
  readonly counts: Record<string, number> = {};
  private r: () => number;
  private fd = 1000;
  private n = 0;

  constructor(readonly root: string, seed: number, readonly emit?: (ev: ProvEvent) => void, readonly mix: Mix = DEFAULT_MIX) {
    this.r = rng(seed);
  }

  private pick<T>(xs: T[]): T | undefined { return xs.length ? xs[Math.floor(this.r() * xs.length)] : undefined; }
  private abs(rel: string): string { return rel === '' ? this.root : `${this.root}/${rel}`; }
  private newName(prefix: string): string { return `${prefix}${(this.n++).toString(36)}`; }
  private data(): Buffer {
    const len = Math.floor(this.r() * 3000);
    const b = Buffer.alloc(len);
    for (let i = 0; i < len; i++) b[i] = 97 + Math.floor(this.r() * 26);
    return b;
  }

  private base(): { v: 1; src: 'ebpf'; seq: number; ts: number; host: string; pid: number; tid: number } {
    return { v: 1, src: 'ebpf', seq: 0, ts: Number(process.hrtime.bigint()), host: hostname(), pid: process.pid, tid: process.pid };
  }
  private ref(rel: string): { dev: number; ino: number; path: string } {
    const st = fs.lstatSync(this.abs(rel));
    return { dev: st.dev, ino: st.ino, path: this.abs(rel) };
  }

  /** Build an initial tree (no events): `dirs` directories, `files` files spread over them. */
  populate(dirs: number, files: number): void {
    for (let i = 0; i < dirs; i++) {
      const parent = this.r() < 0.3 ? this.pick(this.dirs) ?? '' : '';
      const d = joinRel(parent, this.newName('d'));
      fs.mkdirSync(this.abs(d));
      this.dirs.push(d);
    }
    for (let i = 0; i < files; i++) {
      const f = joinRel(this.pick(this.dirs) ?? '', this.newName('f'));
      fs.writeFileSync(this.abs(f), this.data());
      this.files.push(f);
    }
  }

  /** Take the files and directories already under the root as the workload's own. */
  adopt(): void {
    const walk = (rel: string): void => {
      for (const e of fs.readdirSync(this.abs(rel), { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
        if (e.name.startsWith('.prov-sync-')) continue;
        const r = joinRel(rel, e.name);
        if (e.isDirectory()) { this.dirs.push(r); walk(r); } else if (e.isFile()) this.files.push(r);
      }
    };
    walk('');
    // Fresh names must not collide with the ones a previous run made.
    this.n = this.files.length + this.dirs.length + 100_000 * (1 + Math.floor(this.r() * 1000));
  }

  // ---- operations, each with its events ----

  createFile(rel: string, data = this.data()): void {
    fs.writeFileSync(this.abs(rel), data, { flag: 'wx' });
    const fd = ++this.fd;
    this.emit?.({ ...this.base(), op: 'open', file: this.ref(rel), flags: O_WRONLY | O_CREAT | O_EXCL, fd, created: true, mode: 0o644 });
    this.emit?.({ ...this.base(), op: 'close', fd });
  }

  writeFile(rel: string, data: Buffer, append: boolean): void {
    fs.writeFileSync(this.abs(rel), data, { flag: append ? 'a' : 'w' });
    const fd = ++this.fd;
    this.emit?.({ ...this.base(), op: 'open', file: this.ref(rel), flags: O_WRONLY | (append ? O_APPEND : O_TRUNC | O_CREAT), fd });
    this.emit?.({ ...this.base(), op: 'close', fd });
  }

  rename(from: string, to: string): void {
    const over = fs.existsSync(this.abs(to)) ? this.ref(to) : undefined;
    fs.renameSync(this.abs(from), this.abs(to));
    this.emit?.({ ...this.base(), op: 'rename', file: this.ref(to), from: { path: this.abs(from) }, flags: 0, ...(over ? { overwritten: over, overwrittenDeleted: true } : {}) });
  }

  unlink(rel: string): void {
    const ref = this.ref(rel);
    fs.unlinkSync(this.abs(rel));
    this.emit?.({ ...this.base(), op: 'unlink', file: ref, deleted: true });
  }

  mkdir(rel: string): void {
    fs.mkdirSync(this.abs(rel));
    this.emit?.({ ...this.base(), op: 'mkdir', file: this.ref(rel), mode: 0o755 });
  }

  /** rm -r, one event per entry, children first. */
  removeTree(rel: string): void {
    const st = fs.lstatSync(this.abs(rel));
    if (!st.isDirectory()) return this.unlink(rel);
    for (const name of fs.readdirSync(this.abs(rel))) this.removeTree(joinRel(rel, name));
    const ref = this.ref(rel);
    fs.rmdirSync(this.abs(rel));
    this.emit?.({ ...this.base(), op: 'rmdir', file: ref });
  }

  chmod(rel: string, mode: number): void {
    fs.chmodSync(this.abs(rel), mode);
    this.emit?.({ ...this.base(), op: 'setattr', file: this.ref(rel), mode });
  }

  truncate(rel: string, size: number): void {
    fs.truncateSync(this.abs(rel), size);
    this.emit?.({ ...this.base(), op: 'setattr', file: this.ref(rel), size });
  }

  touch(rel: string, sec: number): void {
    fs.utimesSync(this.abs(rel), sec, sec);
    this.emit?.({ ...this.base(), op: 'setattr', file: this.ref(rel), mtime: sec * 1e9 });
  }

  symlink(rel: string, target: string): void {
    fs.symlinkSync(target, this.abs(rel));
    this.emit?.({ ...this.base(), op: 'symlink', file: this.ref(rel), target });
  }

  /** Forget tracked names under a renamed or removed directory (and rewrite them for a rename). */
  private moveNames(from: string, to: string | null): void {
    for (const list of [this.files, this.dirs]) {
      for (let i = list.length - 1; i >= 0; i--) {
        const p = list[i]!;
        if (p === from || p.startsWith(from + '/')) {
          if (to === null) { list[i] = list[list.length - 1]!; list.pop(); } else list[i] = to + p.slice(from.length);
        }
      }
    }
  }

  private drop(list: string[], rel: string): void {
    const i = list.indexOf(rel);
    if (i >= 0) { list[i] = list[list.length - 1]!; list.pop(); }
  }

  private choose(): keyof Mix {
    const entries = Object.entries(this.mix) as Array<[keyof Mix, number]>;
    let x = this.r() * entries.reduce((s, [, w]) => s + w, 0);
    for (const [k, w] of entries) { if ((x -= w) < 0) return k; }
    return entries[0]![0];
  }

  /** One random operation. */
  step(): void {
    const op = this.choose();
    const dir = (): string => (this.r() < 0.15 ? '' : this.pick(this.dirs) ?? '');
    const file = this.pick(this.files);
    switch (op) {
      case 'create': { const f = joinRel(dir(), this.newName('n')); this.createFile(f); this.files.push(f); break; }
      case 'append': if (file) this.writeFile(file, this.data(), true); break;
      case 'truncate': if (file) this.truncate(file, Math.floor(this.r() * 100)); break;
      case 'chmod': if (file) this.chmod(file, this.r() < 0.5 ? 0o600 : 0o755); break;
      case 'touch': if (file) this.touch(file, 1_600_000_000 + Math.floor(this.r() * 1e8)); break;
      case 'renameFile': if (file) { const to = joinRel(dir(), this.newName('r')); this.rename(file, to); this.drop(this.files, file); this.files.push(to); } break;
      case 'renameOver': {
        const other = this.pick(this.files);
        if (file && other && other !== file) { this.rename(file, other); this.drop(this.files, file); }
        break;
      }
      case 'renameDir': {
        const d = this.pick(this.dirs);
        if (!d) break;
        const candidates = this.dirs.filter((x) => x !== d && !x.startsWith(d + '/'));
        const parent = this.r() < 0.3 ? '' : this.pick(candidates) ?? '';
        const to = joinRel(parent, this.newName('m'));
        this.rename(d, to);
        this.moveNames(d, to);
        break;
      }
      case 'deleteFile': if (file) { this.unlink(file); this.drop(this.files, file); } break;
      case 'deleteDir': { const d = this.pick(this.dirs); if (d) { this.removeTree(d); this.moveNames(d, null); } break; }
      case 'mkdir': { const d = joinRel(dir(), this.newName('d')); this.mkdir(d); this.dirs.push(d); break; }
      case 'symlink': {
        const l = joinRel(dir(), this.newName('s'));
        this.symlink(l, this.r() < 0.5 ? (file ?? 'nowhere') : '/etc/hostname');
        break;
      }
      case 'tempSave': {
        if (!file) break;
        const tmp = joinRel(file.includes('/') ? file.slice(0, file.lastIndexOf('/')) : '', this.newName('.tmp'));
        this.createFile(tmp);
        this.writeFile(tmp, this.data(), true);
        this.rename(tmp, file);
        break;
      }
      case 'tempDiscard': {
        const tmp = joinRel(dir(), this.newName('.tmp'));
        this.createFile(tmp);
        this.writeFile(tmp, this.data(), true);
        const t2 = joinRel(dir(), this.newName('.tmp'));
        this.rename(tmp, t2);
        this.unlink(t2);
        break;
      }
    }
    this.counts[op] = (this.counts[op] ?? 0) + 1;
  }
}
