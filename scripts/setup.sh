#!/bin/bash
# Installs what sniffguard needs on a Debian 12 host, then builds the workspace.
# Idempotent and quick when everything is already there. Must run as root.
#
#   scripts/setup.sh            # packages + `cargo build --workspace`
#   source scripts/setup.sh     # the same, keeping its environment (PATH, eBPF toolchain)
#
# Then the eBPF toolchain (rust-src, bpf-linker). Packages: the container runtimes the tests and the demo drive (runc, crun), the
# test root filesystem's ingredients (busybox-static, tcpdump), libseccomp's
# headers for the `libseccomp` crate, gcc for static test helpers (libpcap-dev
# for the one that embeds libpcap, patchelf to rename a tcpdump's libpcap), jq for the
# demo's table, podman, containerd and docker.io (dockerd, started by the tests
# themselves with a private data root) for the integration tests.
set -euo pipefail

packages=(runc crun busybox-static tcpdump libseccomp-dev pkg-config gcc jq iproute2 podman containerd docker.io patchelf libpcap-dev)

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

# cargo, rustup and bpf-linker live in ~/.cargo/bin.
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo >/dev/null || {
	echo "setup.sh: no Rust toolchain found; install one with rustup (stable 1.95 or later)" >&2
	exit 1
}

# The eBPF programs (supervisor-ebpf/) are built by the supervisor's build.rs
# with aya-build: a toolchain that can build `core` for bpfel-unknown-none
# (nightly with rust-src; stable with rust-src and RUSTC_BOOTSTRAP=1 otherwise)
# and bpf-linker. Never `rustup update`/install a toolchain: that would replace
# the machine's own.
if rustup run nightly rustc --version >/dev/null 2>&1; then
	ebpf_toolchain=nightly
else
	ebpf_toolchain=stable
	export RUSTC_BOOTSTRAP=1
fi
export SNIFFGUARD_EBPF_TOOLCHAIN=$ebpf_toolchain
if ! rustup component list --toolchain "$ebpf_toolchain" --installed 2>/dev/null | grep -q '^rust-src'; then
	echo "setup.sh: adding rust-src to the $ebpf_toolchain toolchain" >&2
	rustup component add rust-src --toolchain "$ebpf_toolchain"
fi
if ! command -v bpf-linker >/dev/null; then
	echo "setup.sh: installing bpf-linker 0.10.0 (about a minute)" >&2
	cargo install bpf-linker --version 0.10.0 --locked --quiet
fi

cd "$(dirname "$0")/.."
cargo build --workspace --locked --quiet
