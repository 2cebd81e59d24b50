/**
 * @module collector/rebuild/spawn
 * Start a re-run command with posix_spawn (glibc: clone with CLONE_VM|CLONE_VFORK) instead of
 * node's child_process, which forks: a fork copies the parent's page tables, and the parent here
 * is a node process of 60–200 MB (the resident rebuild server most of all), so every command
 * pays 1–6 ms before it even execs; posix_spawn's cost does not grow with the parent.
 *
 * The child gets what node's spawn would give it: the argv (argv[0] as recorded), the
 * environment, the working directory, stdin on /dev/null, every signal at its default
 * disposition and none blocked (node ignores SIGPIPE; a command must not inherit that), the
 * process's umask; no other descriptor (everything prov opens is close-on-exec). Its stdout and
 * stderr go to two memfds read once it exited, and its exit is noticed by SIGCHLD: measured
 * against make running the same compiles one after the other, output on pipes read through
 * node's event loop made each compile about 3 % slower, and exits polled for once the pipes
 * closed cost up to a millisecond more each; with memfds and SIGCHLD the loop is as fast as
 * make's. A command is done when it exits, whatever a process it left behind may still write.
 * Used only when the command runs as this process's user (a change of user needs node's setuid
 * in the child) and libc's posix_spawn is at hand; otherwise null and the caller uses node's
 * spawn.
 */
import koffi from 'koffi';
import { fstatSync, readSync } from 'node:fs';
import { constants } from 'node:os';

export interface SpawnOutcome {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface FastChild {
  pid: number;
  /** Send a signal while the command has not been reaped. */
  kill(signal: NodeJS.Signals): boolean;
  exited(): boolean;
  done: Promise<SpawnOutcome>;
}

interface Libc {
  posix_spawn: (pid: number[], path: string, fa: Buffer, attr: Buffer, argv: Array<string | null>, envp: Array<string | null>) => number;
  posix_spawnp: (pid: number[], path: string, fa: Buffer, attr: Buffer, argv: Array<string | null>, envp: Array<string | null>) => number;
  fa_init: (fa: Buffer) => number;
  fa_destroy: (fa: Buffer) => number;
  fa_dup2: (fa: Buffer, fd: number, to: number) => number;
  fa_open: (fa: Buffer, fd: number, path: string, flags: number, mode: number) => number;
  fa_chdir: (fa: Buffer, path: string) => number;
  attr_init: (a: Buffer) => number;
  attr_setflags: (a: Buffer, flags: number) => number;
  attr_setsigmask: (a: Buffer, set: Buffer) => number;
  attr_setsigdefault: (a: Buffer, set: Buffer) => number;
  sigemptyset: (set: Buffer) => number;
  memfd_create: (name: string, flags: number) => number;
  waitpid: (pid: number, status: number[], options: number) => number;
  close: (fd: number) => number;
}

let libc: Libc | null | undefined;

function bind(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const L = koffi.load('libc.so.6');
    const f = (decl: string) => L.func(decl) as never;
    libc = {
      posix_spawn: f('int posix_spawn(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)'),
      posix_spawnp: f('int posix_spawnp(_Out_ int *pid, const char *path, void *fa, void *attr, const char **argv, const char **envp)'),
      fa_init: f('int posix_spawn_file_actions_init(void *fa)'),
      fa_destroy: f('int posix_spawn_file_actions_destroy(void *fa)'),
      fa_dup2: f('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
      fa_open: f('int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, uint32_t mode)'),
      fa_chdir: f('int posix_spawn_file_actions_addchdir_np(void *fa, const char *path)'),
      attr_init: f('int posix_spawnattr_init(void *attr)'),
      attr_setflags: f('int posix_spawnattr_setflags(void *attr, short flags)'),
      attr_setsigmask: f('int posix_spawnattr_setsigmask(void *attr, void *set)'),
      attr_setsigdefault: f('int posix_spawnattr_setsigdefault(void *attr, void *set)'),
      sigemptyset: f('int sigemptyset(void *set)'),
      memfd_create: f('int memfd_create(const char *name, unsigned int flags)'),
      waitpid: f('int waitpid(int pid, _Out_ int *status, int options)'),
      close: f('int close(int fd)'),
    };
  } catch {
    libc = null;
  }
  return libc;
}

const MFD_CLOEXEC = 1;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const WNOHANG = 1;
/** Generous sizes for glibc's posix_spawn_file_actions_t (80), posix_spawnattr_t (336) and sigset_t (128). */
const FA_BYTES = 256, ATTR_BYTES = 512, SIGSET_BYTES = 256;

/** A signal's name from its number (SIG<n> when node does not know it). */
export const signalName = (n: number): string => Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `SIG${n}`;

/** Whether posix_spawn can be used here (libc bound). */
export function fastSpawnAvailable(): boolean {
  return process.platform === 'linux' && bind() !== null;
}

/** Children not yet reaped → their reap attempt. */
const unreaped = new Map<number, () => void>();
const onSigchld = (): void => {
  for (const reap of unreaped.values()) reap();
};
let listening = false;
let backstop: NodeJS.Timeout | null = null;

/**
 * SIGCHLD listened for from before a spawn (a quick command may be gone before posix_spawn
 * returns), beside libuv's own listener, which reaps only its own children, by pid. A timer
 * tries every child now and then too: it keeps the process alive while a command runs (a
 * signal listener does not) and reaps one whose signal someone else's disposition swallowed.
 */
function listenForExits(): void {
  if (listening) return;
  process.on('SIGCHLD', onSigchld);
  backstop = setInterval(onSigchld, 50);
  listening = true;
}

function stopListeningIfIdle(): void {
  if (unreaped.size > 0 || !listening) return;
  process.off('SIGCHLD', onSigchld);
  clearInterval(backstop!);
  backstop = null;
  listening = false;
}

/**
 * The spawn attributes every command gets (every signal at its default, none blocked), made
 * once: setting them up is four library calls per command otherwise.
 */
let spawnAttr: Buffer | null = null;
function commandAttr(L: Libc): Buffer {
  if (spawnAttr) return spawnAttr;
  const attr = Buffer.alloc(ATTR_BYTES), all = Buffer.alloc(SIGSET_BYTES), none = Buffer.alloc(SIGSET_BYTES);
  L.attr_init(attr);
  // Every signal back to its default, glibc's internal ones included (sigfillset leaves those
  // out, and glibc would then set them to "ignore" in the child, which exec keeps).
  all.fill(0xff);
  L.sigemptyset(none);
  L.attr_setsigdefault(attr, all);
  L.attr_setsigmask(attr, none);
  L.attr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  spawnAttr = attr;
  return attr;
}

/** `env` as posix_spawn's `NAME=value` strings (an array is taken as that already). */
export function envpOf(env: NodeJS.ProcessEnv | string[]): string[] {
  if (Array.isArray(env)) return env;
  const envp: string[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) envp.push(`${k}=${v}`);
  return envp;
}

/**
 * Start `exe` with `argv` (argv[0] included), `env` and `cwd`. Returns null when posix_spawn is
 * not available; a spawn error (no such file, a bad cwd) is the outcome (code null, the error in
 * stderr, as node's spawn reports it), not an exception.
 */
export function spawnFast(exe: string, argv: string[], env: NodeJS.ProcessEnv | string[], cwd: string): FastChild | null {
  const L = bind();
  if (!L) return null;
  const out = L.memfd_create('prov-rebuild-stdout', MFD_CLOEXEC);
  if (out < 0) return null;
  const err = L.memfd_create('prov-rebuild-stderr', MFD_CLOEXEC);
  if (err < 0) { L.close(out); return null; }
  const fa = Buffer.alloc(FA_BYTES);
  const attr = commandAttr(L);
  L.fa_init(fa);
  listenForExits();
  let rc: number;
  const pid = [0];
  try {
    L.fa_open(fa, 0, '/dev/null', 0, 0);
    L.fa_dup2(fa, out, 1);
    L.fa_dup2(fa, err, 2);
    L.fa_chdir(fa, cwd);
    rc = (exe.includes('/') ? L.posix_spawn : L.posix_spawnp)(pid, exe, fa, attr, [...argv, null], [...envpOf(env), null]);
  } finally {
    L.fa_destroy(fa);
  }
  const collect = (fd: number): string => {
    try {
      const n = fstatSync(fd).size;
      if (n === 0) return '';
      const b = Buffer.allocUnsafe(n);
      return b.toString('utf8', 0, readSync(fd, b, 0, n, 0));
    } finally {
      L.close(fd);
    }
  };
  if (rc !== 0) {
    L.close(out);
    L.close(err);
    stopListeningIfIdle();
    // The project's errno names (kernel/libc) are loaded for this failure only: loading that
    // module binds its calls, a few ms every command-line rebuild would otherwise pay.
    const done = import('../../kernel/libc.js').then(({ errnoName }) => ({ code: null, signal: null, stdout: '', stderr: `spawn ${exe} ${errnoName(rc)}\n` }));
    return { pid: -1, kill: () => false, exited: () => true, done };
  }
  const child = pid[0]!;
  let reaped = false;
  const done = new Promise<SpawnOutcome>((resolve) => {
    // Reap if the child has exited (a zombie): its output is read then, whatever a process it
    // left behind may still write.
    unreaped.set(child, () => {
      const st = [0];
      const r = L.waitpid(child, st, WNOHANG);
      if (r !== child && r >= 0) return;
      reaped = true;
      unreaped.delete(child);
      stopListeningIfIdle();
      const stdout = collect(out), stderr = collect(err);
      const s = st[0]!;
      const sig = s & 0x7f;
      if (r < 0) resolve({ code: null, signal: null, stdout, stderr: `${stderr}waitpid ${child} failed\n` });
      else if (sig === 0) resolve({ code: (s >> 8) & 0xff, signal: null, stdout, stderr });
      else resolve({ code: null, signal: signalName(sig), stdout, stderr });
    });
  });
  // A child that exited before this line sent its SIGCHLD to the listener above, which will
  // try it on its next turn of the event loop.
  return {
    pid: child,
    kill: (signal) => {
      if (reaped) return false;
      try { process.kill(child, signal); return true; } catch { return false; }
    },
    exited: () => reaped,
    done,
  };
}
