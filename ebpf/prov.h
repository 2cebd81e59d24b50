/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * @module ebpf/prov.h
 * The binary records prov.bpf.c writes into the ring buffer, shared with the TypeScript
 * decoder (ebpf/decode.ts mirrors every offset and asserts every size). Fixed-width fields,
 * explicit padding, every struct a multiple of 8 bytes. Records that carry paths or argv are
 * sent at the length they fill: struct prov_open cut after its path, and the ABI 2 kinds
 * (prov_exec_v, prov_fs_v, prov_setattr_v) as a fixed part + their strings back to back.
 * Change a layout → new kind (the decoder keeps reading the old one: recorded journals), bump
 * PROV_ABI. ABI 1's fixed-size exec/fs/setattr (kinds 2, 8, 10) are decoded, never written.
 *
 * Paths walked in the kernel (dentry → parent → … → root) are written right to left into a
 * `struct prov_walk`: the absolute path is path[off .. off+len). Raw paths as the process
 * passed them are plain NUL-terminated strings.
 */
#ifndef PROV_H
#define PROV_H

#define PROV_ABI 2

#define PROV_COMM 16
#define PROV_RAW 256          /* a path argument as passed to the syscall */
#define PROV_WALK_END 512     /* walked paths end here; the rest is slack for the verifier */
#define PROV_WALK_BUF 768
#define PROV_ARGS 2048        /* argv bytes (NUL-separated) */
#define PROV_ENV 1024         /* environment bytes (NUL-separated) */
#define PROV_MAX_FDS 8        /* SCM_RIGHTS fds resolved per message */
#define PROV_ADDR 112         /* sockaddr bytes kept (sockaddr_un is 110) */

enum prov_kind {
	PROV_K_FORK = 1,
	PROV_K_EXEC = 2,
	PROV_K_EXIT = 3,
	PROV_K_FD = 4,
	PROV_K_OPEN = 5,
	PROV_K_SOCK = 6,
	PROV_K_MSG = 7,
	PROV_K_FS = 8,
	PROV_K_LOST = 9, /* written by the user-space drainer, never by BPF */
	PROV_K_SETATTR = 10,
	/* Variable-length layouts (ABI 2), what prov.bpf.c writes now; kinds 2, 8, 10 are still
	 * decoded (journals recorded before), never written. */
	PROV_K_EXEC_V = 11,
	PROV_K_FS_V = 12,
	PROV_K_SETATTR_V = 13,
};

enum prov_fd_op {
	PROV_FD_PIPE = 1,        /* a = read fd, b = write fd, ino = pipe inode, flags = pipe2 flags */
	PROV_FD_DUP = 2,         /* a = old fd, b = new fd, flags bit 0 = close-on-exec */
	PROV_FD_CLOSE = 3,       /* a = fd, ino/dev/mode = the file that was behind it */
	PROV_FD_CLOSE_RANGE = 4, /* a = first, b = last, flags = close_range flags */
};

enum prov_sock_op { PROV_SOCK_SOCKET = 1, PROV_SOCK_ACCEPT = 2, PROV_SOCK_CONNECT = 3 };
enum prov_msg_op { PROV_MSG_SEND = 1, PROV_MSG_RECV = 2 };
enum prov_fs_op {
	PROV_FS_RENAME = 1,
	PROV_FS_UNLINK = 2,
	PROV_FS_RMDIR = 3,
	PROV_FS_MKDIR = 4,
	PROV_FS_LINK = 5,
	PROV_FS_SYMLINK = 6,
};

enum prov_setattr_op {
	PROV_SA_CHMOD = 1,       /* chmod, fchmod, fchmodat, fchmodat2 */
	PROV_SA_CHOWN = 2,       /* chown, lchown, fchown, fchownat */
	PROV_SA_UTIMES = 3,      /* utimensat (also futimens), futimesat, utimes, utime */
	PROV_SA_TRUNCATE = 4,    /* truncate, ftruncate */
};
/* prov_setattr.changed bits */
#define PROV_SA_MODE 1
#define PROV_SA_UID 2
#define PROV_SA_GID 4
#define PROV_SA_SIZE 8
#define PROV_SA_MTIME 16
#define PROV_SA_INODE 32     /* mode/uid/gid/size/mtime were read from the inode at exit */

/* Stats slots (per-CPU array "stats"). */
enum prov_stat { PROV_STAT_EMITTED = 0, PROV_STAT_DROPPED = 1, PROV_STAT_MAX = 2 };

struct prov_hdr {            /* 48 bytes */
	__u16 kind;
	__u16 size;          /* sizeof the whole record */
	__u32 uid;
	__u64 ts;            /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 pid;           /* tgid */
	__u32 tid;
	__u32 ppid;
	__u32 cpu;
	char comm[PROV_COMM];
};

struct prov_walk {           /* 776 bytes */
	__u16 off;
	__u16 len;
	__u16 truncated;
	__u16 _pad;
	char path[PROV_WALK_BUF];
};

struct prov_fork {           /* 64 */
	struct prov_hdr h;
	__u32 child;         /* child tgid */
	__u32 child_tid;
	__u32 thread;        /* 1 when the child shares the parent's thread group */
	__u32 _pad;
};

struct prov_exit {           /* 56 */
	struct prov_hdr h;
	__s32 code;          /* task->exit_code (wait status encoding) */
	__u32 group;         /* 1 when the whole thread group is gone */
};

struct prov_exec {
	struct prov_hdr h;
	__u32 gid;
	__u32 args_len;      /* bytes valid in args */
	__u32 env_len;
	__u32 flags;         /* bit 0 argv truncated, bit 1 env truncated */
	__u64 exe_ino;
	__u32 exe_dev;       /* kernel dev_t */
	__u32 exe_mode;
	char filename[PROV_RAW];
	char args[PROV_ARGS];
	char env[PROV_ENV];
	struct prov_walk cwd;
};

struct prov_fd {             /* 88 */
	struct prov_hdr h;
	__u32 op;
	__s32 a;
	__s32 b;
	__u32 flags;
	__u64 ino;
	__u32 dev;           /* kernel dev_t */
	__u32 mode;          /* i_mode of the file behind the fd */
	__u64 _pad;
};

/*
 * Sent trimmed: the path is moved to the start of its buffer (path.off = 0) and the record ends
 * after its NUL, rounded up to 8 bytes: h.size is between PROV_OPEN_FIXED + 8 and sizeof.
 */
#define PROV_OPEN_FIXED 96   /* offsetof(struct prov_open, path.path) */
struct prov_open {
	struct prov_hdr h;
	__s32 fd;
	__u32 flags;         /* flags as requested (O_CREAT, O_TRUNC kept) */
	__u32 mode;          /* mode argument */
	__u32 created;       /* FMODE_CREATED: this open created the file */
	__u64 ino;
	__u32 dev;
	__u32 imode;
	__u64 parent;        /* inode of the parent directory */
	struct prov_walk path;
};

struct prov_sock {
	struct prov_hdr h;
	__u32 op;
	__s32 fd;
	__s32 newfd;         /* accept: the connected fd */
	__u32 family;
	__u32 type;
	__u32 addr_len;
	__u64 ino;           /* socket inode behind fd (accept: behind newfd) */
	__u64 peer;          /* peer socket inode (AF_UNIX) */
	__u8 addr[PROV_ADDR];
};

struct prov_msg {
	struct prov_hdr h;
	__u32 op;
	__s32 fd;
	__u64 sock;
	__u64 peer;
	__s64 bytes;
	__u32 nfds;          /* SCM_RIGHTS fds resolved (≤ PROV_MAX_FDS) */
	__u32 flags;         /* bit 0: more fds were passed than recorded */
	__s32 fds[PROV_MAX_FDS];
	__u32 devs[PROV_MAX_FDS];
	__u64 inos[PROV_MAX_FDS];
	__u32 modes[PROV_MAX_FDS];
};

/* One inode a file-system op touched, resolved in the kernel. */
struct prov_inode {          /* 24 */
	__u64 ino;
	__u32 dev;
	__u32 mode;
	__u32 nlink;         /* after the op (0: the last link went) */
	__u32 gone;          /* 1: freed or nlink 0 at syscall exit */
};

struct prov_fs {
	struct prov_hdr h;
	__u32 op;
	__u32 flags;         /* renameat2 / linkat / unlinkat flags */
	__s32 dirfd1;
	__s32 dirfd2;
	__u32 mode;          /* mkdir mode */
	__u32 _pad;
	struct prov_inode file;  /* the inode the op is about (moved, unlinked, created, linked) */
	struct prov_inode other; /* rename: the inode that was replaced at the destination */
	char raw1[PROV_RAW];     /* old/only path as passed (symlink: the target) */
	char raw2[PROV_RAW];     /* new path as passed */
	struct prov_walk dir1;   /* the directory raw1 is relative to (dirfd or cwd) */
	struct prov_walk dir2;   /* the directory raw2 is relative to */
};

/*
 * An attribute change, at syscall exit (success only). The target is named either by a path
 * (raw, relative to dir: dirfd or cwd, joined by the decoder) or, for the f* variants and
 * AT_EMPTY_PATH, by an fd (raw empty, dir = the walked path of the fd's file). The values are
 * the inode's at exit (PROV_SA_INODE) or, when the inode was not resolved, the arguments.
 */
struct prov_setattr {        /* 1152 */
	struct prov_hdr h;
	__u32 op;
	__u32 changed;       /* PROV_SA_* bits: which attributes the call set */
	__s32 dirfd;         /* dirfd (AT_FDCWD for path-only calls) or the fd of an f* call */
	__u32 flags;         /* AT_* flags (AT_SYMLINK_NOFOLLOW, AT_EMPTY_PATH) */
	__u32 mode;          /* i_mode */
	__u32 uid;
	__u32 gid;
	__u32 mtime_nsec;
	__s64 size;
	__s64 mtime_sec;
	struct prov_inode file;
	char raw[PROV_RAW];
	struct prov_walk dir;
};

/*
 * ---- Variable-length records (ABI 2) ----
 * A fixed part listing the lengths of its strings, then the strings back to back in the order
 * listed, each followed by one NUL (not counted in its length), then zero padding to 8 bytes.
 * h.size is the whole record. A walked path is stored as its text (absolute), its truncation
 * as a flag bit. The kernel builds them in per-CPU scratch and sends the filled length with
 * bpf_ringbuf_output: a chmod of a short path is 136 bytes instead of 1152.
 */
#define PROV_V_TRUNC_DIR1 1   /* prov_fs_v.trunc / prov_setattr_v.trunc: dir1 (or dir) walk cut */
#define PROV_V_TRUNC_DIR2 2

struct prov_exec_v {         /* 80 + filename, args, env, cwd */
	struct prov_hdr h;
	__u32 gid;
	__u32 flags;         /* bit 0 argv truncated, bit 1 env truncated, bit 2 cwd truncated */
	__u64 exe_ino;
	__u32 exe_dev;       /* kernel dev_t */
	__u32 exe_mode;
	__u16 filename_len;
	__u16 args_len;      /* NUL-separated argv bytes (the last NUL included) */
	__u16 env_len;
	__u16 cwd_len;
};

struct prov_fs_v {           /* 128 + raw1, raw2, dir1, dir2 */
	struct prov_hdr h;
	__u32 op;
	__u32 flags;
	__s32 dirfd1;
	__s32 dirfd2;
	__u32 mode;
	__u32 trunc;         /* PROV_V_TRUNC_* */
	struct prov_inode file;
	struct prov_inode other;
	__u16 raw1_len;      /* as in struct prov_fs: raw1 old/only path (symlink: target) */
	__u16 raw2_len;
	__u16 dir1_len;
	__u16 dir2_len;
};

struct prov_setattr_v {      /* 128 + raw, dir */
	struct prov_hdr h;
	__u32 op;
	__u32 changed;
	__s32 dirfd;
	__u32 flags;
	__u32 mode;
	__u32 uid;
	__u32 gid;
	__u32 mtime_nsec;
	__s64 size;
	__s64 mtime_sec;
	struct prov_inode file;
	__u16 raw_len;
	__u16 dir_len;
	__u32 trunc;         /* PROV_V_TRUNC_DIR1: the walked dir was cut */
};

/* Settings fixed before load: the only variable in .rodata (the loader asserts its size). */
struct prov_settings {       /* 88 */
	__u64 cgroup;        /* emit only for this cgroup v2 id (0: all) */
	__u32 pid_tree;      /* 1: emit only for tgids in map `tracked` (children join at fork) */
	__u32 prefix_len;    /* file events only under this absolute path prefix (0: all) */
	__u32 env;           /* 1: capture the environment at exec */
	__u32 _pad;
	char prefix[64];
};

struct prov_lost {           /* 72 */
	struct prov_hdr h;
	__u64 count;
	__u64 from;
	__u64 to;
};

#endif /* PROV_H */
