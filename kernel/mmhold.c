/*
 * kernel/mmhold.c — keep a provfs daemon's memory mapped past its death (see kernel/mmhold.ts).
 *
 * prov_hold_mm() starts a small process that shares the caller's address space (clone with
 * CLONE_VM, not a thread: a SIGKILL of the daemon does not reach it). While it lives the
 * daemon's threads exit without unmapping anything, so a killed daemon is gone within a
 * fraction of a millisecond; the holder unmaps it all when it exits itself, a while after the
 * daemon, at the lowest priority, in a session of its own.
 *
 * The holder runs on a stack of its own with the daemon's thread pointer, so it uses no libc
 * function that could touch thread-local state (errno): raw system calls only.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <poll.h>
#include <fcntl.h>
#include <time.h>

static long raw6(long n, long a, long b, long c, long d, long e, long f) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = d;
  register long r8 __asm__("r8") = e;
  register long r9 __asm__("r9") = f;
  __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9) : "rcx", "r11", "memory");
  return ret;
#elif defined(__aarch64__)
  register long x8 __asm__("x8") = n;
  register long x0 __asm__("x0") = a;
  register long x1 __asm__("x1") = b;
  register long x2 __asm__("x2") = c;
  register long x3 __asm__("x3") = d;
  register long x4 __asm__("x4") = e;
  register long x5 __asm__("x5") = f;
  __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5) : "memory");
  return x0;
#else
#error "mmhold: raw system calls are written for x86_64 and aarch64 only"
#endif
}
#define raw(n, ...) raw_args(n, __VA_ARGS__, 0, 0, 0, 0, 0, 0)
#define raw_args(n, a, b, c, d, e, f, ...) raw6(n, (long)(a), (long)(b), (long)(c), (long)(d), (long)(e), (long)(f))

#define HOLDER_STACK (64 * 1024)
static const char holder_name[] = "provfs-mmhold";
static const char autogroup_path[] = "/proc/self/autogroup";

/* arg: the daemon's pid in the low 32 bits, the linger after its death (ms) above. */
static int holder(void *arg) {
  uintptr_t v = (uintptr_t)arg;
  long parent = (long)(v & 0xffffffffu);
  long linger_ms = (long)(v >> 32);
  /* No descriptor of the daemon: the copy of its table clone made would keep files open (the
     journal's lock, sockets). Every signal blocked: the handlers are the daemon's code. */
  raw(SYS_close_range, 0, ~0u, 0);
  uint64_t all = ~(uint64_t)0;
  raw(SYS_rt_sigprocmask, SIG_SETMASK, &all, 0, 8);
  raw(SYS_prctl, PR_SET_NAME, holder_name);
  /* Its exit (the unmapping) is nobody's wait: below everything, in an autogroup of its own. */
  raw(SYS_setsid, 0);
  struct sched_param sp = {0};
  raw(SYS_sched_setscheduler, 0, SCHED_IDLE, &sp);
  long ag = raw(SYS_openat, AT_FDCWD, autogroup_path, O_WRONLY | O_CLOEXEC);
  if (ag >= 0) { raw(SYS_write, ag, "19", 2); raw(SYS_close, ag); }
  long pidfd = raw(SYS_pidfd_open, parent, 0);
  if (pidfd >= 0) {
    struct pollfd p = { (int)pidfd, POLLIN, 0 };
    while (raw(SYS_ppoll, &p, 1, 0, 0, 8) <= 0) {}
  } else {
    struct timespec tick = { 0, 20 * 1000 * 1000 };
    while (raw(SYS_kill, parent, 0) == 0) raw(SYS_nanosleep, &tick, 0);
  }
  struct timespec linger = { linger_ms / 1000, (linger_ms % 1000) * 1000000L };
  raw(SYS_nanosleep, &linger, 0);
  raw(SYS_exit_group, 0);
  return 0;
}

/*
 * Start the holder for this process; it exits `linger_ms` after this process has. Returns its
 * pid, or a negative errno.
 */
int prov_hold_mm(int linger_ms) {
  void *stack = mmap(0, HOLDER_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
  if (stack == MAP_FAILED) return -12; /* ENOMEM */
  uintptr_t arg = ((uintptr_t)(unsigned)linger_ms << 32) | (uint32_t)raw(SYS_getpid, 0);
  int pid = clone(holder, (char *)stack + HOLDER_STACK, CLONE_VM | SIGCHLD, (void *)arg);
  if (pid < 0) { munmap(stack, HOLDER_STACK); return -1; }
  return pid;
}
