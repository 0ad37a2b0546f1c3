"""``/api/patients``: patients by patient-level filters, and a patient's
timeline across partners and regions (``/api/patients/{token}``)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Query

from sta.service import search
from sta.service.deps import Audit, Regions, Stores
from sta.service.models import PatientList, PatientTimeline, Problem
from sta.service.search.patients import MAX_PATIENTS_PAGE, PatientFilters, search_patients

router = APIRouter(prefix="/api/patients", tags=["patients"])


@router.get("", response_model=PatientList, responses={400: {"model": Problem}, 401: {"model": Problem}},
            summary="Patients by age at the latest study, sex, number of studies, modalities, history span")
def patients(regions: Regions, stores: Stores, audit: Audit,
             sex: list[str] = Query([], description="M, F, O"),
             age_min: int | None = Query(None, ge=0, le=150), age_max: int | None = Query(None, ge=0, le=150),
             min_studies: int = Query(1, ge=1, le=10_000),
             modality: list[str] = Query([], description="modalities the patient had, all of them"),
             min_years: float | None = Query(None, ge=0, le=100, description="years from first to last study"),
             page: int = Query(1, ge=1), page_size: int = Query(20, ge=1, le=MAX_PATIENTS_PAGE)) -> dict:
    f = PatientFilters(sex=sex, age_min=age_min, age_max=age_max, min_studies=min_studies, modality=modality,
                       min_years=min_years, page=page, page_size=page_size)
    audit.filters = f.applied()
    try:
        out = search_patients(stores, f, regions)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    audit.result_count = out["total"]
    return out


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
