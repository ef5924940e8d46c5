// SPDX-License-Identifier: Apache-2.0
//
// Uprobe test target: calls bpfman_test_fn N times (N = argv[1], default 1)
// and exits. Tests attach a uprobe/uretprobe to bpfman_test_fn in this binary
// and expect exactly N hits each.
//
// Built static (gcc -O0 -static) so the symbol is in this file, not in a
// shared library, and the committed binary runs wherever tests run.

#include <stdio.h>
#include <stdlib.h>

// noinline + used + external linkage: the function must exist as a real,
// named symbol that is called N times, whatever the optimisation level.
__attribute__((noinline, used)) int bpfman_test_fn(int x)
{
	// The asm barrier keeps even an optimising compiler from turning the
	// calls into a constant.
	__asm__ volatile("" : : "r"(x) : "memory");
	return x + 1;
}

int main(int argc, char **argv)
{
	long n = 1;
	int acc = 0;

	if (argc > 1) {
		char *end = NULL;

		n = strtol(argv[1], &end, 10);
		if (end == argv[1] || *end != '\0' || n < 0) {
			fprintf(stderr, "usage: %s [N>=0]\n", argv[0]);
			return 2;
		}
	}
	for (long i = 0; i < n; i++)
		acc = bpfman_test_fn(acc);
	printf("called bpfman_test_fn %ld times\n", n);
	return 0;
}
