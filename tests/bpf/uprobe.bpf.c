// SPDX-License-Identifier: GPL-2.0
//
// Test object for uprobe/uretprobe attach: attach both to bpfman_test_fn in
// tests/bpf/uprobe-target/uprobe_target and run it N times; slot 0 (calls) and
// slot 1 (returns) must each grow by N.

#include "counter.h"

COUNTER_MAP(uprobe_map, 2);

// No target in the section name: the attach call supplies the binary, the
// function (or offset) and optionally a pid.
COUNT_PROG("uprobe", count_calls, uprobe_map, 0);
COUNT_PROG("uretprobe", count_returns, uprobe_map, 1);

char LICENSE[] SEC("license") = "GPL";
