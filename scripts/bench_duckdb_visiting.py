"""DuckDB's side of `niji-bench visiting`: the same analysis queries on the same Parquet.

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
con.execute("CREATE SCHEMA ndb")
for table in ("receipts", "diagnoses"):
    con.execute(
        f"CREATE VIEW ndb.{table} AS SELECT * FROM read_parquet('{store}/ndb/{table}/*.parquet')"
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
