#!/usr/bin/env bash
# A niji Ballista cluster on this machine: a scheduler and executors as processes of their
# own on loopback, each with niji's codecs (`niji ballista scheduler|executor`), then the
# visiting suite on it through the chokepoint, beside DataFusion and DuckDB on the same
# Parquet (`niji-bench visiting --engine ballista://…`). The processes stop when it ends.
#
#   scripts/ballista-cluster.sh                 # 2 executors, the suite on 700,000 persons
#   EXECUTORS=3 scripts/ballista-cluster.sh --persons 100000 --runs 3
#
# Any arguments go to niji-bench visiting. docs/ballista.md says how to spread a cluster over
# machines.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/niji-target}"
executors="${EXECUTORS:-2}"
port="${NIJI_BALLISTA_PORT:-50050}"

scripts/setup-python.sh >/dev/null
# The build the tests use (the same artifacts; a build of the binaries alone would build
# DataFusion again).
cargo build --release --workspace --lib --bins --tests
bin="$CARGO_TARGET_DIR/release"
logs="$(mktemp -d)"
pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT

"$bin/niji" ballista scheduler --bind "127.0.0.1:$port" >"$logs/scheduler.log" 2>&1 &
pids+=($!)
for i in $(seq 1 "$executors"); do
    "$bin/niji" ballista executor --scheduler "127.0.0.1:$port" --cores 2 \
        >"$logs/executor-$i.log" 2>&1 &
    pids+=($!)
done
echo "Ballista: a scheduler on 127.0.0.1:$port and $executors executor(s); logs in $logs" >&2

"$bin/niji-bench" visiting --engine "ballista://127.0.0.1:$port" "$@"
