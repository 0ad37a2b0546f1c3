"""``/api/rx``: orders in (JSON and dictated), the record, and the trends behind the ``/rx`` page.

The dashboard SQL is checked against figures computed here in plain Python
from the rows put in the store; the API runs on a real server on loopback.
"""

from __future__ import annotations

import json
import statistics
from datetime import date

import httpx
import pytest

from tests.support.serve import serve_in_thread


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from medication.engine import Checker, read_jsonl
    from medication.store import OrderStore
    from sta.service import create_app
    from sta.service.db import ServiceDB
    from sta.service.search import StoreSet
    from synth.medication import generate

    root = tmp_path_factory.mktemp("rxapi")
    generate(root / "input", patients=80, seed=5)
    store = OrderStore(root / "rx")
    checker = Checker(store, load_model=False)
    checker.load_history(read_jsonl(root / "input" / "history.jsonl"))
    checker.train()
    db = ServiceDB(root / "service" / "service.sqlite")
    key = db.create_key("Clínica Andes", "standard")[0]
    app = create_app(StoreSet.discover(root), db)
    app.state.rx_store = store
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield {"client": client, "key": key, "store": store, "root": root}


def post(env, body, key=True):
    return env["client"].post("/api/rx/orders", json=body, headers={"X-API-Key": env["key"]} if key else {})


ORDER = {"order_id": "API-1", "patient_id": "HC-API-1", "age": 40, "sex": "M", "weight_kg": 75, "diagnosis": "J02.9",
         "drug": "Amoxil", "dose": 500, "unit": "miligramos", "frequency_per_day": 3, "duration_days": 7,
         "date": "2025-09-03", "prescriber_id": "DR-001"}


def test_orders_need_an_api_key(env):
    assert post(env, ORDER, key=False).status_code == 401


def test_json_order_is_checked_and_tokenized(env):
    r = post(env, ORDER)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["verdict"] == "ok" and out["status"] == "received" and out["model_version"].startswith("rcf3-")
    assert {c["name"] for c in out["checks"]} >= {"validation", "history", "dose_range", "population"}
    rec = env["client"].get("/api/rx/orders/API-1", headers={"X-API-Key": env["key"]}).json()
    assert rec["drug_key"] == "amoxicillin" and rec["daily_dose"] == 1500
    assert "HC-API-1" not in json.dumps(rec) and len(rec["patient_token"]) == 32


def test_dictated_portuguese_order(env):
    body = {"text": "dipirona quinhentos miligramas de seis em seis horas por cinco dias", "lang": "pt",
            "order_id": "API-PT", "patient_id": "HC-API-2", "age": 50, "sex": "F", "weight_kg": 70,
            "diagnosis": "R50", "date": "2025-09-04", "prescriber_id": "DR-004"}
    out = post(env, body).json()
    assert out["understood"]["dose"] == 500 and out["understood"]["frequency_per_day"] == 4
    assert out["understood"]["duration_days"] == 5
    assert out["verdict"] == "ok", out


def test_tenfold_dose_is_caught_with_its_reason(env):
    out = post(env, {**ORDER, "order_id": "API-10X", "patient_id": "HC-API-3", "dose": 5000}).json()
    assert out["verdict"] == "rejected" and out["status"] == "rejected"
    assert "absolute limit" in out["checks"][0]["reason"]


def test_mcg_for_mg_is_caught(env):
    out = post(env, {**ORDER, "order_id": "API-UG", "patient_id": "HC-API-4", "unit": "µg"}).json()
    assert out["verdict"] == "rejected" and "unit or decimal" in out["checks"][0]["reason"]


def test_look_alike_spelling_is_not_guessed(env):
    out = post(env, {**ORDER, "order_id": "API-LA", "drug": "hidrozalina", "dose": 25, "diagnosis": "L50"}).json()
    assert out["verdict"] == "rejected"
    assert "look-alike" in out["checks"][0]["reason"] or "unknown drug" in out["checks"][0]["reason"]


def test_order_without_drug_or_text_is_422(env):
    assert post(env, {"patient_id": "x"}).status_code == 422


# ------------------------------------------------------------------ the dashboard's SQL
@pytest.fixture(scope="module")
def known(tmp_path_factory):
    """A store with hand-made rows: the expected figures are computed from the same lists in Python."""
    from medication.store import OrderStore

    store = OrderStore(tmp_path_factory.mktemp("rxdash"))
    hist = []
    for i, (drug, dx, dose, pres, month) in enumerate(
            [("amoxicillin", "J02", 1500, "DR-1", 1), ("amoxicillin", "J02", 3000, "DR-1", 1),
             ("amoxicillin", "J02", 1500, "DR-2", 2), ("amoxicillin", "J18", 3000, "DR-2", 2),
             ("metformin", "E11", 1700, "DR-1", 3), ("metformin", "E11", 2000, "DR-3", 3)]):
        hist.append({"order_id": f"h{i}", "patient_token": f"t{i}", "drug_key": drug, "dx_group": dx,
                     "daily_dose": dose, "dose_unit": "mg", "order_date": date(2025, month, 10),
                     "prescriber_id": pres, "valid": True, "frequency_per_day": 3})
    hist.append({"order_id": "bad", "drug_key": "amoxicillin", "dx_group": "J02", "daily_dose": 99999,
                 "dose_unit": "mg", "valid": False, "prescriber_id": "DR-9"})
    store.add_history(hist)
    decided = [("c1", "ok", 1500, 7, "DR-1"), ("c2", "anomaly", 15000, 7, "DR-1"), ("c3", "rejected", 1.5, 7, "DR-2"),
               ("c4", "ok", 3000, 8, "DR-2"), ("c5", "ok", 1500, 8, "DR-2")]
    rows = []
    for oid, verdict, dose, month, pres in decided:
        rows.append({"order_id": oid, "stage": "check", "verdict": verdict, "checks": [], "drug_key": "amoxicillin",
                     "dx_group": "J02", "daily_dose": dose, "dose_unit": "mg", "order_date": date(2025, month, 2),
                     "prescriber_id": pres})
    # a workflow order: ok at validation, anomaly at population -> its verdict is anomaly
    rows.append({**rows[0], "order_id": "w1", "stage": "validate", "verdict": "ok", "order_date": date(2025, 8, 3)})
    rows.append({**rows[0], "order_id": "w1", "stage": "population", "verdict": "anomaly",
                 "order_date": date(2025, 8, 3)})
    store.add_decisions(rows)
    return store, hist, decided


def test_dose_distribution_matches_python(known):
    from medication import dashboard

    store, hist, decided = known
    got = {(r["drug_key"], r["dx_group"]): r for r in dashboard.dose_distribution(store)}
    amox_j02 = [h["daily_dose"] for h in hist if h["valid"] and h["drug_key"] == "amoxicillin" and h["dx_group"] == "J02"]
    amox_j02 += [d for _, v, d, _, _ in decided if v == "ok"]  # anomalous/rejected doses are not the population's
    row = got[("amoxicillin", "J02")]
    assert row["n"] == len(amox_j02) and row["p50"] == statistics.median(amox_j02)
    assert row["max"] == max(amox_j02) and row["min"] == min(amox_j02)
    assert got[("metformin", "E11")]["p50"] == 1850
    only = dashboard.dose_distribution(store, drug="metformin")
    assert [r["drug_key"] for r in only] == ["metformin"]


def test_anomaly_rates_per_month_match_python(known):
    from medication import dashboard

    store, _, decided = known
    got = {r["month"]: r for r in dashboard.anomaly_rates(store)}
    assert got["2025-07"]["checked"] == 3 and got["2025-07"]["anomalies"] == 1 and got["2025-07"]["rejected"] == 1
    assert got["2025-07"]["anomaly_rate"] == round(1 / 3, 4)
    assert got["2025-08"]["checked"] == 3 and got["2025-08"]["anomalies"] == 1  # w1 counted once, as anomaly
    assert set(got) == {"2025-07", "2025-08"}  # history is not "checked"


def test_orders_per_prescriber_match_python(known):
    from medication import dashboard

    store, hist, decided = known
    got = {r["prescriber_id"]: r for r in dashboard.prescribers(store)}
    assert "DR-9" not in got  # invalid history rows are not orders
    dr1 = sum(1 for h in hist if h["valid"] and h["prescriber_id"] == "DR-1") + \
        sum(1 for d in decided if d[4] == "DR-1") + 1  # w1
    assert got["DR-1"]["orders"] == dr1 and got["DR-1"]["anomalies"] == 2 and got["DR-1"]["rejected"] == 0
    assert got["DR-2"]["rejected"] == 1 and got["DR-2"]["checked"] == 3


def test_plots_are_svg(known):
    from medication import dashboard

    store, _, _ = known
    for name in ("doses", "anomalies", "prescribers"):
        svg = dashboard.plot(store, name)
        assert svg.lstrip().startswith("<?xml") and "<svg" in svg and "</svg>" in svg
    with pytest.raises(ValueError):
        dashboard.plot(store, "nope")


def test_trends_api_and_page(env):
    h = {"X-API-Key": env["key"]}
    t = env["client"].get("/api/rx/trends", params={"dx": "J02"}, headers=h).json()
    assert t["doses"] and all(r["dx_group"] == "J02" for r in t["doses"])
    assert any(r["checked"] for r in t["anomalies"])
    r = env["client"].get("/api/rx/trends/anomalies.svg", headers=h)
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert env["client"].get("/api/rx/trends/doses.svg").status_code == 401
    page = env["client"].get("/rx")
    assert page.status_code == 200 and "rx.js" in page.text


def test_recorded_orders_become_the_patients_history(env):
    """The workflow's steps without Airflow: three recorded orders make the drug recurrent for the patient."""
    from medication import workflow as W
    from medication.engine import Checker

    store = env["store"]
    checker = Checker(store, bulk=False)
    base = {**ORDER, "patient_id": "HC-HIST", "drug": "levotiroxina", "dose": 100, "unit": "mcg", "diagnosis": "E03",
            "frequency_per_day": 1, "duration_days": 30}
    for i, day in enumerate(("2025-06-01", "2025-07-01", "2025-08-01")):
        order, _ = W.take_in(checker, {**base, "order_id": f"HIST-{i}", "date": day})
        assert W.validate(order.order_id, store)
        W.history(order.order_id, store)
        assert not W.population(order.order_id, store)
        W.record(order.order_id, store)
        assert store.get_order(order.order_id)["status"] == "recorded"
    slip, _ = W.take_in(checker, {**base, "order_id": "HIST-SLIP", "date": "2025-09-01", "dose": "250"})
    assert W.validate(slip.order_id, store)
    h = W.history(slip.order_id, store)
    assert h["result"] == "anomaly" and "over 3 orders" in h["reason"]
    assert W.population(slip.order_id, store)  # the history's anomaly sends it to the prescriber
    assert store.get_order("HIST-SLIP")["status"] == "awaiting_prescriber"
    assert W.apply_review("HIST-SLIP", None, store) == W.HOLD  # no answer: held
    assert store.get_order("HIST-SLIP")["status"] == "held"


def test_accepted_order_starts_a_workflow_run(env, tmp_path):
    """With Airflow configured, the service asks for a medication_order run with the order id only."""
    from delivery.links import LinkSigner
    from sta.service import create_app
    from sta.service.db import ServiceDB
    from sta.service.search import StoreSet
    from sta.service.settings import DeliverySettings

    runs: list[tuple[str, dict]] = []

    def trigger(dag_id: str, conf: dict) -> str:
        runs.append((dag_id, conf))
        return f"manual__{len(runs)}"

    db = ServiceDB(tmp_path / "service.sqlite")
    key = db.create_key("Hospital", "standard")[0]
    app = create_app(StoreSet.discover(env["root"]), db,
                     DeliverySettings(data_root=env["root"], signer=LinkSigner(b"k" * 32), trigger=trigger))
    app.state.rx_store = env["store"]
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        ok = client.post("/api/rx/orders", json={**ORDER, "order_id": "API-RUN"}, headers={"X-API-Key": key}).json()
        bad = client.post("/api/rx/orders", json={**ORDER, "order_id": "API-NORUN", "unit": "µg"},
                          headers={"X-API-Key": key}).json()
    assert ok["workflow_run"] == "manual__1" and runs == [("medication_order", {"order_id": "API-RUN"})]
    assert bad["verdict"] == "rejected" and bad["workflow_run"] is None and len(runs) == 1
