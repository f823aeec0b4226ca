"""DuckDB's side of `niji-bench ingest`: the same job on the same files.

Reads the receipts extract and the insured-number history, computes keyed SHA-256
identifiers (DuckDB has no HMAC: sha256(key || fields) stands in, the same hash work per
row), resolves ID5 through the oldest number of each person in the history, drops the direct
identifiers and writes Parquet (zstd). Prints rows=, seconds= and duckdb=.
"""
import os
import sys
import time

import duckdb

receipts, history, out = sys.argv[1:4]
key = os.environ["NIJI_BENCH_KEY"]
con = duckdb.connect()
con.execute(f"SET threads TO {os.cpu_count()}")
started = time.perf_counter()
sep = "chr(31)"
number = f"concat_ws({sep}, insurer_no, coalesce(insured_symbol, ''), insured_number, insured_branch)"
con.execute(
    f"""
    COPY (
      WITH h AS (
        SELECT history_ref, {number} AS num, valid_from
        FROM read_csv('{history}', all_varchar = true, header = true)
      ),
      oldest AS (SELECT history_ref, arg_min(num, valid_from) AS num FROM h GROUP BY history_ref),
      id5 AS (SELECT h.num, sha256('{key}5' || oldest.num) AS id5 FROM h JOIN oldest USING (history_ref)),
      r AS (SELECT *, {number} AS num FROM read_csv('{receipts}', all_varchar = true, header = true, ignore_errors = true))
      SELECT r.record_key, CAST(r.claim_ym AS INTEGER) AS claim_ym, r.sex, r.facility_code, r.prefecture,
             r.medical_area, r.municipality, CAST(r.setting AS INTEGER) AS setting,
             CAST(r.copay_rate AS INTEGER) AS copay_rate, r.income_class, r.public_expense,
             CAST(r.days AS INTEGER) AS days, CAST(r.points AS BIGINT) AS points,
             CASE WHEN r.insurer_no IS NOT NULL THEN
               sha256('{key}1' || concat_ws({sep}, r.insurer_no, coalesce(r.insured_symbol, ''), r.insured_number, r.birth_date, r.sex)) END AS id1,
             sha256('{key}2' || concat_ws({sep}, r.kana_name, r.birth_date, r.sex)) AS id2,
             id5.id5
      FROM r LEFT JOIN id5 ON r.num = id5.num
    ) TO '{out}' (FORMAT parquet, COMPRESSION zstd)
    """
)
seconds = time.perf_counter() - started
rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
print(f"rows={rows}")
print(f"seconds={seconds:.3f}")
print(f"duckdb={duckdb.__version__}")
# This process's own peak resident memory: VmHWM of its address space. Not ru_maxrss, which
# Linux carries over exec from the parent's address space (niji-bench's own peak, then).
with open("/proc/self/status") as status:
    hwm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(f"peak_mb={hwm_kb / 1024:.0f}")
