"""``/api/rx``: medication orders (issue 17) and the population-trends page ``/rx``.

``POST /api/rx/orders`` takes an order as JSON fields or as the text of a
dictated order (es/pt) plus the patient/context fields; the patient id is
tokenized on arrival; the order is validated and checked at once (the answer
carries the verdict and every check's reason) and, when the service knows
Airflow (``STA_AIRFLOW_URL``), a ``medication_order`` run takes it from there
(prescriber review, recording, patient notice, health plan).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from sta.service.deps import CurrentCustomer

router = APIRouter(tags=["medication"])
STATIC = Path(__file__).resolve().parent.parent / "static"
_lock = threading.Lock()


class RxOrderIn(BaseModel):
    """An order: the JSON fields, or ``text`` (a dictated order) plus the fields speech does not give."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"order_id": "O-1", "patient_id": "HC-123", "age": 34, "sex": "F", "weight_kg": 61, "diagnosis": "J02.9",
         "drug": "amoxicilina", "dose": 500, "unit": "mg", "frequency_per_day": 3, "duration_days": 7,
         "date": "2025-09-01", "prescriber_id": "DR-001"},
        {"text": "amoxicilina quinientos miligramos cada ocho horas durante siete días", "lang": "es",
         "patient_id": "HC-123", "age": 34, "sex": "F", "weight_kg": 61, "diagnosis": "J02.9",
         "prescriber_id": "DR-001"}]})
    text: str | None = Field(None, max_length=2000, description="dictated order (Spanish or Portuguese)")
    lang: str | None = Field(None, pattern="^(es|pt)$")
    order_id: str | None = None
    patient_id: str | None = None
    patient_document: list[str] | None = None
    age: float | None = None
    sex: str | None = None
    weight_kg: float | None = None
    diagnosis: str | None = None
    drug: str | None = None
    dose: float | str | None = None
    unit: str | None = None
    route: str | None = None
    frequency_per_day: float | str | None = None
    duration_days: float | None = None
    date: str | None = None
    prescriber_id: str | None = None
    prescriber_email: str | None = None
    patient_email: str | None = None
    permanent: bool | None = None


class CheckOut(BaseModel):
    name: str
    result: str
    score: float | None
    reason: str


class RxDecisionOut(BaseModel):
    order_id: str
    verdict: str = Field(description="ok | anomaly | rejected")
    checks: list[CheckOut]
    model_version: str | None
    status: str
    workflow_run: str | None = Field(None, description="the medication_order run, when Airflow is configured")
    understood: dict[str, Any] | None = Field(None, description="what was read from a dictated order")


def _store(request: Request):  # noqa: ANN202 - medication.store.OrderStore
    from medication.store import OrderStore, default_store_dir

    store = getattr(request.app.state, "rx_store", None)
    if store is None:
        import os

        root = getattr(getattr(request.app.state, "delivery", None), "data_root", None)
        directory = default_store_dir() if os.environ.get("STA_RX_STORE") or root is None else Path(root) / "rx"
        store = request.app.state.rx_store = OrderStore(directory)
    return store


def _checker(request: Request):  # noqa: ANN202 - medication.engine.Checker
    """One checker per process, renewed when a newer population model is trained."""
    from medication.engine import Checker

    store = _store(request)
    latest = store.latest_model()
    cached = getattr(request.app.state, "rx_checker", None)
    if cached is None or (latest and (cached.model is None or cached.model.version != latest[0])):
        cached = request.app.state.rx_checker = Checker(store, bulk=False)
    cached.refresh()  # known drugs re-read per order: the history grows as orders are recorded
    return cached


@router.post("/api/rx/orders", response_model=RxDecisionOut, status_code=201,
             summary="Submit a medication order (JSON fields or dictated text); returns the checks' verdict")
def submit_order(body: RxOrderIn, request: Request, customer: CurrentCustomer) -> dict:
    from medication.workflow import take_in

    payload = body.model_dump(exclude_none=True)
    if not payload.get("text") and not payload.get("drug"):
        raise HTTPException(422, "give the order's fields (drug, dose, unit, ...) or its dictated text")
    with _lock:
        checker = _checker(request)
        try:
            order, info = take_in(checker, payload)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        d = checker.check(order)
        d.stage = "intake"
        store = checker.store
        store.add_decisions([d.row()])
        n = d.normalised
        status = "rejected" if d.verdict == "rejected" else "received"
        store.upsert_order(order.order_id, verdict=d.verdict, status=status, model_version=d.model_version,
                           **({"drug_key": n.drug_key, "dx_group": n.dx_group, "daily_dose": n.daily_dose,
                               "dose_unit": n.dose_unit} if n else {}))
    run_id = None
    trigger = getattr(getattr(request.app.state, "delivery", None), "trigger", None)
    if trigger is not None and d.verdict != "rejected":
        run_id = trigger("medication_order", {"order_id": order.order_id})
        store.event(order.order_id, "workflow_triggered", {"run_id": run_id, "by": customer.name})
    return {**d.as_dict(), "status": status, "workflow_run": run_id,
            "understood": info.get("understood") if info.get("source") == "spoken" else None}


@router.get("/api/rx/orders/{order_id}", summary="An order's record: status, every decision and event, with reasons")
def get_order(order_id: str, request: Request, customer: CurrentCustomer) -> dict:
    store = _store(request)
    if store.get_order(order_id) is None:
        raise HTTPException(404, "no such order")
    return store.order_record(order_id)


@router.get("/api/rx/trends", summary="Population trends: dose distributions, anomaly rates, orders per prescriber")
def trends(request: Request, customer: CurrentCustomer, drug: str | None = Query(None, max_length=80),
           dx: str | None = Query(None, max_length=8)) -> dict:
    from medication import dashboard

    store = _store(request)
    return {"doses": dashboard.dose_distribution(store, drug, dx),
            "anomalies": dashboard.anomaly_rates(store, drug, dx),
            "prescribers": dashboard.prescribers(store, drug, dx)}


@router.get("/api/rx/trends/{name}.svg", summary="A trends plot (doses, anomalies, prescribers) as SVG",
            response_class=Response)
def trend_plot(name: str, request: Request, customer: CurrentCustomer, drug: str | None = Query(None, max_length=80),
               dx: str | None = Query(None, max_length=8)) -> Response:
    from medication import dashboard

    try:
        svg = dashboard.plot(_store(request), name, drug, dx)
    except ValueError as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/rx", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "rx.html", headers={"Cache-Control": "no-cache"})
