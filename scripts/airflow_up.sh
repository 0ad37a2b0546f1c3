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

# Every live process of the sessions named in the PID file (session id = leader pid).
session_pids() {  # $@: session ids
  local sids=" $* "
  ps -e -o pid=,sid=,stat= | while read -r pid sid stat; do
    [[ "$sids" == *" $sid "* && "$pid" != "$$" && "$stat" != Z* ]] && echo "$pid"
  done
  return 0
}

wait_gone() {  # $1: seconds, rest: session ids; true when none is left
  local n=$(( $1 * 2 )) i; shift
  for ((i = 0; i < n; i++)); do
    [ -z "$(session_pids "$@")" ] && return 0
    sleep 0.5
  done
  [ -z "$(session_pids "$@")" ]
}

stop_all() {  # $1: PID file. Claimed first (renamed), so `make down` and Ctrl-C don't both stop.
  local file=$1 claimed="$1.stopping" sids=() name pid left
  mv "$file" "$claimed" 2>/dev/null || { echo "nothing to stop ($file not found)"; return 0; }
  while read -r name pid; do
    [ -n "${pid:-}" ] || continue
    sids+=("$pid")
    # standalone stops its components on SIGINT; the search service on SIGTERM
    if [ "$name" = "airflow" ]; then kill -INT "$pid" 2>/dev/null || true; else kill -TERM "$pid" 2>/dev/null || true; fi
  done < "$claimed"
  if [ ${#sids[@]} -gt 0 ]; then
    echo "stopping services (sessions ${sids[*]}) ..."
    # Every component (scheduler, dag-processor, api-server, triggerer, workers,
    # running tasks) handles SIGTERM itself: tell them all, not only standalone.
    if ! wait_gone 2 "${sids[@]}"; then
      left=$(session_pids "${sids[@]}"); kill -TERM $left 2>/dev/null || true
      if ! wait_gone "$GRACE" "${sids[@]}"; then
        left=$(session_pids "${sids[@]}")
        echo "still running after ${GRACE}s, SIGKILL: $(echo $left)"
        kill -KILL $left 2>/dev/null || true
        wait_gone 5 "${sids[@]}" || true
      fi
    fi
  fi
  rm -f "$claimed"
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
from airflow.models.dag import DagModel
from airflow.models.pool import Pool
from airflow.utils.session import create_session

from foundation.partners import ConfigError, load_partner
from foundation.paths import partners_dir

for path in sorted(partners_dir().glob("*.yaml")):
    try:
        p = load_partner(path)
    except ConfigError as exc:
        print(f"  partner file not loaded (its DAG shows as an import error): {exc}")
        continue
    slots = p.execution.concurrency  # sized to the partner's workers
    Pool.create_or_update_pool(p.pool, slots, f"tasks of partner {p.id}", include_deferred=False)
    print(f"  pool {p.pool}: {slots} slots")
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
# Delivery (issue 14): the search service requests export/provisioning runs
# through the REST API as admin; without a configured smtp_default, mail goes
# to a local aiosmtpd that prints every message to $AIRFLOW_HOME/mail.log.
export STA_AIRFLOW_URL=${STA_AIRFLOW_URL:-$AIRFLOW__API__BASE_URL}
export STA_AIRFLOW_USER=${STA_AIRFLOW_USER:-admin}
export STA_AIRFLOW_PASSWORD_FILE=${STA_AIRFLOW_PASSWORD_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}
export STA_PUBLIC_URL=${STA_PUBLIC_URL:-http://$CLIENT_HOST:$SEARCH_PORT}
if [ -z "${AIRFLOW_CONN_SMTP_DEFAULT:-}" ]; then
  MAIL_PORT=$("$PY" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
  export AIRFLOW_CONN_SMTP_DEFAULT="{\"conn_type\": \"smtp\", \"host\": \"127.0.0.1\", \"port\": $MAIL_PORT, \"extra\": {\"disable_tls\": true, \"disable_ssl\": true, \"from_email\": \"STA <no-reply@sta.local>\"}}"
  start_service mail "$AIRFLOW_HOME/mail.log" "$PY" -m aiosmtpd -n -l "127.0.0.1:$MAIL_PORT"
fi
if sta serve --help >/dev/null 2>&1; then
  start_service search "$AIRFLOW_HOME/search.log" sta serve --host "$CLIENT_HOST" --port "$SEARCH_PORT"
fi
start_service airflow - airflow standalone

cat <<MSG

  Airflow UI:   $AIRFLOW__API__BASE_URL   user: admin
                password: $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated
  Search page:  http://$CLIENT_HOST:${SEARCH_PORT}/  (sign up there, or: .venv/bin/sta apikey create --customer me --plan standard)
                export e-mails (when smtp_default is the local one): $AIRFLOW_HOME/mail.log
  Quarantine:   $AIRFLOW__API__BASE_URL/sta-quarantine/  (also: .venv/bin/sta quarantine list)
  ingest_<partner> DAGs start paused: unpause one to start its schedule (or its file watcher, for
  partners with 'reactive: true'), or trigger it (Trigger button: the form takes the pull's options).
  link_<region> DAGs are unpaused: they run when a partner of the region publishes.
  Stop: Ctrl-C here, or 'make down' from another terminal (PIDs in $PIDFILE).

MSG
# Wait for the services; if Airflow exits by itself, stop the rest; if
# `make down` claimed the PID file, it does the stopping.
while :; do
  wait -n || true
  [ "$STOPPING" = 1 ] && break
  [ -f "$PIDFILE" ] || { echo "stopped by 'make down'"; exit 0; }
  if ! kill -0 "$(awk '$1=="airflow"{print $2}' "$PIDFILE")" 2>/dev/null; then
    echo "airflow standalone exited; stopping the rest"
    on_signal
  fi
done
