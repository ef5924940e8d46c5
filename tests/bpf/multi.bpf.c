// SPDX-License-Identifier: GPL-2.0
//
// Test object with two programs sharing one map, for the CLI/manager tests:
// loading both programs from one object must give them a single map owner,
// and `-g GLOBAL_u32=...` must be observable through the counter.
//
// shared_map slot 0: incremented by tp_one by (1 + GLOBAL_u32) per event.
// shared_map slot 1: incremented by tp_two by 1 per fork.

#include "counter.h"

COUNTER_MAP(shared_map, 2);

// Rewritten at load time (bpfman load ... -g GLOBAL_u32=<hex bytes>); the
// `volatile const` keeps clang from folding the initial value into the code,
// so the value lives in .rodata where the loader can patch it.
volatile const __u32 GLOBAL_u32 = 0;

SEC("tracepoint/sched/sched_switch")
int tp_one(void *ctx)
{
	count_by(&shared_map, 0, 1 + (__u64)GLOBAL_u32);
	return 0;
}

SEC("tracepoint/sched/sched_process_fork")
int tp_two(void *ctx)
{
	count(&shared_map, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
