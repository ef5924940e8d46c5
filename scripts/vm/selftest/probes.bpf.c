// SPDX-License-Identifier: GPL-2.0
// Programs the VM selftest loads: one of each kind this project's host
// kernel refuses (fentry, fexit, kprobe, kretprobe), all on do_unlinkat so
// that one unlink(2) fires them, plus an XDP program whose global function
// xdp_policy is the target of the extension (freplace) in freplace.bpf.c.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

// hits[i] counts the calls of the program with index i (see loader.c).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &idx);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("fentry/do_unlinkat")
int on_fentry(void *ctx)
{
	count(0);
	return 0;
}

SEC("fexit/do_unlinkat")
int on_fexit(void *ctx)
{
	count(1);
	return 0;
}

SEC("kprobe/do_unlinkat")
int on_kprobe(void *ctx)
{
	count(2);
	return 0;
}

SEC("kretprobe/do_unlinkat")
int on_kretprobe(void *ctx)
{
	count(3);
	return 0;
}

// The shape of a libxdp dispatcher slot: a global, non-inlined function
// that an extension program can replace. It returns XDP_PASS until replaced.
__attribute__((noinline)) int xdp_policy(struct xdp_md *ctx)
{
	volatile int ret = XDP_PASS;

	if (!ctx)
		return XDP_ABORTED;
	return ret;
}

SEC("xdp")
int xdp_main(struct xdp_md *ctx)
{
	return xdp_policy(ctx);
}
