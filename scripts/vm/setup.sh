#!/usr/bin/env bash
# Prepares this machine for the VM test runner (scripts/vm/run.sh).
# Run as root on Debian 12. Idempotent: once everything is cached, a second
# run downloads nothing and touches no network.
#
#   1. Debian packages: qemu-system-x86 (TCG), kmod (depmod/modprobe -d),
#      busybox-static (virtme-ng's initramfs), udev (virtme-ng-init runs the
#      host's udevd in the guest to create /dev/virtio-ports/*, without which
#      the guest script's output and exit code are lost), python3-venv.
#   2. A venv with a pinned virtme-ng at $BPFMAN_VM_CACHE/venv.
#   3. Every kernel of scripts/vm/kernels.conf: `apt-get download`, `dpkg -x`
#      into $BPFMAN_VM_CACHE/kernels/PKG, `depmod -b`. A kernel is done once
#      kernels/PKG/.ready exists (it holds the kernel version).
#
# Environment: BPFMAN_VM_CACHE (default /var/cache/bpfman-vm),
#              BPFMAN_VM_KERNELS_CONF (default scripts/vm/kernels.conf).
set -euo pipefail

VM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${BPFMAN_VM_CACHE:-/var/cache/bpfman-vm}"
KERNELS_CONF="${BPFMAN_VM_KERNELS_CONF:-$VM_DIR/kernels.conf}"
# Pinned: virtme-ng's command line and guest init change between releases.
VIRTME_NG_VERSION=1.42
# Debian's interpreter, not whatever python3 is first on PATH (pyenv shims).
PYTHON="${PYTHON:-/usr/bin/python3}"

APT_PACKAGES=(qemu-system-x86 kmod busybox-static udev python3 python3-venv)

log() { printf 'vm-setup: %s\n' "$*"; }
die() { printf 'vm-setup: error: %s\n' "$*" >&2; exit 1; }

[[ $EUID -eq 0 ]] || die "run as root (apt-get, depmod)"

# --- 1. Debian packages -----------------------------------------------------
apt_updated=0
apt_update() {
	if ((apt_updated == 0)); then
		log "apt-get update"
		apt-get update -qq
		apt_updated=1
	fi
}

missing=()
for p in "${APT_PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[[ $status == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt_update
	apt-get install -y -qq "${missing[@]}" >/dev/null
else
	log "Debian packages: all present"
fi

# --- 2. virtme-ng venv --------------------------------------------------------
VENV="$CACHE/venv"
have_virtme() {
	[[ -x $VENV/bin/virtme-run ]] || return 1
	local info
	info=$("$VENV/bin/pip" show virtme-ng 2>/dev/null) || return 1
	grep -qx "Version: $VIRTME_NG_VERSION" <<<"$info"
}
if have_virtme; then
	log "virtme-ng $VIRTME_NG_VERSION: present"
else
	log "installing virtme-ng $VIRTME_NG_VERSION into $VENV"
	mkdir -p "$CACHE"
	[[ -x $VENV/bin/pip ]] || "$PYTHON" -m venv "$VENV"
	"$VENV/bin/pip" install --quiet --disable-pip-version-check \
		"virtme-ng==$VIRTME_NG_VERSION"
	have_virtme || die "virtme-ng did not install into $VENV"
fi

# --- 3. kernels ---------------------------------------------------------------
[[ -r $KERNELS_CONF ]] || die "no kernel list at $KERNELS_CONF"
mapfile -t KERNELS < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$KERNELS_CONF" | grep -v '^$')
((${#KERNELS[@]})) || die "$KERNELS_CONF lists no kernel"

mkdir -p "$CACHE/kernels" "$CACHE/debs"
for pkg in "${KERNELS[@]}"; do
	dest="$CACHE/kernels/$pkg"
	if [[ -s $dest/.ready ]]; then
		log "$pkg: cached ($(cat "$dest/.ready"))"
		continue
	fi
	shopt -s nullglob
	debs=("$CACHE/debs/${pkg}_"*.deb)
	shopt -u nullglob
	if ((${#debs[@]} == 0)); then
		log "$pkg: apt-get download"
		# Sandbox user root: the cache dir is root's, _apt could not write it.
		dl() { (cd "$CACHE/debs" && apt-get download -qq -o APT::Sandbox::User=root "$pkg"); }
		if ! dl; then
			# The package lists may be stale or absent on a fresh machine.
			apt_update
			dl || die "$pkg: not downloadable; pick a current kernel (apt-cache depends linux-image-amd64) and edit $KERNELS_CONF"
		fi
		shopt -s nullglob
		debs=("$CACHE/debs/${pkg}_"*.deb)
		shopt -u nullglob
		((${#debs[@]})) || die "$pkg: apt-get download left no .deb in $CACHE/debs"
	fi
	tmp="$CACHE/kernels/.tmp-$pkg"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	log "$pkg: dpkg -x ${debs[-1]##*/}"
	dpkg -x "${debs[-1]}" "$tmp"
	versions=("$tmp"/lib/modules/*)
	if ((${#versions[@]} != 1)) || [[ ! -d ${versions[0]} ]]; then
		die "$pkg: expected one lib/modules/VERSION dir, found: ${versions[*]}"
	fi
	version="${versions[0]##*/}"
	[[ -f $tmp/boot/vmlinuz-$version ]] || die "$pkg: no boot/vmlinuz-$version"
	depmod -b "$tmp" "$version"
	printf '%s\n' "$version" >"$tmp/.ready"
	rm -rf "$dest"
	mv "$tmp" "$dest"
	# The unpacked tree is the cache; the .deb is not needed any more.
	rm -f "${debs[@]}"
	log "$pkg: ready ($version)"
done
log "done (cache: $CACHE)"
