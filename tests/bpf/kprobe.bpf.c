// SPDX-License-Identifier: GPL-2.0
//
// Test object for kprobe attach. This host's kernel has no kprobes, so tests
// expect a clear "unsupported" error here and run the real attach in a VM.
// kprobe_map slot 0 counts do_unlinkat entries (kprobe), slot 1 returns (kretprobe).

#include "counter.h"

COUNTER_MAP(kprobe_map, 2);

COUNT_PROG("kprobe/do_unlinkat", count_unlinkat, kprobe_map, 0);
COUNT_PROG("kretprobe/do_unlinkat", count_unlinkat_ret, kprobe_map, 1);

char LICENSE[] SEC("license") = "GPL";
