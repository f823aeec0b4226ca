"""DuckDB's side of `niji-bench visiting` and `niji-bench datasets`: the same queries on the
same Parquet.

    bench_duckdb_visiting.py STORE QUERIES.json RUNS

STORE is niji's store directory (<db>/<table>/part-*.parquet); QUERIES.json is a list of
{"name", "sql"} using the stored columns (person_idx, raw record keys). Prints one JSON object
{name: best seconds}.
"""
import json
import os
import sys
import time

import duckdb

store, queries_file, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
con = duckdb.connect()
con.execute(f"SET threads TO {os.cpu_count()}")
# Every stored table with parts, as <db>.<table>.
for db in sorted(os.listdir(store)):
    if not os.path.isdir(os.path.join(store, db)):
        continue
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {db}")
    for table in sorted(os.listdir(os.path.join(store, db))):
        parts = os.path.join(store, db, table)
        if os.path.isdir(parts) and any(name.endswith(".parquet") for name in os.listdir(parts)):
            con.execute(
                f"CREATE VIEW {db}.{table} AS SELECT * FROM read_parquet('{parts}/*.parquet')"
            )
best = {}
for q in json.load(open(queries_file)):
    times = []
    for _ in range(runs + 1):
        started = time.perf_counter()
        con.execute(q["sql"]).fetchall()
        times.append(time.perf_counter() - started)
    best[q["name"]] = min(times[1:])  # the first run warms the OS cache
print(json.dumps(best))
