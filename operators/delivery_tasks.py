"""The delivery DAGs' task bodies: a few lines each around the ``delivery``
library, with the deployment's settings read from the environment at run
time (data root, service database, link key, public URL) and email through
the Airflow SMTP connection ``smtp_default`` (official smtp provider).

XCom carries ids and counts only (an order id, a request id, figures).
"""

from __future__ import annotations

import os
from typing import Any

SMTP_CONN_ID = "smtp_default"


def _no_retry(exc: Exception) -> Exception:
    """A refusal (not approved, no such order) fails the task without retries."""
    from airflow.exceptions import AirflowFailException

    return AirflowFailException(str(exc))


def _db():  # noqa: ANN202 - delivery.servicedb.ServiceDB
    from delivery.database import default_db_path
    from delivery.servicedb import ServiceDB
    from foundation.paths import data_root

    return ServiceDB(default_db_path(data_root()))


def build_export(order_id: str) -> dict[str, Any]:
    """Build the order's package (``delivery.fulfilment.fulfil``)."""
    from delivery.fulfilment import fulfil
    from foundation.paths import data_root

    if not order_id or not isinstance(order_id, str):
        raise ValueError("the run's conf needs an order_id")
    db = _db()
    try:
        if db.order(order_id) is None:
            raise _no_retry(ValueError(f"no export order {order_id}"))
        order = fulfil(db, data_root(), order_id)
    finally:
        db.close()
    return {"order_id": order_id, "status": order["status"], "studies": order["n_studies"], "bytes": order["bytes"]}


def send_mail(to: str, subject: str, html: str) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=SMTP_CONN_ID) as hook:
        hook.send_email_smtp(to=to, subject=subject, html_content=html,
                             from_email=hook.from_email or os.environ.get("STA_MAIL_FROM", "STA <no-reply@sta.local>"))


def email_export(order_id: str) -> dict[str, Any]:
    """Email the customer a signed, expiring link to the ready package."""
    from delivery.database import now_iso
    from delivery.fulfilment import ready_email
    from delivery.links import DEFAULT_MAX_AGE_S, LinkSigner, derive_secret

    db = _db()
    try:
        hours = int(os.environ.get("STA_LINK_HOURS", str(DEFAULT_MAX_AGE_S // 3600)))
        signer = LinkSigner(derive_secret(os.environ.get("STA_SECRET_KEY", "")), max_age_s=hours * 3600)
        msg = ready_email(db, order_id, signer, os.environ.get("STA_PUBLIC_URL", "http://127.0.0.1:8000"))
        if not msg["to"]:
            return {"order_id": order_id, "emailed": False}  # an account made by an operator, without email
        send_mail(msg["to"], msg["subject"], msg["html"])
        db.update_order(order_id, emailed_at=now_iso())
    finally:
        db.close()
    return {"order_id": order_id, "emailed": True}


def provision_workspace(request_id: int) -> dict[str, Any]:
    """Build an approved Pro customer's SQL workspace and switch it to Pro."""
    from delivery.fulfilment import provision
    from foundation.paths import data_root

    db = _db()
    try:
        info = provision(db, data_root(), int(request_id))
    except (PermissionError, ValueError) as exc:
        raise _no_retry(exc) from exc
    finally:
        db.close()
    return {"request_id": int(request_id), "tables": info.get("tables"), "regions": info.get("regions")}


def email_workspace_ready(request_id: int) -> dict[str, Any]:
    db = _db()
    try:
        req = db.plan_request(int(request_id))
        to = db.email_of(int(req["customer_id"])) if req else None
        if to:
            send_mail(to, "STA Pro: su espacio SQL está listo",
                      f"<p>Hola {req['customer']}:</p><p>Su espacio de trabajo SQL de STA Pro está listo. "
                      "Consulte desde la página (pestaña «SQL»), con <code>POST /api/sql</code> o con "
                      "<code>sta sql</code>.</p><p>— STA, SaludTech de los Alpes</p>")
    finally:
        db.close()
    return {"request_id": int(request_id), "emailed": bool(to)}
