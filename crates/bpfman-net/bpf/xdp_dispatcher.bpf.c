// SPDX-License-Identifier: GPL-2.0
/*
 * bpfman's XDP dispatcher.
 *
 * Speaks libxdp's multi-program protocol, version 2 (xdp-tools'
 * lib/libxdp/protocol.org): the program is named "xdp_dispatcher", its only
 * map is the .rodata holding `struct xdp_dispatcher_config` (magic 236,
 * version 2), the slots are the global functions prog0..prog9, and the
 * version is also published as BTF in the "xdp_metadata" section. That is
 * what lets `xdp-loader status` recognise it and list its programs.
 *
 * The loader (bpfman-net) fills `conf` before loading. Each enabled slot is
 * then replaced by a user program loaded as an extension (freplace). After
 * each slot the chain continues only if the returned action's bit is set in
 * that slot's chain_call_actions mask (bit = action).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define XDP_METADATA_SECTION "xdp_metadata"
#define XDP_DISPATCHER_VERSION 2
#define XDP_DISPATCHER_MAGIC 236
/* What an empty slot returns: the top bit of the mask, always set by the
 * loader, so an unreplaced slot never ends the chain. */
#define XDP_DISPATCHER_RETVAL 31
#define MAX_DISPATCHER_ACTIONS 10

struct xdp_dispatcher_config {
	__u8 magic;
	__u8 dispatcher_version;
	__u8 num_progs_enabled;
	__u8 is_xdp_frags;
	__u32 chain_call_actions[MAX_DISPATCHER_ACTIONS];
	__u32 run_prios[MAX_DISPATCHER_ACTIONS];
	__u32 program_flags[MAX_DISPATCHER_ACTIONS];
};

/* const: lands in .rodata, which is frozen at load so the verifier prunes
 * the calls of disabled slots. volatile: the compiler must not assume the
 * zero initialiser, the loader rewrites it. Nothing else may live in
 * .rodata: libxdp checks the map value size against this struct. */
volatile const struct xdp_dispatcher_config conf = {};

/* A slot. The volatile return keeps the compiler from folding the constant
 * into the caller. bpf_xdp_adjust_tail(ctx, 0) is a no-op that marks the
 * slot as possibly changing packet data, so newer kernels accept extensions
 * that do (an extension may only replace a function with that property). */
#define SLOT(n)                                                  \
	__attribute__((noinline)) int prog##n(struct xdp_md *ctx) \
	{                                                        \
		volatile int ret = XDP_DISPATCHER_RETVAL;        \
		if (!ctx)                                        \
			return XDP_ABORTED;                      \
		bpf_xdp_adjust_tail(ctx, 0);                     \
		return ret;                                      \
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

/* Calls slot n if enabled; stops the chain with the slot's action unless the
 * action's bit is in the slot's mask. Actions outside 0..31 always stop. */
#define CALL(n)                                                        \
	if (num_progs_enabled < (n) + 1)                               \
		goto out;                                              \
	ret = prog##n(ctx);                                            \
	if ((unsigned int)ret > 31 ||                                  \
	    !((1U << ret) & conf.chain_call_actions[n]))               \
		return ret;

SEC("xdp")
int xdp_dispatcher(struct xdp_md *ctx)
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
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
__uint(dispatcher_version, XDP_DISPATCHER_VERSION) SEC(XDP_METADATA_SECTION);

/* Not part of the dispatcher: bpfman loads it as an extension of prog0 once
 * per process to learn whether this kernel allows extension programs (as
 * libxdp's compatibility check does with its own xdp_pass). */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}
