// SPDX-License-Identifier: GPL-2.0
//
// Benchmark object for NodePublishVolume: one program and ten small array
// maps with distinct names, so a CSI volume selecting this program re-pins
// ten maps. The program is loaded, never attached: it only has to pass the
// verifier and reference every map so each one is created and pinned.
//
// Rebuild with `make -C tests/bpf`; the object is committed
// beside this file so `cargo build` needs no clang.

#include "counter.h"

#define BENCH_MAP(n) COUNTER_MAP(bench_map_##n, 1)

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

SEC("tracepoint/sched/sched_switch")
int tenmaps(void *ctx)
{
	count(&bench_map_0, 0);
	count(&bench_map_1, 0);
	count(&bench_map_2, 0);
	count(&bench_map_3, 0);
	count(&bench_map_4, 0);
	count(&bench_map_5, 0);
	count(&bench_map_6, 0);
	count(&bench_map_7, 0);
	count(&bench_map_8, 0);
	count(&bench_map_9, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
