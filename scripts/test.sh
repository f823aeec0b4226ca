#!/usr/bin/env bash
# Quick start, command 2: the whole test suite, built once in the release profile (the same
# build the quick start and the benchmarks use, so nothing is compiled twice).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/niji-target}"
cargo test --release --workspace "$@"
