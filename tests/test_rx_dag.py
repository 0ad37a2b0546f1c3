"""The ``medication_order`` DAG through Airflow (``dag.test()``): every state and branch.

Real parts: an order store (DuckDB) with a loaded history and a trained
forest, aiosmtpd on loopback for the e-mails (``smtp_default``), the local
health-plan API (``health_plan_api``), and the prescriber's answers given
through Airflow's REST API (``PATCH .../hitlDetails``) from a thread.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from tests.support.smtp import smtp_server

pytestmark = pytest.mark.timeout(300)

DAG_ID = "medication_order"


@pytest.fixture(scope="module")
def rx(tmp_path_factory, airflow_db):
    from medication.engine import Checker, read_jsonl
    from medication.store import OrderStore
    from synth.medication import PlanServer, generate

    base = tmp_path_factory.mktemp("rx")
    generate(base / "input", patients=120, seed=3)
    saved = {k: os.environ.get(k) for k in ("STA_RX_STORE", "AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_HEALTH_PLAN_API")}
    os.environ["STA_RX_STORE"] = str(base / "store")
    store = OrderStore(base / "store")
    checker = Checker(store, load_model=False)
    checker.load_history(read_jsonl(base / "input" / "history.jsonl"))
    checker.train()
    with smtp_server() as mailbox, PlanServer() as plan:
        port = int(plan.url.rsplit(":", 1)[1])
        os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = mailbox.airflow_conn_uri()
        os.environ["AIRFLOW_CONN_HEALTH_PLAN_API"] = json.dumps(
            {"conn_type": "http", "host": "127.0.0.1", "port": port, "schema": "http"})
        try:
            yield {"store": store, "mailbox": mailbox, "plan": plan}
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def order(oid: str, **kw) -> dict:
    base = {"order_id": oid, "patient_id": f"PAT-{oid}", "age": 45, "sex": "F", "weight_kg": 68,
            "diagnosis": "J02.9", "drug": "amoxicilina", "dose": 500, "unit": "mg", "frequency_per_day": 3,
            "duration_days": 7, "date": "2025-09-01", "prescriber_id": "DR-001",
            "patient_email": f"{oid.lower()}@patients.example.org"}
    base.update(kw)
    return base


def states(dr) -> dict[str, str]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as s:
        rows = s.query(TaskInstance).filter(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == dr.run_id).all()
        return {r.task_id: str(r.state) for r in rows}


def get_dag(dag_id: str = DAG_ID):
    """Parsed from its own file: another DAG file's import error is not this DAG's failure."""
    from pathlib import Path

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent.parent / "dags" / "medication_order.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run(conf: dict, answer: dict | None = None):
    """One run; with ``answer``, a thread answers the prescriber_review task through the REST API."""
    stop = threading.Event()
    answered: dict = {}
    if answer is not None:
        t = threading.Thread(target=_answer, args=(answer, stop, answered), daemon=True)
        t.start()
    try:
        dr = get_dag(DAG_ID).test(run_conf=conf)
    finally:
        stop.set()
    if answer is not None:
        t.join(10)
        assert answered.get("status") == 200, answered
    return dr


def _answer(answer: dict, stop: threading.Event, out: dict) -> None:
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.app import create_app

    client = TestClient(create_app(apps="core"))
    deadline = time.monotonic() + 120
    while not stop.is_set() and time.monotonic() < deadline:
        r = client.get("/api/v2/dags/~/dagRuns/~/hitlDetails", params={"response_received": False})
        pending = [h for h in r.json().get("hitl_details", []) if h["task_instance"]["dag_id"] == DAG_ID]
        if pending:
            ti = pending[0]["task_instance"]
            out["subject"], out["body"] = pending[0].get("subject"), pending[0].get("body")
            time.sleep(1.0)
            r = client.patch(f"/api/v2/dags/{DAG_ID}/dagRuns/{ti['dag_run_id']}/taskInstances/"
                             f"{ti['task_id']}/{ti['map_index']}/hitlDetails", json=answer)
            out["status"], out["response"] = r.status_code, r.json()
            return
        time.sleep(0.5)


def mails_to(box, address: str) -> list:
    return [m for m in box.messages if address in m["X-Envelope-To"]]


def test_ok_order_is_recorded_patient_notified_and_plan_checked(rx):
    box, plan, store = rx["mailbox"], rx["plan"], rx["store"]
    before = store.history_counts()["history"]
    dr = run({"order": order("RX-OK-1")})
    assert dr.state == "success"
    st = states(dr)
    assert st["record"] == "success" and st["notify_patient"] == "success" and st["health_plan_check"] == "success"
    assert st["notify_prescriber"] == "skipped" and st["reject"] == "skipped" and st["hold"] == "skipped"
    rec = store.order_record("RX-OK-1")
    assert rec["status"] == "recorded" and rec["verdict"] == "ok"
    assert [d["stage"] for d in rec["decisions"]] == ["validate", "history", "population"]
    assert store.history_counts()["history"] == before + 1
    assert rec["patient_token"] and "PAT-RX-OK-1" not in json.dumps(rec, default=str)
    msgs = box.wait_for(1) and mails_to(box, "rx-ok-1@patients.example.org")
    assert msgs and "amoxicilina" in box.html_of(msgs[0])
    asked = [r for r in plan.requests if r["order_ref"] == "RX-OK-1"]
    assert asked and asked[0]["atc"] == "J01CA04" and asked[0]["daily_dose"] == 1500
    plan_event = [e for e in rec["events"] if e["event"] == "health_plan"]
    assert plan_event and plan_event[0]["detail"]["covered"] is True


def test_invalid_order_is_rejected_with_reasons(rx):
    box = rx["mailbox"]
    n = len(box.messages)
    dr = run({"order": order("RX-BAD-1", drug="zzxqv", unit=None)})
    assert dr.state == "success"
    st = states(dr)
    assert st["reject"] == "success" and st["history_check"] == "skipped" and st["record"] == "skipped"
    rec = rx["store"].order_record("RX-BAD-1")
    assert rec["status"] == "rejected"
    reason = rec["decisions"][0]["checks"][0]["reason"]
    assert "missing unit" in reason and "unknown drug" in reason
    assert len(box.messages) == n  # nobody is e-mailed about a rejected order


def test_spoken_order_runs_through(rx):
    dr = run({"text": "amoxicilina quinientos miligramos cada ocho horas durante siete días", "lang": "es",
              "order_id": "RX-SPOKEN-1", "patient_id": "PAT-S1", "age": 30, "sex": "M", "weight_kg": 80,
              "diagnosis": "J02.9", "date": "2025-09-02", "prescriber_id": "DR-002"})
    assert dr.state == "success" and states(dr)["record"] == "success"
    rec = rx["store"].order_record("RX-SPOKEN-1")
    assert rec["order_json"]["dose"] == 500 and rec["order_json"]["frequency_per_day"] == 3
    assert rec["order_json"]["source"] == "spoken" and rec["daily_dose"] == 1500


def test_anomaly_emails_prescriber_and_confirm_records(rx):
    box = rx["mailbox"]
    dr = run({"order": order("RX-ANOM-C", dose=2000)}, answer={"chosen_options": ["Confirm"], "params_input": {}})
    assert dr.state == "success"
    st = states(dr)
    assert st["notify_prescriber"] == "success" and st["prescriber_review"] == "success"
    assert st["record"] == "success" and st["hold"] == "skipped"
    to_doctor = mails_to(box, "ana.morales@clinica-andes.example.org")
    assert to_doctor and "RX-ANOM-C" in to_doctor[-1]["Subject"]
    assert "population" in box.html_of(to_doctor[-1]) or "dose_range" in box.html_of(to_doctor[-1])
    rec = rx["store"].order_record("RX-ANOM-C")
    assert rec["status"] == "recorded"
    assert any(e["event"] == "prescriber_confirmed" for e in rec["events"])
    assert mails_to(box, "rx-anom-c@patients.example.org")


def test_anomaly_modify_rechecks_and_records_the_new_dose(rx):
    dr = run({"order": order("RX-ANOM-M", dose=2000)},
             answer={"chosen_options": ["Modify"],
                     "params_input": {"dose": 500, "unit": "mg", "frequency_per_day": 3, "duration_days": 7}})
    assert dr.state == "success"
    assert states(dr)["record"] == "success"
    rec = rx["store"].order_record("RX-ANOM-M")
    assert rec["status"] == "recorded" and rec["order_json"]["dose"] == 500
    review = [d for d in rec["decisions"] if d["stage"] == "review"]
    assert review and review[0]["verdict"] == "ok"
    assert any(e["event"] == "prescriber_modified" for e in rec["events"])


def test_anomaly_hold_is_not_sent(rx):
    box = rx["mailbox"]
    dr = run({"order": order("RX-ANOM-H", dose=50, unit="mg")}, answer={"chosen_options": ["Hold"], "params_input": {}})
    assert dr.state == "success"
    st = states(dr)
    assert st["hold"] == "success" and st["record"] == "skipped" and st["notify_patient"] == "skipped"
    rec = rx["store"].order_record("RX-ANOM-H")
    assert rec["status"] == "held"
    assert not mails_to(box, "rx-anom-h@patients.example.org")


def test_review_times_out_to_hold(rx, monkeypatch):
    """No answer: at the deadline the scheduler's own sweep (``check_awaiting_input_timeouts``, what a
    running scheduler calls every loop) applies the review's default, Hold; the order is held, not sent."""
    monkeypatch.setenv("STA_RX_REVIEW_HOURS", str(2 / 3600))  # a 2-second deadline, read when the DAG is parsed
    dag = get_dag()
    stop = threading.Event()

    def sweep() -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        runner = SchedulerJobRunner(job=Job(), executors=[])
        while not stop.wait(1.0):
            runner.check_awaiting_input_timeouts()

    t = threading.Thread(target=sweep, daemon=True)
    t.start()
    try:
        dr = dag.test(run_conf={"order": order("RX-ANOM-T", dose=2000)})
    finally:
        stop.set()
        t.join(10)
    assert dr.state == "success"
    st = states(dr)
    assert st["prescriber_review"] == "success" and st["hold"] == "success" and st["record"] == "skipped"
    rec = rx["store"].order_record("RX-ANOM-T")
    assert rec["status"] == "held"
    assert any(e["event"] == "held" and e["detail"]["why"] == "no answer before the deadline" for e in rec["events"])
    assert not mails_to(rx["mailbox"], "rx-anom-t@patients.example.org")


def test_review_task_is_configured_to_hold():
    review = get_dag(DAG_ID).get_task("prescriber_review")
    assert review.defaults == ["Hold"] and review.response_timeout is not None
    assert set(review.options) == {"Confirm", "Modify", "Hold"}
