#!/bin/bash
# Builds the two binaries that run on the nodes, outside any container of ours: the
# runtime shim (sniffguard-runtime) and the OCI hook (sniffguard-hook), as static
# executables for x86_64-unknown-linux-musl. They then run on any x86_64 Linux node,
# whatever its C library: a build against this Debian 12's glibc 2.36 needs glibc 2.34
# or later and so fails to start on Ubuntu 20.04, Debian 11, RHEL 8 or Amazon Linux 2.
# (The supervisor runs in its own image and needs no such build.)
#
#   scripts/build-static.sh            # release build (what the image ships)
#
# Output: target/x86_64-unknown-linux-musl/release/{sniffguard-runtime,sniffguard-hook}.
# Idempotent: adds the musl target to the active toolchain once, then lets cargo decide
# what to rebuild. Neither binary links a C library but libc: the hook crate builds its
# seccomp filters with seccompiler (pure Rust), not libseccomp, so Rust's own musl
# (self-contained: crt objects and libc.a come with the target) is enough, and Debian's
# musl-tools is not needed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
target=x86_64-unknown-linux-musl

if ! rustup target list --installed | grep -qx "$target"; then
	echo "build-static.sh: adding the $target target to the Rust toolchain" >&2
	rustup target add "$target"
fi
cargo build --locked --quiet --release --target "$target" -p sniffguard-hook \
	--bin sniffguard-runtime --bin sniffguard-hook
