// SPDX-License-Identifier: GPL-2.0
//
// Test object for fentry/fexit. Trampoline-based loads get EPERM on this host,
// so tests expect an "unsupported"/permission error here and run for real in
// a VM. fentry_map slot 0 counts entries, slot 1 exits.
//
// The programs take a plain context pointer rather than BPF_PROG() with typed
// arguments so the object does not need vmlinux.h; the kernel still resolves
// the BTF of do_unlinkat from the section name at load time.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 2);
} fentry_map SEC(".maps");

static __always_inline void bump(__u32 key)
{
	__u64 *count = bpf_map_lookup_elem(&fentry_map, &key);

	if (count)
		__sync_fetch_and_add(count, 1);
}

SEC("fentry/do_unlinkat")
int fentry_unlinkat(__u64 *ctx)
{
	bump(0);
	return 0;
}

SEC("fexit/do_unlinkat")
int fexit_unlinkat(__u64 *ctx)
{
	bump(1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
