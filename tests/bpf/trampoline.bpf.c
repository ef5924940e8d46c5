// SPDX-License-Identifier: GPL-2.0
// fentry/fexit on do_unlinkat plus a kprobe on the same function: hosts
// without trampolines or kprobes must refuse these plainly.
#include "counter.h"

COUNTER_MAP(hits, 3);

COUNT_PROG("fentry/do_unlinkat", fentry_unlinkat, hits, 0);
COUNT_PROG("fexit/do_unlinkat", fexit_unlinkat, hits, 1);
COUNT_PROG("kprobe/do_unlinkat", kprobe_unlinkat, hits, 2);

char LICENSE[] SEC("license") = "GPL";
