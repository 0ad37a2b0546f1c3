"""``make up`` as a data engineer uses it: other ports, a run through the REST API, a clean stop.

One slow test (a real ``airflow standalone``, ~1 minute): the script is
started on free non-default ports with its own AIRFLOW_HOME, a run of an
unpaused link DAG is triggered through the REST API and must succeed (its
task calls the execution API back on the chosen port), then ``make down``'s
command must stop every process the script started, found by session id.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
SCRIPT = PROJECT / "scripts" / "airflow_up.sh"

PARTNER_YAML = """\
id: {pid}
name: Test partner
country: co
region: co
source: {{type: folder, path: incoming/{pid}}}
schedule: null
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"{}")


def _session_pids(sids: set[int]) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,sid=,stat="], capture_output=True, text=True).stdout
    pids = []
    for line in out.splitlines():
        pid, sid, stat = line.split(None, 2)
        if int(sid) in sids and not stat.startswith("Z"):
            pids.append(int(pid))
    return pids


def _wait(pred, timeout: float, what: str, log: Path):  # noqa: ANN001, ANN202
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got = pred()
            if got:
                return got
        except (OSError, urllib.error.URLError, KeyError, ValueError):
            pass
        time.sleep(1)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    pytest.fail(f"timed out waiting for {what}; make up's output ends with:\n{tail}")


@pytest.mark.timeout(300)
def test_make_up_on_other_ports_runs_a_triggered_dag_and_stops_everything(tmp_path: Path) -> None:
    home, data, partners = tmp_path / "airflow", tmp_path / "data", tmp_path / "partners"
    partners.mkdir()
    (data / "incoming" / "up_test_co").mkdir(parents=True)
    (partners / "up_test_co.yaml").write_text(PARTNER_YAML.format(pid="up_test_co"))
    api_port, search_port = _free_port(), _free_port()
    assert 8080 not in (api_port, search_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env |= {
        "AIRFLOW_HOME": str(home), "STA_DATA_ROOT": str(data), "STA_PARTNERS_DIR": str(partners),
        "AIRFLOW__API__PORT": str(api_port), "STA_SEARCH_PORT": str(search_port),
        "AIRFLOW__CORE__PARALLELISM": "2", "STA_UP_GRACE_SECONDS": "15",
    }
    log = tmp_path / "up.log"
    base = f"http://127.0.0.1:{api_port}"
    with log.open("wb") as out:
        up = subprocess.Popen(["bash", str(SCRIPT)], cwd=PROJECT, env=env, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
    sids: set[int] = set()
    try:
        pidfile = home / "up.pids"
        _wait(lambda: pidfile.exists() and len(pidfile.read_text().split()) >= 4, 90, "the PID file", log)
        sids = {int(line.split()[1]) for line in pidfile.read_text().splitlines() if line.strip()}
        _wait(lambda: _http("GET", f"{base}/api/v2/monitor/health")["scheduler"]["status"] == "healthy", 120,
              "a healthy scheduler", log)
        password = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
        token = _http("POST", f"{base}/auth/token", {"username": "admin", "password": password})["access_token"]

        assert _http("GET", f"{base}/api/v2/dags/link_co", token=token)["is_paused"] is False
        run = _http("POST", f"{base}/api/v2/dags/link_co/dagRuns", {"logical_date": None}, token)
        run_url = f"{base}/api/v2/dags/link_co/dagRuns/{urllib.request.quote(run['dag_run_id'])}"
        state = _wait(lambda: (s := _http("GET", run_url, token=token)["state"]) in ("success", "failed") and s,
                      120, "the triggered run to finish", log)
        assert state == "success", log.read_text(errors="replace")[-3000:]
        # the search service answers on its own port too
        _wait(lambda: urllib.request.urlopen(f"http://127.0.0.1:{search_port}/docs", timeout=5).status == 200, 30,
              "the search service", log)
        assert len(_session_pids(sids)) >= 6  # standalone, its 4 components, workers, search

        down = subprocess.run(["bash", str(SCRIPT), "down"], cwd=PROJECT, env=env, capture_output=True, text=True,
                              timeout=90)
        assert down.returncode == 0, down.stdout + down.stderr
        assert up.wait(timeout=30) == 0
        assert _session_pids(sids) == [], "processes left behind by make down"
        assert not pidfile.exists()
        for port in (api_port, search_port):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of our own requests
                s.bind(("127.0.0.1", port))  # nobody listens any more
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)
        for pid in _session_pids(sids):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
