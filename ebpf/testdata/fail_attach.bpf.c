// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * @module ebpf/testdata/fail_attach.bpf.c
 * Test object for the loader's failure path: the same maps and settings as prov.bpf.c, one
 * program that attaches and one the kernel refuses at attach (it reads past the argument count
 * of its syscall tracepoint: EACCES), so attach fails half-way.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "prov.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
const volatile struct prov_settings settings = {};

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, PROV_STAT_MAX); __type(key, __u32); __type(value, __u64); } stats SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u8); } excluded SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u8); } tracked SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int a_attaches(void *ctx)
{
	return settings.env;
}

struct enter_ctx {
	__u64 common;
	__s32 nr;
	__u32 _pad;
	__u64 args[6];
};

SEC("tp/syscalls/sys_enter_getpid")
int b_fails(struct enter_ctx *ctx)
{
	return ctx->args[5] != 0; /* getpid has no arguments */
}
