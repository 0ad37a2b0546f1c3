"""``/api/exports``: order a package of studies, follow it, download it.

``POST /api/exports`` records the order and requests a run of the ``export``
DAG (conf: the order id); the DAG builds the package under the customer's
area and emails a signed link. ``GET /api/exports/{id}`` gives status,
progress and (when ready) a fresh single-use download link. The download
checks the link's signature and expiry, that it was not used, and that the
caller owns the order. Another customer's order is a 404, the same as an
order that does not exist.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from delivery.accounts import PLANS
from delivery.catalog import clean_uids
from delivery.fulfilment import fulfil
from delivery.links import LinkError, LinkExpired, download_path
from sta.service.deps import DB, Audit, CurrentCustomer, Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/exports", tags=["exports"])


class ExportIn(BaseModel):
    study_uids: list[str] = Field(min_length=1, description="study UIDs from the search")
    format: Literal["json", "dicom"] = "json"
    parquet: bool = Field(False, description="also the package's tables as Parquet")


class ExportCreated(BaseModel):
    id: str


class ExportStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "ready", "failed"]
    progress: float = Field(ge=0, le=1)
    download_url: str | None = Field(None, description="single-use signed link (needs your X-API-Key)")
    format: str
    requested: int
    n_studies: int | None = None
    bytes: int | None = None
    created_at: str
    finished_at: str | None = None
    error: str | None = None


@router.post("", status_code=202, response_model=ExportCreated, summary="Order an export package")
def create_export(body: ExportIn, customer: CurrentCustomer, db: DB, settings: Settings, audit: Audit) -> dict:
    try:
        uids = clean_uids(body.study_uids, int(PLANS[customer.plan]["max_export_studies"]))
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from exc
    order_id = db.create_order(customer, uids, body.format, body.parquet)
    audit.filters = {"format": body.format, "studies": len(uids), "order_id": order_id}
    if settings.trigger is None:
        threading.Thread(target=_build_here, args=(db, settings.data_root, order_id), daemon=True).start()
    else:
        try:
            db.update_order(order_id, run_id=settings.trigger("export", {"order_id": order_id}))
        except Exception as exc:  # noqa: BLE001 - the order is kept, marked, and the customer told
            log.exception("could not request the export run of %s", order_id)
            db.update_order(order_id, status="failed", error="the export could not be started; try again")
            raise HTTPException(503, "the export could not be started; try again later") from exc
    return {"id": order_id}


def _build_here(db: DB, data_root: Path, order_id: str) -> None:
    try:
        fulfil(db, data_root, order_id)
    except Exception:  # noqa: BLE001 - recorded on the order by fulfil
        log.exception("export %s failed", order_id)


@router.get("", summary="Your export orders, newest first")
def list_exports(customer: CurrentCustomer, db: DB) -> list[dict]:
    return db.orders_of(customer.id)


def _own(db: DB, order_id: str, customer_id: int) -> dict:
    order = db.order(order_id)
    if order is None or order["customer_id"] != customer_id:
        raise HTTPException(404, "no such export")
    return order


@router.get("/{order_id}", response_model=ExportStatus, summary="Status, progress and download link")
def export_status(order_id: str, request: Request, customer: CurrentCustomer, db: DB, settings: Settings,
                  audit: Audit) -> dict:
    audit.filters = {"order_id": order_id}
    order = _own(db, order_id, customer.id)
    url = None
    if order["status"] == "ready":
        # Absolute, on the address the caller used (behind a proxy: its forwarded host).
        url = str(request.base_url).rstrip("/") + download_path(order_id, settings.signer.sign(order_id, customer.id))
    return {"id": order_id, "status": order["status"], "progress": order["progress"], "download_url": url,
            "format": order["format"], "requested": len(order["study_uids"]), "n_studies": order["n_studies"],
            "bytes": order["bytes"], "created_at": order["created_at"], "finished_at": order["finished_at"],
            "error": order["error"]}


@router.get("/{order_id}/download", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}, 403: {}, 404: {}, 410: {}},
            summary="Download a ready package through a signed link")
def download(order_id: str, customer: CurrentCustomer, db: DB, settings: Settings, audit: Audit,
             token: str = Query(max_length=400)) -> FileResponse:
    audit.filters = {"order_id": order_id}
    try:
        claims = settings.signer.verify(token)
    except LinkExpired as exc:
        raise HTTPException(410, str(exc)) from exc
    except LinkError as exc:
        raise HTTPException(403, str(exc)) from exc
    if claims.order_id != order_id or claims.customer_id != customer.id:
        raise HTTPException(403, "this link is not for this export or this account")
    order = _own(db, order_id, customer.id)
    if order["status"] != "ready" or not order["package"] or not Path(order["package"]).is_file():
        raise HTTPException(404, "the package is not available")
    if not db.use_link(claims.nonce, order_id):
        raise HTTPException(410, "this download link was already used; ask for a new one")
    audit.result_count = order["n_studies"]
    return FileResponse(order["package"], media_type="application/zip",
                        filename=f"sta-export-{order_id}.zip")
