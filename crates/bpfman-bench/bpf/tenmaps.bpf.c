// SPDX-License-Identifier: GPL-2.0
//
// Benchmark object for NodePublishVolume: one program and ten small array
// maps with distinct names, so a CSI volume selecting this program re-pins
// ten maps. The program is loaded, never attached: it only has to pass the
// verifier and reference every map so each one is created and pinned.
//
// Rebuild with `make -C crates/bpfman-bench/bpf`; the object is committed
// beside this file so `cargo build` needs no clang.

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define BENCH_MAP(n)                                  \
	struct {                                      \
		__uint(type, BPF_MAP_TYPE_ARRAY);     \
		__type(key, __u32);                   \
		__type(value, __u64);                 \
		__uint(max_entries, 1);               \
	} bench_map_##n SEC(".maps")

BENCH_MAP(0);
BENCH_MAP(1);
BENCH_MAP(2);
BENCH_MAP(3);
BENCH_MAP(4);
BENCH_MAP(5);
BENCH_MAP(6);
BENCH_MAP(7);
BENCH_MAP(8);
BENCH_MAP(9);

static __always_inline void bump(void *map)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(map, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
}

SEC("tracepoint/sched/sched_switch")
int tenmaps(void *ctx)
{
	bump(&bench_map_0);
	bump(&bench_map_1);
	bump(&bench_map_2);
	bump(&bench_map_3);
	bump(&bench_map_4);
	bump(&bench_map_5);
	bump(&bench_map_6);
	bump(&bench_map_7);
	bump(&bench_map_8);
	bump(&bench_map_9);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
