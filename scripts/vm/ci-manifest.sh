#!/usr/bin/env bash
# Builds the test executables named in a VM test list (scripts/vm/ci-tests.txt)
# with one `cargo test --no-run` and prints a run.sh manifest (--manifest), one
# line per list line:
#
#   EXE@CRATE_DIR --exact TEST_NAME... [ARG...]
#
#   scripts/vm/ci-manifest.sh LIST [ARG...] > manifest
#
# ARGs (e.g. --show-output) are appended to every line. Cargo's progress goes
# to stderr. Exit 2 if a listed crate or test target does not exist.
set -euo pipefail
VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$VM_DIR/../.." && pwd)"
CARGO="${CARGO:-cargo}"
LIST="${1:?usage: ci-manifest.sh LIST [ARG...]}"
shift

# Package names and test targets of the list, for one cargo invocation.
args=()
while read -r dir target _; do
	[[ -f $REPO/$dir/Cargo.toml ]] || { echo "ci-manifest: no crate at $dir ($LIST)" >&2; exit 2; }
	pkg="$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$REPO/$dir/Cargo.toml" | head -n1)"
	args+=(-p "$pkg" "--test=$target")
done < <(sed -e 's/#.*//' "$LIST" | grep -v '^[[:space:]]*$')
((${#args[@]})) || { echo "ci-manifest: $LIST lists no test" >&2; exit 2; }

(cd "$REPO" && "$CARGO" test --no-run --message-format=json-render-diagnostics "${args[@]}") |
	python3 -c '
import json, os, shlex, sys

repo, list_path, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
exes = {}  # (crate dir, test target) -> executable
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
        continue
    if "test" not in msg["target"]["kind"]:
        continue
    d = os.path.relpath(os.path.dirname(msg["manifest_path"]), repo)
    exes[(d, msg["target"]["name"])] = msg["executable"]
with open(list_path) as f:
    for raw in f:
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        d, target, tests = words[0], words[1], words[2:]
        exe = exes.get((os.path.normpath(d), target))
        if exe is None:
            sys.exit(f"ci-manifest: no test target {target} in {d}")
        if not tests:
            sys.exit(f"ci-manifest: {d} {target}: no test names")
        cwd = os.path.join(repo, d)
        print(" ".join(shlex.quote(w) for w in [exe + "@" + cwd, "--exact", *tests, *extra]))
' "$REPO" "$LIST" "$@"
