#!/usr/bin/env bash
# The whole test suite, as CI runs it (as root, on the real kernel):
#   1. one debug build of every crate's tests, binaries and examples;
#   2. every test of the workspace on the host (pure core, store, kernel, CLI
#      in both modes, gRPC including the ignored 8x200 concurrency test, CSI,
#      network, images), test binaries in parallel with cargo-nextest when it
#      is installed, else `cargo test`; 3. offline manifest validation;
#   4. the end-to-end demo with its output checked (debug binaries of step 1);
#   5. inside the newest stock Debian kernel under QEMU, the tests this host
#      cannot run (kprobes, fentry/fexit, dispatchers): scripts/vm/ci-tests.txt.
# Prints a table of the time each stage took at the end, also on failure.
# BPFMAN_SKIP_VM=1 leaves out stage 5; BPFMAN_NO_NEXTEST=1 forces `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/stages.sh
. scripts/lib/stages.sh

if [ "$(id -u)" != 0 ]; then
	echo "warning: not root: kernel tests will report themselves as skipped" >&2
fi

# The host run and the demo share one debug build. (A release build of the
# same crates took minutes of CI time for nothing the tests look at; `make
# demo` and `make bench` still use release binaries.)
stage "build (debug: tests, bins, examples)" \
	cargo test --workspace --no-run --quiet
stage "build (debug: demo binaries)" \
	cargo build --quiet -p bpfman -p stats-reader -p bpfman-csi --example kubelet

if [ "${BPFMAN_NO_NEXTEST:-0}" != 1 ] && cargo nextest --version >/dev/null 2>&1; then
	# Test binaries run side by side (tests use private runtime dirs, bpffs
	# mounts and netns, so they are independent). Closing line: nextest's
	# "Summary [...] N tests run: N passed, M skipped".
	stage "host tests (cargo nextest, incl. ignored)" \
		cargo nextest run --workspace --no-fail-fast --run-ignored all \
		--test-threads "${BPFMAN_TEST_THREADS:-4}" --final-status-level slow
	stage "host doc tests" cargo test --workspace --doc --quiet
else
	stage "host tests (cargo test, incl. ignored)" \
		cargo test --workspace --no-fail-fast -- --include-ignored
fi

stage "manifests (strict schemas, kustomize)" bash scripts/check-manifests.sh
stage "Dockerfiles (hadolint)" make --no-print-directory lint-docker

stage "demo (debug binaries)" env BPFMAN_DEMO_PROFILE=debug bash scripts/demo.sh --check

if [ "${BPFMAN_SKIP_VM:-0}" != 1 ]; then
	stage "VM kernel tests (newest kernel, QEMU/TCG)" make --no-print-directory test-vm
fi
