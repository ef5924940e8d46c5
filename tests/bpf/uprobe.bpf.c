// SPDX-License-Identifier: GPL-2.0
//
// Test object for uprobe/uretprobe attach: attach both to bpfman_test_fn in
// tests/bpf/uprobe-target/uprobe_target and run it N times; slot 0 (calls) and
// slot 1 (returns) must each grow by N.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} uprobe_map SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *count = bpf_map_lookup_elem(&uprobe_map, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
}

// No target in the section name: the attach call supplies the binary, the
// function (or offset) and optionally a pid.
SEC("uprobe")
int count_calls(void *ctx)
{
	bump(0);
	return 0;
}

SEC("uretprobe")
int count_returns(void *ctx)
{
	bump(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
