# Kernel tests inside stock Debian kernels under QEMU/TCG (scripts/vm/).
# Included by the top-level Makefile; see scripts/vm/README.md.

VM_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../scripts/vm)
# Test executables run in every kernel of scripts/vm/kernels.conf: groups of
# scripts/vm/cargo-test-exes.sh arguments separated by '|'. The default is what
# this host cannot run (kprobes, trampolines, dispatchers) plus the kernel
# adapter's own suite; the full CLI suite under TCG takes minutes per kernel
# (VM_TEST_GROUPS="bpfman bpfman-kernel bpfman-net" runs everything).
VM_TEST_GROUPS ?= --test=probes --test=net bpfman | bpfman-kernel bpfman-net
# Extra options for scripts/vm/run.sh, e.g. VM_RUN_ARGS="--kernel PKG -v"; the
# default shows the output of passing tests, so a skip and its reason are visible.
VM_RUN_ARGS ?= --arg --show-output
# 1: test-vm also runs the runner's own selftest (about 2 s per kernel).
VM_SELFTEST ?= 1

.PHONY: vm-setup test-vm vm-selftest

vm-setup: ## Install QEMU and virtme-ng, fetch and unpack the VM kernels (root; cached, idempotent)
	bash $(VM_DIR)/setup.sh

test-vm: vm-setup ## Run the kernel tests this host cannot (VM_TEST_GROUPS) inside each VM kernel
	@set -e; selftest=""; \
	if [ "$(VM_SELFTEST)" = 1 ]; then \
		bash $(VM_DIR)/selftest/check.sh --build-only; \
		selftest=$(VM_DIR)/selftest/check.sh; \
	fi; \
	exes=""; IFS='|' read -ra groups <<< "$(VM_TEST_GROUPS)"; \
	for g in "$${groups[@]}"; do exes="$$exes $$(bash $(VM_DIR)/cargo-test-exes.sh $$g)"; done; \
	bash $(VM_DIR)/run.sh $(VM_RUN_ARGS) -- $$selftest $$exes

vm-selftest: vm-setup ## Prove the VM runner: fentry, fexit, kprobe, kretprobe and freplace load and run in each VM kernel
	bash $(VM_DIR)/selftest/check.sh --build-only
	bash $(VM_DIR)/run.sh $(VM_RUN_ARGS) -- $(VM_DIR)/selftest/check.sh
