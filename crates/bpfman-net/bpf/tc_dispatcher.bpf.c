// SPDX-License-Identifier: GPL-2.0
/*
 * bpfman's TC dispatcher: the XDP dispatcher's design for TC (clsact,
 * direct-action). Same config layout, magic 0xbf ("bpfman TC"), version 1.
 *
 * TC actions start at TC_ACT_UNSPEC = -1, so the mask bit of an action is
 * action + 1; an empty slot returns 30 (bit 31). When every program asks to
 * proceed the packet is accepted with TC_ACT_OK, as upstream bpfman does.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#define TC_METADATA_SECTION "tc_metadata"
#define TC_DISPATCHER_VERSION 1
#define TC_DISPATCHER_MAGIC 0xbf
#define TC_DISPATCHER_RETVAL 30
#define MAX_DISPATCHER_ACTIONS 10

struct tc_dispatcher_config {
	__u8 magic;
	__u8 dispatcher_version;
	__u8 num_progs_enabled;
	__u8 reserved;
	__u32 chain_call_actions[MAX_DISPATCHER_ACTIONS];
	__u32 run_prios[MAX_DISPATCHER_ACTIONS];
	__u32 program_flags[MAX_DISPATCHER_ACTIONS];
};

/* See xdp_dispatcher.bpf.c for why const volatile. */
volatile const struct tc_dispatcher_config conf = {};

/* A slot. The helper call never runs (ret is always the RETVAL) but marks the
 * slot as possibly changing packet data, so extensions that do are accepted;
 * unlike XDP there is no TC helper that is a cheap no-op at run time. */
#define SLOT(n)                                                       \
	__attribute__((noinline)) int prog##n(struct __sk_buff *skb)   \
	{                                                             \
		volatile int ret = TC_DISPATCHER_RETVAL;              \
		if (!skb)                                             \
			return TC_ACT_UNSPEC;                         \
		if (ret != TC_DISPATCHER_RETVAL)                      \
			bpf_skb_change_tail(skb, skb->len, 0);        \
		return ret;                                           \
	}

SLOT(0)
SLOT(1)
SLOT(2)
SLOT(3)
SLOT(4)
SLOT(5)
SLOT(6)
SLOT(7)
SLOT(8)
SLOT(9)

/* Actions outside -1..30 always stop the chain. */
#define CALL(n)                                                        \
	if (num_progs_enabled < (n) + 1)                               \
		goto out;                                              \
	ret = prog##n(skb);                                            \
	if ((unsigned int)(ret + 1) > 31 ||                            \
	    !((1U << (ret + 1)) & conf.chain_call_actions[n]))         \
		return ret;

SEC("classifier")
int tc_dispatcher(struct __sk_buff *skb)
{
	__u8 num_progs_enabled = conf.num_progs_enabled;
	int ret;

	CALL(0)
	CALL(1)
	CALL(2)
	CALL(3)
	CALL(4)
	CALL(5)
	CALL(6)
	CALL(7)
	CALL(8)
	CALL(9)
out:
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
__uint(dispatcher_version, TC_DISPATCHER_VERSION) SEC(TC_METADATA_SECTION);
