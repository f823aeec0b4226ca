#!/usr/bin/env bash
# Quick start, command 2: the whole test suite, built once in the release profile (the same
# build the quick start and the benchmarks use, so nothing is compiled twice). Ends with one
# line that totals every test binary: "tests: N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/niji-target}"
# The end-to-end tests drive niji with clients nobody here wrote (ADBC Flight SQL, pyarrow).
bash scripts/setup-python.sh
# Every governance and audit test runs on SQLite and on a PostgreSQL server the tests start.
bash scripts/setup-postgres.sh
# The portal's tests drive Debian's headless Chromium through chromedriver.
bash scripts/setup-browser.sh
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --release --workspace --lib --bins --tests --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo '^test result: .* ([0-9]+) passed' "$log" | grep -Eo '[0-9]+ passed' | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '; ([0-9]+) failed' "$log" | grep -Eo '[0-9]+' | awk '{s+=$1} END {print s+0}')
echo "tests: $passed passed, $failed failed"
if [ "$passed" -eq 0 ] && [ "$status" -eq 0 ]; then
  echo "no test ran" >&2
  exit 1
fi
exit "$status"
