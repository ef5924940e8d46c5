// SPDX-License-Identifier: GPL-2.0
//
// Test object with CO-RE relocations: the offset of task_struct.pid is not
// known when this is compiled (the struct below declares only that field),
// so the loader must relocate the read against the kernel's BTF. Counting on
// sched_switch, core_map slot 0 counts reads where the pid read through the
// relocated offset equals the thread id bpf_get_current_pid_tgid() reports,
// slot 1 counts reads where it does not. A load without the kernel's BTF
// either fails or reads the wrong offset (slot 1 grows).

#include <bpf/bpf_core_read.h>
#include "counter.h"

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));

COUNTER_MAP(core_map, 2);

SEC("tracepoint/sched/sched_switch")
int core_pid(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	int pid = BPF_CORE_READ(task, pid);
	count(&core_map, (__u32)pid == tid ? 0 : 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
