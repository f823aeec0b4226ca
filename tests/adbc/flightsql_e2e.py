"""Drives niji's Flight SQL endpoint with the Apache Arrow ADBC Flight SQL driver (a client
niji did not write). Run by crates/server/tests/it/adbc.rs against a TestServer:

    flightsql_e2e.py URI USER TOKEN PROJECT OTHER_PROJECT

Prints one JSON object with what each step saw; the Rust test asserts on it.
"""
import json
import sys

import adbc_driver_flightsql.dbapi as flight_sql
import pyarrow
import pyarrow.flight as flight


def connect(uri, user, token, project, mode="dummy"):
    return flight_sql.connect(
        uri,
        db_kwargs={
            "username": user,
            "password": token,
            "adbc.flight.sql.rpc.call_header.x-niji-project": project,
            "adbc.flight.sql.rpc.call_header.x-niji-mode": mode,
        },
    )


def run(conn, sql):
    """(table, None) or (None, error message)."""
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetch_arrow_table(), None
    except Exception as e:  # the driver raises its own DB-API error classes
        return None, f"{type(e).__name__}: {e}"


def varint(n):
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def flight_info_metadata(uri, user, token, project, sql):
    """The app_metadata of the FlightInfo of a real-data query, read with plain Arrow Flight
    (ADBC does not show it): CommandStatementQuery wrapped in a protobuf Any, by hand."""
    client = flight.FlightClient(uri)
    auth = client.authenticate_basic_token(user, token)
    options = flight.FlightCallOptions(
        headers=[auth, (b"x-niji-project", project.encode()), (b"x-niji-mode", b"real")]
    )
    query = sql.encode()
    command = b"\x0a" + varint(len(query)) + query
    url = b"type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"
    wrapped = b"\x0a" + varint(len(url)) + url + b"\x12" + varint(len(command)) + command
    info = client.get_flight_info(flight.FlightDescriptor.for_command(wrapped), options)
    return json.loads(info.app_metadata)


def main():
    uri, user, token, project, other = sys.argv[1:6]
    seen = {}
    with connect(uri, user, token, project) as conn:
        table, err = run(
            conn,
            "SELECT sex, count(*) AS receipts, count(DISTINCT pid) AS persons "
            "FROM ndb.receipts GROUP BY sex ORDER BY sex",
        )
        assert err is None, err
        assert isinstance(table, pyarrow.Table)
        seen["dummy"] = {
            "columns": table.column_names,
            "rows": table.num_rows,
            "receipts": sum(table.column("receipts").to_pylist()),
            "pid_type": str(
                run(conn, "SELECT pid FROM ndb.receipts LIMIT 1")[0].schema.field("pid").type
            ),
        }
        for name, sql in {
            "external_table": "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "copy": "COPY (SELECT 1) TO '/tmp/niji-adbc-leak.csv'",
            "raw_id": "SELECT id5 FROM ndb.receipts",
            "other_project": f"SELECT * FROM work.anything_{other.replace('-', '_')}",
            "two_statements": "SELECT 1; SELECT 2",
        }.items():
            _, err = run(conn, sql)
            seen[name] = err
    with connect(uri, user, token, project, mode="real") as conn:
        # An aggregate over many persons passes disclosure control; rows do not.
        table, err = run(conn, "SELECT sex, count(*) AS n FROM ndb.receipts GROUP BY sex")
        seen["real_released"] = err or {"rows": table.num_rows}
        # Rows are held: an answer without rows, whose schema says so.
        table, err = run(conn, "SELECT pid, days FROM ndb.receipts LIMIT 5")
        seen["real_rows"] = err or {
            "rows": table.num_rows,
            "status": (table.schema.metadata or {}).get(b"niji.status", b"").decode(),
            "message": (table.schema.metadata or {}).get(b"niji.message", b"").decode(),
        }
    # Masked cells and why, beside the stream.
    meta = flight_info_metadata(
        uri,
        user,
        token,
        project,
        "SELECT prefecture, count(*) AS n FROM ndb.receipts GROUP BY prefecture",
    )
    # A held result's FlightInfo is an answer that never tells how many rows it has.
    held = flight_info_metadata(
        uri, user, token, project, "SELECT pid, days FROM ndb.receipts WHERE sex = '1'"
    )
    seen["held"] = {
        "status": held["status"],
        "message": held["message"],
        "has_row_count": "row_count" in held,
    }
    seen["real_metadata"] = {
        "status": meta["status"],
        "reasons": sorted({c["reason"] for c in meta["suppressed"]}),
        "has_rows": "rows" in meta,
        "small_groups_withheld": meta["small_groups_withheld"],
    }
    try:
        with connect(uri, user, "niji_" + "0" * 64, project) as conn:
            _, err = run(conn, "SELECT 1")
            seen["bad_token"] = err
    except Exception as e:
        seen["bad_token"] = f"{type(e).__name__}: {e}"
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
