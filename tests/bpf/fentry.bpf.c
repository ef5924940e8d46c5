// SPDX-License-Identifier: GPL-2.0
//
// Test object for fentry/fexit. Trampoline-based loads get EPERM on this host,
// so tests expect an "unsupported"/permission error here and run for real in
// a VM. fentry_map slot 0 counts entries, slot 1 exits.
//
// The programs take a plain context pointer rather than BPF_PROG() with typed
// arguments so the object does not need vmlinux.h; the kernel still resolves
// the BTF of do_unlinkat from the section name at load time.

#include "counter.h"

COUNTER_MAP(fentry_map, 2);

COUNT_PROG("fentry/do_unlinkat", fentry_unlinkat, fentry_map, 0);
COUNT_PROG("fexit/do_unlinkat", fexit_unlinkat, fentry_map, 1);

char LICENSE[] SEC("license") = "GPL";
