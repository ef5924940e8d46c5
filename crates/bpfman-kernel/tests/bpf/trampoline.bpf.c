// SPDX-License-Identifier: GPL-2.0
// fentry/fexit on do_unlinkat plus a kprobe on the same function: hosts
// without trampolines or kprobes must refuse these plainly.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *value = bpf_map_lookup_elem(&hits, &key);
	if (value)
		__sync_fetch_and_add(value, 1);
}

SEC("fentry/do_unlinkat")
int fentry_unlinkat(void *ctx)
{
	bump(0);
	return 0;
}

SEC("fexit/do_unlinkat")
int fexit_unlinkat(void *ctx)
{
	bump(1);
	return 0;
}

SEC("kprobe/do_unlinkat")
int kprobe_unlinkat(void *ctx)
{
	bump(2);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
