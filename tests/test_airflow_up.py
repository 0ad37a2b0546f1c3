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
import re
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
    drop = data / "incoming" / "up_react_co"
    drop.mkdir(parents=True)
    (partners / "up_react_co.yaml").write_text(PARTNER_YAML.format(pid="up_react_co").replace(
        "schedule: null", "reactive: true\nreactive_poll_seconds: 1\nreactive_stable_seconds: 1"))
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
        # the quarantine plugin is mounted, and checks the caller itself
        assert _http("GET", f"{base}/sta-quarantine/api/items", token=token)["summary"]["items"] == 0
        with pytest.raises(urllib.error.HTTPError) as denied:
            _http("GET", f"{base}/sta-quarantine/api/items")
        assert denied.value.code == 401
        # a reactive partner: a file dropped in its folder starts a run through the triggerer
        dag_url = f"{base}/api/v2/dags/ingest_up_react_co"
        _http("PATCH", dag_url, {"is_paused": False}, token)
        time.sleep(3)
        (drop / "report.txt").write_text("Informe: sin hallazgos.\n")
        runs = _wait(lambda: _http("GET", f"{dag_url}/dagRuns", token=token)["dag_runs"], 90,
                     "a run of the reactive partner", log)
        assert runs[0]["run_type"] == "asset_triggered", runs[0]
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


# -- the partner DAG as an operator sees it (dag.test runs, DagBag) -------------------------------
OPS_PID = "ops_paulista_br"  # the generator's smaller partner: 5 files, 3 of them faults


@pytest.fixture(scope="module")
def ops_runs(tmp_path_factory: pytest.TempPathFactory, airflow_db: None) -> dict:
    """One partner with the generator's planted faults, ingested twice through Airflow (the second run is empty)."""
    base = tmp_path_factory.mktemp("ops")
    data, partners = base / "data", base / "partners"
    partners.mkdir()
    src = (PROJECT / "include" / "partners" / "hospital_paulista_br.yaml").read_text(encoding="utf-8")
    (partners / f"{OPS_PID}.yaml").write_text(src.replace("id: hospital_paulista_br", f"id: {OPS_PID}"))
    saved = {k: os.environ.get(k) for k in ("STA_DATA_ROOT", "STA_PARTNERS_DIR", "STA_RETRY_DELAY_SECONDS")}
    os.environ["STA_DATA_ROOT"], os.environ["STA_PARTNERS_DIR"] = str(data), str(partners)
    os.environ["STA_RETRY_DELAY_SECONDS"] = "1"
    try:
        from synth import generate
        from synth.airflow_run import run_dag

        generate(data / "incoming", 2, 3)
        truth = json.loads((data / "incoming" / "truth.json").read_text(encoding="utf-8"))
        first = run_dag(f"ingest_{OPS_PID}")
        second = run_dag(f"ingest_{OPS_PID}")  # e.g. a manual trigger right after the scheduled run
        yield {"first": first, "second": second, "truth": truth, "data": data}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _states(run) -> dict[str, str]:  # noqa: ANN001
    return {t.task_id: t.state for t in run.tasks if t.map_index < 0}


def _asset_events(name: str) -> int:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as s:
        return s.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id).filter(
            AssetModel.name == name).count()


def _task_logs(run) -> dict[str, str]:  # noqa: ANN001
    base = Path(os.environ["AIRFLOW_HOME"]) / "logs" / f"dag_id={run.dag_id}" / f"run_id={run.run_id}"
    return {p.relative_to(base).as_posix(): p.read_text(encoding="utf-8") for p in base.rglob("*.log")}


def test_a_run_after_a_run_finds_nothing_and_neither_publishes_nor_emits(ops_runs: dict) -> None:
    first, second = ops_runs["first"], ops_runs["second"]
    assert first.state == "success" and _states(first)["publish"] == "success", _states(first)
    assert second.state == "success", _states(second)
    assert _states(second)["publish"] == "skipped" and _states(second)["cleanup"] == "success"
    assert _asset_events(f"published_{OPS_PID}") == 1  # only the run that published


def test_runs_never_overlap(ops_runs: dict) -> None:
    from airflow.dag_processing.dagbag import DagBag

    from foundation.partners import get_partner
    from transforms.pull import _exclusive, pull_partner
    from transforms.sources.base import SourceError

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags[f"ingest_{OPS_PID}"]
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    for d in (dag, bag.dags["link_br"]):  # every task documented, the DAG's doc is the runbook
        assert d.doc_md and not [t.task_id for t in d.tasks if not t.doc_md]
    assert "Reviewing the quarantine" in dag.doc_md
    partner = get_partner(OPS_PID)
    root = partner.root()
    lock = next(root.state.glob("sync-*.sqlite")).parent / ".pull.lock"
    with _exclusive(lock, OPS_PID), pytest.raises(SourceError, match="another pull"):
        pull_partner(partner, root, "concurrent")  # a second pull waits for no one: it refuses


def test_task_logs_say_what_happened_to_each_file_and_hold_no_phi(ops_runs: dict) -> None:
    first = ops_runs["first"]
    logs = _task_logs(first)
    assert {"task_id=pull/attempt=1.log", "task_id=publish/attempt=1.log"} <= set(logs), sorted(logs)
    events = [json.loads(line) for text in logs.values() for line in text.splitlines() if line.strip()]
    per_file = [e["event"] for e in events if e["event"].startswith("file L")]
    ledger = json.loads(next((ops_runs["data"] / "br" / "partners" / OPS_PID / "ledger").glob("*.json")).read_text())
    pulled = [e for e in per_file if " pulled " in e]
    assert len(pulled) == ledger["pulled"] - ledger["rejected"]
    outcomes = [e for e in per_file if " pulled " not in e]
    quarantined = [e for e in outcomes if " quarantined " in e]
    assert len(quarantined) == ledger["quarantined"] >= 2
    assert all(re.fullmatch(r"file L[0-9a-f]{20}(\.\w+)? \w+ [\w-]+ \(\w+\)", e) for e in outcomes), outcomes[:5]
    assert any("run summary: pulled" in e["event"] for e in events)
    assert not [e for e in events if e["logger"].startswith(("great_expectations", "presidio")) and
                e["level"] in ("info", "debug")]
    everything = "\n".join(logs.values())
    phi = {v for v in ops_runs["truth"]["phi_values"] if len(v) >= 5}
    assert phi and not [v for v in phi if v in everything]


def test_demo_task_logs_are_served_by_the_api(ops_runs: dict) -> None:
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    first = ops_runs["first"]
    client = TestClient(create_app(apps="core"))
    url = f"/api/v2/dags/{first.dag_id}/dagRuns/{first.run_id}/taskInstances/publish/logs/1"
    resp = client.get(url, headers={"Accept": "application/json"})
    assert resp.status_code == 200, resp.text[:300]
    assert "run summary" in resp.text and "Log file not found" not in resp.text


def test_a_bad_partner_file_breaks_only_its_own_dag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.dag_processing.dagbag import DagBag

    for pid in ("good_co", "other_br"):
        (tmp_path / f"{pid}.yaml").write_text(PARTNER_YAML.format(pid=pid).replace(
            "country: co\nregion: co", "country: br\nregion: br" if pid.endswith("br") else "country: co\nregion: co"))
    (tmp_path / "broken_co.yaml").write_text(PARTNER_YAML.format(pid="broken_co").replace("type: folder", "type: ftp"))
    monkeypatch.setenv("STA_PARTNERS_DIR", str(tmp_path))
    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert {"ingest_good_co", "ingest_other_br", "link_co", "link_br"} <= set(bag.dags)
    assert "ingest_broken_co" not in bag.dags
    [(path, error)] = bag.import_errors.items()
    assert path.endswith("partner_config_errors.py")
    assert "broken_co.yaml" in error and "source.type" in error



def test_a_missing_connection_fails_the_pull_at_once_without_retries(tmp_path: Path, airflow_db: None,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    from synth.airflow_run import run_dag

    (tmp_path / "nocred_co.yaml").write_text(PARTNER_YAML.format(pid="nocred_co").replace(
        "{type: folder, path: incoming/nocred_co}", "{type: s3, conn_id: nobody_made_this, bucket: b}"))
    monkeypatch.setenv("STA_PARTNERS_DIR", str(tmp_path))
    monkeypatch.setenv("STA_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("STA_RETRY_DELAY_SECONDS", "60")  # a retry would show as minutes here
    t0 = time.monotonic()
    run = run_dag("ingest_nocred_co")
    assert run.state == "failed" and time.monotonic() - t0 < 60
    with create_session() as s:
        ti = s.query(TaskInstance).filter_by(dag_id="ingest_nocred_co", run_id=run.run_id, task_id="pull").one()
        assert (str(ti.state), ti.try_number) == ("failed", 1)
    logs = "\n".join(_task_logs(run).values())
    assert "misconfiguration, not retried" in logs and "nobody_made_this" in logs


def test_after_a_run_the_quarantine_is_sealed_and_named_by_landing_id(ops_runs: dict) -> None:
    from foundation.partners import get_partner
    from transforms.quarantine_admin import list_items

    saved = os.environ.get("STA_PARTNERS_DIR"), os.environ.get("STA_DATA_ROOT")
    os.environ["STA_PARTNERS_DIR"] = str(ops_runs["data"].parent / "partners")
    os.environ["STA_DATA_ROOT"] = str(ops_runs["data"])
    try:
        items = list_items([get_partner(OPS_PID)])
    finally:
        for k, v in zip(("STA_PARTNERS_DIR", "STA_DATA_ROOT"), saved):
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert len(items) >= 2 and {i.original for i in items} == {"sealed"}
    qdir = ops_runs["data"] / "br" / "partners" / OPS_PID / "quarantine"
    names = [p.name for p in qdir.rglob("*") if p.is_file()]
    assert all(n.startswith(("L", "_")) for n in names), names
