"""The ``medication_order`` workflow's steps, as plain functions (the DAG only wires them).

Mirrors the seed's Step Functions states: intake (tokenize) -> validate
(Fail State) -> history check -> population check -> on anomaly, e-mail the
prescriber and wait for confirm/modify/hold -> record -> notify the patient
and check the health plan, in parallel. Every step writes its decision, with
reasons, to the order's record in the store (``decisions`` and ``events``);
what moves between steps is the order id only.

An order arrives by ``POST /api/rx/orders`` (already tokenized and stored:
the run's conf is ``{"order_id": ...}``), or directly in a run's conf as
``{"order": {...}}`` or ``{"text": "...", "lang": "es", ...}`` (then the
conf holds the patient id until Airflow's run is cleaned up: prefer the API).
"""

from __future__ import annotations

import html
from typing import Any

from medication.checks import fmt
from medication.engine import Checker, Decision, verdict_of
from medication.order import Order, OrderIn
from medication.store import OrderStore

HOLD, RECORD = "hold", "record"


def _checker(store: OrderStore | None = None) -> Checker:
    return Checker(store or OrderStore(), bulk=False)


def take_in(checker: Checker, payload: dict[str, Any]) -> tuple[Order, dict[str, Any]]:
    """An order as JSON fields, or as dictated text (+ the patient/context fields) -> a stored, tokenized order."""
    from medication.spoken import parse_spoken

    payload = dict(payload)
    spoken = None
    if payload.get("text"):
        spoken = parse_spoken(str(payload.pop("text")), payload.pop("lang", None))
        for k, v in spoken.fields().items():
            if payload.get(k) in (None, "") and v not in (None, False):
                payload[k] = v
    raw = OrderIn.model_validate(payload)
    order = checker.tokenize(raw, source="spoken" if spoken else "json")
    store = checker.store
    store.upsert_order(order.order_id, patient_token=order.patient_token, status="received",
                       order_json=order.model_dump(mode="json"), prescriber_id=order.prescriber_id,
                       order_date=order.date, age=order.age, sex=order.sex, weight_kg=order.weight_kg)
    if raw.patient_email and order.patient_token:
        store.set_contact(order.patient_token, raw.patient_email)
    if raw.prescriber_id and payload.get("prescriber_email"):
        store.event(order.order_id, "prescriber_contact", {"email": payload["prescriber_email"]})
    info = {"source": order.source}
    if spoken is not None:
        info.update(language=spoken.language, understood=spoken.fields(), missing=spoken.missing)
    store.event(order.order_id, "received", info)
    return order, info


def intake(conf: dict[str, Any], store: OrderStore | None = None) -> str:
    checker = _checker(store)
    if conf.get("order_id") and not conf.get("order") and not conf.get("text"):
        if checker.store.get_order(str(conf["order_id"])) is None:
            raise ValueError(f"order {conf['order_id']!r} is not in the order store")
        return str(conf["order_id"])
    payload = conf.get("order") or {k: v for k, v in conf.items() if k != "order"}
    order, _ = take_in(checker, payload)
    return order.order_id


def load_order(store: OrderStore, order_id: str) -> Order:
    rec = store.get_order(order_id)
    if rec is None:
        raise ValueError(f"order {order_id!r} is not in the order store")
    return Order.model_validate(rec["order_json"])


def _save(store: OrderStore, d: Decision, status: str | None = None) -> None:
    store.add_decisions([d.row()])
    fields: dict[str, Any] = {"verdict": d.verdict, "model_version": d.model_version}
    if d.normalised is not None:
        n = d.normalised
        fields.update(drug_key=n.drug_key, dx_group=n.dx_group, daily_dose=n.daily_dose, dose_unit=n.dose_unit)
    if status:
        fields["status"] = status
    store.upsert_order(d.order_id, **fields)


def validate(order_id: str, store: OrderStore | None = None) -> bool:
    checker = _checker(store)
    order = load_order(checker.store, order_id)
    check, n = checker.validate(order)
    d = Decision(order_id, "rejected" if n is None else "ok", [check], checker.model.version if checker.model else None,
                 n, stage="validate")
    _save(checker.store, d, "rejected" if n is None else "validated")
    return n is not None


def history(order_id: str, store: OrderStore | None = None) -> dict[str, Any]:
    checker = _checker(store)
    _, n = checker.validate(load_order(checker.store, order_id))
    if n is None:
        raise ValueError(f"order {order_id} no longer validates")
    c = checker.history_check(n)
    _save(checker.store, Decision(order_id, verdict_of([c]), [c], checker.model.version if checker.model else None,
                                  n, stage="history"))
    return c.as_dict()


def population(order_id: str, store: OrderStore | None = None) -> bool:
    """The population checks; True when this or the history check found an anomaly."""
    checker = _checker(store)
    _, n = checker.validate(load_order(checker.store, order_id))
    if n is None:
        raise ValueError(f"order {order_id} no longer validates")
    cs = checker.population_checks(n)
    d = Decision(order_id, verdict_of(cs), cs, checker.model.version if checker.model else None, n, stage="population")
    history_anomaly = any(x["verdict"] == "anomaly" for x in checker.store.order_record(order_id)["decisions"]
                          if x["stage"] == "history")
    anomaly = d.verdict == "anomaly" or history_anomaly
    _save(checker.store, d, "awaiting_prescriber" if anomaly else "checked")
    if anomaly:
        checker.store.upsert_order(order_id, verdict="anomaly")
    return anomaly


def _anomaly_lines(store: OrderStore, order_id: str) -> list[str]:
    rec = store.order_record(order_id)
    return [f"{c['name']}: {c['reason']}" for d in rec["decisions"] for c in d["checks"]
            if c["result"] in ("anomaly", "fail")]


def order_summary(store: OrderStore, order_id: str) -> str:
    o = load_order(store, order_id)
    rec = store.get_order(order_id) or {}
    daily = rec.get("daily_dose")
    per_day = f" = {fmt(daily, rec.get('dose_unit') or '')}/day" if daily else ""
    return (f"order {order_id}: {o.drug_text} {o.dose:g} {o.unit_text} x {o.frequency_per_day:g}/day{per_day}"
            f" for {o.duration_days or '?'} days, diagnosis {o.diagnosis}")


def prescriber_notice(order_id: str, store: OrderStore | None = None) -> dict[str, str]:
    """The e-mail to the prescriber: what was ordered, what looks wrong, how to answer."""
    checker = _checker(store)
    s = checker.store
    o = load_order(s, order_id)
    to = None
    for e in s.order_record(order_id)["events"]:
        if e["event"] == "prescriber_contact":
            to = e["detail"].get("email")
    if to is None and o.prescriber_id:
        to = (checker.catalogue.prescribers.get(o.prescriber_id) or {}).get("email")
    if not to:
        # an unknown prescriber: the pharmacy's safety desk answers instead, if the deployment names one
        import os

        to = os.environ.get("STA_RX_SAFETY_EMAIL")
    if not to:
        raise ValueError(f"no e-mail for prescriber {o.prescriber_id!r} (include/medication/prescribers.csv, "
                         "or STA_RX_SAFETY_EMAIL for a fallback)")
    summary = order_summary(s, order_id)
    reasons = _anomaly_lines(s, order_id)
    items = "".join(f"<li>{html.escape(r)}</li>" for r in reasons)
    body = (f"<p>The medication {html.escape(summary)} needs your review before it is sent:</p><ul>{items}</ul>"
            "<p>Confirm it as ordered, modify it (dose, unit, doses per day, duration) or hold it in "
            "<b>Required Actions</b> of the medication_order workflow. Without an answer the order is held, "
            "not sent.</p>")
    s.event(order_id, "prescriber_notified", {"prescriber_id": o.prescriber_id, "reasons": reasons})
    return {"to": to, "subject": f"[STA Rx] Please review order {order_id}", "html": body,
            "summary": summary + ". " + " | ".join(reasons)}


def apply_review(order_id: str, response: dict[str, Any] | None, store: OrderStore | None = None) -> str:
    """The prescriber's answer: Confirm -> record; Modify -> the changed order is re-checked and recorded;
    Hold (or no answer before the timeout) -> held, not sent."""
    checker = _checker(store)
    s = checker.store
    chosen = (response or {}).get("chosen_options") or ["Hold"]
    params = {k: v for k, v in ((response or {}).get("params_input") or {}).items() if v not in (None, "")}
    by = (response or {}).get("responded_by_user") or {}
    who = by.get("name") or by.get("id") if isinstance(by, dict) else str(by)
    choice = chosen[0]
    if choice == "Confirm":
        s.event(order_id, "prescriber_confirmed", {"by": who})
        s.upsert_order(order_id, status="confirmed")
        return RECORD
    if choice == "Modify":
        order = load_order(s, order_id)
        changes = {k: params[k] for k in ("dose", "unit", "frequency_per_day", "duration_days") if k in params}
        if not changes:
            s.event(order_id, "prescriber_modify_empty", {"by": who})
            s.upsert_order(order_id, status="held")
            return HOLD
        data = order.model_dump()
        data.update({"dose": float(changes["dose"]) if "dose" in changes else order.dose,
                     "unit_text": changes.get("unit", order.unit_text),
                     "frequency_per_day": float(changes.get("frequency_per_day", order.frequency_per_day)),
                     "duration_days": float(changes["duration_days"]) if "duration_days" in changes
                     else order.duration_days})
        modified = Order.model_validate(data)
        d = checker.check(modified)
        d.stage = "review"
        s.upsert_order(order_id, order_json=modified.model_dump(mode="json"))
        _save(s, d, "modified" if d.verdict != "rejected" else "held")
        s.event(order_id, "prescriber_modified", {"by": who, "changes": changes, "verdict": d.verdict})
        return RECORD if d.verdict != "rejected" else HOLD
    answered = bool(response) and bool((response or {}).get("responded_by_user"))
    s.event(order_id, "held", {"by": who, "why": "prescriber chose Hold" if answered else "no answer before the deadline"})
    s.upsert_order(order_id, status="held")
    return HOLD


def hold(order_id: str, store: OrderStore | None = None) -> None:
    s = store or OrderStore()
    s.upsert_order(order_id, status="held")


def reject(order_id: str, store: OrderStore | None = None) -> list[str]:
    s = store or OrderStore()
    s.upsert_order(order_id, status="rejected", verdict="rejected")
    reasons = _anomaly_lines(s, order_id)
    s.event(order_id, "rejected", {"reasons": reasons})
    return reasons


def record(order_id: str, store: OrderStore | None = None) -> dict[str, Any]:
    """The order joins the history (tokenized), so later orders of the patient are checked against it."""
    checker = _checker(store)
    s = checker.store
    order = load_order(s, order_id)
    _, n = checker.validate(order)
    if n is None:
        raise ValueError(f"order {order_id} no longer validates")
    row = {"order_id": order.order_id, "patient_token": order.patient_token, "age": order.age, "sex": order.sex,
           "weight_kg": order.weight_kg, "diagnosis": n.diagnosis, "dx_group": n.dx_group, "drug_key": n.drug_key,
           "drug_text": order.drug_text, "atc": n.drug.atc if n.drug else None, "dose": order.dose,
           "unit": order.unit_text, "frequency_per_day": order.frequency_per_day,
           "duration_days": order.duration_days, "daily_dose": n.daily_dose, "dose_unit": n.dose_unit,
           "order_date": order.date, "prescriber_id": order.prescriber_id, "permanent": order.permanent,
           "valid": True, "reason": None, "origin": "workflow", "loaded_at": None}
    s.add_history([row])
    s.upsert_order(order_id, status="recorded")
    s.event(order_id, "recorded", {"daily_dose": n.daily_dose, "dose_unit": n.dose_unit})
    return {"order_id": order_id, "drug": n.drug_key, "daily_dose": n.daily_dose, "dose_unit": n.dose_unit}


def patient_notice(order_id: str, store: OrderStore | None = None) -> dict[str, str] | None:
    """The e-mail to the patient with the recorded order; None when the patient left no address."""
    s = store or OrderStore()
    o = load_order(s, order_id)
    to = s.contact(o.patient_token) if o.patient_token else None
    if not to:
        s.event(order_id, "patient_not_notified", {"why": "no e-mail on file"})
        return None
    days = f" for {o.duration_days:g} days" if o.duration_days else ""
    body = (f"<p>Your prescription {html.escape(order_id)} is ready: {html.escape(o.drug_text or '')} "
            f"{o.dose:g} {html.escape(o.unit_text or '')}, {o.frequency_per_day:g} times a day{days}.</p>"
            "<p>Questions: contact your prescriber.</p>")
    return {"to": to, "subject": f"Your prescription {order_id}", "html": body}


def patient_notified(order_id: str, store: OrderStore | None = None) -> None:
    (store or OrderStore()).event(order_id, "patient_notified", {})


def coverage_request(order_id: str, store: OrderStore | None = None) -> dict[str, Any]:
    from medication.healthplan import CoverageRequest

    checker = _checker(store)
    o = load_order(checker.store, order_id)
    _, n = checker.validate(o)
    if n is None:
        raise ValueError(f"order {order_id} no longer validates")
    return CoverageRequest(order_ref=order_id, atc=n.drug.atc if n.drug else None, drug=n.drug_key,
                           diagnosis=n.diagnosis, daily_dose=round(n.daily_dose, 6), dose_unit=n.dose_unit,
                           duration_days=o.duration_days).model_dump()


def record_coverage(order_id: str, response: dict[str, Any], store: OrderStore | None = None) -> dict[str, Any]:
    from medication.healthplan import CoverageResponse

    r = CoverageResponse.model_validate(response)
    (store or OrderStore()).event(order_id, "health_plan", r.model_dump())
    return r.model_dump()
