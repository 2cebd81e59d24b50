// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * @module ebpf/prov.bpf.c
 * prov's capture programs: process lifecycle from tp_btf sched_* (only successful execs reach
 * sched_process_exec, so PATH probing never shows up), fd bookkeeping and file-system ops from
 * syscall tracepoints at exit (success only), inode resolution by walking task → files → fdt →
 * file → f_inode, and the inode a namespace op touched from the ctime tracepoints that every
 * file system fires on it while the syscall runs (matched by its dentry name).
 *
 * Pattern per event: reserve a fixed-size record, fill, submit; a failed reserve is counted
 * per CPU (stats[PROV_STAT_DROPPED]) and user space turns the count into `lost` events.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include "prov.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The TypeScript decoder (ebpf/decode.ts) hard-codes these sizes: keep both in step. */
_Static_assert(sizeof(struct prov_hdr) == 48, "prov_hdr");
_Static_assert(sizeof(struct prov_fork) == 64, "prov_fork");
_Static_assert(sizeof(struct prov_exit) == 56, "prov_exit");
_Static_assert(sizeof(struct prov_exec) == 4184, "prov_exec");
_Static_assert(sizeof(struct prov_fd) == 88, "prov_fd");
_Static_assert(sizeof(struct prov_open) == 864, "prov_open");
_Static_assert(__builtin_offsetof(struct prov_open, path.path) == PROV_OPEN_FIXED, "prov_open path");
_Static_assert(sizeof(struct prov_sock) == 200, "prov_sock");
_Static_assert(sizeof(struct prov_msg) == 248, "prov_msg");
_Static_assert(sizeof(struct prov_fs) == 2184, "prov_fs");
_Static_assert(sizeof(struct prov_lost) == 72, "prov_lost");
_Static_assert(sizeof(struct prov_settings) == 88, "prov_settings");
_Static_assert(sizeof(struct prov_setattr) == 1152, "prov_setattr");
_Static_assert(sizeof(struct prov_exec_v) == 80, "prov_exec_v");
_Static_assert(sizeof(struct prov_fs_v) == 128, "prov_fs_v");
_Static_assert(sizeof(struct prov_setattr_v) == 128, "prov_setattr_v");

/* A kernel pointer read as a number → a typed read-only pointer: its fields are then plain loads
 * (the JIT guards them), not one bpf_probe_read_kernel call each. */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define AS(type, p) ((type *)bpf_rdonly_cast((void *)(p), bpf_core_type_id_kernel(type)))

/* ---- settings, fixed before load (the loader writes them into .rodata) ---- */
const volatile struct prov_settings settings = { .env = 1 };

/* ---- maps (pinned by the loader) ---- */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 64 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PROV_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* tgids never traced: the recorder's own processes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u8);
} excluded SEC(".maps");

/* tgids traced when settings.pid_tree is set; children of a tracked tgid are added at fork. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} tracked SEC(".maps");

/* Syscall arguments kept from sys_enter to sys_exit, per thread. */
#define NAME_CMP 32
struct pending {
	__u64 arg[6];
	__u32 nr;            /* which syscall family stashed it (PEND_*) */
	__u32 op;
	/* fs ops: the last path components to recognise the touched inodes by */
	__u32 base1_len;
	__u32 base2_len;
	char base1[NAME_CMP];
	char base2[NAME_CMP];
	__u64 ino1_ptr, ino2_ptr;
	struct prov_inode ino1, ino2;
};
enum { PEND_PIPE = 1, PEND_DUP, PEND_OPEN, PEND_CLOSE_RANGE, PEND_SOCK, PEND_MSG, PEND_FS, PEND_SETATTR };

/*
 * Per-thread storage (lives and dies with the task): no hashing, no insert and delete per
 * syscall as with a hash map keyed by tid. nr == 0: nothing stashed.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct pending);
} pend SEC(".maps");

/* Scratch for reading a path argument before taking its last component. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[PROV_RAW]);
} scratch SEC(".maps");

/* Scratch for an open record: built here, sent trimmed with bpf_ringbuf_output. */
struct open_scratch {
	struct prov_open rec;
	char tmp[PROV_WALK_END];
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct open_scratch);
} open_scratch SEC(".maps");

/*
 * Scratch for a variable-length record (struct prov_*_v): the fixed part at rec[0], strings
 * appended at a cursor (always < VCUR: every record ends below 4 KiB), then sent with
 * bpf_ringbuf_output of the filled length. Paths are walked into walk1/walk2 first.
 */
#define VREC 8192
#define VCUR 4096
struct vscratch {
	__u8 rec[VREC];
	struct prov_walk walk1;
	struct prov_walk walk2;
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vscratch);
} vscratch SEC(".maps");

/* ---- syscall tracepoint contexts (only the arguments a program reads may be touched) ---- */
struct sys_enter_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};
struct sys_exit_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__s64 ret;
};

#define FMODE_CREATED_BIT (1U << 20)
#define S_IFMT 00170000
#define S_IFDIR 0040000
#define AF_UNIX 1
#define SOL_SOCKET 1
#define SCM_RIGHTS 1

static __always_inline void count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &slot);
	if (v)
		*v += 1;
}

/* Should the current task's events be emitted? */
static __always_inline bool wanted(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_lookup_elem(&excluded, &tgid))
		return false;
	if (settings.cgroup && bpf_get_current_cgroup_id() != settings.cgroup)
		return false;
	if (settings.pid_tree && !bpf_map_lookup_elem(&tracked, &tgid))
		return false;
	return true;
}

/*
 * No wake-up: every consumer reads the ring from its mapping and polls (ebpf/ring.ts), none
 * waits on the map's fd, so the kernel's irq_work to wake one would be pure cost.
 */
#define RB_FLAGS BPF_RB_NO_WAKEUP

static __always_inline void *reserve(__u32 size)
{
	void *r = bpf_ringbuf_reserve(&events, size, 0);
	if (!r)
		count(PROV_STAT_DROPPED);
	return r;
}

static __always_inline void submit(void *r)
{
	count(PROV_STAT_EMITTED);
	bpf_ringbuf_submit(r, RB_FLAGS);
}

static __always_inline void fill_hdr(struct prov_hdr *h, __u16 kind, __u16 size)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	__u64 id = bpf_get_current_pid_tgid();
	h->kind = kind;
	h->size = size;
	h->uid = (__u32)bpf_get_current_uid_gid();
	h->ts = bpf_ktime_get_ns();
	h->pid = id >> 32;
	h->tid = (__u32)id;
	h->ppid = t->real_parent->tgid;
	h->cpu = bpf_get_smp_processor_id();
	bpf_get_current_comm(h->comm, sizeof(h->comm));
}

/* ---- kernel structure walks ---- */

static __always_inline struct file *fd_file(struct task_struct *t, int fd)
{
	if (fd < 0)
		return NULL;
	struct files_struct *files = t->files;
	if (!files)
		return NULL;
	struct fdtable *fdt = files->fdt;
	if (!fdt)
		return NULL;
	unsigned int max = fdt->max_fds;
	if ((unsigned int)fd >= max)
		return NULL;
	struct file **fds = fdt->fd;
	struct file *f = NULL;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

static __always_inline void inode_ref(struct inode *ip, __u64 *ino, __u32 *dev, __u32 *mode)
{
	if (!ip)
		return;
	struct inode *i = AS(struct inode, ip);
	*ino = i->i_ino;
	*dev = i->i_sb->s_dev;
	*mode = i->i_mode;
}

static __always_inline __u64 sock_peer_ino(struct file *f)
{
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return 0;
	struct sock *sk = BPF_CORE_READ(sock, sk);
	if (!sk || BPF_CORE_READ(sk, __sk_common.skc_family) != AF_UNIX)
		return 0;
	struct sock *peer = BPF_CORE_READ((struct unix_sock *)sk, peer);
	if (!peer)
		return 0;
	struct socket *ps = BPF_CORE_READ(peer, sk_socket);
	if (!ps)
		return 0;
	struct socket_alloc *sa = container_of(ps, struct socket_alloc, socket);
	return BPF_CORE_READ(sa, vfs_inode.i_ino);
}

#define WALK_DEPTH 32
struct walk_ctx {
	struct prov_walk *w;
	__u64 mnt;           /* struct mount *, as a number: cast back each step */
	__u64 d;             /* struct dentry * */
	__u32 pos;
	__u32 done;
};

/* One step up the tree: a bpf_loop callback, so the verifier checks it once. */
static long walk_step(__u64 i, struct walk_ctx *c)
{
	struct dentry *d = AS(struct dentry, c->d);
	struct mount *mnt = AS(struct mount, c->mnt);
	struct dentry *mnt_root = mnt->mnt.mnt_root;
	struct dentry *parent = d->d_parent;
	if (d == mnt_root || d == parent) {
		struct mount *up = mnt->mnt_parent;
		if (d != mnt_root || up == mnt) {
			c->done = 1; /* the root of the root mount */
			return 1;
		}
		c->d = (__u64)mnt->mnt_mountpoint;
		c->mnt = (__u64)up;
		return 0;
	}
	__u32 len = d->d_name.len & 0xff;
	const unsigned char *name = d->d_name.name;
	__u32 pos = c->pos;
	if (len + 1 > pos || pos > PROV_WALK_END)
		return 1; /* too long: truncated */
	pos -= len;
	struct prov_walk *w = c->w;
	bpf_probe_read_kernel(&w->path[pos & (PROV_WALK_END - 1)], len, name);
	pos -= 1;
	w->path[pos & (PROV_WALK_END - 1)] = '/';
	c->pos = pos;
	c->d = (__u64)parent;
	return 0;
}

/*
 * Write the absolute path of (mnt, dentry) right to left ending at PROV_WALK_END, crossing
 * mount points upwards. Paths deeper than WALK_DEPTH components or longer than 512 bytes are
 * cut (flagged `truncated`, keeping the leaf end).
 */
static __always_inline void walk_path(struct prov_walk *w, struct vfsmount *vmnt, struct dentry *d)
{
	struct walk_ctx c = { .w = w, .mnt = (__u64)container_of(vmnt, struct mount, mnt), .d = (__u64)d, .pos = PROV_WALK_END, .done = 0 };
	w->path[PROV_WALK_END] = 0;
	bpf_loop(WALK_DEPTH, walk_step, &c, 0);
	__u32 pos = c.pos;
	if (pos > PROV_WALK_END)
		pos = PROV_WALK_END;
	if (pos == PROV_WALK_END) { /* the root itself */
		pos -= 1;
		w->path[pos & (PROV_WALK_END - 1)] = '/';
	}
	w->truncated = !c.done;
	w->off = pos;
	w->len = PROV_WALK_END - pos;
}

static __always_inline void walk_file(struct prov_walk *w, struct file *f)
{
	walk_path(w, BPF_CORE_READ(f, f_path.mnt), BPF_CORE_READ(f, f_path.dentry));
}

static __always_inline void walk_cwd(struct prov_walk *w, struct task_struct *t)
{
	walk_path(w, BPF_CORE_READ(t, fs, pwd.mnt), BPF_CORE_READ(t, fs, pwd.dentry));
}

#define AT_FDCWD -100
/* The directory a path argument is relative to: dirfd's file, or the cwd. */
static __always_inline void walk_dirfd(struct prov_walk *w, struct task_struct *t, int dirfd)
{
	if (dirfd == AT_FDCWD) {
		walk_cwd(w, t);
		return;
	}
	struct file *f = fd_file(t, dirfd);
	if (f)
		walk_file(w, f);
}

/* Is the walked path under settings.prefix? (walked paths are absolute) */
static __always_inline bool prefix_ok(struct prov_walk *w)
{
	if (!settings.prefix_len)
		return true;
	if (w->len < settings.prefix_len)
		return false;
	for (int i = 0; i < 64; i++) {
		if (i >= settings.prefix_len)
			break;
		if (w->path[(w->off + i) & (PROV_WALK_END - 1)] != settings.prefix[i])
			return false;
	}
	return true;
}

/*
 * Is `raw` (a path argument, absolute or relative to the walked directory `dir`) under
 * settings.prefix? Compared as the string dir + "/" + raw, without resolving "..".
 */
static __always_inline bool prefix_ok_raw(struct prov_walk *dir, const char *raw)
{
	if (!settings.prefix_len)
		return true;
	bool abs = raw[0] == '/';
	__u32 dlen = abs || dir->len == 1 ? 0 : dir->len; /* dir "/" joins as "/" + raw */
	for (int i = 0; i < 64; i++) {
		if (i >= settings.prefix_len)
			break;
		char c;
		if (abs)
			c = raw[i & (PROV_RAW - 1)];
		else if (i < dlen)
			c = dir->path[(dir->off + i) & (PROV_WALK_END - 1)];
		else if (i == dlen)
			c = '/';
		else
			c = raw[(i - dlen - 1) & (PROV_RAW - 1)];
		if (c != settings.prefix[i])
			return false;
	}
	return true;
}


/* ---- variable-length records ---- */

static __always_inline struct vscratch *vscratch_get(void)
{
	__u32 k = 0;
	return bpf_map_lookup_elem(&vscratch, &k);
}

/* End a string at rec[cur] with its NUL; returns the cursor past it. */
static __always_inline __u32 vnul(struct vscratch *v, __u32 cur)
{
	v->rec[cur & (VCUR - 1)] = 0;
	return cur + 1;
}

/* Append a walked path (its text) at cur; *len gets its length. */
static __always_inline __u32 vput_walk(struct vscratch *v, __u32 cur, struct prov_walk *w, __u16 *len)
{
	__u32 n = w->len;
	if (n > PROV_WALK_END)
		n = PROV_WALK_END;
	__u32 off = w->off & (PROV_WALK_END - 1);
	if (n && bpf_probe_read_kernel(&v->rec[cur & (VCUR - 1)], n, &w->path[off]))
		n = 0;
	*len = n;
	return vnul(v, cur + n);
}

/* Append a user string (at most PROV_RAW - 1 bytes) at cur; *len gets its length. */
static __always_inline __u32 vput_user_str(struct vscratch *v, __u32 cur, const void *src, __u16 *len)
{
	long n = src ? bpf_probe_read_user_str(&v->rec[cur & (VCUR - 1)], PROV_RAW, src) : 0;
	__u32 m = n > 1 ? n - 1 : 0;
	*len = m;
	return vnul(v, cur + m);
}

/* Zero the padding after cur and send rec[0, round8(cur)). */
static __always_inline void vsend(struct vscratch *v, __u32 cur)
{
	__u32 size = (cur + 7) & ~7U;
	for (int i = 0; i < 8; i++)
		v->rec[(cur + i) & (VCUR - 1)] = 0;
	((struct prov_hdr *)v->rec)->size = size;
	if (bpf_ringbuf_output(&events, v->rec, size & (VCUR - 1), RB_FLAGS)) {
		count(PROV_STAT_DROPPED);
		return;
	}
	count(PROV_STAT_EMITTED);
}

/* ---- process lifecycle ---- */

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = BPF_CORE_READ(parent, tgid);
	__u32 ctgid = BPF_CORE_READ(child, tgid);
	if (settings.pid_tree && ptgid != ctgid && bpf_map_lookup_elem(&tracked, &ptgid)) {
		__u8 one = 1;
		bpf_map_update_elem(&tracked, &ctgid, &one, BPF_ANY);
	}
	if (!wanted())
		return 0;
	struct prov_fork *r = reserve(sizeof(*r));
	if (!r)
		return 0;
	fill_hdr(&r->h, PROV_K_FORK, sizeof(*r));
	r->child = ctgid;
	r->child_tid = BPF_CORE_READ(child, pid);
	r->thread = ptgid == ctgid;
	r->_pad = 0;
	submit(r);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *t, pid_t old_pid, struct linux_binprm *bprm)
{
	if (!wanted())
		return 0;
	struct vscratch *v = vscratch_get();
	if (!v)
		return 0;
	struct prov_exec_v *r = (struct prov_exec_v *)v->rec;
	fill_hdr(&r->h, PROV_K_EXEC_V, 0);
	r->gid = bpf_get_current_uid_gid() >> 32;
	r->flags = 0;
	r->exe_ino = 0;
	r->exe_dev = 0;
	r->exe_mode = 0;
	struct file *exe = BPF_CORE_READ(bprm, file);
	if (exe)
		inode_ref(BPF_CORE_READ(exe, f_inode), &r->exe_ino, &r->exe_dev, &r->exe_mode);
	__u32 cur = sizeof(*r);

	long fl = bpf_probe_read_kernel_str(&v->rec[cur], PROV_RAW, BPF_CORE_READ(bprm, filename));
	r->filename_len = fl > 1 ? fl - 1 : 0;
	cur = vnul(v, cur + r->filename_len);

	struct mm_struct *mm = BPF_CORE_READ(t, mm);
	unsigned long a0 = BPF_CORE_READ(mm, arg_start), a1 = BPF_CORE_READ(mm, arg_end);
	__u32 n = a1 > a0 ? (a1 - a0 > PROV_ARGS ? PROV_ARGS + 1 : a1 - a0) : 0;
	if (n > PROV_ARGS) {
		n = PROV_ARGS;
		r->flags |= 1;
	}
	if (n && bpf_probe_read_user(&v->rec[cur & (VCUR - 1)], n, (void *)a0))
		n = 0;
	r->args_len = n;
	cur = vnul(v, cur + n);

	__u32 m = 0;
	if (settings.env) {
		unsigned long e0 = BPF_CORE_READ(mm, env_start), e1 = BPF_CORE_READ(mm, env_end);
		m = e1 > e0 ? (e1 - e0 > PROV_ENV ? PROV_ENV + 1 : e1 - e0) : 0;
		if (m > PROV_ENV) {
			m = PROV_ENV;
			r->flags |= 2;
		}
		if (m && bpf_probe_read_user(&v->rec[cur & (VCUR - 1)], m, (void *)e0))
			m = 0;
	}
	r->env_len = m;
	cur = vnul(v, cur + m);

	walk_cwd(&v->walk1, t);
	if (v->walk1.truncated)
		r->flags |= 4;
	cur = vput_walk(v, cur, &v->walk1, &r->cwd_len);
	vsend(v, cur);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *t, bool group_dead)
{
	__u32 tgid = BPF_CORE_READ(t, tgid);
	bool emit = wanted();
	if (group_dead) {
		if (settings.pid_tree)
			bpf_map_delete_elem(&tracked, &tgid);
		bpf_map_delete_elem(&excluded, &tgid);
	}
	if (!emit)
		return 0;
	struct prov_exit *r = reserve(sizeof(*r));
	if (!r)
		return 0;
	fill_hdr(&r->h, PROV_K_EXIT, sizeof(*r));
	r->code = BPF_CORE_READ(t, exit_code);
	r->group = group_dead;
	submit(r);
	return 0;
}

/* ---- stash at enter, emit at exit ---- */

static __always_inline struct pending *stash(__u32 nr, __u32 op, __u64 a0, __u64 a1, __u64 a2, __u64 a3)
{
	struct pending *p = bpf_task_storage_get(&pend, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!p) {
		count(PROV_STAT_DROPPED); /* no memory for this thread's stash: this syscall's event is lost */
		return NULL;
	}
	p->nr = nr;
	p->op = op;
	p->arg[0] = a0;
	p->arg[1] = a1;
	p->arg[2] = a2;
	p->arg[3] = a3;
	p->arg[4] = 0;
	p->arg[5] = 0;
	p->base1_len = 0;
	p->base2_len = 0;
	p->ino1_ptr = 0;
	p->ino2_ptr = 0;
	__builtin_memset(&p->ino1, 0, sizeof(p->ino1));
	__builtin_memset(&p->ino2, 0, sizeof(p->ino2));
	return p;
}

/* Take the stash of this thread if it is of family nr (always empties it). */
static __always_inline bool unstash(__u32 nr, struct pending *out)
{
	struct pending *p = bpf_task_storage_get(&pend, bpf_get_current_task_btf(), 0, 0);
	if (!p || !p->nr)
		return false;
	bool ok = p->nr == nr;
	if (ok)
		__builtin_memcpy(out, p, sizeof(*out));
	p->nr = 0;
	return ok;
}

/* ---- pipes ---- */

static __always_inline int pipe_exit(long ret)
{
	struct pending p;
	if (!unstash(PEND_PIPE, &p) || ret != 0)
		return 0;
	int fds[2] = {};
	if (bpf_probe_read_user(fds, sizeof(fds), (void *)p.arg[0]))
		return 0;
	struct prov_fd *r = reserve(sizeof(*r));
	if (!r)
		return 0;
	fill_hdr(&r->h, PROV_K_FD, sizeof(*r));
	r->op = PROV_FD_PIPE;
	r->a = fds[0];
	r->b = fds[1];
	r->flags = p.arg[1];
	r->ino = 0;
	r->dev = 0;
	r->mode = 0;
	r->_pad = 0;
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task_btf(), fds[0]);
	if (f)
		inode_ref(BPF_CORE_READ(f, f_inode), &r->ino, &r->dev, &r->mode);
	submit(r);
	return 0;
}

SEC("tp/syscalls/sys_enter_pipe")
int enter_pipe(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_PIPE, 0, ctx->args[0], 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_pipe2")
int enter_pipe2(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_PIPE, 0, ctx->args[0], ctx->args[1], 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_exit_pipe")
int exit_pipe(struct sys_exit_ctx *ctx) { return pipe_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_pipe2")
int exit_pipe2(struct sys_exit_ctx *ctx) { return pipe_exit(ctx->ret); }

/* ---- dup family (dash uses fcntl F_DUPFD) ---- */

#define O_CLOEXEC 02000000
#define F_DUPFD 0
#define F_DUPFD_CLOEXEC 1030

static __always_inline int emit_fd(__u32 op, int a, int b, __u32 flags, struct file *f)
{
	struct prov_fd *r = reserve(sizeof(*r));
	if (!r)
		return 0;
	fill_hdr(&r->h, PROV_K_FD, sizeof(*r));
	r->op = op;
	r->a = a;
	r->b = b;
	r->flags = flags;
	r->ino = 0;
	r->dev = 0;
	r->mode = 0;
	r->_pad = 0;
	if (f)
		inode_ref(AS(struct file, f)->f_inode, &r->ino, &r->dev, &r->mode);
	submit(r);
	return 0;
}

SEC("tp/syscalls/sys_enter_dup")
int enter_dup(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_DUP, 0, ctx->args[0], 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_dup2")
int enter_dup2(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_DUP, 0, ctx->args[0], 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_dup3")
int enter_dup3(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_DUP, 0, ctx->args[0], (ctx->args[2] & O_CLOEXEC) ? 1 : 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_fcntl")
int enter_fcntl(struct sys_enter_ctx *ctx)
{
	__u32 cmd = ctx->args[1];
	if ((cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) && wanted())
		stash(PEND_DUP, 0, ctx->args[0], cmd == F_DUPFD_CLOEXEC, 0, 0);
	return 0;
}
static __always_inline int dup_exit(long ret)
{
	struct pending p;
	if (!unstash(PEND_DUP, &p) || ret < 0)
		return 0;
	if (p.arg[0] == ret)
		return 0; /* dup2(fd, fd): nothing changes */
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task_btf(), ret);
	return emit_fd(PROV_FD_DUP, p.arg[0], ret, p.arg[1], f);
}
SEC("tp/syscalls/sys_exit_dup")
int exit_dup(struct sys_exit_ctx *ctx) { return dup_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_dup2")
int exit_dup2(struct sys_exit_ctx *ctx) { return dup_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_dup3")
int exit_dup3(struct sys_exit_ctx *ctx) { return dup_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_fcntl")
int exit_fcntl(struct sys_exit_ctx *ctx) { return dup_exit(ctx->ret); }

/* ---- close ---- */

SEC("tp/syscalls/sys_enter_close")
int enter_close(struct sys_enter_ctx *ctx)
{
	if (!wanted())
		return 0;
	int fd = ctx->args[0];
	/* Resolved before the fd goes; an fd with no file behind it fails with EBADF: not emitted. */
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task_btf(), fd);
	if (!f)
		return 0;
	return emit_fd(PROV_FD_CLOSE, fd, 0, 0, f);
}

SEC("tp/syscalls/sys_enter_close_range")
int enter_close_range(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_CLOSE_RANGE, 0, ctx->args[0], ctx->args[1], ctx->args[2], 0);
	return 0;
}
SEC("tp/syscalls/sys_exit_close_range")
int exit_close_range(struct sys_exit_ctx *ctx)
{
	struct pending p;
	/* CLOSE_RANGE_CLOEXEC (4) only marks the fds close-on-exec: nothing is closed yet */
	if (!unstash(PEND_CLOSE_RANGE, &p) || ctx->ret != 0 || (p.arg[2] & 4))
		return 0;
	return emit_fd(PROV_FD_CLOSE_RANGE, p.arg[0], p.arg[1], p.arg[2], NULL);
}

/* ---- open ---- */

#define O_CREAT 0100
#define O_WRONLY 01
#define O_TRUNC 01000

SEC("tp/syscalls/sys_enter_open")
int enter_open(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_OPEN, 0, ctx->args[1], ctx->args[2], 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_openat")
int enter_openat(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_OPEN, 0, ctx->args[2], ctx->args[3], 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_openat2")
int enter_openat2(struct sys_enter_ctx *ctx)
{
	if (!wanted())
		return 0;
	struct open_how how = {};
	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	stash(PEND_OPEN, 0, how.flags, how.mode, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_creat")
int enter_creat(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_OPEN, 0, O_CREAT | O_WRONLY | O_TRUNC, ctx->args[1], 0, 0);
	return 0;
}
static __always_inline int open_exit(long ret)
{
	struct pending p;
	if (!unstash(PEND_OPEN, &p) || ret < 0)
		return 0;
	struct file *f = fd_file((struct task_struct *)bpf_get_current_task_btf(), ret);
	if (!f)
		return 0;
	/* Built in per-CPU scratch, sent trimmed to its path (opens are the most frequent record). */
	__u32 k = 0;
	struct open_scratch *sc = bpf_map_lookup_elem(&open_scratch, &k);
	if (!sc)
		return 0;
	struct prov_open *r = &sc->rec;
	fill_hdr(&r->h, PROV_K_OPEN, sizeof(*r));
	r->fd = ret;
	r->flags = p.arg[0];
	r->mode = p.arg[1];
	struct file *ft = AS(struct file, f);
	r->created = (ft->f_mode & FMODE_CREATED_BIT) ? 1 : 0;
	r->ino = 0;
	r->dev = 0;
	r->imode = 0;
	inode_ref(ft->f_inode, &r->ino, &r->dev, &r->imode);
	struct inode *pi = ft->f_path.dentry->d_parent->d_inode;
	r->parent = pi ? pi->i_ino : 0;
	walk_path(&r->path, ft->f_path.mnt, ft->f_path.dentry);
	if (!prefix_ok(&r->path))
		return 0;
	/* move the path (written right-aligned) to the start of its buffer, then cut the record after it */
	__u32 len = r->path.len & (PROV_WALK_END - 1);
	__u32 off = r->path.off & (PROV_WALK_END - 1);
	bpf_probe_read_kernel(sc->tmp, len, &r->path.path[off]);
	bpf_probe_read_kernel(r->path.path, len, sc->tmp);
	r->path.off = 0;
	r->path.path[len] = 0;
	__u32 size = (PROV_OPEN_FIXED + len + 1 + 7) & ~7;
	if (size > sizeof(*r))
		size = sizeof(*r);
	r->h.size = size;
	if (bpf_ringbuf_output(&events, r, size, RB_FLAGS)) {
		count(PROV_STAT_DROPPED);
		return 0;
	}
	count(PROV_STAT_EMITTED);
	return 0;
}
SEC("tp/syscalls/sys_exit_open")
int exit_open(struct sys_exit_ctx *ctx) { return open_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_openat")
int exit_openat(struct sys_exit_ctx *ctx) { return open_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_openat2")
int exit_openat2(struct sys_exit_ctx *ctx) { return open_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_creat")
int exit_creat(struct sys_exit_ctx *ctx) { return open_exit(ctx->ret); }

/* ---- sockets ---- */

static __always_inline int emit_sock(__u32 op, int fd, int newfd, struct pending *p)
{
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct prov_sock *r = reserve(sizeof(*r));
	if (!r)
		return 0;
	fill_hdr(&r->h, PROV_K_SOCK, sizeof(*r));
	r->op = op;
	r->fd = fd;
	r->newfd = newfd;
	r->family = 0;
	r->type = 0;
	r->addr_len = 0;
	r->ino = 0;
	r->peer = 0;
	__builtin_memset(r->addr, 0, sizeof(r->addr));
	struct file *f = fd_file(t, op == PROV_SOCK_ACCEPT ? newfd : fd);
	if (f) {
		r->ino = BPF_CORE_READ(f, f_inode, i_ino);
		r->peer = sock_peer_ino(f);
		struct socket *s = BPF_CORE_READ(f, private_data);
		if (s) {
			r->type = BPF_CORE_READ(s, type);
			r->family = BPF_CORE_READ(s, sk, __sk_common.skc_family);
		}
	}
	if (op == PROV_SOCK_CONNECT && p) {
		/* fixed-size reads keep the verifier simple; a short buffer at a page end falls back to 16 bytes */
		__u64 len = p->arg[2] < PROV_ADDR ? p->arg[2] : PROV_ADDR;
		if (bpf_probe_read_user(r->addr, PROV_ADDR, (void *)p->arg[1]) == 0 ||
		    bpf_probe_read_user(r->addr, 16, (void *)p->arg[1]) == 0)
			r->addr_len = len;
	}
	submit(r);
	return 0;
}

SEC("tp/syscalls/sys_enter_socket")
int enter_socket(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_SOCK, PROV_SOCK_SOCKET, 0, 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_accept")
int enter_accept(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_SOCK, PROV_SOCK_ACCEPT, ctx->args[0], 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_accept4")
int enter_accept4(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_SOCK, PROV_SOCK_ACCEPT, ctx->args[0], 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_connect")
int enter_connect(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_SOCK, PROV_SOCK_CONNECT, ctx->args[0], ctx->args[1], ctx->args[2], 0);
	return 0;
}
static __always_inline int sock_exit(long ret)
{
	struct pending p;
	if (!unstash(PEND_SOCK, &p))
		return 0;
	/* connect on a non-blocking socket may report EINPROGRESS (-115) and still connect. */
	if (ret < 0 && !(p.op == PROV_SOCK_CONNECT && ret == -115))
		return 0;
	if (p.op == PROV_SOCK_SOCKET)
		return emit_sock(p.op, ret, -1, &p);
	if (p.op == PROV_SOCK_ACCEPT)
		return emit_sock(p.op, p.arg[0], ret, &p);
	return emit_sock(p.op, p.arg[0], -1, &p);
}
SEC("tp/syscalls/sys_exit_socket")
int exit_socket(struct sys_exit_ctx *ctx) { return sock_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_accept")
int exit_accept(struct sys_exit_ctx *ctx) { return sock_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_accept4")
int exit_accept4(struct sys_exit_ctx *ctx) { return sock_exit(ctx->ret); }
SEC("tp/syscalls/sys_exit_connect")
int exit_connect(struct sys_exit_ctx *ctx) { return sock_exit(ctx->ret); }

/* ---- messages, with SCM_RIGHTS fds resolved on both sides ---- */

struct cmsg_head {
	__u64 len;
	__s32 level;
	__s32 type;
};

static __always_inline int msg_exit(__u32 op, long ret)
{
	struct pending p;
	if (!unstash(PEND_MSG, &p) || ret < 0)
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct prov_msg *r = reserve(sizeof(*r));
	if (!r)
		return 0;
	fill_hdr(&r->h, PROV_K_MSG, sizeof(*r));
	r->op = op;
	r->fd = p.arg[0];
	r->bytes = ret;
	r->nfds = 0;
	r->flags = 0;
	r->sock = 0;
	r->peer = 0;
	__builtin_memset(r->fds, 0, sizeof(r->fds));
	__builtin_memset(r->devs, 0, sizeof(r->devs));
	__builtin_memset(r->inos, 0, sizeof(r->inos));
	__builtin_memset(r->modes, 0, sizeof(r->modes));
	struct file *sf = fd_file(t, r->fd);
	if (sf) {
		r->sock = BPF_CORE_READ(sf, f_inode, i_ino);
		r->peer = sock_peer_ino(sf);
	}
	/* arg[1]: struct user_msghdr * (sendmsg/recvmsg) or the first mmsghdr (same prefix); 0 for sendto */
	if (p.arg[1]) {
		struct user_msghdr mh = {};
		if (bpf_probe_read_user(&mh, sizeof(mh), (void *)p.arg[1]) == 0 && mh.msg_control &&
		    mh.msg_controllen >= sizeof(struct cmsg_head)) {
			struct cmsg_head ch = {};
			bpf_probe_read_user(&ch, sizeof(ch), mh.msg_control);
			if (ch.level == SOL_SOCKET && ch.type == SCM_RIGHTS && ch.len > sizeof(ch)) {
				__u32 n = (ch.len - sizeof(ch)) / 4;
				if (n > PROV_MAX_FDS) {
					n = PROV_MAX_FDS;
					r->flags |= 1;
				}
				bpf_probe_read_user(r->fds, n * 4 & 0x3f, (char *)mh.msg_control + sizeof(ch));
				r->nfds = n;
				for (int i = 0; i < PROV_MAX_FDS; i++) {
					if (i >= n)
						break;
					struct file *f = fd_file(t, r->fds[i]);
					if (f)
						inode_ref(BPF_CORE_READ(f, f_inode), &r->inos[i], &r->devs[i], &r->modes[i]);
				}
			}
		}
	}
	submit(r);
	return 0;
}

SEC("tp/syscalls/sys_enter_sendmsg")
int enter_sendmsg(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_MSG, PROV_MSG_SEND, ctx->args[0], ctx->args[1], 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_sendmmsg")
int enter_sendmmsg(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_MSG, PROV_MSG_SEND, ctx->args[0], ctx->args[1], 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_sendto")
int enter_sendto(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_MSG, PROV_MSG_SEND, ctx->args[0], 0, 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_enter_recvmsg")
int enter_recvmsg(struct sys_enter_ctx *ctx)
{
	if (wanted())
		stash(PEND_MSG, PROV_MSG_RECV, ctx->args[0], ctx->args[1], 0, 0);
	return 0;
}
SEC("tp/syscalls/sys_exit_sendmsg")
int exit_sendmsg(struct sys_exit_ctx *ctx) { return msg_exit(PROV_MSG_SEND, ctx->ret); }
SEC("tp/syscalls/sys_exit_sendmmsg")
int exit_sendmmsg(struct sys_exit_ctx *ctx) { return msg_exit(PROV_MSG_SEND, ctx->ret); }
SEC("tp/syscalls/sys_exit_sendto")
int exit_sendto(struct sys_exit_ctx *ctx) { return msg_exit(PROV_MSG_SEND, ctx->ret); }
SEC("tp/syscalls/sys_exit_recvmsg")
int exit_recvmsg(struct sys_exit_ctx *ctx) { return msg_exit(PROV_MSG_RECV, ctx->ret); }

/* ---- file-system namespace ops ---- */

struct slash_ctx {
	char *buf;
	__u32 end;
	__u32 start;
};
static long find_slash(__u64 i, struct slash_ctx *c)
{
	if (i >= c->end)
		return 1;
	if (c->buf[i & (PROV_RAW - 1)] == '/')
		c->start = i + 1;
	return 0;
}

/* Keep the last component of a user path (first NAME_CMP bytes + its length). */
static __always_inline void take_base(const char *upath, char *base, __u32 *base_len)
{
	__u32 k = 0;
	char *buf = bpf_map_lookup_elem(&scratch, &k);
	*base_len = 0;
	if (!buf || !upath)
		return;
	long n = bpf_probe_read_user_str(buf, PROV_RAW, upath);
	if (n <= 1)
		return;
	__u32 end = n - 1; /* index of the NUL */
	/* drop trailing slashes ("dir/") */
	for (int i = 0; i < 8; i++) {
		if (end > 1 && buf[(end - 1) & (PROV_RAW - 1)] == '/')
			end--;
	}
	struct slash_ctx c = { .buf = buf, .end = end, .start = 0 };
	bpf_loop(PROV_RAW, find_slash, &c, 0);
	__u32 start = c.start;
	__u32 len = end > start ? end - start : 0;
	*base_len = len;
	for (int i = 0; i < NAME_CMP; i++) {
		if (i >= len)
			break;
		base[i] = buf[(start + i) & (PROV_RAW - 1)];
	}
}

static __always_inline struct pending *fs_enter(__u32 op, __u64 dfd1, __u64 p1, __u64 dfd2, __u64 p2, __u64 flags)
{
	if (!wanted())
		return NULL;
	struct pending *p = stash(PEND_FS, op, dfd1, p1, dfd2, p2);
	if (!p)
		return NULL;
	p->arg[4] = flags;
	if (op != PROV_FS_SYMLINK)
		take_base((const char *)p1, p->base1, &p->base1_len);
	if (op == PROV_FS_RENAME || op == PROV_FS_LINK)
		take_base((const char *)p2, p->base2, &p->base2_len);
	return p;
}

/* Does the dentry's name equal the kept base name? */
static __always_inline bool name_is(struct dentry *d, const char *base, __u32 base_len)
{
	struct qstr q = BPF_CORE_READ(d, d_name);
	if (!base_len || q.len != base_len)
		return false;
	char name[NAME_CMP] = {};
	bpf_probe_read_kernel(name, sizeof(name), q.name);
	for (int i = 0; i < NAME_CMP; i++) {
		if (i >= base_len)
			break;
		if (name[i] != base[i])
			return false;
	}
	return true;
}

static __always_inline void keep_inode(struct pending *p, int slot, struct inode *i)
{
	struct prov_inode *s = slot == 1 ? &p->ino1 : &p->ino2;
	s->ino = BPF_CORE_READ(i, i_ino);
	s->dev = BPF_CORE_READ(i, i_sb, s_dev);
	s->mode = BPF_CORE_READ(i, i_mode);
	s->nlink = BPF_CORE_READ(i, __i_nlink);
	if (slot == 1)
		p->ino1_ptr = (__u64)i;
	else
		p->ino2_ptr = (__u64)i;
}

/*
 * A file system set an inode's ctime. While one of our namespace syscalls runs on this thread,
 * that inode is the parent directory, the inode operated on, or the one a rename replaced:
 * tell them apart by the names of the inode's dentries.
 */
static __always_inline int on_ctime(struct inode *i)
{
	struct pending *p = bpf_task_storage_get(&pend, bpf_get_current_task_btf(), 0, 0);
	if (!p || !p->nr)
		return 0;
	if (p->nr == PEND_SETATTR) {
		/* an attribute change sets the ctime of its target only: the first one is it */
		if (!p->ino1_ptr)
			keep_inode(p, 1, i);
		return 0;
	}
	if (p->nr != PEND_FS)
		return 0;
	struct hlist_node *first = BPF_CORE_READ(i, i_dentry.first);
	if (!first) {
		/* a fresh inode (mkdir, symlink): no dentry yet */
		if ((p->op == PROV_FS_MKDIR || p->op == PROV_FS_SYMLINK) && !p->ino1_ptr)
			keep_inode(p, 1, i);
		return 0;
	}
	struct hlist_node *n = first;
	for (int k = 0; k < 4 && n; k++) {
		struct dentry *d = container_of(n, struct dentry, d_u.d_alias);
		if (!p->ino1_ptr && name_is(d, p->base1, p->base1_len)) {
			keep_inode(p, 1, i);
			return 0;
		}
		if (p->op == PROV_FS_RENAME && !p->ino2_ptr && p->ino1_ptr != (__u64)i &&
		    name_is(d, p->base2, p->base2_len)) {
			keep_inode(p, 2, i);
			return 0;
		}
		n = BPF_CORE_READ(n, next);
	}
	return 0;
}

SEC("tp_btf/inode_set_ctime_to_ts")
int BPF_PROG(on_ctime_set, struct inode *i) { return on_ctime(i); }
SEC("tp_btf/ctime_ns_xchg")
int BPF_PROG(on_ctime_xchg, struct inode *i) { return on_ctime(i); }
SEC("tp_btf/ctime_xchg_skip")
int BPF_PROG(on_ctime_skip, struct inode *i) { return on_ctime(i); }

/* At syscall exit: is the kept inode gone (freed, or no link left)? */
static __always_inline void settle(struct prov_inode *out, struct prov_inode *in, __u64 ptr)
{
	__builtin_memcpy(out, in, sizeof(*out));
	if (!ptr)
		return;
	struct inode *i = (struct inode *)ptr;
	__u64 ino = 0;
	__u32 nlink = 0;
	bpf_probe_read_kernel(&ino, sizeof(ino), &i->i_ino);
	bpf_probe_read_kernel(&nlink, sizeof(nlink), &i->__i_nlink);
	if (ino != in->ino) {
		out->gone = 1; /* freed: it had no link and no user left */
		out->nlink = 0;
	} else {
		out->nlink = nlink;
		out->gone = nlink == 0;
	}
}

static __always_inline int fs_exit(long ret)
{
	struct pending p;
	if (!unstash(PEND_FS, &p) || ret != 0)
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct vscratch *v = vscratch_get();
	if (!v)
		return 0;
	struct prov_fs_v *r = (struct prov_fs_v *)v->rec;
	fill_hdr(&r->h, PROV_K_FS_V, 0);
	r->op = p.op;
	r->flags = p.arg[4];
	r->dirfd1 = p.arg[0];
	r->dirfd2 = p.arg[2];
	r->mode = p.arg[5];
	r->trunc = 0;
	settle(&r->file, &p.ino1, p.ino1_ptr);
	settle(&r->other, &p.ino2, p.ino2_ptr);
	__u32 cur = sizeof(*r);
	__u32 raw1 = cur;
	cur = vput_user_str(v, cur, (void *)p.arg[1], &r->raw1_len);
	__u32 raw2 = cur;
	cur = vput_user_str(v, cur, (void *)p.arg[3], &r->raw2_len);
	v->walk1.off = PROV_WALK_END;
	v->walk1.len = 0;
	v->walk1.truncated = 0;
	v->walk2.off = PROV_WALK_END;
	v->walk2.len = 0;
	v->walk2.truncated = 0;
	if (p.op != PROV_FS_SYMLINK)
		walk_dirfd(&v->walk1, t, p.arg[0]);
	if (p.arg[3])
		walk_dirfd(&v->walk2, t, p.arg[2]);
	/* path filter: the op is kept when either name it touches is under the prefix */
	bool keep = p.op != PROV_FS_SYMLINK && prefix_ok_raw(&v->walk1, (const char *)&v->rec[raw1 & (VCUR - 1)]);
	if (!keep && p.arg[3])
		keep = prefix_ok_raw(&v->walk2, (const char *)&v->rec[raw2 & (VCUR - 1)]);
	if (!keep)
		return 0;
	if (v->walk1.truncated)
		r->trunc |= PROV_V_TRUNC_DIR1;
	if (v->walk2.truncated)
		r->trunc |= PROV_V_TRUNC_DIR2;
	cur = vput_walk(v, cur, &v->walk1, &r->dir1_len);
	cur = vput_walk(v, cur, &v->walk2, &r->dir2_len);
	vsend(v, cur);
	return 0;
}

#define SYS_ENTER_FS(name, op, d1, p1, d2, p2, fl, md)                \
	SEC("tp/syscalls/sys_enter_" #name)                            \
	int enter_##name(struct sys_enter_ctx *ctx)                    \
	{                                                              \
		struct pending *p = fs_enter(op, d1, p1, d2, p2, fl); \
		if (p)                                                 \
			p->arg[5] = md;                                \
		return 0;                                              \
	}                                                              \
	SEC("tp/syscalls/sys_exit_" #name)                             \
	int exit_##name(struct sys_exit_ctx *ctx) { return fs_exit(ctx->ret); }

/* (dirfd1, path1, dirfd2, path2, flags, mode); AT_FDCWD where the syscall has no dirfd */
SYS_ENTER_FS(rename, PROV_FS_RENAME, AT_FDCWD, ctx->args[0], AT_FDCWD, ctx->args[1], 0, 0)
SYS_ENTER_FS(renameat, PROV_FS_RENAME, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3], 0, 0)
SYS_ENTER_FS(renameat2, PROV_FS_RENAME, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3], ctx->args[4], 0)
SYS_ENTER_FS(unlink, PROV_FS_UNLINK, AT_FDCWD, ctx->args[0], 0, 0, 0, 0)
SYS_ENTER_FS(unlinkat, PROV_FS_UNLINK, ctx->args[0], ctx->args[1], 0, 0, ctx->args[2], 0)
SYS_ENTER_FS(rmdir, PROV_FS_RMDIR, AT_FDCWD, ctx->args[0], 0, 0, 0, 0)
SYS_ENTER_FS(mkdir, PROV_FS_MKDIR, AT_FDCWD, ctx->args[0], 0, 0, 0, ctx->args[1])
SYS_ENTER_FS(mkdirat, PROV_FS_MKDIR, ctx->args[0], ctx->args[1], 0, 0, 0, ctx->args[2])
SYS_ENTER_FS(link, PROV_FS_LINK, AT_FDCWD, ctx->args[0], AT_FDCWD, ctx->args[1], 0, 0)
SYS_ENTER_FS(linkat, PROV_FS_LINK, ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3], ctx->args[4], 0)
/* symlink(target, linkpath): path1 is the target text, path2 the new name */
SYS_ENTER_FS(symlink, PROV_FS_SYMLINK, AT_FDCWD, ctx->args[0], AT_FDCWD, ctx->args[1], 0, 0)
SYS_ENTER_FS(symlinkat, PROV_FS_SYMLINK, AT_FDCWD, ctx->args[0], ctx->args[1], ctx->args[2], 0, 0)

/* ---- attribute changes: chmod, chown, utimes, truncate ---- */

#define UTIME_OMIT ((1l << 30) - 2)

/* arg[0] dirfd or fd, arg[1] path (0: by fd), arg[2]/arg[3] values, arg[4] AT_* flags */
static __always_inline void sa_enter(__u32 op, __s64 dirfd, __u64 path, __u64 a, __u64 b, __u64 flags)
{
	if (!wanted())
		return;
	struct pending *p = stash(PEND_SETATTR, op, dirfd, path, a, b);
	if (p)
		p->arg[4] = flags;
}

static __always_inline int sa_exit(long ret)
{
	struct pending p;
	if (!unstash(PEND_SETATTR, &p) || ret != 0)
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();
	struct vscratch *v = vscratch_get();
	if (!v)
		return 0;
	struct prov_setattr_v *r = (struct prov_setattr_v *)v->rec;
	fill_hdr(&r->h, PROV_K_SETATTR_V, 0);
	r->op = p.op;
	r->dirfd = p.arg[0];
	r->flags = p.arg[4];
	r->trunc = 0;
	v->walk1.off = PROV_WALK_END;
	v->walk1.len = 0;
	v->walk1.truncated = 0;
	struct inode *i = (struct inode *)p.ino1_ptr;
	__u32 cur = sizeof(*r);
	__u32 raw = cur;
	cur = vput_user_str(v, cur, (void *)p.arg[1], &r->raw_len);
	bool by_fd = !r->raw_len; /* an f* call, or "" with AT_EMPTY_PATH: the dirfd is the file */
	if (by_fd) {
		struct file *f = fd_file(t, p.arg[0]);
		if (f) {
			i = BPF_CORE_READ(f, f_inode);
			walk_file(&v->walk1, f);
		}
	} else {
		walk_dirfd(&v->walk1, t, p.arg[0]);
	}
	if (!(by_fd ? prefix_ok(&v->walk1) : prefix_ok_raw(&v->walk1, (const char *)&v->rec[raw & (VCUR - 1)])))
		return 0;
	__builtin_memset(&r->file, 0, sizeof(r->file));
	__u32 changed = 0;
	switch (p.op) {
	case PROV_SA_CHMOD: changed = PROV_SA_MODE; break;
	case PROV_SA_CHOWN:
		if ((__u32)p.arg[2] != (__u32)-1)
			changed |= PROV_SA_UID;
		if ((__u32)p.arg[3] != (__u32)-1)
			changed |= PROV_SA_GID;
		break;
	case PROV_SA_UTIMES: changed = p.arg[2] ? PROV_SA_MTIME : 0; break;
	case PROV_SA_TRUNCATE: changed = PROV_SA_SIZE | PROV_SA_MTIME; break;
	}
	if (i) {
		changed |= PROV_SA_INODE;
		inode_ref(i, &r->file.ino, &r->file.dev, &r->file.mode);
		r->file.nlink = BPF_CORE_READ(i, __i_nlink);
		r->mode = r->file.mode;
		r->uid = BPF_CORE_READ(i, i_uid.val);
		r->gid = BPF_CORE_READ(i, i_gid.val);
		r->size = BPF_CORE_READ(i, i_size);
		r->mtime_sec = BPF_CORE_READ(i, i_mtime_sec);
		r->mtime_nsec = BPF_CORE_READ(i, i_mtime_nsec);
		/* chown clears set-id bits: the mode changed too (ino1.mode is from before the change) */
		if (p.op == PROV_SA_CHOWN && p.ino1_ptr && p.ino1.mode != r->mode)
			changed |= PROV_SA_MODE;
	} else {
		/* not resolved: the values asked for (a file system that did not set its ctime) */
		r->mode = p.op == PROV_SA_CHMOD ? p.arg[2] : 0;
		r->uid = p.op == PROV_SA_CHOWN ? p.arg[2] : 0;
		r->gid = p.op == PROV_SA_CHOWN ? p.arg[3] : 0;
		r->size = p.op == PROV_SA_TRUNCATE ? p.arg[2] : 0;
		r->mtime_sec = 0;
		r->mtime_nsec = 0;
		changed &= ~PROV_SA_MTIME;
	}
	r->changed = changed;
	if (v->walk1.truncated)
		r->trunc |= PROV_V_TRUNC_DIR1;
	cur = vput_walk(v, cur, &v->walk1, &r->dir_len);
	vsend(v, cur);
	return 0;
}

/* Did a utimensat-style timespec[2] (or NULL: now) set the mtime? */
static __always_inline __u64 ts_sets_mtime(__u64 times)
{
	if (!times)
		return 1;
	long nsec = 0;
	bpf_probe_read_user(&nsec, sizeof(nsec), (void *)(times + 24));
	return nsec != UTIME_OMIT;
}

#define SA_EXIT(name)                                                  \
	SEC("tp/syscalls/sys_exit_" #name)                             \
	int exit_##name(struct sys_exit_ctx *ctx) { return sa_exit(ctx->ret); }
#define SA(name, op, dirfd, path, a, b, flags)                         \
	SEC("tp/syscalls/sys_enter_" #name)                            \
	int enter_##name(struct sys_enter_ctx *ctx)                    \
	{                                                              \
		sa_enter(op, dirfd, path, a, b, flags);                \
		return 0;                                              \
	}                                                              \
	SA_EXIT(name)

/* Only the arguments each syscall has are read (reading past them fails at attach). */
SA(chmod, PROV_SA_CHMOD, AT_FDCWD, ctx->args[0], ctx->args[1], 0, 0)
SA(fchmod, PROV_SA_CHMOD, (int)ctx->args[0], 0, ctx->args[1], 0, 0)
SA(fchmodat, PROV_SA_CHMOD, (int)ctx->args[0], ctx->args[1], ctx->args[2], 0, 0)
SA(fchmodat2, PROV_SA_CHMOD, (int)ctx->args[0], ctx->args[1], ctx->args[2], 0, ctx->args[3])
SA(chown, PROV_SA_CHOWN, AT_FDCWD, ctx->args[0], ctx->args[1], ctx->args[2], 0)
SA(lchown, PROV_SA_CHOWN, AT_FDCWD, ctx->args[0], ctx->args[1], ctx->args[2], 0x100 /* AT_SYMLINK_NOFOLLOW */)
SA(fchown, PROV_SA_CHOWN, (int)ctx->args[0], 0, ctx->args[1], ctx->args[2], 0)
SA(fchownat, PROV_SA_CHOWN, (int)ctx->args[0], ctx->args[1], ctx->args[2], ctx->args[3], ctx->args[4])
SA(utimensat, PROV_SA_UTIMES, (int)ctx->args[0], ctx->args[1], ts_sets_mtime(ctx->args[2]), 0, ctx->args[3])
/* timeval / utimbuf: no "omit" value, NULL means now: the mtime is always set */
SA(futimesat, PROV_SA_UTIMES, (int)ctx->args[0], ctx->args[1], 1, 0, 0)
SA(utimes, PROV_SA_UTIMES, AT_FDCWD, ctx->args[0], 1, 0, 0)
SA(utime, PROV_SA_UTIMES, AT_FDCWD, ctx->args[0], 1, 0, 0)
SA(truncate, PROV_SA_TRUNCATE, AT_FDCWD, ctx->args[0], ctx->args[1], 0, 0)
SA(ftruncate, PROV_SA_TRUNCATE, (int)ctx->args[0], 0, ctx->args[1], 0, 0)
