#!/bin/bash
# What sniffguard costs a node, measured against a bare runtime in one run (issue 7):
# exec cost (plain runc / audit / enforce), seccomp decision latency under an exec storm,
# the eBPF event path (lossless exec rate, supervisor CPU per 1,000 events), container
# start through the shim and hook, and the supervisor's memory with 500 containers.
#
#   scripts/bench.sh            # as root; ~3 minutes of measuring on a 2-core VM, plus the build
#
# Sets up the host with scripts/setup.sh when something is missing, builds the release binaries
# and runs tests/benches/supervisor_cost/ against them. The tables go to the terminal
# and to bench/results.md (with the machine's cores, kernel and load average).
# Knobs (SNIFFGUARD_BENCH_EXECS, _ROUNDS, _STORM, _STARTS, _REGISTRATIONS, _WINDOW, _ONLY,
# _RESULTS) are described at the top of that file. Not part of the test suite: a missed
# target is reported, not failed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	echo "**************** SKIPPED scripts/bench.sh: needs root (it runs containers and loads eBPF programs) ****************" >&2
	exit 0
fi
# A host scripts/setup.sh has prepared needs only its choice of eBPF toolchain; otherwise it
# runs in full (packages, rust-src, bpf-linker, and a debug build the bench does not use).
export PATH="$HOME/.cargo/bin:$PATH"
ready=yes
for p in runc busybox-static tcpdump libseccomp-dev pkg-config gcc; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || ready=no
done
command -v cargo >/dev/null && command -v bpf-linker >/dev/null || ready=no
if [ "$ready" = yes ] && rustup run nightly rustc --version >/dev/null 2>&1 &&
	rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
	export SNIFFGUARD_EBPF_TOOLCHAIN=nightly
else
	source scripts/setup.sh
fi
cargo build --release --workspace --locked --quiet
SNIFFGUARD_BIN_DIR=target/release exec cargo bench -p sniffguard-tests --bench supervisor_cost --locked "$@"
