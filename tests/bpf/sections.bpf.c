// SPDX-License-Identifier: GPL-2.0
//
// One program per libbpf section name family, for the section-table tests:
// each program counts its runs in its own slot of `section_counts`.
//
//   slot 0  tc_plain     SEC("tc")                    (TC, no direction)
//   slot 1  tc_ingress   SEC("tc/ingress")            (TCX alias, ingress)
//   slot 2  tcx_egress   SEC("tcx/egress")            (TCX, egress)
//   slot 3  tp_switch    SEC("tp/sched/sched_switch") (tracepoint)
//   slot 4  ksys_getpid  SEC("ksyscall/getpid")       (kprobe on the syscall)
//   slot 5  raw_switch   SEC("raw_tp/sched_switch")   (not managed by bpfman)
//   slot 6  usdt_probe   SEC("usdt")                  (not managed, unknown to aya)
//
// aya 0.14 knows neither `tc`, `tc/ingress`, `tcx/egress`, `ksyscall` nor
// `usdt`: loading any program of this object proves bpfman renames sections
// for aya. tc_plain also calls a subprogram (so its BTF func_info must follow
// the renamed section) and reads skb->len through a CO-RE relocation (so the
// .BTF.ext relocation records must find the renamed section too).

#include <linux/pkt_cls.h>
#include "counter.h"

COUNTER_MAP(section_counts, 8);

// A local flavour of the kernel's struct: CO-RE matches it to `__sk_buff`.
struct __sk_buff___local {
	__u32 len;
} __attribute__((preserve_access_index));

static __noinline int bump(__u32 slot)
{
	count(&section_counts, slot);
	return 0;
}

SEC("tc")
int tc_plain(struct __sk_buff *skb)
{
	struct __sk_buff___local *s = (void *)skb;

	if (s->len > 0)
		bump(0);
	return TC_ACT_OK;
}

SEC("tc/ingress")
int tc_ingress(struct __sk_buff *skb)
{
	bump(1);
	return TC_ACT_OK;
}

SEC("tcx/egress")
int tcx_egress(struct __sk_buff *skb)
{
	bump(2);
	return TC_ACT_OK;
}

SEC("tp/sched/sched_switch")
int tp_switch(void *ctx)
{
	bump(3);
	return 0;
}

SEC("ksyscall/getpid")
int ksys_getpid(void *ctx)
{
	bump(4);
	return 0;
}

SEC("raw_tp/sched_switch")
int raw_switch(void *ctx)
{
	bump(5);
	return 0;
}

SEC("usdt")
int usdt_probe(void *ctx)
{
	bump(6);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
