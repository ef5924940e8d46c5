#!/usr/bin/env bash
# Checks that scripts/vm/ci-tests.txt drops nothing the host cannot run: runs
# the workspace tests on the host (root) with --show-output and fails if a
# test prints a skip ("skipped", "SKIPPED") or partial-skip ("note: ...
# unavailable here") line but is not listed. Prints the host's list.
#
#   scripts/vm/check-ci-tests.sh [LIST]
set -euo pipefail
VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIST="${1:-$VM_DIR/ci-tests.txt}"
log="$(mktemp /tmp/bpfman-check-ci-tests.XXXXXX)"
trap 'rm -f "$log"' EXIT
(cd "$VM_DIR/../.." && cargo test --workspace -- --show-output) >"$log" 2>&1 || true
python3 - "$log" "$LIST" <<'PY'
import re, sys
log, lst = sys.argv[1], sys.argv[2]
listed = set()
for raw in open(lst):
    w = raw.split("#", 1)[0].split()
    listed.update(w[2:])
cur, skips = None, {}
for l in open(log, errors="replace"):
    m = re.match(r"---- (\S+) std(out|err) ----", l)
    if m:
        cur = m.group(1)
        continue
    if cur and re.search(r"\bskipped\b|SKIPPED|note: .*unavailable here", l):
        # Only skips for a kernel feature the VM has (not "needs root", not
        # host-only checks that skip where the feature exists).
        if "needs root" in l or "this kernel has kprobes" in l or "loads trampolines" in l:
            continue
        skips.setdefault(cur, l.strip()[:100])
missing = sorted(t for t in skips if t not in listed)
for t, why in sorted(skips.items()):
    print(f"{'listed ' if t in listed else 'MISSING'} {t}: {why}")
if missing:
    sys.exit(f"check-ci-tests: {len(missing)} host-skipped test(s) not in {lst}: {' '.join(missing)}")
print(f"check-ci-tests: all {len(skips)} host-skipped tests are in {lst}")
PY
