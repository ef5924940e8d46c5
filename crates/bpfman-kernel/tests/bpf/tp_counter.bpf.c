// SPDX-License-Identifier: GPL-2.0
// Tracepoint counter: every sched_switch adds 1 to counts[counter_slot].
// counter_slot is a `volatile const` global so tests can override it at load.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

volatile const __u32 counter_slot = 0;

SEC("tracepoint/sched/sched_switch")
int count_sched_switch(void *ctx)
{
	__u32 key = counter_slot;
	__u64 *value = bpf_map_lookup_elem(&counts, &key);
	if (value)
		__sync_fetch_and_add(value, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
