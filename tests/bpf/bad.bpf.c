// SPDX-License-Identifier: GPL-2.0
//
// Test object the verifier must reject: it parses and loads as ELF fine, but
// BPF_PROG_LOAD fails because the program reads past the end of a map value
// (value size 8, read at offset 64). Tests use it to check that a verifier
// failure surfaces as a clear error with the verifier log and leaves nothing
// pinned or recorded.

#include "counter.h"

COUNTER_MAP(bad_map, 1);

SEC("tracepoint/sched/sched_switch")
int bad_prog(void *ctx)
{
	__u32 key = 0;
	__u64 *value = bpf_map_lookup_elem(&bad_map, &key);

	if (!value)
		return 0;
	// Out of bounds: value points at 8 bytes, this reads 8 bytes at +64.
	// `volatile` stops clang from proving anything about the access.
	return (int)*(volatile __u64 *)((char *)value + 64);
}

char LICENSE[] SEC("license") = "GPL";
