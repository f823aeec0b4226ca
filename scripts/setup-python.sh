#!/usr/bin/env bash
# Installs the Python peers the benchmarks and end-to-end tests drive (DuckDB; ACRO; anjana; the ADBC Flight
# SQL driver with pyarrow), into .venv inside the checkout. Idempotent; versions pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
.venv/bin/python -c 'import importlib.metadata, duckdb, pyarrow, adbc_driver_flightsql, acro, anjana; print("duckdb", duckdb.__version__, "pyarrow", pyarrow.__version__, "adbc-driver-flightsql", adbc_driver_flightsql.__version__, "acro", importlib.metadata.version("acro"), "anjana", importlib.metadata.version("anjana"))'
