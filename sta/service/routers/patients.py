"""``/api/patients/{token}``: a patient's timeline across partners and regions."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Path, Request

from sta import query
from sta.service.auth import entitled_regions, get_db, require_customer
from sta.service.db import Customer, ServiceDB
from sta.service.models import PatientTimeline, Problem

router = APIRouter(prefix="/api/patients", tags=["patients"])


@router.get(
    "/{token}",
    response_model=PatientTimeline,
    responses={401: {"model": Problem}, 404: {"model": Problem}},
    summary="Every study of a patient token in the customer's regions, oldest first",
)
def timeline(
    request: Request,
    token: str = Path(pattern="^[0-9a-f]{32}$", description="32-hex patient token"),
    customer: Customer = Depends(require_customer),
    db: ServiceDB = Depends(get_db),
) -> dict:
    started = time.perf_counter()
    regions = entitled_regions(request, customer)
    out = query.patient_timeline(request.app.state.stores, token, regions)
    db.audit(
        customer=customer, endpoint="/api/patients/{token}", status=200 if out else 404,
        filters={"patient_token": token}, regions=regions,
        result_count=out["n_studies"] if out else 0,
        duration_ms=(time.perf_counter() - started) * 1000,
        client=request.client.host if request.client else None,
    )
    if out is None:
        # Same answer whether the token exists elsewhere or nowhere.
        raise HTTPException(404, "no studies for this patient in your regions")
    return out
