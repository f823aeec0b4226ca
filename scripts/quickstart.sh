#!/usr/bin/env bash
# Quick start, command 1: niji's main job on embedded defaults. Synthesises a delivery of
# 20,000 persons (./niji-raw), creates a custodian key if there is none (./niji-keys, mode
# 0600, outside the data directory), ingests it into ./niji-data and prints the ingest,
# identifier and linkage report and the catalog. Extra arguments go to `niji demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/niji-target}"
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
# The whole workspace's binaries, so this build and the tests share one feature set (one build).
cargo build --release --quiet --workspace --bins
exec "$CARGO_TARGET_DIR/release/niji" demo "$@"
