#!/bin/bash
# Runs INSIDE the guest (virtme-run --script-sh), as root, on the host's root
# filesystem shared read-only. Usage: guest.sh RESULTS_DIR
#
# RESULTS_DIR is the writable 9p share that run.sh prepared. It holds
# config.sh (written by run.sh) and receives:
#   kernel         uname -r
#   boot-uptime    guest uptime (s) when this script started: the boot time
#   setup.log      what the environment setup did
#   test-N.log     stdout+stderr of test N
#   test-N.rc      "EXIT_CODE SECONDS" of test N (124 = timed out)
#   dmesg          the guest kernel log at the end
#   done           written last: the guest got through every test
# Failures of single tests are recorded, never fatal: this script always
# tries every test and exits 0 once it has written `done`.
set -u

R="$1"
# shellcheck source=/dev/null
PRELOAD=()
. "$R/config.sh"

cut -d' ' -f1 /proc/uptime >"$R/boot-uptime"
uname -r >"$R/kernel"
KVER="$(uname -r)"
say() { printf 'vm[%s]: %s\n' "$KVER" "$*"; }

setup() {
	# Scratch space: the host root is read-only here.
	mkdir -p /run/bpfman-vm/tmp /run/bpfman-vm/bin
	export TMPDIR=/run/bpfman-vm/tmp
	if ! : 2>/dev/null >/tmp/.bpfman-vm-probe; then
		if [[ $TMP_TMPFS == 1 ]]; then
			mount -t tmpfs -o mode=1777 tmpfs /tmp && echo "mounted tmpfs on /tmp"
		else
			echo "/tmp stays read-only: a test executable or the results live under it"
		fi
	fi

	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
	mountpoint -q /sys/kernel/tracing || mount -t tracefs tracefs /sys/kernel/tracing
	mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug
	mount | grep -E ' type (bpf|tracefs|debugfs) '

	# The kernel's modules live in the cache dir, not in /lib/modules (which
	# the host does not have): a modprobe wrapper serves both the kernel's own
	# module requests and tests that call `modprobe`.
	cat >/run/bpfman-vm/bin/modprobe <<-EOF
		#!/bin/sh
		exec /sbin/modprobe -d '$MODULES_BASE' "\$@"
	EOF
	chmod +x /run/bpfman-vm/bin/modprobe
	echo /run/bpfman-vm/bin/modprobe >/proc/sys/kernel/modprobe
	export PATH="/run/bpfman-vm/bin:$PATH"
	for m in $MODULES; do
		if modprobe "$m"; then
			echo "modprobe $m: ok"
		else
			echo "modprobe $m: FAILED"
		fi
	done

	# Preloaded files (run.sh --preload): every exec of a file on the 9p root
	# pages it in again over 9p (seconds per bpfman call under TCG); a copy
	# in guest RAM bind-mounted over the original path is paged in from RAM.
	local i
	mkdir -p /run/bpfman-vm/preload
	for i in "${!PRELOAD[@]}"; do
		if cp "$R/preload/$i" "/run/bpfman-vm/preload/$i" &&
			mount --bind "/run/bpfman-vm/preload/$i" "${PRELOAD[i]}"; then
			echo "preload ${PRELOAD[i]}: ok"
		else
			echo "preload ${PRELOAD[i]}: FAILED (runs from 9p)"
		fi
	done
	rm -rf "$R/preload"

	# Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
	ulimit -l unlimited
	ip link set lo up 2>/dev/null || true
}
setup >"$R/setup.log" 2>&1
say "booted in $(cat "$R/boot-uptime") s; running ${#TEST_EXE[@]} test executable(s)"

for i in "${!TEST_EXE[@]}"; do
	exe="${TEST_EXE[i]}"
	cwd="${TEST_CWD[i]}"
	unset -n args
	declare -n args="TEST_ARGS_$i"
	envs=(BPFMAN_IN_VM=1)
	[[ ${TEST_MANIFEST_DIR[i]} == 1 ]] && envs+=("CARGO_MANIFEST_DIR=$cwd")
	start=$(date +%s%N)
	(
		cd "$cwd" &&
			exec env "${envs[@]}" timeout -k 10 "$TEST_TIMEOUT" "$exe" "${args[@]}"
	) </dev/null >"$R/test-$i.log" 2>&1
	rc=$?
	end=$(date +%s%N)
	secs=$(((end - start) / 1000000))
	secs="$((secs / 1000)).$(printf '%03d' $((secs % 1000)) | cut -c1)"
	echo "$rc $secs" >"$R/test-$i.rc"
	if [[ $VERBOSE == 1 ]]; then
		sed "s/^/vm[$KVER] ${exe##*/}: /" "$R/test-$i.log"
	fi
	if ((rc == 0)); then
		say "ok   ${exe##*/} (${secs} s)"
	else
		say "FAIL ${exe##*/} exit $rc (${secs} s)"
	fi
done

dmesg >"$R/dmesg" 2>&1
echo ok >"$R/done"
sync
exit 0
