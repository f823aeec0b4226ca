#!/usr/bin/env bash
# Installs the Python peers the benchmarks (and later end-to-end tests) drive, into .venv
# inside the checkout. Idempotent; versions pinned.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
.venv/bin/python -c 'import duckdb; print("duckdb", duckdb.__version__)'
