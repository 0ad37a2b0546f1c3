#!/usr/bin/env bash
# The whole suite in ONE pytest process: DAG tests share Airflow's start-up cost.
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_THREAD_LIMIT=1
unset AIRFLOW_HOME STA_DATA_ROOT  # tests/conftest.py gives each session its own
exec timeout -k 30 3000 .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
