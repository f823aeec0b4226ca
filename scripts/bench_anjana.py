#!/usr/bin/env python3
"""anjana (PyPI) beside niji on the same anonymisation job, for `niji-bench anonymise`.

niji-bench writes the prepared extract (quasi-identifiers at their finest level, rare values
pooled, kept numbers coded; no person column), one hierarchy per quasi-identifier (a CSV whose
first column is the finest label and each next column what it reads one level up), and niji's
own anonymised file. This script runs anjana's k-anonymity on the prepared extract with the same
hierarchies, k and suppression limit, then measures both files with the same evaluator: k by
pycanon (anjana's own checker), records left out, values suppressed, and the information lost
(normalised certainty penalty, discernibility, mean group size over k) from the hierarchies.

usage: bench_anjana.py PREPARED.csv HIERARCHY_DIR NIJI.csv K SUPPRESSION_PERCENT QI[,QI...]
prints one JSON object: {"anjana": {...}, "niji": {...}}
"""
import contextlib
import io
import json
import os
import sys
import time

import pandas as pd
import pycanon.anonymity
from anjana.anonymity import k_anonymity


def read(path):
    # Labels as text, an empty label as the empty string (never NaN).
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def hierarchies(directory, quasi):
    out = {}
    for q in quasi:
        table = pd.read_csv(os.path.join(directory, f"{q}.csv"), dtype=str, keep_default_na=False, header=0)
        out[q] = {level: table.iloc[:, level].to_numpy() for level in range(table.shape[1])}
    return out


def leaves(hierarchy):
    """Per label (at any level): how many finest labels it covers; and the domain's size."""
    finest = hierarchy[0]
    domain = len(set(finest))
    covers = {}
    for level, labels in hierarchy.items():
        per = {}
        for f, label in zip(finest, labels):
            per.setdefault(label, set()).add(f)
        for label, fs in per.items():
            covers[label] = max(covers.get(label, 0), len(fs))
    return covers, domain


def measure(frame, quasi, hier, n, k):
    kept = len(frame)
    removed = n - kept
    penalty = removed * len(quasi)
    suppressed_values = 0
    for q in quasi:
        covers, domain = leaves(hier[q])
        counts = pd.Series(frame[q].to_numpy()).value_counts()
        for label, count in counts.items():
            if label == "*":
                penalty += count
                # A column all `*` is generalised; some `*` are values suppressed locally.
                if count < kept:
                    suppressed_values += int(count)
            elif domain > 1:
                penalty += count * (covers.get(label, 1) - 1) / (domain - 1)
    groups = frame.groupby(quasi, dropna=False).size() if kept else pd.Series(dtype=int)
    return {
        "k_reached": int(pycanon.anonymity.k_anonymity(frame, quasi)) if kept else 0,
        "records_out": kept,
        "records_suppressed": removed,
        "values_suppressed": suppressed_values,
        "groups": int(len(groups)),
        "generalisation_loss": round(penalty / (n * len(quasi)), 6),
        "discernibility": int((groups.astype("int64") ** 2).sum()) + removed * n,
        "average_group_size": round(kept / len(groups) / k, 6) if len(groups) else 0.0,
    }


def main():
    prepared_path, hier_dir, niji_path, k, supp, quasi = sys.argv[1:7]
    k, supp, quasi = int(k), float(supp), quasi.split(",")
    prepared = read(prepared_path)
    hier = hierarchies(hier_dir, quasi)
    n = len(prepared)
    started = time.perf_counter()
    # anjana prints its progress; only the JSON goes to stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        anonymised = k_anonymity(prepared, [], quasi, k, supp, {q: dict(h) for q, h in hier.items()})
    seconds = time.perf_counter() - started
    anjana = measure(anonymised, quasi, hier, n, k) if len(anonymised) else {"records_out": 0}
    anjana["seconds"] = round(seconds, 3)
    niji = measure(read(niji_path), quasi, hier, n, k)
    print(json.dumps({"anjana": anjana, "niji": niji}))


if __name__ == "__main__":
    main()
