// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * @module ebpf/testdata/optional.bpf.c
 * Test object for programs whose tracepoint this kernel lacks (as on an older kernel or another
 * architecture): the loader leaves them out and attaches the rest.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "prov.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
const volatile struct prov_settings settings = {};

struct { __uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 1 << 16); } events SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, PROV_STAT_MAX); __type(key, __u32); __type(value, __u64); } stats SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u8); } excluded SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u8); } tracked SEC(".maps");

SEC("tp/syscalls/sys_enter_getppid")
int present(void *ctx)
{
	return settings.env;
}

SEC("tp/syscalls/sys_enter_prov_no_such_syscall")
int missing_tp(void *ctx)
{
	return 0;
}

SEC("tp_btf/prov_no_such_tracepoint")
int BPF_PROG(missing_btf)
{
	return 0;
}
