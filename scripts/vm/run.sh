#!/usr/bin/env bash
# Runs test executables (cargo test binaries built on the host, or any
# program) inside stock Debian kernels under QEMU/TCG with virtme-ng.
#
#   scripts/vm/run.sh [OPTIONS] [--] TEST...
#
# TEST is EXE or EXE@CWD. EXE runs with CWD as working directory and
# CARGO_MANIFEST_DIR=CWD (scripts/vm/cargo-test-exes.sh prints such pairs);
# a bare EXE runs in the current directory without CARGO_MANIFEST_DIR.
#
# Options:
#   --kernel PKG     boot this kernel package (repeatable; default: every
#                    kernel of scripts/vm/kernels.conf); it must be set up
#   --manifest FILE  more tests, one a line: EXE[@CWD] [ARG...] (shell
#                    words; '#' comment lines and blank lines are skipped)
#   --arg ARG        pass ARG to every test given on the command line
#                    (repeatable), e.g. --arg --test-threads=1
#   --timeout SECS   per test executable (default 600; env BPFMAN_VM_TEST_TIMEOUT)
#   --memory MB      guest memory (default 1024; env BPFMAN_VM_MEMORY)
#   --cpus N         guest CPUs (default 1; env BPFMAN_VM_CPUS): under TCG
#                    one vCPU boots about twice as fast as two on this host
#   --modules "M..." modules loaded before the tests (default
#                    "veth sch_ingress cls_bpf"; env BPFMAN_VM_MODULES)
#   --preload FILE   copy FILE (debug info stripped) into guest RAM and
#                    bind-mount it over FILE before the tests (repeatable;
#                    env BPFMAN_VM_PRELOAD, space-separated): for programs the
#                    tests exec many times, which 9p would page in every time
#   --preload-tests  preload every test executable too
#   --results DIR    where results go (default target/vm-results/RUN_ID)
#   -v, --verbose    also print every test's output, prefixed
#
# Each kernel boots ONCE and runs every test in sequence. Inside the guest:
# bpffs on /sys/fs/bpf, tracefs and debugfs mounted, the modules loaded,
# a tmpfs on /tmp, TMPDIR set, and BPFMAN_IN_VM=1 in each test's environment.
# The host root is shared read-only: tests must write only to TMPDIR/tmp.
# After the VMs: a per-kernel summary; exit 1 if a test failed or a kernel
# did not boot, 2 on usage or setup errors.
set -euo pipefail

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$VM_DIR/../.." && pwd)"
CACHE="${BPFMAN_VM_CACHE:-/var/cache/bpfman-vm}"
KERNELS_CONF="${BPFMAN_VM_KERNELS_CONF:-$VM_DIR/kernels.conf}"
VENV="$CACHE/venv"

TEST_TIMEOUT="${BPFMAN_VM_TEST_TIMEOUT:-600}"
MEMORY="${BPFMAN_VM_MEMORY:-1024}"
CPUS="${BPFMAN_VM_CPUS:-1}"
MODULES="${BPFMAN_VM_MODULES:-veth sch_ingress cls_bpf}"
RESULTS=""
VERBOSE=0
KERNELS=()
MANIFESTS=()
COMMON_ARGS=()
SPECS=()
read -ra PRELOAD <<<"${BPFMAN_VM_PRELOAD:-}"
PRELOAD_TESTS=0

usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}"; }
die() { printf 'vm-run: error: %s\n' "$*" >&2; exit 2; }
need_arg() { (($# >= 2)) || die "$1 needs a value"; }

while (($#)); do
	case "$1" in
	--kernel) need_arg "$@"; KERNELS+=("$2"); shift 2 ;;
	--manifest) need_arg "$@"; MANIFESTS+=("$2"); shift 2 ;;
	--arg) need_arg "$@"; COMMON_ARGS+=("$2"); shift 2 ;;
	--timeout) need_arg "$@"; TEST_TIMEOUT="$2"; shift 2 ;;
	--memory) need_arg "$@"; MEMORY="$2"; shift 2 ;;
	--cpus) need_arg "$@"; CPUS="$2"; shift 2 ;;
	--modules) need_arg "$@"; MODULES="$2"; shift 2 ;;
	--results) need_arg "$@"; RESULTS="$2"; shift 2 ;;
	--preload) need_arg "$@"; PRELOAD+=("$2"); shift 2 ;;
	--preload-tests) PRELOAD_TESTS=1; shift ;;
	-v | --verbose) VERBOSE=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; SPECS+=("$@"); break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) SPECS+=("$1"); shift ;;
	esac
done
[[ $TEST_TIMEOUT =~ ^[0-9]+$ ]] || die "--timeout wants seconds"
[[ $MEMORY =~ ^[0-9]+$ ]] || die "--memory wants MB"
[[ $CPUS =~ ^[0-9]+$ ]] || die "--cpus wants a number"

# --- the tests ---------------------------------------------------------------
TEST_EXE=()
TEST_CWD=()
TEST_MANIFEST_DIR=()
TEST_ARGS=() # one shell-quoted string per test

add_test() { # add_test SPEC [ARG...]
	local spec="$1" exe cwd="$PWD" has_cwd=0 q="" a
	shift
	exe="${spec%%@*}"
	if [[ $spec == *@* ]]; then
		cwd="${spec#*@}"
		has_cwd=1
	fi
	[[ -n $exe ]] || die "empty executable in '$spec'"
	exe="$(realpath -e -- "$exe" 2>/dev/null)" || die "no such test executable: ${spec%%@*}"
	[[ -f $exe && -x $exe ]] || die "not an executable file: $exe"
	cwd="$(realpath -e -- "$cwd" 2>/dev/null)" || die "no such directory: $cwd (in '$spec')"
	for a in "$@"; do q+=" $(printf '%q' "$a")"; done
	TEST_EXE+=("$exe")
	TEST_CWD+=("$cwd")
	TEST_MANIFEST_DIR+=("$has_cwd")
	TEST_ARGS+=("$q")
}

for spec in "${SPECS[@]}"; do
	add_test "$spec" "${COMMON_ARGS[@]}"
done
for m in "${MANIFESTS[@]}"; do
	[[ -r $m ]] || die "cannot read manifest $m"
	while IFS= read -r line || [[ -n $line ]]; do
		[[ $line =~ ^[[:space:]]*(#|$) ]] && continue
		# Words split with quotes honoured, nothing expanded or executed.
		words=()
		mapfile -d '' words < <(xargs printf '%s\0' <<<"$line") ||
			die "cannot parse manifest line: $line"
		((${#words[@]})) || continue
		add_test "${words[@]}"
	done <"$m"
done
((${#TEST_EXE[@]})) || die "no test executable given (see --help)"

# --- the kernels ---------------------------------------------------------------
if ((${#KERNELS[@]} == 0)); then
	[[ -r $KERNELS_CONF ]] || die "no kernel list at $KERNELS_CONF"
	mapfile -t KERNELS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$KERNELS_CONF" | grep -v '^$')
	((${#KERNELS[@]})) || die "$KERNELS_CONF lists no kernel"
fi
[[ -x $VENV/bin/virtme-run ]] || die "virtme-ng is not set up in $VENV: run scripts/vm/setup.sh (make vm-setup)"
for k in "${KERNELS[@]}"; do
	[[ -s $CACHE/kernels/$k/.ready ]] ||
		die "kernel $k is not set up in $CACHE/kernels: add it to kernels.conf and run scripts/vm/setup.sh (make vm-setup)"
done

# --- paths the guest must see -----------------------------------------------
# The guest mounts tmpfs over these (virtme-ng-init, plus our own /tmp), so
# nothing the tests need may live below them on the host.
HIDDEN=(/var/cache /var/log /var/tmp /var/lib/apt /var/lib/private /run /dev /proc /sys)
under() { [[ $1 == "$2" || $1 == "$2"/* ]]; }
TMP_TMPFS=1
check_visible() { # check_visible PATH WHAT
	local h
	for h in "${HIDDEN[@]}"; do
		under "$1" "$h" && die "$2 $1 is under $h, which the guest hides behind a tmpfs"
	done
	if under "$1" /tmp; then TMP_TMPFS=0; fi
}

if [[ -z $RESULTS ]]; then
	RESULTS="${BPFMAN_VM_RESULTS:-$REPO/target/vm-results}/$(date +%Y%m%d-%H%M%S)-$$"
fi
mkdir -p "$RESULTS"
RESULTS="$(realpath -e "$RESULTS")"
check_visible "$RESULTS" "results dir"
check_visible "$VM_DIR" "scripts dir"
for i in "${!TEST_EXE[@]}"; do
	check_visible "${TEST_EXE[i]}" "test executable"
	check_visible "${TEST_CWD[i]}" "test directory"
done
if ((PRELOAD_TESTS)); then PRELOAD+=("${TEST_EXE[@]}"); fi
PRELOAD_FILES=()
for f in "${PRELOAD[@]}"; do
	f="$(realpath -e -- "$f" 2>/dev/null)" || die "no such file to preload: $f"
	check_visible "$f" "preloaded file"
	[[ " ${PRELOAD_FILES[*]} " == *" $f "* ]] || PRELOAD_FILES+=("$f")
done

# --- boot each kernel once ----------------------------------------------------
# Host-side limit for one VM: boot, setup, and every test's own timeout.
VM_TIMEOUT=$((240 + ${#TEST_EXE[@]} * (TEST_TIMEOUT + 20)))

write_config() { # write_config DIR MODULES_BASE
	{
		printf 'MODULES_BASE=%q\n' "$2"
		printf 'MODULES=%q\n' "$MODULES"
		printf 'TEST_TIMEOUT=%q\n' "$TEST_TIMEOUT"
		printf 'TMP_TMPFS=%q\n' "$TMP_TMPFS"
		printf 'VERBOSE=%q\n' "$VERBOSE"
		local p
		for p in "${!PRELOAD_FILES[@]}"; do
			printf 'PRELOAD[%d]=%q\n' "$p" "${PRELOAD_FILES[p]}"
		done
		local i
		for i in "${!TEST_EXE[@]}"; do
			printf 'TEST_EXE[%d]=%q\n' "$i" "${TEST_EXE[i]}"
			printf 'TEST_CWD[%d]=%q\n' "$i" "${TEST_CWD[i]}"
			printf 'TEST_MANIFEST_DIR[%d]=%q\n' "$i" "${TEST_MANIFEST_DIR[i]}"
			printf 'TEST_ARGS_%d=(%s)\n' "$i" "${TEST_ARGS[i]}"
		done
	} >"$1/config.sh"
}

declare -A VM_SECS VM_RC
for k in "${KERNELS[@]}"; do
	kdir="$CACHE/kernels/$k"
	kver="$(cat "$kdir/.ready")"
	out="$RESULTS/$k"
	mkdir -p "$out"
	write_config "$out" "$kdir"
	mkdir -p "$out/preload"
	for p in "${!PRELOAD_FILES[@]}"; do
		objcopy --strip-debug "${PRELOAD_FILES[p]}" "$out/preload/$p" 2>/dev/null ||
			cp "${PRELOAD_FILES[p]}" "$out/preload/$p"
	done
	echo "vm-run: booting $k ($kver), ${#TEST_EXE[@]} test executable(s), results in $out"
	start=$(date +%s)
	set +e
	# Output through a pipe: QEMU reopens /proc/self/fd/1 for each serial
	# port, which on a plain file would make the ports overwrite each other.
	timeout -k 10 "$VM_TIMEOUT" "$VENV/bin/virtme-run" \
		--kimg "$kdir/boot/vmlinuz-$kver" --mods=auto \
		--disable-kvm --force-9p --show-boot-console \
		--memory "$MEMORY" --cpus "$CPUS" \
		--rwdir "$out" --rodir "$CACHE/kernels" \
		--script-sh "bash $VM_DIR/guest.sh $out" \
		</dev/null 2>&1 | tee "$out/console.log" | grep --line-buffered '^vm\['
	VM_RC[$k]=${PIPESTATUS[0]}
	set -e
	VM_SECS[$k]=$(($(date +%s) - start))
done

# --- summary -------------------------------------------------------------------
result_line() { # the cargo-test result line, else the last non-empty line
	local l
	l="$(grep -a '^test result:' "$1" | tail -n1)"
	[[ -n $l ]] || l="$(grep -a -v '^[[:space:]]*$' "$1" | tail -n1)"
	printf '%s' "${l:0:160}"
}
test_name() { # crate-dir/exe for cargo pairs, else the exe's name
	if [[ ${TEST_MANIFEST_DIR[$1]} == 1 ]]; then
		printf '%s/%s' "${TEST_CWD[$1]##*/}" "${TEST_EXE[$1]##*/}"
	else
		printf '%s' "${TEST_EXE[$1]##*/}"
	fi
}

passed=0
failed=0
failed_logs=()
# Test cases, summed over the result lines ("test result: ok. 3 passed;
# 0 failed; 1 ignored; ..." of cargo, "N passed, M failed" of others).
cases_passed=0
cases_failed=0
cases_ignored=0
count_cases() { # count_cases LINE
	local re='([0-9]+) passed[;,] ([0-9]+) failed([;,] ([0-9]+) ignored)?'
	if [[ $1 =~ $re ]]; then
		cases_passed=$((cases_passed + BASH_REMATCH[1]))
		cases_failed=$((cases_failed + BASH_REMATCH[2]))
		cases_ignored=$((cases_ignored + ${BASH_REMATCH[4]:-0}))
	fi
}
echo
echo "=============================== VM test summary ==============================="
for k in "${KERNELS[@]}"; do
	out="$RESULTS/$k"
	if [[ ! -s $out/kernel ]]; then
		echo "== $k: DID NOT BOOT (virtme-run exit ${VM_RC[$k]}, ${VM_SECS[$k]} s); console tail:"
		tail -n 20 "$out/console.log" | sed 's/^/   | /'
		failed=$((failed + ${#TEST_EXE[@]}))
		continue
	fi
	echo "== $k: kernel $(cat "$out/kernel"), booted in $(cat "$out/boot-uptime") s, VM total ${VM_SECS[$k]} s"
	grep -a 'FAILED' "$out/setup.log" | sed 's/^/   setup: /' || true
	for i in "${!TEST_EXE[@]}"; do
		name="$(test_name "$i")"
		if [[ ! -s $out/test-$i.rc ]]; then
			printf '   %-4s %-50s %s\n' FAIL "$name" "not run (guest stopped early)"
			failed=$((failed + 1))
			continue
		fi
		read -r rc secs <"$out/test-$i.rc"
		if ((rc == 0)); then
			status=PASS
			passed=$((passed + 1))
		else
			status=FAIL
			failed=$((failed + 1))
			failed_logs+=("$out/test-$i.log")
		fi
		extra=""
		if ((rc == 124)); then
			extra="exit 124 (timed out after ${TEST_TIMEOUT} s)"
		elif ((rc != 0)); then
			extra="exit $rc"
		fi
		line="$(result_line "$out/test-$i.log")"
		count_cases "$line"
		[[ -n $extra && -n $line ]] && extra+=", "
		printf '   %-4s %-50s %6s s  %s%s\n' "$status" "$name" "$secs" "$extra" "$line"
	done
	[[ -f $out/done ]] || {
		echo "   the guest did not finish (virtme-run exit ${VM_RC[$k]}); console tail:"
		tail -n 20 "$out/console.log" | sed 's/^/   | /'
	}
done
for log in "${failed_logs[@]}"; do
	echo
	echo "--- last 40 lines of $log"
	tail -n 40 "$log"
done
echo
echo "results: $RESULTS"
echo "test cases over all kernels (from the result lines): $cases_passed passed, $cases_failed failed, $cases_ignored ignored"
echo "test executables over all kernels, a kernel that did not boot failing all of them:"
echo "vm: $passed passed, $failed failed"
((failed == 0))
