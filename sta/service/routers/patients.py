"""``/api/patients/{token}``: a patient's timeline across partners and regions."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path

from sta.service import search
from sta.service.deps import Audit, Regions, Stores
from sta.service.models import PatientTimeline, Problem

router = APIRouter(prefix="/api/patients", tags=["patients"])


@router.get(
    "/{token}",
    response_model=PatientTimeline,
    responses={401: {"model": Problem}, 404: {"model": Problem}},
    summary="Every study of a patient token in the customer's regions, oldest first",
)
def timeline(regions: Regions, stores: Stores, audit: Audit,
             token: str = Path(pattern="^[0-9a-f]{32}$", description="32-hex patient token")) -> dict:
    audit.filters = {"patient_token": token}
    out = search.patient_timeline(stores, token, regions)
    audit.result_count = out["n_studies"] if out else 0
    if out is None:
        # Same answer whether the token exists elsewhere or nowhere.
        raise HTTPException(404, "no studies for this patient in your regions")
    audit.deliver("timeline", out["studies"])
    return out
