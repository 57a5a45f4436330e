#!/bin/bash
# Installs what sniffguard needs on a Debian 12 host, then builds the workspace.
# Idempotent and quick when everything is already there. Must run as root.
#
#   scripts/setup.sh            # packages + `cargo build --workspace`
#
# Packages: the container runtimes the tests and the demo drive (runc, crun), the
# test root filesystem's ingredients (busybox-static, tcpdump), libseccomp's
# headers for the `libseccomp` crate, gcc for static test helpers, jq for the
# demo's table.
set -euo pipefail

packages=(runc crun busybox-static tcpdump libseccomp-dev pkg-config gcc jq iproute2)

if [ "$(id -u)" -ne 0 ]; then
	echo "setup.sh: run as root (it installs packages and the tests start containers)" >&2
	exit 1
fi

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "setup.sh: installing ${missing[*]}" >&2
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
	[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null || {
	echo "setup.sh: no Rust toolchain found; install one with rustup (stable 1.95 or later)" >&2
	exit 1
}

cd "$(dirname "$0")/.."
cargo build --workspace --locked --quiet
