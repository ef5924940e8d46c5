/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The counter most test objects share: an array map of __u64 slots, and
 * "look the slot up, add to it". The NULL check stays because the verifier
 * insists on it even for in-range array keys.
 */
#ifndef BPFMAN_TEST_COUNTER_H
#define BPFMAN_TEST_COUNTER_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Defines the array map `name` of `slots` __u64 counters. */
#define COUNTER_MAP(name, slots)                  \
	struct {                                  \
		__uint(type, BPF_MAP_TYPE_ARRAY); \
		__type(key, __u32);               \
		__type(value, __u64);             \
		__uint(max_entries, slots);       \
	} name SEC(".maps")

/* Adds `delta` to slot `key` of the counter map `map`. */
static __always_inline void count_by(void *map, __u32 key, __u64 delta)
{
	__u64 *value = bpf_map_lookup_elem(map, &key);

	if (value)
		__sync_fetch_and_add(value, delta);
}

/* Adds 1 to slot `key` of the counter map `map`. */
static __always_inline void count(void *map, __u32 key)
{
	count_by(map, key, 1);
}

/*
 * Defines the program `name` in section `sec` that adds 1 to slot `slot` of
 * the counter map `map` on every run. The context is a plain pointer so the
 * objects need no vmlinux.h; the kernel resolves a trampoline's target BTF
 * from the section name at load time.
 */
#define COUNT_PROG(sec, name, map, slot) \
	SEC(sec)                         \
	int name(void *ctx)              \
	{                                \
		count(&map, slot);       \
		return 0;                \
	}

#endif
