#!/usr/bin/env bash
# bpfman end to end on a bare Linux host, as root, no Kubernetes:
#   daemon with CSI support in a private runtime dir -> load + attach the stats
#   example -> publish a CSI volume the way kubelet does -> stats-reader as an
#   unprivileged user in its own mount namespace reads the growing counter ->
#   unpublish, unload, stop -> check nothing is left behind.
# `--check` (used by CI) fails unless the count grows and nothing is left.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1

if [ "$(id -u)" != 0 ]; then
	echo "demo: needs root (BPF, mounts)" >&2
	exit 1
fi

# BPFMAN_DEMO_PROFILE=debug uses debug binaries (CI: the ones its tests built).
PROFILE="${BPFMAN_DEMO_PROFILE:-release}"
case "$PROFILE" in
release) PROFILE_ARGS=(--release) ;;
debug) PROFILE_ARGS=() ;;
*) echo "demo: BPFMAN_DEMO_PROFILE is release or debug, not $PROFILE" >&2; exit 2 ;;
esac
cargo build "${PROFILE_ARGS[@]}" -q -p bpfman -p stats-reader
cargo build "${PROFILE_ARGS[@]}" -q -p bpfman-csi --example kubelet
T="${CARGO_TARGET_DIR:-$PWD/target}/$PROFILE"
BPFMAN="$T/bpfman"
READER="$T/stats-reader"
KUBELET="$T/examples/kubelet"

RUN=$(mktemp -d /tmp/bpfman-demo.XXXXXX)
chmod 755 "$RUN"
SOCK="$RUN/sock/bpfman.sock"
CSI="$RUN/csi-plugin/csi.sock"
PODS="$RUN/pods"
POD_UID=5f1c2b4e-demo-4b8e-9d61-000000000001
TARGET="$PODS/$POD_UID/volumes/kubernetes.io~csi/bpf-maps/mount"
LOG="$RUN/daemon.log"
DAEMON=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() {
	set +e
	[ -n "$DAEMON" ] && kill "$DAEMON" 2>/dev/null && wait "$DAEMON" 2>/dev/null
	for m in $(awk -v r="$RUN" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | sort -r); do umount -l "$m"; done
	rm -rf "$RUN"
}
trap cleanup EXIT

say "start the daemon (gRPC $SOCK, CSI $CSI)"
mkdir -p "$PODS/$POD_UID/volumes/kubernetes.io~csi/bpf-maps"
"$BPFMAN" --runtime-dir "$RUN/rt" serve --listen "$SOCK" --csi-support \
	--csi-endpoint "unix://$CSI" --pods-dir "$PODS" --node-id demo-node >"$LOG" 2>&1 &
DAEMON=$!
for _ in $(seq 100); do
	"$BPFMAN" health --listen "$SOCK" >/dev/null 2>&1 && break
	sleep 0.1
done
"$BPFMAN" health --listen "$SOCK"
export BPFMAN_SOCKET="$SOCK"

say "bpfman load file -m bpfman.io/application=stats examples/stats/stats.bpf.o count_sched_switch"
ID=$("$BPFMAN" -o json load file -m bpfman.io/application=stats examples/stats/stats.bpf.o count_sched_switch |
	python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$BPFMAN" list
say "bpfman attach $ID tracepoint   (sched/sched_switch, from the ELF section)"
"$BPFMAN" attach "$ID" tracepoint

say "kubelet: NodePublishVolume {bpfman.io/application: stats} -> $TARGET"
"$KUBELET" publish --endpoint "$CSI" --volume-id csi-demo-volume --target "$TARGET" \
	--pod-uid "$POD_UID" --fs-group 65534 --attr bpfman.io/application=stats
ls -l "$TARGET"

say "stats-reader as uid 65534 in its own mount namespace, volume at /bpf"
# The pod's view: a private mount namespace where the volume sits at /bpf.
OUT=$(unshare --mount --propagation private sh -c "
	mount -t tmpfs -o size=1m tmpfs /mnt && mkdir /mnt/bpf && mount --bind '$TARGET' /mnt/bpf &&
	exec setpriv --reuid=65534 --regid=65534 --clear-groups '$READER' --map /mnt/bpf/stats_map --count 5 --interval-ms 1000")
echo "$OUT"

say "unpublish, detach, unload, stop"
"$KUBELET" unpublish --endpoint "$CSI" --volume-id csi-demo-volume --target "$TARGET"
"$BPFMAN" unload "$ID"
"$BPFMAN" gc
kill "$DAEMON"
wait "$DAEMON" || true
DAEMON=""
unset BPFMAN_SOCKET

say "checks"
fail=0
FIRST=$(echo "$OUT" | head -1 | grep -o '[0-9]*$')
LAST=$(echo "$OUT" | tail -1 | grep -o '[0-9]*$')
if [ -n "$FIRST" ] && [ -n "$LAST" ] && [ "$LAST" -gt "$FIRST" ]; then
	echo "ok: the counter grew from $FIRST to $LAST"
else
	echo "FAIL: the counter did not grow ($FIRST -> $LAST)"; fail=1
fi
if bpftool prog show id "$ID" >/dev/null 2>&1; then
	echo "FAIL: program $ID is still in the kernel"; fail=1
else
	echo "ok: program $ID is gone from the kernel"
fi
left=$(awk -v r="$RUN" '$5 ~ "^"r {print $5}' /proc/self/mountinfo | grep -v "^$RUN/rt/fs$" || true)
if [ -n "$left" ]; then
	echo "FAIL: mounts left: $left"; fail=1
else
	echo "ok: no volume mounts left"
fi
pins=$(find "$RUN/rt/fs" -mindepth 1 -not -name '*.debug' -not -path "$RUN/rt/fs/links" | head)
if [ -n "$pins" ]; then
	echo "FAIL: pins left: $pins"; fail=1
else
	echo "ok: no pins left under $RUN/rt/fs"
fi
[ -e "$SOCK" ] && { echo "FAIL: socket left: $SOCK"; fail=1; } || echo "ok: daemon removed its socket"
if [ "$fail" != 0 ]; then
	echo "--- daemon log ---"; cat "$LOG"
	[ "$CHECK" = 1 ] && exit 1
fi
echo "demo: done"
