// SPDX-License-Identifier: GPL-2.0
// Extension program: replaces xdp_policy() of xdp_main (probes.bpf.c).
// XDP_TX is what no unreplaced xdp_policy returns, so seeing it from a test
// run of xdp_main proves the replacement ran.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

SEC("freplace/xdp_policy")
int new_policy(struct xdp_md *ctx)
{
	return XDP_TX;
}
