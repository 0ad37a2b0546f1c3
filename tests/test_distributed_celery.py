"""A real distributed run: CeleryExecutor + EdgeExecutor, Redis broker, PostgreSQL metadata DB.

Debian's redis-server and postgresql are started on loopback; Airflow's
api-server, scheduler and dag-processor run as separate processes, and one
Celery worker per queue is started with only that queue: one per partner
(``partner-<id>``) and one per region for linking (``region-<region>``).
Two partners' ingest DAGs and the link DAGs run end to end; then the
metadata DB (``task_instance.hostname``, recorded through
``deployment.worker.worker_name``) proves that every task of a partner ran
on that partner's worker and nowhere else.

A third partner is marked ``execution.on_premise``: its tasks go to the Edge
executor and run on an Edge worker (``airflow edge worker``), which polls
the API server over HTTP (the hospital opens no inbound port).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import yaml

from tests.support.local_services import free_port, postgres_server, redis_server

PROJECT = Path(__file__).resolve().parent.parent
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
pytestmark = [pytest.mark.distributed, pytest.mark.timeout(900)]


def _generate(incoming: Path, patients: int, seed: int) -> None:
    try:
        from synth import generate  # type: ignore[import-not-found]
    except ImportError:  # generator still inside the product package
        from sta.synth import generate  # type: ignore[no-redef]
    generate(incoming, patients, seed)


class Stack:
    """The processes of one Airflow deployment, stopped by process group."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []

    def run(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if out.returncode:
            raise AssertionError(f"airflow {' '.join(args)} failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
        return out.stdout

    def start(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        env = {**self.env, **(extra_env or {})}
        self.procs.append((name, subprocess.Popen([AIRFLOW, *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True)))

    def stop(self) -> None:
        for _name, p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        for _name, p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)

    def dead(self) -> list[str]:
        return [n for n, p in self.procs if p.poll() is not None]


ON_PREMISE = "clinica_andes_onprem_co"


def _partners(src: Path, dest: Path) -> list[dict]:
    """The sample partners, unscheduled (runs here are triggered, never raced by a schedule),
    plus an on-premise copy of the Colombian partner reading the same source folder."""
    dest.mkdir(parents=True)
    out = []
    for f in sorted(src.glob("*.yaml")):
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        data["schedule"] = None
        data.pop("reactive", None)
        out.append(data)
        if data["id"] == "clinica_andes_co":
            onprem = {**data, "id": ON_PREMISE, "name": data["name"] + " (on premise)",
                      "execution": {"on_premise": True, "workers": 1, "slots_per_worker": 2}}
            out.append(onprem)
    for data in out:
        (dest / f"{data['id']}.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory):
    import psycopg2

    base = tmp_path_factory.mktemp("celery")
    partners = _partners(PROJECT / "include" / "partners", base / "partners")
    regions = sorted({p["region"] for p in partners})
    data = base / "data"
    _generate(data / "incoming", 2, 5)
    api_port = free_port()
    with ExitStack() as stack:
        pg = stack.enter_context(postgres_server())
        broker = stack.enter_context(redis_server(base))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")},
            "AIRFLOW_HOME": str(base / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(PROJECT / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor,airflow.providers.edge3.executors.EdgeExecutor",
            "AIRFLOW__EDGE__API_ENABLED": "True",
            "AIRFLOW__EDGE__API_URL": f"http://127.0.0.1:{api_port}/edge_worker/v1/rpcapi",
            "AIRFLOW__EDGE__HEARTBEAT_INTERVAL": "5",
            "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "2",
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "deployment.worker.worker_name",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
            "AIRFLOW__CORE__PARALLELISM": "8",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg.sqlalchemy_url,
            "AIRFLOW__CELERY__BROKER_URL": broker,
            "AIRFLOW__CELERY__RESULT_BACKEND": pg.celery_backend,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": "distributed-test-" + "x" * 64,
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
            "STA_DATA_ROOT": str(data),
            "STA_PARTNERS_DIR": str(base / "partners"),
            "STA_RETRY_DELAY_SECONDS": "2",
            "OMP_THREAD_LIMIT": "1",
        }
        airflow = Stack(env, base)
        stack.callback(airflow.stop)
        airflow.run("db", "migrate")
        for p in partners:
            airflow.run("pools", "set", f"partner-{p['id']}", "4", p["id"])
        airflow.start("api-server", "api-server")
        airflow.start("scheduler", "scheduler")
        airflow.start("dag-processor", "dag-processor")
        central = [p for p in partners if not p.get("execution", {}).get("on_premise")]
        queues = [f"partner-{p['id']}" for p in central] + [f"region-{r}" for r in regions]
        airflow.start("edge-worker", "edge", "worker", "-q", f"partner-{ON_PREMISE}", "--concurrency", "2",
                      "-H", f"edge-{ON_PREMISE}")
        for q in queues:
            airflow.start(f"worker-{q}", "celery", "worker", "-q", q, "--concurrency", "2",
                          "--celery-hostname", f"{q}@%h", extra_env={"STA_WORKER_NAME": f"worker-{q}"})
        db = psycopg2.connect(host="127.0.0.1", port=pg.port, user="airflow", dbname="airflow")
        db.autocommit = True
        dag_ids = [f"ingest_{p['id']}" for p in partners] + [f"link_{r}" for r in regions]
        _wait(lambda: _serialized(db) >= set(dag_ids), 240, airflow, "DAGs serialized")
        for d in dag_ids:
            airflow.run("dags", "unpause", d)
        for p in partners:
            airflow.run("dags", "trigger", f"ingest_{p['id']}")
        _wait(lambda: _finished(db, dag_ids), 780, airflow, "every run finished")
        yield {"db": db, "partners": partners, "regions": regions, "data": data, "logs": base}


def _serialized(db) -> set[str]:
    with db.cursor() as cur:
        cur.execute("select dag_id from serialized_dag")
        return {r[0] for r in cur.fetchall()}


def _finished(db, dag_ids: list[str]) -> bool:
    with db.cursor() as cur:
        cur.execute("select dag_id, state from dag_run")
        states: dict[str, list[str]] = {}
        for dag_id, state in cur.fetchall():
            states.setdefault(dag_id, []).append(state)
    if any("failed" in states.get(d, []) for d in dag_ids):
        return True
    return all(states.get(d) and all(s == "success" for s in states[d]) for d in dag_ids)


def _wait(cond, timeout: float, airflow: Stack, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dead = airflow.dead()
        if dead:
            raise AssertionError(f"process(es) died: {dead}; logs in {airflow.logs}")
        if cond():
            return
        time.sleep(3)
    raise AssertionError(f"timed out waiting for {what}; logs in {airflow.logs}")


def _task_instances(db) -> list[tuple]:
    with db.cursor() as cur:
        cur.execute("select dag_id, task_id, map_index, state, queue, hostname from task_instance")
        return cur.fetchall()


def test_every_run_succeeds(distributed_run):
    with distributed_run["db"].cursor() as cur:
        cur.execute("select dag_id, state, count(*) from dag_run group by 1, 2 order by 1")
        rows = cur.fetchall()
    assert rows and all(state == "success" for _d, state, _n in rows), rows
    runs = {d for d, _s, _n in rows}
    assert {f"link_{r}" for r in distributed_run["regions"]} <= runs  # linking ran, triggered by the assets


def test_partner_tasks_ran_only_on_their_partners_worker(distributed_run):
    tis = _task_instances(distributed_run["db"])
    for p in distributed_run["partners"]:
        if p["id"] == ON_PREMISE:
            continue
        mine = [t for t in tis if t[0] == f"ingest_{p['id']}"]
        assert len(mine) >= 8, mine
        assert {t[4] for t in mine} == {f"partner-{p['id']}"}
        assert {t[5] for t in mine if t[3] == "success"} == {f"worker-partner-{p['id']}"}, mine
        # and no task of another DAG ran on this partner's worker
        others = {t[0] for t in tis if t[5] == f"worker-partner-{p['id']}"}
        assert others == {f"ingest_{p['id']}"}


def test_on_premise_partner_ran_on_the_hospitals_edge_worker(distributed_run):
    tis = _task_instances(distributed_run["db"])
    mine = [t for t in tis if t[0] == f"ingest_{ON_PREMISE}"]
    assert len(mine) >= 8 and {t[3] for t in mine} <= {"success", "skipped"}, mine
    assert {t[5] for t in mine if t[3] == "success"} == {f"edge-{ON_PREMISE}"}, mine
    with distributed_run["db"].cursor() as cur:
        cur.execute("select executor from task_instance where dag_id = %s", (f"ingest_{ON_PREMISE}",))
        assert {r[0] for r in cur.fetchall()} == {"EdgeExecutor"}
    # nothing of the central partners ran at the hospital
    assert {t[0] for t in tis if t[5] == f"edge-{ON_PREMISE}"} == {f"ingest_{ON_PREMISE}"}


def test_link_tasks_ran_on_their_regions_worker(distributed_run):
    tis = _task_instances(distributed_run["db"])
    for r in distributed_run["regions"]:
        mine = [t for t in tis if t[0] == f"link_{r}"]
        assert mine and {t[5] for t in mine} == {f"worker-region-{r}"}, mine


def test_published_and_linked_through_the_distributed_run(distributed_run):
    import duckdb

    data: Path = distributed_run["data"]
    for r in distributed_run["regions"]:
        stores = list((data / r / "store").glob("*.duckdb"))
        assert stores, f"no consolidated store for region {r}"
        with duckdb.connect(str(stores[0]), read_only=True) as con:
            assert con.execute("select count(*) from studies").fetchone()[0] > 0
