/**
 * @module ebpf/loader
 * Open, configure, load, attach and pin prov's BPF programs with libbpf (through koffi), and
 * detach them again. Everything lives under one bpffs directory (default /sys/fs/bpf/prov):
 * `link_<program>` per attached program, and the maps `events` (ring buffer), `stats`,
 * `excluded`, `tracked`. Pinned links keep the programs attached after this process exits, so
 * capture outlives whoever started it; removing the directory detaches them.
 *
 * Each step (open, settings, load, pin, attach) fails with its own one-line message, and every
 * failure goes through the same clean-up: nothing stays pinned or attached.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, unlinkSync, rmdirSync } from 'node:fs';
import { totalmem } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { CapabilityError, ProvError } from '../graph/errors.js';
import { libbpf, lastErrno, errText, isNull, takeLibbpfLog } from './libbpf.js';
import { SETTINGS_SIZE, encodeSettings, type CaptureSettings } from './settings.js';
import { logger } from '../collector/log.js';
import { CAP, hasCapability } from '../collector/proc.js';

const log = logger('ebpf');

export const DEFAULT_PIN_DIR = '/sys/fs/bpf/prov';
/** The ring size session 1 always used (64 MiB); kept for callers that name it. */
export const DEFAULT_RING_BYTES = 64 << 20;
const RING_MIN = 16 << 20, RING_MAX = 256 << 20;

/**
 * Default ring size: 1/64 of RAM rounded down to a power of two, between 16 and 256 MiB (256 MiB
 * on this 24 GiB host). The kernel allocates the whole ring at attach, unswappable and charged
 * to the loader's memory cgroup (bpftool shows it as the map's memlock); at 100–160 bytes per
 * record (ABI 2), 256 MiB holds ≈ 2 M records of backlog.
 */
export function defaultRingBytes(ram = totalmem()): number {
  let b = RING_MIN;
  while (b * 2 <= RING_MAX && b * 2 <= ram / 64) b *= 2;
  return b;
}
/** `events` last: its pin is what {@link isAttached} looks for (a collector daemon waiting for the attach then finds the others pinned too). */
const PINNED_MAPS = ['stats', 'excluded', 'tracked', 'events'] as const;

/** The compiled object, built by ebpf/build.sh (dist/ebpf/loader.js → ebpf/build/prov.bpf.o). */
export function defaultObjectPath(): string {
  return fileURLToPath(new URL('../../ebpf/build/prov.bpf.o', import.meta.url));
}

export interface AttachOptions extends CaptureSettings {
  /** bpffs directory to pin into (default /sys/fs/bpf/prov). Must not exist yet. */
  pinDir?: string;
  objectPath?: string;
  /** Ring buffer size in bytes: a power of two, ≥ 4096 (default {@link defaultRingBytes}). */
  ringBytes?: number;
  /** tgids never traced (the recorder's own processes). This process is always added. */
  exclude?: number[];
}

export interface AttachResult {
  pinDir: string;
  programs: string[];
  /** Programs left out because this kernel lacks their tracepoint (e.g. no ctime tracepoints before 6.13, no open(2) on arm64). */
  skipped: string[];
  loadMs: number;
  attachMs: number;
}

/** A step of the loader failed (open, load, attach…): one line saying which and why. */
export class LoaderError extends ProvError {
  constructor(step: string, message: string, readonly detail: string[] = []) {
    super(`${step}: ${message}`, 'EBPF');
  }
}

const BPF_FS_MAGIC = 0xcafe4a11;
const TRACEFS_MAGIC = 0x74726163;

/** Check what loading needs; mount bpffs/tracefs when they are missing and we may. */
export function checkCapabilities(): void {
  if (!existsSync('/sys/kernel/btf/vmlinux'))
    throw new CapabilityError('eBPF capture needs kernel BTF (/sys/kernel/btf/vmlinux missing: kernel built without CONFIG_DEBUG_INFO_BTF)', 'btf');
  if (!hasCapability(CAP.SYS_ADMIN) && !(hasCapability(CAP.BPF) && hasCapability(CAP.PERFMON)))
    throw new CapabilityError('eBPF capture needs CAP_BPF and CAP_PERFMON (or root / CAP_SYS_ADMIN)', 'CAP_BPF');
  ensureMounted('/sys/fs/bpf', 'bpf', BPF_FS_MAGIC, 'bpffs');
  ensureMounted('/sys/kernel/tracing', 'tracefs', TRACEFS_MAGIC, 'tracefs');
}

function ensureMounted(dir: string, fstype: string, magic: number, what: string): void {
  try {
    if (statfsSync(dir).type === magic) return;
  } catch { /* not there: try to mount */ }
  try {
    execFileSync('mount', ['-t', fstype, fstype, dir], { stdio: 'pipe' });
  } catch (err) {
    throw new CapabilityError(`eBPF capture needs ${what} mounted at ${dir} and mounting it failed: ${(err as Error).message.split('\n')[0]}`, what);
  }
  if (statfsSync(dir).type !== magic) throw new CapabilityError(`${what} is not mounted at ${dir}`, what);
}

/** Is a capture pinned under pinDir? */
export function isAttached(pinDir = DEFAULT_PIN_DIR): boolean {
  return existsSync(join(pinDir, 'events'));
}

/** Names of the programs pinned (attached) under pinDir. */
export function attachedPrograms(pinDir = DEFAULT_PIN_DIR): string[] {
  if (!existsSync(pinDir)) return [];
  return readdirSync(pinDir).filter((n) => n.startsWith('link_')).map((n) => n.slice(5)).sort();
}

/**
 * Load and attach every program of the object, pin links and maps under pinDir and return.
 * The programs stay attached until {@link detachCapture}.
 */
export function attachCapture(opts: AttachOptions = {}): AttachResult {
  checkCapabilities();
  const pinDir = opts.pinDir ?? DEFAULT_PIN_DIR;
  const objectPath = opts.objectPath ?? defaultObjectPath();
  const ringBytes = opts.ringBytes ?? defaultRingBytes();
  if (!existsSync(objectPath)) throw new CapabilityError(`BPF object ${objectPath} not built: run ebpf/build.sh`, 'bpf-object');
  if (ringBytes < 4096 || (ringBytes & (ringBytes - 1)) !== 0) throw new LoaderError('settings', `ring size ${ringBytes} is not a power of two ≥ 4096`);
  if (existsSync(pinDir)) throw new LoaderError('pin', `${pinDir} already exists: a capture is attached (prov capture stop detaches it)`);

  const L = libbpf();
  takeLibbpfLog();
  let obj: unknown = null;
  const links: unknown[] = [];
  const programs: string[] = [];
  try {
    const t0 = performance.now();
    // The verifier gives up with EAGAIN when a signal is pending for the loading thread (a
    // child exiting, a profiler's SIGPROF): open and load again a few times before failing.
    let skipped: string[] = [];
    for (let attempt = 1; ; attempt++) {
      const opened = openConfigured(objectPath, ringBytes, opts);
      obj = opened.obj;
      skipped = opened.skipped;
      const rc = L.bpf_object__load(obj);
      if (rc === 0) break;
      const detail = takeLibbpfLog();
      L.bpf_object__close(obj);
      obj = null;
      if ((rc === -11 || rc === -4) && attempt < 5) continue;
      // the verifier's own verdict, not its instruction dump or libbpf's relocation chatter
      const why = detail.filter((l) => !/^\d+: |^; |^libbpf: (prog '[^']*': relo|sec |map )/.test(l)).slice(-3).join(' | ');
      throw new LoaderError('load', `${errText(rc)}${why ? ': ' + why : ''}`, detail);
    }
    if (skipped.length) log.warn(`this kernel lacks the tracepoints of ${skipped.length} programs, left out: ${skipped.join(' ')}`);
    const loadMs = performance.now() - t0;

    mkdirSync(pinDir, { mode: 0o700 });
    for (const name of PINNED_MAPS) {
      const map = L.bpf_object__find_map_by_name(obj, name);
      if (isNull(map)) throw new LoaderError('pin', `map ${name} missing from the object`);
      const r = L.bpf_map__pin(map, join(pinDir, name));
      if (r !== 0) throw new LoaderError('pin', `map ${name} → ${join(pinDir, name)}: ${errText(r)}`);
    }
    const excl = new Set([process.pid, ...(opts.exclude ?? [])]);
    const exclFd = L.bpf_map__fd(L.bpf_object__find_map_by_name(obj, 'excluded'));
    for (const pid of excl) putKey(exclFd, pid, 'excluded');
    if (opts.pidTree?.length) {
      const trFd = L.bpf_map__fd(L.bpf_object__find_map_by_name(obj, 'tracked'));
      for (const pid of opts.pidTree) putKey(trFd, pid, 'tracked');
    }

    const t1 = performance.now();
    for (let prog = L.bpf_object__next_program(obj, null); !isNull(prog); prog = L.bpf_object__next_program(obj, prog)) {
      if (!L.bpf_program__autoload(prog)) continue;
      const name = String(L.bpf_program__name(prog));
      const link = L.bpf_program__attach(prog);
      if (isNull(link)) { const e = lastErrno(); throw new LoaderError('attach', `program ${name}: ${errText(e)}`, takeLibbpfLog()); }
      links.push(link);
      const r = L.bpf_link__pin(link, join(pinDir, 'link_' + name));
      if (r !== 0) throw new LoaderError('pin', `link of ${name}: ${errText(r)}`);
      programs.push(name);
    }
    const attachMs = performance.now() - t1;
    log.debug(`attached ${programs.length} programs under ${pinDir} (load ${loadMs.toFixed(0)} ms, attach ${attachMs.toFixed(0)} ms)`);
    return { pinDir, programs, skipped, loadMs, attachMs };
  } catch (err) {
    unpinAll(pinDir);
    throw err;
  } finally {
    // Pinned links and maps live on in bpffs; our handles go either way.
    for (const link of links) L.bpf_link__destroy(link);
    if (obj) L.bpf_object__close(obj);
  }
}

/** Open the object and apply everything fixed before load: settings, ring size, programs left out. */
function openConfigured(objectPath: string, ringBytes: number, opts: AttachOptions): { obj: unknown; skipped: string[] } {
  const L = libbpf();
  const obj = L.bpf_object__open_file(objectPath, null);
  if (isNull(obj)) throw new LoaderError('open', `${objectPath}: ${errText(lastErrno())}`, takeLibbpfLog());
  try {
    const rodata = L.bpf_object__find_map_by_name(obj, '.rodata');
    if (isNull(rodata)) throw new LoaderError('settings', 'the object has no .rodata (settings) section');
    const size = [0];
    const init = L.bpf_map__initial_value(rodata, size);
    if (isNull(init) || size[0] !== SETTINGS_SIZE) throw new LoaderError('settings', `.rodata is ${size[0]} bytes, expected struct prov_settings of ${SETTINGS_SIZE}: rebuild ebpf/ (ebpf/build.sh)`);
    new Uint8Array(koffi.view(init, SETTINGS_SIZE)).set(encodeSettings(opts));

    const events = L.bpf_object__find_map_by_name(obj, 'events');
    if (isNull(events) || L.bpf_map__set_max_entries(events, ringBytes) !== 0) throw new LoaderError('settings', `cannot size the ring buffer to ${ringBytes} bytes`);

    // A tracepoint this kernel does not have (older kernel, other architecture): leave its
    // program out rather than fail the whole capture; the caller says which.
    const skipped: string[] = [];
    for (let prog = L.bpf_object__next_program(obj, null); !isNull(prog); prog = L.bpf_object__next_program(obj, prog)) {
      if (!tracepointExists(String(L.bpf_program__section_name(prog)))) {
        L.bpf_program__set_autoload(prog, false);
        skipped.push(String(L.bpf_program__name(prog)));
      }
    }
    return { obj, skipped };
  } catch (err) {
    L.bpf_object__close(obj);
    throw err;
  }
}

/** Does the tracepoint a program's section names exist on this kernel? (unknown kinds: assume yes) */
function tracepointExists(section: string): boolean {
  const tp = /^tp\/([^/]+)\/([^/]+)$/.exec(section);
  if (tp) return existsSync(join('/sys/kernel/tracing/events', tp[1]!, tp[2]!));
  const btf = /^tp_btf\/(.+)$/.exec(section);
  if (btf) return existsSync('/sys/kernel/tracing/available_events')
    ? tracepointNames().has(btf[1]!)
    : true;
  return true;
}

let tpNames: Set<string> | null = null;
function tracepointNames(): Set<string> {
  if (!tpNames) {
    tpNames = new Set(readFileSync('/sys/kernel/tracing/available_events', 'utf8').split('\n').map((l) => l.slice(l.indexOf(':') + 1)));
  }
  return tpNames;
}

function putKey(fd: number, pid: number, map: string): void {
  const key = Buffer.alloc(4);
  key.writeUInt32LE(pid >>> 0);
  const r = libbpf().bpf_map_update_elem(fd, key, Buffer.from([1]), 0n);
  if (r !== 0) throw new LoaderError('settings', `cannot add pid ${pid} to ${map}: ${errText(r)}`);
}

/** Remove every pin under pinDir (links first: that detaches the programs). Returns how many. */
function unpinAll(pinDir: string): number {
  if (!existsSync(pinDir)) return 0;
  let n = 0;
  const names = readdirSync(pinDir).sort((a, b) => Number(b.startsWith('link_')) - Number(a.startsWith('link_')));
  for (const name of names) {
    try { unlinkSync(join(pinDir, name)); n++; } catch (err) { log.warn(`cannot unpin ${join(pinDir, name)}: ${(err as Error).message}`); }
  }
  try { rmdirSync(pinDir); } catch { rmSync(pinDir, { recursive: true, force: true }); }
  return n;
}

/** Detach: unpin links (the programs detach when the last reference goes) and maps. */
export function detachCapture(pinDir = DEFAULT_PIN_DIR): { programs: number } {
  const programs = attachedPrograms(pinDir).length;
  unpinAll(pinDir);
  return { programs };
}

/** Add a tgid to the pinned exclusion set (a drainer excludes itself this way). */
export function excludePid(pid: number, pinDir = DEFAULT_PIN_DIR): void {
  const L = libbpf();
  const fd = L.bpf_obj_get(join(pinDir, 'excluded'));
  if (fd < 0) throw new LoaderError('exclude', `${join(pinDir, 'excluded')}: ${errText(lastErrno())}`);
  try { putKey(fd, pid, 'excluded'); } finally { L.close(fd); }
}

export interface CaptureCounters {
  /** Records written into the ring since attach (all CPUs). */
  emitted: number;
  /** Records lost because the ring was full (all CPUs). */
  dropped: number;
}

/** Sum the per-CPU counters of the pinned `stats` map. */
export function readCounters(pinDir = DEFAULT_PIN_DIR): CaptureCounters {
  const L = libbpf();
  const fd = L.bpf_obj_get(join(pinDir, 'stats'));
  if (fd < 0) throw new LoaderError('stats', `${join(pinDir, 'stats')}: ${errText(lastErrno())}`);
  try {
    const ncpu = L.libbpf_num_possible_cpus() as number;
    const sum = (slot: number): number => {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(slot);
      const val = Buffer.alloc(8 * ncpu);
      if (L.bpf_map_lookup_elem(fd, key, val) !== 0) return 0;
      let s = 0n;
      for (let i = 0; i < ncpu; i++) s += val.readBigUInt64LE(i * 8);
      return Number(s);
    };
    return { emitted: sum(0), dropped: sum(1) };
  } finally {
    L.close(fd);
  }
}

/** Add a tgid to the pinned tracked set (pid-tree captures: it and its descendants are traced). */
export function trackPid(pid: number, pinDir = DEFAULT_PIN_DIR): void {
  const L = libbpf();
  const fd = L.bpf_obj_get(join(pinDir, 'tracked'));
  if (fd < 0) throw new LoaderError('track', `${join(pinDir, 'tracked')}: ${errText(lastErrno())}`);
  try { putKey(fd, pid, 'tracked'); } finally { L.close(fd); }
}

/** Take a tgid out of the pinned tracked and excluded sets (missing entries are fine). */
export function forgetPid(pid: number, pinDir = DEFAULT_PIN_DIR): void {
  const L = libbpf();
  const key = Buffer.alloc(4);
  key.writeUInt32LE(pid >>> 0);
  for (const map of ['tracked', 'excluded']) {
    const fd = L.bpf_obj_get(join(pinDir, map));
    if (fd < 0) continue;
    try { L.bpf_map_delete_elem(fd, key); } finally { L.close(fd); }
  }
}
