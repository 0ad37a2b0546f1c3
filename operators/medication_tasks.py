"""The ``medication_order`` DAG's task bodies: a few lines each around
``medication.workflow``; e-mail through the Airflow SMTP connection
``smtp_default`` (official smtp provider), the health-plan API through the
HTTP connection ``health_plan_api`` (official http provider; its host is the
API's base URL, its password, if any, a bearer token).

XCom carries the order id, branch choices and the plan's answer, never a
patient identifier.
"""

from __future__ import annotations

import os
from typing import Any

SMTP_CONN_ID = "smtp_default"
PLAN_CONN_ID = "health_plan_api"


def _no_retry(fn):  # noqa: ANN001, ANN202
    """The library's ValueError is about the order (unknown id, no prescriber e-mail): retrying can't help."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValueError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(str(exc)) from exc

    return wrapper


def _mail(to: str, subject: str, html: str) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=html,
                             from_email=hook.from_email or os.environ.get("STA_MAIL_FROM", "STA Rx <rx@sta.local>"))


@_no_retry
def intake() -> str:
    """The run's conf -> the stored, tokenized order's id (the only thing the other tasks receive)."""
    from airflow.sdk import get_current_context

    from medication.workflow import intake as take

    return take(dict(get_current_context()["dag_run"].conf or {}))


@_no_retry
def validate(order_id: str) -> str:
    """Fail state of seed 004: missing/contradictory fields, unknown drug, unit incompatible with the form,
    dose outside the catalogue's absolute limits -> ``reject``; otherwise on to the history check."""
    from medication.workflow import validate as run

    return "history_check" if run(order_id) else "reject"


@_no_retry
def history_check(order_id: str) -> dict[str, Any]:
    """Daily dose vs the patient's own history (z-score when the drug is recurrent or permanent); the
    result and its reasons are stored on the order."""
    from medication.workflow import history

    return history(order_id)


@_no_retry
def population_check(order_id: str) -> str:
    """Random Cut Forest score vs orders of the same drug, diagnosis group and age class (model version
    recorded); an anomaly here or in the history check -> ``notify_prescriber``, else ``record``."""
    from medication.workflow import population

    return "notify_prescriber" if population(order_id) else "record"


@_no_retry
def notify_prescriber(order_id: str) -> dict[str, str]:
    """E-mail the prescriber (``smtp_default``) the anomaly and its reasons; the review task shows the same
    summary."""
    from medication.workflow import prescriber_notice

    msg = prescriber_notice(order_id)
    _mail(msg["to"], msg["subject"], msg["html"])
    return {"order_id": order_id, "summary": msg["summary"]}


@_no_retry
def apply_review(order_id: str, response: dict[str, Any] | None) -> str:
    """Apply the prescriber's answer: Confirm -> ``record``; Modify -> re-checked, then ``record`` or
    ``hold``; Hold or no answer (timeout default) -> ``hold``: the order is not sent."""
    from medication.workflow import apply_review as apply

    return apply(order_id, response)


@_no_retry
def hold(order_id: str) -> None:
    """Mark the order held (not sent to the patient or the plan), with who or what decided it."""
    from medication.workflow import hold as run

    run(order_id)


@_no_retry
def reject(order_id: str) -> list[str]:
    """Record the rejection and its reasons (the order never reaches the patient)."""
    from medication.workflow import reject as run

    return run(order_id)


@_no_retry
def record() -> dict[str, Any]:
    """A join (after the checks or after the review): the order id is pulled from intake rather than
    passed as an argument, which would make intake an upstream and satisfy the join's trigger rule."""
    from airflow.sdk import get_current_context

    from medication.workflow import record as run

    return run(get_current_context()["ti"].xcom_pull(task_ids="intake"))


@_no_retry
def notify_patient(order_id: str) -> bool:
    """E-mail the patient the recorded order, when an address was given (none -> nothing sent)."""
    from medication.workflow import patient_notice, patient_notified

    msg = patient_notice(order_id)
    if msg is None:
        return False
    _mail(msg["to"], msg["subject"], msg["html"])
    patient_notified(order_id)
    return True


@_no_retry
def health_plan_check(order_id: str) -> dict[str, Any]:
    """POST the coverage request to the plan's API (``medication.healthplan`` format)."""
    from airflow.providers.http.hooks.http import HttpHook

    from medication.healthplan import PATH
    from medication.workflow import coverage_request, record_coverage

    hook = HttpHook(method="POST", http_conn_id=PLAN_CONN_ID)
    conn = hook.get_connection(PLAN_CONN_ID)
    headers = {"Content-Type": "application/json"}
    if conn.password:
        headers["Authorization"] = f"Bearer {conn.password}"
    resp = hook.run(PATH, json=coverage_request(order_id), headers=headers, extra_options={"timeout": 15})
    return record_coverage(order_id, resp.json())
