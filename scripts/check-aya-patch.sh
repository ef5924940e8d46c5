#!/usr/bin/env bash
# Checks that third_party/aya-0.14.0 is exactly the crates.io release of aya
# 0.14.0 plus third_party/aya-0.14.0.bpfman.patch: downloads the .crate,
# checks its sha256 (the one Cargo.lock held before the patch), applies the
# patch and compares the trees.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
sha=66e644424fada9fff4fdc63848db1732fb69b626e8328202ef55c03df1f4d939
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -sSfL -o "$tmp/aya.crate" https://static.crates.io/crates/aya/aya-0.14.0.crate
echo "$sha  $tmp/aya.crate" | sha256sum -c --quiet
tar -xzf "$tmp/aya.crate" -C "$tmp"
(cd "$tmp/aya-0.14.0" && patch -s -p1 <"$root/third_party/aya-0.14.0.bpfman.patch" &&
	rm -f .cargo-ok .cargo_vcs_info.json Cargo.lock)
diff -r "$tmp/aya-0.14.0" "$root/third_party/aya-0.14.0"
echo "third_party/aya-0.14.0 = crates.io aya 0.14.0 + bpfman patch"
