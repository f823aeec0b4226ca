"""A standard dataset over niji's Flight SQL endpoint with the ADBC Flight SQL driver
(`x-niji-mode: dataset`, the statement the dataset's name). Run by
crates/server/tests/it/datasets.rs:

    dataset_e2e.py URI USER TOKEN DATASET

Prints one JSON object: the columns and rows received, or the error.
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql

uri, user, token, dataset = sys.argv[1:5]
conn = flight_sql.connect(
    uri,
    db_kwargs={
        "username": user,
        "password": token,
        "adbc.flight.sql.rpc.call_header.x-niji-mode": "dataset",
    },
)
try:
    with conn.cursor() as cur:
        cur.execute(dataset)
        table = cur.fetch_arrow_table()
    print(json.dumps({"columns": table.column_names, "rows": table.num_rows}))
except Exception as e:  # the driver raises its own DB-API error classes
    print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
