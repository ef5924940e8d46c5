# Kernel tests inside stock Debian kernels under QEMU/TCG (scripts/vm/).
# Included by the top-level Makefile; see scripts/vm/README.md.

VM_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../scripts/vm)
# test-vm (CI): the tests this host cannot run (kprobes, fentry/fexit,
# dispatchers), listed by exact name in this file, in one kernel.
VM_TESTS ?= $(VM_DIR)/ci-tests.txt
# The kernel test-vm boots: the newest of scripts/vm/kernels.conf.
VM_KERNEL ?= $(shell sed -e 's/\#.*//' -e 's/[[:space:]]//g' $(VM_DIR)/kernels.conf | grep -v '^$$' | sort -V | tail -n1)
# test-vm-all (the full matrix): whole test executables in every kernel of
# kernels.conf, as groups of scripts/vm/cargo-test-exes.sh arguments separated
# by '|'. VM_TEST_GROUPS="bpfman bpfman-kernel bpfman-net" runs everything.
VM_TEST_GROUPS ?= --test=probes --test=net bpfman | bpfman-kernel bpfman-net
# Extra options for scripts/vm/run.sh, e.g. VM_RUN_ARGS="-v". Tests run with
# --show-output, so a skip and its reason are visible.
VM_RUN_ARGS ?=
# Files the tests exec many times, copied into guest RAM (run.sh --preload):
# over 9p every exec pages them in again (a `bpfman list` took 5-8 s under
# TCG from 9p, 0.7-1 s from RAM). Test executables are preloaded as well.
VM_PRELOAD ?= $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/bpfman \
	$(wildcard /usr/sbin/ip /usr/sbin/tc /usr/sbin/bpftool) \
	$(shell ldd /usr/sbin/ip $(abspath $(or $(CARGO_TARGET_DIR),target))/debug/bpfman 2>/dev/null | grep -o '/[^ ]*\.so[^ ]*' | sort -u)
VM_PRELOAD_ARGS = $(foreach f,$(VM_PRELOAD),--preload $(f)) --preload-tests
# 1: test-vm and test-vm-all also run the runner's own selftest (about 2 s per kernel).
VM_SELFTEST ?= 1

.PHONY: vm-setup test-vm test-vm-all vm-selftest

vm-setup: ## Install QEMU and virtme-ng, fetch and unpack the VM kernels (root; cached, idempotent)
	bash $(VM_DIR)/setup.sh

test-vm: vm-setup ## CI: the tests this host cannot run (VM_TESTS) in the newest VM kernel (VM_KERNEL)
	@set -e; selftest=""; \
	if [ "$(VM_SELFTEST)" = 1 ]; then \
		bash $(VM_DIR)/selftest/check.sh --build-only; \
		selftest=$(VM_DIR)/selftest/check.sh; \
	fi; \
	manifest=$$(mktemp /tmp/bpfman-vm-manifest.XXXXXX); \
	trap 'rm -f "$$manifest"' EXIT; \
	bash $(VM_DIR)/ci-manifest.sh $(VM_TESTS) --show-output >"$$manifest"; \
	bash $(VM_DIR)/run.sh --kernel $(VM_KERNEL) --manifest "$$manifest" $(VM_PRELOAD_ARGS) $(VM_RUN_ARGS) -- $$selftest

test-vm-all: vm-setup ## The full matrix: whole test executables (VM_TEST_GROUPS) in every VM kernel
	@set -e; selftest=""; \
	if [ "$(VM_SELFTEST)" = 1 ]; then \
		bash $(VM_DIR)/selftest/check.sh --build-only; \
		selftest=$(VM_DIR)/selftest/check.sh; \
	fi; \
	exes=""; IFS='|' read -ra groups <<< "$(VM_TEST_GROUPS)"; \
	for g in "$${groups[@]}"; do exes="$$exes $$(bash $(VM_DIR)/cargo-test-exes.sh $$g)"; done; \
	bash $(VM_DIR)/run.sh --arg --show-output $(VM_PRELOAD_ARGS) $(VM_RUN_ARGS) -- $$selftest $$exes

vm-selftest: vm-setup ## Prove the VM runner: fentry, fexit, kprobe, kretprobe and freplace load and run in each VM kernel
	bash $(VM_DIR)/selftest/check.sh --build-only
	bash $(VM_DIR)/run.sh $(VM_RUN_ARGS) -- $(VM_DIR)/selftest/check.sh
