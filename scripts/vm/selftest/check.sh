#!/usr/bin/env bash
# VM selftest: proves the guest kernel runs what this project's host kernel
# refuses: fentry, fexit, kprobe, kretprobe and extension (freplace)
# programs. Runs the libbpf loader (loader.c) on the committed BPF objects
# tests/bpf/probes.bpf.o and tests/bpf/freplace.bpf.o (rebuilt with the
# other fixtures by `make -C tests/bpf`); its last line is
# "selftest: N passed, M failed". Exit 0 only if every check passed.
#
#   scripts/vm/run.sh -- scripts/vm/selftest/check.sh    (in each VM kernel)
#   scripts/vm/selftest/check.sh                         (here: shows the refusals)
#   scripts/vm/selftest/check.sh --build-only            (prebuild, then exit)
#
# The loader's build goes to $BPFMAN_VM_SELFTEST_BUILD (default
# target/vm-selftest), stamped with a hash of its sources and reused while
# they do not change. Where that dir is not writable (inside the VM: the host
# root is read-only) and holds no current build, it builds into TMPDIR, which
# is slow under TCG: `make vm-selftest` prebuilds on the host first.
#
# Needs cc and libbpf-dev (scripts/install-deps.sh).
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SRC/../../.." && pwd)"
BPF_OBJ="$REPO/tests/bpf"
CACHED="${BPFMAN_VM_SELFTEST_BUILD:-$REPO/target/vm-selftest}"
CC="${CC:-cc}"

build_only=0
case "${1-}" in
--build-only) build_only=1 ;;
# run.sh passes the same --arg options to every executable: ignore the test
# harness's (e.g. --show-output).
"" | --show-output | --nocapture) ;;
*) echo "usage: $0 [--build-only]" >&2; exit 2 ;;
esac

stamp="$(cat "$SRC/check.sh" "$SRC/loader.c" | sha256sum | cut -d' ' -f1)"

build() { # build DIR
	local t0
	t0=$(date +%s%N)
	"$CC" -O2 -Wall -Wextra -Werror -o "$1/loader" "$SRC/loader.c" -lbpf
	echo "$stamp" >"$1/stamp"
	echo "# built in $1 in $((($(date +%s%N) - t0) / 1000000)) ms"
}

if [[ -f $CACHED/stamp && $(cat "$CACHED/stamp") == "$stamp" ]]; then
	BUILD="$CACHED"
	echo "# using the build in $BUILD"
elif mkdir -p "$CACHED" 2>/dev/null && [[ -w $CACHED ]]; then
	BUILD="$CACHED"
	build "$BUILD"
else
	BUILD="$(mktemp -d "${TMPDIR:-/tmp}/bpfman-vm-selftest.XXXXXX")"
	trap 'rm -rf "$BUILD"' EXIT
	build "$BUILD"
fi
((build_only)) && exit 0

rc=0
"$BUILD/loader" "$BPF_OBJ/probes.bpf.o" "$BPF_OBJ/freplace.bpf.o" || rc=$?
exit "$rc"
