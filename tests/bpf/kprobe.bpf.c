// SPDX-License-Identifier: GPL-2.0
//
// Test object for kprobe attach. This host's kernel has no kprobes, so tests
// expect a clear "unsupported" error here and run the real attach in a VM.
// kprobe_map slot 0 counts do_unlinkat entries (kprobe), slot 1 returns (kretprobe).

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} kprobe_map SEC(".maps");

SEC("kprobe/do_unlinkat")
int count_unlinkat(void *ctx)
{
	__u32 key = 0;
	__u64 *count = bpf_map_lookup_elem(&kprobe_map, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int count_unlinkat_ret(void *ctx)
{
	__u32 key = 1;
	__u64 *count = bpf_map_lookup_elem(&kprobe_map, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
