# Kernel tests inside stock Debian kernels under QEMU/TCG (scripts/vm/).
# Included by the top-level Makefile; see scripts/vm/README.md.

VM_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../scripts/vm)
# Crates whose test executables run in every kernel of scripts/vm/kernels.conf.
VM_TEST_CRATES ?= bpfman-kernel bpfman
# Extra options for scripts/vm/run.sh, e.g. VM_RUN_ARGS="--kernel PKG -v".
VM_RUN_ARGS ?=
# 1: test-vm also runs the runner's own selftest (about 2 s per kernel).
VM_SELFTEST ?= 1

.PHONY: vm-setup test-vm vm-selftest

vm-setup: ## Install QEMU and virtme-ng, fetch and unpack the VM kernels (root; cached, idempotent)
	bash $(VM_DIR)/setup.sh

test-vm: vm-setup ## Run the test executables of VM_TEST_CRATES (bpfman-kernel bpfman) inside each VM kernel
	@set -e; selftest=""; \
	if [ "$(VM_SELFTEST)" = 1 ]; then \
		bash $(VM_DIR)/selftest/check.sh --build-only; \
		selftest=$(VM_DIR)/selftest/check.sh; \
	fi; \
	exes="$$(bash $(VM_DIR)/cargo-test-exes.sh $(VM_TEST_CRATES))"; \
	bash $(VM_DIR)/run.sh $(VM_RUN_ARGS) -- $$selftest $$exes

vm-selftest: vm-setup ## Prove the VM runner: fentry, fexit, kprobe, kretprobe and freplace load and run in each VM kernel
	bash $(VM_DIR)/selftest/check.sh --build-only
	bash $(VM_DIR)/run.sh $(VM_RUN_ARGS) -- $(VM_DIR)/selftest/check.sh
