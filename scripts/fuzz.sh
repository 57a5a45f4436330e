#!/bin/bash
# Fuzzes every parser sniffguard reads untrusted input with (fuzz/, cargo-fuzz
# and libFuzzer on the nightly toolchain), one target after the other, each for
# a fixed time.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]   # default: 60 s each, every target
#
# Installs cargo-fuzz when it is missing (`cargo install cargo-fuzz --locked`);
# never installs or updates a toolchain. Inputs are kept to 8 KiB (-max_len;
# larger corpus files are read truncated). New inputs go to fuzz/work/TARGET/
# (not committed); the committed regression corpus fuzz/corpus/TARGET/ is read,
# never written. A crash, hang (10 s per input) or leak leaves its input in
# fuzz/artifacts/TARGET/: reproduce it with
# `cd fuzz && cargo +nightly fuzz run -a TARGET ARTIFACT`, add it to
# fuzz/corpus/TARGET/ once fixed, and `cargo test -p sniffguard-tests --test
# fuzz_corpus` replays it on stable from then on. Exits non-zero when any target
# found something.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${1:-60}
shift || true
case $seconds in
'' | *[!0-9]*)
	echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
	exit 2
	;;
esac

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
	echo "fuzz.sh: libFuzzer needs a nightly toolchain (rustup's 'nightly'); none is installed" >&2
	exit 1
fi
if ! command -v cargo-fuzz >/dev/null; then
	echo "fuzz.sh: installing cargo-fuzz (a few minutes)" >&2
	cargo install cargo-fuzz --locked --quiet
fi
# The supervisor's build script builds its eBPF programs: that needs
# bpf-linker and rust-src, which scripts/setup.sh installs.
if ! command -v bpf-linker >/dev/null; then
	# shellcheck source=setup.sh
	source scripts/setup.sh
fi
export SNIFFGUARD_EBPF_TOOLCHAIN=nightly

cd fuzz
mkdir -p work
if [ $# -gt 0 ]; then
	targets=("$@")
else
	mapfile -t targets < <(cargo +nightly fuzz list)
fi

# -a: debug assertions and overflow checks, so that an arithmetic overflow on
# crafted input is a finding rather than a silent wrap.
if ! cargo +nightly fuzz build -a >work/build.log 2>&1; then
	tail -n 40 work/build.log >&2
	exit 1
fi

failed=()
summary=()
for target in "${targets[@]}"; do
	mkdir -p "work/$target" "artifacts/$target"
	log="work/$target.log"
	echo "fuzz.sh: $target for ${seconds}s" >&2
	status=ok
	if ! cargo +nightly fuzz run -a "$target" "work/$target" "corpus/$target" -- \
		-max_total_time="$seconds" -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 >"$log" 2>&1; then
		status=FOUND
		failed+=("$target")
		tail -n 30 "$log" >&2
	fi
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
	summary+=("$(printf '%-16s %-6s %10s runs %7s/s  %s' "$target" "$status" "${runs:-?}" "${rate:-?}" "fuzz/$log")")
done

printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: findings in ${failed[*]}: see fuzz/artifacts/" >&2
	exit 1
fi
