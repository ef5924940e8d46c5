#!/usr/bin/env bash
# Runs the bpfman benchmark and keeps its report in target/bench-report.txt.
#
#   scripts/bench.sh                      # full run (sizes 1,100,1000)
#   scripts/bench.sh --sizes 1,100        # any bpfman-bench flag passes through
#   scripts/bench.sh --help               # the bench's flags
#
# Builds the release binaries of bpfman and bpfman-bench, then runs the bench
# as root (via sudo when needed). The bench works in its own directory under
# /tmp with its own bpffs mounts in a private mount namespace, and removes all
# of it at the end: it never touches /run/bpfman or /sys/fs/bpf. Progress goes
# to stderr; the report (stdout) is also written to target/bench-report.txt,
# and a full run (no flags) writes it into docs/benchmarks.md.
# Needs bpftool for the baseline (scripts/install-deps.sh installs it).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
REPORT="$ROOT/target/bench-report.txt"

cargo build --release -p bpfman -p bpfman-bench

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  SUDO=(sudo)
fi

mkdir -p "$(dirname "$REPORT")"
{
  echo "bpfman $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?') on $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: scripts/bench.sh $*"
  echo
} > "$REPORT"

# pipefail makes the script fail when the bench does, even through tee.
"${SUDO[@]}" "$TARGET_DIR/release/bpfman-bench" \
  --bpfman "$TARGET_DIR/release/bpfman" \
  --object "$ROOT/examples/stats/stats.bpf.o" \
  --tenmaps "$ROOT/tests/bpf/tenmaps.bpf.o" \
  "$@" | tee -a "$REPORT"
echo "report written to $REPORT" >&2
if [ "$#" -eq 0 ]; then
  {
    echo "# Benchmarks"
    echo
    echo "Written by \`scripts/bench.sh\` (a full run, no flags) on the machine it names;"
    echo "every ratio is against \`bpftool prog load\` of the same object in the same run."
    echo "Read the figures as this machine's: rerun the command on yours."
    echo
    echo '```'
    cat "$REPORT"
    echo '```'
  } > "$ROOT/docs/benchmarks.md"
  echo "docs/benchmarks.md updated" >&2
fi
