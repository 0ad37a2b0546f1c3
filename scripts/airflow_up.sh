#!/usr/bin/env bash
# `make up`: Airflow locally (SQLite metadata, LocalExecutor, no Docker) with the
# project's DAGs, plus the STA search service. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export PATH="$ROOT/.venv/bin:$PATH"  # standalone starts `airflow scheduler` etc. by name
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.airflow}
export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=5
export AIRFLOW__API__HOST=${AIRFLOW__API__HOST:-127.0.0.1}
export AIRFLOW__API__PORT=${AIRFLOW__API__PORT:-8080}
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}
export STA_DATA_ROOT=${STA_DATA_ROOT:-$ROOT/data}
export OMP_THREAD_LIMIT=1
mkdir -p "$AIRFLOW_HOME"
if [ -z "${STA_SECRET_KEY:-}" ]; then
  [ -f "$AIRFLOW_HOME/sta_secret_key" ] || { .venv/bin/python -c "import secrets;print(secrets.token_hex(32))" > "$AIRFLOW_HOME/sta_secret_key"; chmod 600 "$AIRFLOW_HOME/sta_secret_key"; }
  export STA_SECRET_KEY=$(cat "$AIRFLOW_HOME/sta_secret_key")
fi
.venv/bin/airflow db migrate >/dev/null
# One pool per partner (DESIGN: a partner's tasks run in its own queue and pool).
.venv/bin/python - <<'PY'
import subprocess
from sta.config import load_partners
for p in load_partners():
    subprocess.run([".venv/bin/airflow", "pools", "set", p.pool, "4", f"tasks of partner {p.id}"],
                   check=True, stdout=subprocess.DEVNULL)
    print(f"pool {p.pool}: 4 slots")
PY
SEARCH_PORT=${STA_SEARCH_PORT:-8000}
if .venv/bin/sta serve --help >/dev/null 2>&1; then
  .venv/bin/sta serve --port "$SEARCH_PORT" > "$AIRFLOW_HOME/search.log" 2>&1 &
  SEARCH_PID=$!
  trap 'kill $SEARCH_PID 2>/dev/null || true' EXIT
fi
cat <<MSG

  Airflow UI:   http://127.0.0.1:${AIRFLOW__API__PORT}   user: admin
                password: $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  Search page:  http://127.0.0.1:${SEARCH_PORT}/  (create a key: .venv/bin/sta apikey create --customer me --plan standard)
  DAGs start paused: unpause ingest_<partner> in the UI, or trigger it (Trigger DAG button).

MSG
# standalone ignores SIGINT when inherited as ignored; restore the default first.
exec .venv/bin/python -c "import os,signal; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv('.venv/bin/airflow', ['airflow', 'standalone'])"
