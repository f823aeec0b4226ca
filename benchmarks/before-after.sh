#!/usr/bin/env bash
# Runs `visiting` of two builds alternately on the same store and prints both, then the
# median per query of each build's niji (the chokepoint, checks off) and checked columns:
# a change that should not slow niji down is shown not to, within this machine's drift.
#
#   benchmarks/before-after.sh "BEFORE-COMMAND" "AFTER-COMMAND" ROUNDS [visiting options]
#   benchmarks/before-after.sh "/tmp/before/niji bench" "$CARGO_TARGET_DIR/release/niji-bench" \
#       2 --persons 300000 --work /tmp/nbv --runs 3
#
# BEFORE-COMMAND is the older build's benchmark command (`niji bench` before the benchmarks
# left the product binary, `niji-bench` after); both read the same --work store.
set -euo pipefail
before=$1 after=$2 rounds=$3
shift 3
out=$(mktemp -d)
for round in $(seq 1 "$rounds"); do
  for side in before after; do
    cmd=${!side}
    echo "== round $round, $side: $cmd visiting $*" >&2
    $cmd visiting "$@" | tee "$out/$side-$round.txt"
  done
done
python3 - "$out" "$rounds" <<'PY'
import pathlib, statistics, sys
out, rounds = pathlib.Path(sys.argv[1]), int(sys.argv[2])
def table(path):
    """The per-query lines of a `visiting` table: name (38 wide), then values."""
    rows, inside = {}, False
    for line in path.read_text().splitlines():
        if line.startswith("query "):
            inside = True
        elif line.startswith("median "):
            inside = False
        elif inside and line.strip():
            values = line[38:].split()
            rows[line[:38].strip()] = {"niji": values[1], "checked": values[7]}
    return rows
def ms(v):
    return float(v.removesuffix("ms"))
runs = {side: [table(out / f"{side}-{r}.txt") for r in range(1, rounds + 1)] for side in ("before", "after")}
queries = list(runs["after"][0])
print("\nmedians over rounds (ms): niji = chokepoint with checks off; checked = with disclosure control")
print(f"| query | niji before | niji after | change | checked before | checked after | change |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
changes = {"niji": [], "checked": []}
for q in queries:
    line = [q]
    for col in ("niji", "checked"):
        b = statistics.median(ms(t[q][col]) for t in runs["before"] if q in t)
        a = statistics.median(ms(t[q][col]) for t in runs["after"] if q in t)
        changes[col].append(a / b - 1)
        line += [f"{b:.1f}", f"{a:.1f}", f"{(a / b - 1) * 100:+.1f}%"]
    print("| " + " | ".join(line) + " |")
for col, c in changes.items():
    print(f"median change of {col} over the suite: {statistics.median(c) * 100:+.1f}%")
PY
