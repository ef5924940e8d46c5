# Stage timing for CI scripts (sourced by .ci/run and scripts/test-all.sh).
#
#   stage NAME CMD...   runs CMD, records "NAME SECONDS STATUS" in $BPFMAN_STAGE_LOG
#   stage_table         prints the table of recorded stages
#   stage_trap          run at exit (sourcing installs it, with INT/TERM
#                       handlers so a cancelled run gets there too): records
#                       the stage that was running when the script exited
#                       (failed or interrupted), then prints the table if
#                       this script owns the log
#
# Nested scripts share one log: the outermost script that sources this file
# creates it (and prints the table at exit); inner ones append to it.

if [[ -z ${BPFMAN_STAGE_LOG:-} ]]; then
	BPFMAN_STAGE_LOG="$(mktemp /tmp/bpfman-stages.XXXXXX)"
	export BPFMAN_STAGE_LOG
	_STAGE_OWNER=1
else
	_STAGE_OWNER=0
fi
_STAGE_NAME=""
_STAGE_START=0
_STAGE_T0=$(date +%s)

stage() { # stage NAME CMD...
	local name="$1" rc=0
	shift
	printf '\n=== %s ===\n' "$name"
	_STAGE_NAME="$name"
	_STAGE_START=$(date +%s)
	"$@" || rc=$?
	printf '%s\t%s\t%s\n' "$name" "$(($(date +%s) - _STAGE_START))" \
		"$([[ $rc == 0 ]] && echo ok || echo "FAILED (exit $rc)")" >>"$BPFMAN_STAGE_LOG"
	_STAGE_NAME=""
	return "$rc"
}

stage_table() {
	local name secs status total=0
	echo
	echo "=== stage timings ==="
	printf '%-44s %8s  %s\n' stage seconds status
	while IFS=$'\t' read -r name secs status; do
		printf '%-44s %8s  %s\n' "$name" "$secs" "$status"
		total=$((total + secs))
	done <"$BPFMAN_STAGE_LOG"
	printf '%-44s %8s  (wall clock %s s)\n' "sum of stages" "$total" "$(($(date +%s) - _STAGE_T0))"
}

stage_trap() {
	local rc=$?
	# A stage run outside `stage`'s own error handling (set -e killed us in it).
	if [[ -n $_STAGE_NAME ]]; then
		printf '%s\t%s\t%s\n' "$_STAGE_NAME" "$(($(date +%s) - _STAGE_START))" \
			"FAILED (exit $rc, interrupted)" >>"$BPFMAN_STAGE_LOG"
	fi
	if [[ $_STAGE_OWNER == 1 ]]; then
		stage_table
		rm -f "$BPFMAN_STAGE_LOG"
	fi
	return "$rc"
}

trap stage_trap EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
