// SPDX-License-Identifier: GPL-2.0
// Dereferences a map lookup result without the NULL check, so the verifier
// must reject it ("invalid mem access 'map_value_or_null'"). The map is a
// hash: recent kernels prove constant-key array lookups non-NULL.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} values SEC(".maps");

SEC("tracepoint/sched/sched_switch")
int unchecked_lookup(void *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&values, &key);
	*value += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
