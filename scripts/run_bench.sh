#!/usr/bin/env bash
# Every bench/bench_*.py, one after the other (they measure side by side
# against a baseline inside the same run, so they must not overlap).
set -uo pipefail
cd "$(dirname "$0")/.."
export OMP_THREAD_LIMIT=1
status=0
for b in bench/bench_*.py; do
  echo "=== $b"
  timeout -k 10 900 .venv/bin/python "$b" || { echo "!!! $b failed"; status=1; }
  echo
done
exit $status
