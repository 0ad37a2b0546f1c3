"""Run the project's DAGs through Airflow itself (``dag.test()``), with progress.

Used by ``make demo`` and the end-to-end tests: the DAG is parsed from the
dags folder like the scheduler would, executed by Airflow's in-process
executor, and its task instances are read back from the metadata DB, so what
is shown is what Airflow did, not what a library call returned.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def configure_env(project_root: str) -> None:
    os.environ.setdefault("AIRFLOW_HOME", os.path.join(project_root, ".airflow"))
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", os.path.join(project_root, "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", os.path.join(project_root, "plugins"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("STA_RETRY_DELAY_SECONDS", "2")
    # The in-process API the demo answers review tasks through (never served on a port).
    os.environ.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", __import__("secrets").token_hex(64))
    os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")


def ensure_db() -> None:
    from airflow.utils import db

    db.initdb()


def get_dag(dag_id: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    if dag_id not in bag.dags:
        raise KeyError(f"no DAG {dag_id!r}; found {sorted(bag.dags)}")
    return bag.dags[dag_id]


@dataclass
class TaskSummary:
    task_id: str
    map_index: int
    state: str | None
    duration: float | None


@dataclass
class RunSummary:
    dag_id: str
    run_id: str
    state: str
    seconds: float
    tasks: list[TaskSummary] = field(default_factory=list)

    def stage_seconds(self) -> dict[str, float]:
        """Wall-clock-ish per task id (mapped instances summed)."""
        out: dict[str, float] = {}
        for t in self.tasks:
            out[t.task_id] = round(out.get(t.task_id, 0.0) + (t.duration or 0.0), 2)
        return out


def _task_states(dag_id: str, run_id: str) -> list[TaskSummary]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (
            session.query(TaskInstance)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .all()
        )
        return [TaskSummary(r.task_id, r.map_index, str(r.state) if r.state else None, r.duration) for r in rows]


def _latest_run_id(dag_id: str) -> str | None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id).order_by(DagRun.id.desc()).first()
        return run.run_id if run is not None else None


def answer_reviews(dag_id: str, decide: Callable[[dict[str, Any]], dict[str, Any]], stop: threading.Event,
                   answered: list[dict[str, Any]]) -> None:
    """Answer the DAG's pending human-in-the-loop tasks through Airflow's REST API (until ``stop``).

    ``dag.test()`` does not enforce HITL timeouts: without an answer a run
    waits for ever, so the demo and the tests answer as a researcher would,
    through ``PATCH .../hitlDetails`` of the in-process core API (the same
    request the UI sends). ``decide(detail)`` returns the body of that request.
    """
    from airflow.api_fastapi.app import create_app
    from fastapi.testclient import TestClient

    client = TestClient(create_app(apps="core"))
    done: set[tuple[str, str, int]] = set()
    while not stop.wait(1.0):
        try:
            pending = client.get("/api/v2/dags/~/dagRuns/~/hitlDetails", params={"response_received": False})
            for d in pending.json().get("hitl_details", []):
                ti = d["task_instance"]
                key = (ti["dag_run_id"], ti["task_id"], ti["map_index"])
                if ti["dag_id"] != dag_id or key in done:
                    continue
                stop.wait(3.0)  # TOOL_NOTES: an answer within ~0.5 s of awaiting_input can be lost
                url = (f"/api/v2/dags/{dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}"
                       f"/{ti['map_index']}/hitlDetails")
                resp = client.patch(url, json=decide(d))
                answered.append({"detail": d, "status": resp.status_code, "response": resp.json()})
                done.add(key)
        except Exception as exc:  # noqa: BLE001 - keep answering; the run's own state tells the outcome
            answered.append({"error": repr(exc)})
            continue


def approve(_detail: dict[str, Any]) -> dict[str, Any]:
    """The demo's researcher: approves (real partners name their reviewers in their YAML)."""
    return {"chosen_options": ["Approve"], "params_input": {}}


def run_dag(
    dag_id: str,
    *,
    conf: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    poll: float = 1.0,
    review: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    answered: list[dict[str, Any]] | None = None,
) -> RunSummary:
    """``dag.test()`` one run; report task state changes while it runs; ``review`` answers HITL tasks."""
    dag = get_dag(dag_id)
    answers: list[dict[str, Any]] = answered if answered is not None else []
    review_stop = threading.Event()
    reviewer = threading.Thread(target=answer_reviews, args=(dag_id, review, review_stop, answers), daemon=True)
    if review is not None:
        reviewer.start()
    before = _latest_run_id(dag_id)
    stop = threading.Event()
    seen: dict[tuple[str, int], str | None] = {}

    def watch() -> None:
        run_id = None
        while not stop.wait(poll):
            try:
                if run_id is None:
                    cand = _latest_run_id(dag_id)
                    run_id = cand if cand != before else None
                    if run_id is None:
                        continue
                for t in _task_states(dag_id, run_id):
                    key = (t.task_id, t.map_index)
                    if seen.get(key) != t.state and t.state in ("success", "failed", "upstream_failed", "skipped"):
                        seen[key] = t.state
                        label = t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]"
                        dur = f" {t.duration:.1f}s" if t.duration else ""
                        if progress:
                            progress(f"  {dag_id}: {label} {t.state}{dur}")
            except Exception:  # noqa: BLE001 - the watcher must never break the run
                continue

    watcher = threading.Thread(target=watch, daemon=True)
    if progress:
        watcher.start()
    t0 = time.perf_counter()
    try:
        from synth.task_logs import task_log_files

        with task_log_files():  # each task's log where the UI reads it (in-process runs write none)
            dr = dag.test(run_conf=conf)
    finally:
        stop.set()
        review_stop.set()
        if progress:
            watcher.join(timeout=5)
    seconds = time.perf_counter() - t0
    tasks = _task_states(dag_id, dr.run_id)
    return RunSummary(dag_id, dr.run_id, str(dr.state), round(seconds, 2), tasks)
