// SPDX-License-Identifier: GPL-2.0
//
// The stats example: counts context switches on this node into one array
// slot. bpfman loads it, pins `stats_map`, and the CSI driver re-pins the map
// into a pod's volume so an unprivileged `stats-reader` can read it.
//
// Rebuild with `make bpf` (clang -O2 -g -target bpf); the object is committed
// beside this file so `cargo build` and the image build need no clang.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} stats_map SEC(".maps");

SEC("tracepoint/sched/sched_switch")
int count_sched_switch(void *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&stats_map, &key);

	// An ARRAY lookup of an in-range key never fails, but the verifier
	// insists on the NULL check.
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
