"""What the delivery DAGs' tasks call: an export order from queued to ready
(``export`` DAG), a Pro request from approved to provisioned
(``provision_workspace`` DAG).

``fulfil(db, data_root, order_id)`` builds the order's package as a ZIP under
the customer's area (``<data>/customers/<customer id>/exports/<order id>/``)
from the stores of the customer's regions, reports progress on the order,
meters every exported study against its partner, and marks the order ready
(or failed, with a reason without identifying data, and re-raises so the
Airflow task fails and retries). ``ready_email`` composes the message with a
fresh signed link.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

from delivery.accounts import PLANS
from delivery.catalog import customer_area, discover_stores, entitled
from delivery.database import now_iso
from delivery.exports import build_package
from delivery.links import LinkSigner, download_page_path, download_path
from delivery.mail import failed_message, ready_message
from delivery.servicedb import ServiceDB
from delivery.workspaces import WORKSPACE_NAME, build_workspace


def order_dir(data_root: Path, order: dict[str, Any]) -> Path:
    return customer_area(data_root, order["customer_id"]) / "exports" / order["id"]


def fulfil(db: ServiceDB, data_root: Path, order_id: str) -> dict[str, Any]:
    order = db.order(order_id)
    if order is None:
        raise ValueError(f"no export order {order_id}")
    if order["status"] == "ready":
        return order  # a retried task after success: nothing to redo
    customer = db.customer(int(order["customer_id"]))
    if customer is None:
        raise ValueError(f"the customer of order {order_id} no longer exists")
    out = order_dir(data_root, order)
    if out.exists():
        shutil.rmtree(out)  # a half-built package of an earlier try
    db.update_order(order_id, status="running", progress=0.0, started_at=now_iso(), error=None)
    last = [0.0]

    def progress(fraction: float) -> None:
        now = time.monotonic()
        if fraction >= 1.0 or now - last[0] > 0.5:
            last[0] = now
            db.update_order(order_id, progress=round(min(fraction, 0.99), 3))

    limit = int(PLANS[customer.plan]["max_export_studies"])
    try:
        if len(order["study_uids"]) > limit:
            raise ValueError(f"at most {limit:,} studies per export on the {customer.plan} plan")
        result = build_package(
            discover_stores(data_root), customer.regions, order["study_uids"], order["format"], out,
            as_zip=True, parquet=order["parquet"], progress=progress,
            meta={"order_id": order_id, "customer": customer.name},
        )
    except Exception as exc:
        db.update_order(order_id, status="failed", error=_reason(exc), finished_at=now_iso())
        raise
    db.record_delivery(customer, "export", [(r.region, r.partner_id) for r in result.exported], ref=order_id)
    db.update_order(order_id, status="ready", progress=1.0, n_studies=len(result.exported),
                    bytes=result.package.stat().st_size, package=str(result.package), finished_at=now_iso())
    return db.order(order_id) or {}


def _reason(exc: Exception) -> str:
    """A failure reason for the customer: the exception type and, for our own
    errors, their message (which never holds identifying data)."""
    from delivery.exports import IntegrityError

    if isinstance(exc, (ValueError, IntegrityError)):
        return str(exc)[:300]
    return f"internal error ({type(exc).__name__})"


def ready_email(db: ServiceDB, order_id: str, signer: LinkSigner, base_url: str) -> dict[str, Any]:
    """``{"to", "subject", "html"}`` for the order's customer (ready or failed)."""
    order = db.order(order_id)
    if order is None:
        raise ValueError(f"no export order {order_id}")
    to = db.email_of(int(order["customer_id"]))
    if order["status"] == "ready":
        token = signer.sign(order_id, int(order["customer_id"]))
        base = base_url.rstrip("/")
        subject, html = ready_message(order["customer"], order_id, base + download_page_path(order_id, token),
                                      order["n_studies"] or 0, order["bytes"] or 0, signer.max_age_s // 3600,
                                      not_available=len(order["study_uids"]) - (order["n_studies"] or 0),
                                      api_url=base + download_path(order_id, token))
    else:
        subject, html = failed_message(order["customer"], order_id)
    return {"to": to, "subject": subject, "html": html}


def workspace_path(data_root: Path, customer_id: int) -> Path:
    return customer_area(data_root, customer_id) / WORKSPACE_NAME


_build_locks: dict[int, threading.Lock] = {}
_build_locks_guard = threading.Lock()


def ensure_workspace(data_root: Path, customer: Any) -> Path:
    """The customer's workspace, (re)built here when it is missing or older
    than a store of its regions (a linking run published since), so a Pro
    account made by an operator (``sta apikey create --plan pro``) or a store
    refreshed after provisioning still queries current data."""
    path = workspace_path(data_root, customer.id)
    stores = entitled(discover_stores(data_root), customer.regions)
    newest = max((p.stat().st_mtime for p in stores.values() if p.exists()), default=0.0)
    if path.is_file() and path.stat().st_mtime >= newest:
        return path
    with _build_locks_guard:
        lock = _build_locks.setdefault(customer.id, threading.Lock())
    with lock:
        if not (path.is_file() and path.stat().st_mtime >= newest):
            build_workspace(discover_stores(data_root), customer.regions, path)
    return path


def provision(db: ServiceDB, data_root: Path, request_id: int) -> dict[str, Any]:
    """Build the workspace of an approved Pro request and switch the customer
    to Pro. Refuses a request that no operator approved."""
    req = db.plan_request(int(request_id))
    if req is None:
        raise ValueError(f"no plan request {request_id}")
    if req["status"] == "provisioned":
        return req
    if req["plan"] != "pro" or req["status"] not in ("approved", "failed") or not req["decided_by"]:
        raise PermissionError(f"request {request_id} is {req['plan']}/{req['status']}: an operator must approve it first")
    customer = db.customer(int(req["customer_id"]))
    if customer is None:
        raise ValueError(f"the customer of request {request_id} no longer exists")
    try:
        info = build_workspace(discover_stores(data_root), customer.regions,
                               workspace_path(data_root, customer.id))
    except Exception:
        db.finish_provisioning(int(request_id), None, ok=False)
        raise
    db.finish_provisioning(int(request_id), info["workspace"], ok=True)
    return {**info, "request_id": int(request_id), "customer": customer.name}
