// SPDX-License-Identifier: GPL-2.0
// Tracepoint counter: every sched_switch adds 1 to counts[counter_slot].
// counter_slot is a `volatile const` global so tests can override it at load.
#include "counter.h"

COUNTER_MAP(counts, 4);

volatile const __u32 counter_slot = 0;

SEC("tracepoint/sched/sched_switch")
int count_sched_switch(void *ctx)
{
	count(&counts, counter_slot);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
