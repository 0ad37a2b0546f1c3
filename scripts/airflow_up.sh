#!/usr/bin/env bash
# `make up` / `make down`: Airflow locally (SQLite metadata, LocalExecutor, no
# Docker) with the project's DAGs and plugins, plus the STA search service.
#
#   scripts/airflow_up.sh          start; Ctrl-C (or `make down` elsewhere) stops everything it started
#   scripts/airflow_up.sh down     stop a running `make up` (reads $AIRFLOW_HOME/up.pids)
#
# Ports (any free ones; the script refuses a busy port before starting anything):
#   AIRFLOW__API__PORT (8080)  UI + REST + the execution API the tasks call back to
#   STA_SEARCH_PORT    (8000)  the search service (`sta serve`)
#   AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT / TRIGGERER_LOG_SERVER_PORT (8793/8794,
#   or any free port when those are taken: they are internal)
#
# Why the process handling looks like this: `airflow standalone` starts the
# scheduler, dag-processor, api-server and triggerer as children, and every task
# runs in a process group of its own. Each service is started in a new session
# (setsid), so a stop finds every process by its session id, even the ones whose
# parent already died; a terminal's Ctrl-C reaches this script only, which then
# stops the services in order (SIGINT to standalone, which stops its children;
# SIGTERM, then SIGKILL, to whatever is left after a grace period).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
export PATH="$ROOT/.venv/bin:$PATH"  # standalone starts `airflow scheduler` etc. by name
export AIRFLOW_HOME=${AIRFLOW_HOME:-$ROOT/.airflow}
PIDFILE=$AIRFLOW_HOME/up.pids
GRACE=${STA_UP_GRACE_SECONDS:-25}

# Every process of the sessions named in the PID file (session id = leader pid).
session_pids() {  # $@: session ids
  local sids=" $* "
  ps -e -o pid=,sid= | while read -r pid sid; do
    [[ "$sids" == *" $sid "* && "$pid" != "$$" ]] && echo "$pid"
  done
  return 0
}

stop_all() {  # $1: PID file
  local file=$1 sids=() name pid
  [ -f "$file" ] || { echo "nothing to stop ($file not found)"; return 0; }
  while read -r name pid; do
    [ -n "${pid:-}" ] || continue
    sids+=("$pid")
    if [ "$name" = "airflow" ]; then kill -INT "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
  done < "$file"
  [ ${#sids[@]} -gt 0 ] || { rm -f "$file"; return 0; }
  echo "stopping ${#sids[@]} services (sessions ${sids[*]}) ..."
  local left i
  for ((i = 0; i < GRACE * 2; i++)); do
    left=$(session_pids "${sids[@]}")
    [ -z "$left" ] && break
    sleep 0.5
  done
  left=$(session_pids "${sids[@]}")
  if [ -n "$left" ]; then
    echo "still running after ${GRACE}s, sending SIGTERM: $(echo $left)"
    kill -TERM $left 2>/dev/null || true
    for ((i = 0; i < 10; i++)); do
      left=$(session_pids "${sids[@]}"); [ -z "$left" ] && break; sleep 0.5
    done
    [ -n "$left" ] && { echo "SIGKILL: $(echo $left)"; kill -KILL $left 2>/dev/null || true; }
  fi
  rm -f "$file"
  echo "stopped."
}

if [ "${1:-}" = "down" ]; then
  stop_all "$PIDFILE"
  exit 0
fi

export AIRFLOW__CORE__DAGS_FOLDER=$ROOT/dags
export AIRFLOW__CORE__PLUGINS_FOLDER=$ROOT/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=${AIRFLOW__CORE__PARALLELISM:-4}
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-True}
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-5}
export AIRFLOW__API__HOST=${AIRFLOW__API__HOST:-127.0.0.1}
export AIRFLOW__API__PORT=${AIRFLOW__API__PORT:-8080}
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}
export STA_DATA_ROOT=${STA_DATA_ROOT:-$ROOT/data}
export OMP_THREAD_LIMIT=1
SEARCH_PORT=${STA_SEARCH_PORT:-8000}
# Tasks call the API server back on the execution API: it must follow the port
# (a fixed :8080 made every task fail with "connection refused" on other ports).
CLIENT_HOST=$AIRFLOW__API__HOST
[ "$CLIENT_HOST" = "0.0.0.0" ] && CLIENT_HOST=127.0.0.1
export AIRFLOW__API__BASE_URL=${AIRFLOW__API__BASE_URL:-http://$CLIENT_HOST:$AIRFLOW__API__PORT}
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL=${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-$AIRFLOW__API__BASE_URL/execution/}
mkdir -p "$AIRFLOW_HOME"

if [ -f "$PIDFILE" ]; then
  alive=""
  while read -r _n pid; do [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null && alive="$alive $pid"; done < "$PIDFILE"
  if [ -n "$alive" ]; then
    echo "make up is already running (pids$alive, $PIDFILE); stop it with 'make down'" >&2
    exit 1
  fi
  rm -f "$PIDFILE"
fi

# Ports: refuse a busy UI/search port with the variable to change; move the
# internal log-server ports to free ones.
eval "$("$PY" - "$AIRFLOW__API__HOST" "$AIRFLOW__API__PORT" "$SEARCH_PORT" <<'PY'
import os, socket, sys
host, api, search = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def busy(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host if host != "0.0.0.0" else "", port)); return False
        except OSError:
            return True
def free():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]
for port, var in ((api, "AIRFLOW__API__PORT"), (search, "STA_SEARCH_PORT")):
    if busy(port):
        print(f"echo 'port {port} is in use: choose another with {var}=<port> make up' >&2; exit 1"); sys.exit()
for var, default in (("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT", 8793), ("AIRFLOW__LOGGING__TRIGGERER_LOG_SERVER_PORT", 8794)):
    port = int(os.environ.get(var) or default)
    print(f"export {var}={free() if busy(port) else port}")
PY
)"

if [ -z "${STA_SECRET_KEY:-}" ]; then
  [ -f "$AIRFLOW_HOME/sta_secret_key" ] || { "$PY" -c "import secrets;print(secrets.token_hex(32))" > "$AIRFLOW_HOME/sta_secret_key"; chmod 600 "$AIRFLOW_HOME/sta_secret_key"; }
  export STA_SECRET_KEY=$(cat "$AIRFLOW_HOME/sta_secret_key")
fi

echo "preparing the metadata DB, pools and DAGs ..."
airflow db migrate >/dev/null
# Parse the DAGs once now, so link DAGs can be unpaused and a run triggered as
# soon as the API answers; one pool per partner (DESIGN: a partner's tasks run
# in its own queue and pool). A partner file that doesn't load is reported and
# skipped: it must not stop the others.
airflow dags reserialize >/dev/null 2>&1 || echo "warning: 'airflow dags reserialize' failed; the dag-processor will parse the DAGs" >&2
"$PY" - <<'PY'
import os
from pathlib import Path
from airflow.models.dag import DagModel
from airflow.models.pool import Pool
from airflow.utils.session import create_session

from sta.config import PARTNERS_DIR, ConfigError, load_partner

directory = Path(os.environ.get("STA_PARTNERS_DIR") or PARTNERS_DIR)
for path in sorted(directory.glob("*.yaml")):
    try:
        p = load_partner(path)
    except ConfigError as exc:
        print(f"  partner file not loaded (its DAG shows as an import error): {exc}")
        continue
    Pool.create_or_update_pool(p.pool, 4, f"tasks of partner {p.id}", include_deferred=False)
    print(f"  pool {p.pool}: 4 slots")
with create_session() as session:
    links = session.query(DagModel).filter(DagModel.dag_id.like("link\\_%", escape="\\")).all()
    for dm in links:
        dm.is_paused = False
    print("  unpaused: " + (", ".join(sorted(d.dag_id for d in links)) or "(no link DAGs parsed yet)"))
PY

# Start a command in a session of its own, with SIGINT at its default (a
# background job inherits SIGINT ignored, and standalone then ignores Ctrl-C).
start_service() {  # $1: name, $2: log file or "-", rest: command
  local name=$1 log=$2; shift 2
  if [ "$log" = "-" ]; then
    "$PY" -c 'import os,signal,sys; os.setsid(); signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@" &
  else
    "$PY" -c 'import os,signal,sys; os.setsid(); signal.signal(signal.SIGINT, signal.SIG_DFL); os.execvp(sys.argv[1], sys.argv[1:])' "$@" >"$log" 2>&1 &
  fi
  echo "$name $!" >> "$PIDFILE"
}

STOPPING=0
on_signal() {
  [ "$STOPPING" = 1 ] && return
  STOPPING=1
  echo
  stop_all "$PIDFILE"
  exit 0
}
trap on_signal INT TERM HUP
: > "$PIDFILE"
if sta serve --help >/dev/null 2>&1; then
  start_service search "$AIRFLOW_HOME/search.log" sta serve --host "$CLIENT_HOST" --port "$SEARCH_PORT"
fi
start_service airflow - airflow standalone

cat <<MSG

  Airflow UI:   $AIRFLOW__API__BASE_URL   user: admin
                password: $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  Search page:  http://$CLIENT_HOST:${SEARCH_PORT}/  (create a key: .venv/bin/sta apikey create --customer me --plan standard)
  Quarantine:   $AIRFLOW__API__BASE_URL/sta-quarantine/  (also: .venv/bin/sta quarantine list)
  ingest_<partner> DAGs start paused: unpause one to start its schedule (or its file watcher, for
  partners with 'reactive: true'), or trigger it (Trigger button: the form takes the pull's options).
  link_<region> DAGs are unpaused: they run when a partner of the region publishes.
  Stop: Ctrl-C here, or 'make down' from another terminal (PIDs in $PIDFILE).

MSG
# Wait for the services; if one of them exits by itself, stop the rest.
while :; do
  wait -n || true
  [ "$STOPPING" = 1 ] && break
  alive=0
  while read -r _n pid; do kill -0 "$pid" 2>/dev/null && alive=1; done < "$PIDFILE"
  if [ "$alive" = 0 ] || ! kill -0 "$(awk '$1=="airflow"{print $2}' "$PIDFILE")" 2>/dev/null; then
    echo "airflow standalone exited; stopping the rest"
    on_signal
  fi
done
