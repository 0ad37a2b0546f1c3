"""``/api/studies``: the STA Standard study search, and one study's detail."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import JSONResponse

from sta.service import search
from sta.service.deps import Audit, CurrentCustomer, Regions, Stores
from sta.service.models import Problem, SearchResponse, StudyDetail

router = APIRouter(prefix="/api/studies", tags=["studies"])


def study_filters(
    q: str | None = Query(None, max_length=200, description="keywords over report text (es/pt/en, accent-insensitive)"),
    modality: list[str] = Query([], description="primary modality, several allowed (OR), e.g. MR, CT"),
    body_region: list[str] = Query([], description="head_neck, chest, abdomen, msk, pelvis, breast, whole_body"),
    label: list[str] = Query([], description="positive report label (concept id, e.g. pneumonia, birads_4; 'birads' = any "
                                             "BI-RADS); values of one family OR, families AND"),
    label_certainty: list[str] = Query([], description="'concept:certainty' (positive, negative, uncertain, historical, "
                                                       "family), e.g. pneumonia:negative; OR within a concept, AND across"),
    characteristic: list[str] = Query([], description="characterization 'field:value', e.g. contrast:with, "
                                                      "care_setting:emergency; OR within a field, AND across"),
    thickness_min: float | None = Query(None, ge=0, le=100, description="slice thickness from (mm)"),
    thickness_max: float | None = Query(None, ge=0, le=100, description="slice thickness to (mm)"),
    sex: list[str] = Query([], description="M, F, O"),
    age_min: int | None = Query(None, ge=0, le=150),
    age_max: int | None = Query(None, ge=0, le=150),
    manufacturer: list[str] = Query([]),
    country: list[str] = Query([]),
    partner: list[str] = Query([]),
    date_from: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="study date from (shifted), inclusive"),
    date_to: str | None = Query(None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="study date to (shifted), inclusive"),
    sort: str = Query("date_desc", description=f"one of {sorted(search.SORTS)}"),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(10, ge=1, le=search.MAX_PAGE_SIZE),
) -> search.StudyFilters:
    """The query parameters of a search, as ``StudyFilters``."""
    return search.StudyFilters(
        q=q, modality=modality, body_region=body_region, label=label, sex=sex,
        label_certainty=label_certainty, characteristic=characteristic,
        thickness_min=thickness_min, thickness_max=thickness_max,
        age_min=age_min, age_max=age_max, manufacturer=manufacturer, country=country,
        partner=partner, date_from=date_from, date_to=date_to, sort=sort, page=page, page_size=page_size,
    )


Filters = Annotated[search.StudyFilters, Depends(study_filters)]


@router.get(
    "",
    response_model=SearchResponse,
    responses={400: {"model": Problem}, 401: {"model": Problem}},
    summary="Search studies with filters, facets and paging",
)
def search_studies(filters: Filters, customer: CurrentCustomer, regions: Regions, stores: Stores,
                   audit: Audit) -> JSONResponse:
    audit.filters = filters.applied()
    if filters.page_size > customer.max_page_size:
        raise HTTPException(400, f"page_size above the {customer.plan} plan's limit of {customer.max_page_size}")
    try:
        out = search.search_studies(stores, filters, regions)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    audit.result_count = out["total"]
    audit.deliver("search", out["results"])
    # Already the documented shape (SearchResponse): sent as is, without a
    # second validation pass (~2 ms of a ~10 ms cached answer).
    return JSONResponse(out)


@router.get(
    "/{study_uid}",
    response_model=StudyDetail,
    responses={401: {"model": Problem}, 404: {"model": Problem}},
    summary="One study with its series",
)
def detail(study_uid: str, regions: Regions, stores: Stores, audit: Audit) -> dict:
    audit.filters = {"study_uid": study_uid}
    out = search.study_detail(stores, study_uid, regions)
    audit.result_count = 1 if out else 0
    if out is None:
        raise HTTPException(404, "no such study in your regions")
    audit.deliver("detail", [out])
    return out
