// SPDX-License-Identifier: GPL-2.0
// Two tracepoint programs sharing the map `shared`; prog_b also uses `only_b`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} shared SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} only_b SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int prog_a(void *ctx)
{
	__u32 key = 1;
	__u64 one = 1;
	bpf_map_update_elem(&shared, &key, &one, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int prog_b(void *ctx)
{
	__u32 key = 2, zero = 0;
	__u64 one = 1;
	bpf_map_update_elem(&shared, &key, &one, BPF_ANY);
	__u64 *v = bpf_map_lookup_elem(&only_b, &zero);
	if (v)
		*v += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
