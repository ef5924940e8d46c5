// SPDX-License-Identifier: GPL-2.0
// Programs the VM selftest loads: one of each kind this project's host
// kernel refuses (fentry, fexit, kprobe, kretprobe), all on do_unlinkat so
// that one unlink(2) fires them, plus an XDP program whose global function
// xdp_policy is the target of the extension (freplace) in freplace.bpf.c.
#include "counter.h"

char LICENSE[] SEC("license") = "GPL";

// hits[i] counts the calls of the program with index i (see loader.c).
COUNTER_MAP(hits, 4);

COUNT_PROG("fentry/do_unlinkat", on_fentry, hits, 0);
COUNT_PROG("fexit/do_unlinkat", on_fexit, hits, 1);
COUNT_PROG("kprobe/do_unlinkat", on_kprobe, hits, 2);
COUNT_PROG("kretprobe/do_unlinkat", on_kretprobe, hits, 3);

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
