"""ACRO's side of `niji-bench acro`: the same tables, checked by ACRO (the SACRO project's
automatic output checker) on the same stored receipts.

    acro_check.py STORE TABLES.json

TABLES.json is a list of {"name", "filter" (a pandas query), "index", "columns", "values",
"aggfunc"}. Prints one JSON object {name: [[index value, column value, outcome], ...]}, where
outcome is "ok" or ACRO's failed checks.
"""
import glob
import json
import logging
import sys

import pandas as pd
import pyarrow.parquet as pq
from acro import ACRO

logging.disable(logging.CRITICAL)
store, tables_file = sys.argv[1], sys.argv[2]
receipts = pq.read_table(
    sorted(glob.glob(f"{store}/ndb/receipts/*.parquet")),
    columns=["prefecture", "sex", "setting", "claim_ym", "copay_rate", "days", "points"],
).to_pandas()
acro = ACRO(suppress=False)
out = {}
for t in json.load(open(tables_file)):
    df = receipts.query(t["filter"]) if t["filter"] else receipts
    kwargs = {}
    if t["values"]:
        kwargs = {"values": df[t["values"]].astype(float), "aggfunc": t["aggfunc"]}
    acro.crosstab(df[t["index"]], df[t["columns"]], **kwargs)
    outcome = acro.results.results[list(acro.results.results)[-1]].outcome
    out[t["name"]] = [
        [str(i), str(c), str(outcome.loc[i, c]).strip() or "ok"]
        for i in outcome.index
        for c in outcome.columns
    ]
print(json.dumps(out))
