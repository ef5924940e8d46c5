// SPDX-License-Identifier: GPL-2.0
/*
 * Test programs for bpfman-net: one XDP and one TC/TCX program that act only
 * on UDP packets to port 9999 whose payload starts with a little-endian u32
 * packet number. For such a packet each program instance:
 *   - adds 1 to counts[TAG],
 *   - appends TAG to the packet's row of `trace` (row = number % 64, up to 8
 *     entries per row, so the row shows which instances ran, in order),
 *   - returns RET.
 * TAG and RET are set per instance at load time; the maps are shared between
 * instances by pinning. Every other packet (ARP, IPv6 ND, ...) is passed on
 * untouched and unrecorded, so background traffic cannot disturb the tests.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TEST_PORT 9999
#define ROWS 64
#define PER_ROW 8

volatile const __u32 TAG = 0;
volatile const __s32 RET = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ROWS);
	__type(key, __u32);
	__type(value, __u32);
} hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ROWS * PER_ROW);
	__type(key, __u32);
	__type(value, __u32);
} trace SEC(".maps");

/* Records this instance for packet `number`. */
static __always_inline void record(__u32 number)
{
	__u32 tag = TAG;
	__u32 row = number % ROWS;
	__u64 *count = bpf_map_lookup_elem(&counts, &tag);
	__u32 *hit = bpf_map_lookup_elem(&hits, &row);

	if (count)
		__sync_fetch_and_add(count, 1);
	if (hit) {
		__u32 h = __sync_fetch_and_add(hit, 1);
		if (h < PER_ROW) {
			__u32 at = row * PER_ROW + h;
			__u32 *slot = bpf_map_lookup_elem(&trace, &at);
			if (slot)
				*slot = tag;
		}
	}
}

/* Offset of the UDP payload if the frame is IPv4/UDP to TEST_PORT without IP
 * options, else 0. */
#define PAYLOAD_OFF (sizeof(struct ethhdr) + sizeof(struct iphdr) + sizeof(struct udphdr))

static __always_inline int is_test_packet(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	struct udphdr *udp = data + sizeof(*eth) + sizeof(*ip);

	if ((void *)(udp + 1) + sizeof(__u32) > data_end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || udp->dest != bpf_htons(TEST_PORT))
		return 0;
	return 1;
}

SEC("xdp")
int xdp_test(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (!is_test_packet(data, data_end))
		return XDP_PASS;
	record(*(__u32 *)(data + PAYLOAD_OFF));
	return RET;
}

SEC("classifier")
int tc_test(struct __sk_buff *skb)
{
	__u8 buf[PAYLOAD_OFF + sizeof(__u32)];
	__u32 number;

	/* load_bytes copes with non-linear skbs (egress) where direct access
	 * would only see the headers. */
	if (bpf_skb_load_bytes(skb, 0, buf, sizeof(buf)))
		return TC_ACT_UNSPEC;
	if (!is_test_packet(buf, buf + sizeof(buf)))
		return TC_ACT_UNSPEC;
	__builtin_memcpy(&number, buf + PAYLOAD_OFF, sizeof(number));
	record(number);
	return RET;
}

char _license[] SEC("license") = "GPL";
