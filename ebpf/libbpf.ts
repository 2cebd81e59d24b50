/**
 * @module ebpf/libbpf
 * The slice of libbpf (libbpf.so.1) and libc prov calls, bound with koffi. Pointers are
 * BigInt-like opaque values; NULL results and negative returns carry errno (read with
 * {@link lastErrno} right after the call). libbpf's own log lines are captured (through
 * vsnprintf) into a ring of recent lines so a failed load can show the verifier's reason.
 */
import koffi from 'koffi';
import { CapabilityError } from '../graph/errors.js';

type Fn = (...args: unknown[]) => any;

export interface Libbpf {
  bpf_object__open_file: Fn;
  bpf_object__load: Fn;
  bpf_object__close: Fn;
  bpf_object__find_map_by_name: Fn;
  bpf_object__next_program: Fn;
  bpf_program__name: Fn;
  bpf_program__attach: Fn;
  bpf_program__set_autoload: Fn;
  bpf_link__pin: Fn;
  bpf_link__destroy: Fn;
  bpf_map__set_max_entries: Fn;
  bpf_map__initial_value: Fn;
  bpf_map__fd: Fn;
  bpf_map__pin: Fn;
  bpf_obj_get: Fn;
  bpf_map_update_elem: Fn;
  bpf_map_lookup_elem: Fn;
  bpf_map_delete_elem: Fn;
  libbpf_num_possible_cpus: Fn;
  libbpf_strerror: Fn;
  /** libc */
  mmap: Fn;
  munmap: Fn;
  close: Fn;
  strerror: Fn;
}

let bound: Libbpf | null = null;
const recentLog: string[] = [];

/** Bind libbpf and libc once per thread; a missing libbpf.so.1 is a CapabilityError. */
export function libbpf(): Libbpf {
  if (bound) return bound;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load('libbpf.so.1');
  } catch {
    throw new CapabilityError('libbpf.so.1 not found: install the Debian package libbpf1 (apt: libbpf-dev)', 'libbpf');
  }
  const libc = koffi.load('libc.so.6');
  const f = (decl: string) => lib.func(decl);
  const c = (decl: string) => libc.func(decl);
  bound = {
    bpf_object__open_file: f('void *bpf_object__open_file(const char *path, void *opts)'),
    bpf_object__load: f('int bpf_object__load(void *obj)'),
    bpf_object__close: f('void bpf_object__close(void *obj)'),
    bpf_object__find_map_by_name: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    bpf_object__next_program: f('void *bpf_object__next_program(void *obj, void *prev)'),
    bpf_program__name: f('const char *bpf_program__name(void *prog)'),
    bpf_program__attach: f('void *bpf_program__attach(void *prog)'),
    bpf_program__set_autoload: f('int bpf_program__set_autoload(void *prog, bool autoload)'),
    bpf_link__pin: f('int bpf_link__pin(void *link, const char *path)'),
    bpf_link__destroy: f('int bpf_link__destroy(void *link)'),
    bpf_map__set_max_entries: f('int bpf_map__set_max_entries(void *map, uint32_t max)'),
    bpf_map__initial_value: f('void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),
    bpf_map__fd: f('int bpf_map__fd(void *map)'),
    bpf_map__pin: f('int bpf_map__pin(void *map, const char *path)'),
    bpf_obj_get: f('int bpf_obj_get(const char *path)'),
    bpf_map_update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
    bpf_map_delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    libbpf_num_possible_cpus: f('int libbpf_num_possible_cpus()'),
    libbpf_strerror: f('int libbpf_strerror(int err, _Out_ char *buf, size_t size)'),
    mmap: c('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: c('int munmap(void *addr, size_t length)'),
    close: c('int close(int fd)'),
    strerror: c('const char *strerror(int errnum)'),
  };
  captureLibbpfLog(lib, libc);
  return bound;
}

/** Route libbpf's printf-style log into {@link recentLog} (keeps the last 200 lines). */
function captureLibbpfLog(lib: ReturnType<typeof koffi.load>, libc: ReturnType<typeof koffi.load>): void {
  const vsnprintf = libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)');
  const PrintFn = koffi.proto('int libbpf_print_fn(int level, const char *fmt, void *ap)');
  const setPrint = lib.func('void *libbpf_set_print(libbpf_print_fn *fn)');
  const buf = Buffer.alloc(4096);
  const cb = koffi.register((level: number, fmt: string, ap: unknown) => {
    const n = vsnprintf(buf, buf.length, fmt, ap) as number;
    const text = buf.subarray(0, Math.max(0, Math.min(n, buf.length - 1))).toString('utf8');
    for (const line of text.split('\n')) if (line.trim()) recentLog.push(line);
    if (recentLog.length > 200) recentLog.splice(0, recentLog.length - 200);
    return 0;
  }, koffi.pointer(PrintFn));
  setPrint(cb);
}

/** The libbpf log lines since the last call (verifier output on a failed load). */
export function takeLibbpfLog(): string[] {
  return recentLog.splice(0, recentLog.length);
}

export function lastErrno(): number {
  return koffi.errno();
}

/** "EPERM (Operation not permitted)"-style text for an errno or a negative libbpf return. */
export function errText(err: number): string {
  const e = Math.abs(err);
  const name = Object.entries(koffi.os.errno).find(([, v]) => v === e)?.[0];
  const msg = bound ? String(bound.strerror(e)) : '';
  return name ? `${name} (${msg})` : `error ${e} (${msg})`;
}

/** A null pointer from koffi (null, undefined or address 0). */
export function isNull(p: unknown): boolean {
  return p === null || p === undefined || koffi.address(p) === 0n;
}
