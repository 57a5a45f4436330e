#!/bin/bash
# Sets up the host (scripts/setup.sh) and runs every test of the workspace:
# unit tests, golden tests, and the integration tests that start real runc and
# crun containers against a real supervisor (root only; they skip loudly
# otherwise). Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo test --workspace --locked "$@"
