#!/usr/bin/env bash
# Builds the test executables of the given crates and prints them as
# EXE@CRATE_DIR, one a line, for scripts/vm/run.sh:
#
#   scripts/vm/cargo-test-exes.sh [CARGO_OPTION...] CRATE...
#   scripts/vm/run.sh -- $(scripts/vm/cargo-test-exes.sh bpfman-kernel bpfman)
#
# Words starting with '-' are passed to `cargo test --no-run` as they are
# (e.g. --release, --features=x, --test=NAME); any other word is a crate
# (-p CRATE). Cargo's progress goes to stderr; the exit code is cargo's.
set -euo pipefail

CARGO="${CARGO:-cargo}"
args=()
for a in "$@"; do
	case "$a" in
	-*) args+=("$a") ;;
	*) args+=(-p "$a") ;;
	esac
done

"$CARGO" test --no-run --message-format=json-render-diagnostics "${args[@]}" |
	python3 -c '
import json, os, sys

seen = set()
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact":
        continue
    exe = msg.get("executable")
    if not exe or not msg.get("profile", {}).get("test"):
        continue
    if exe in seen:
        continue
    seen.add(exe)
    print(exe + "@" + os.path.dirname(msg["manifest_path"]))
'
