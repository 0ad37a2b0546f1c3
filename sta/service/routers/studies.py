"""``/api/studies``: the STA Standard study search, and one study's detail."""

from __future__ import annotations

import time
from functools import partial

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from sta import query
from sta.service.auth import entitled_regions, get_db, require_customer
from sta.service.db import Customer, ServiceDB
from sta.service.models import Problem, SearchResponse, StudyDetail

router = APIRouter(prefix="/api/studies", tags=["studies"])


@router.get(
    "",
    response_model=SearchResponse,
    responses={400: {"model": Problem}, 401: {"model": Problem}},
    summary="Search studies with filters, facets and paging",
)
def search(
    request: Request,
    q: str | None = Query(None, max_length=200, description="keywords over report text (es/pt/en, accent-insensitive)"),
    modality: list[str] = Query([], description="primary modality, several allowed (OR), e.g. MR, CT"),
    body_region: list[str] = Query([], description="head_neck, chest, abdomen, msk, pelvis, breast, whole_body"),
    label: list[str] = Query([], description="'name:value' (e.g. birads:2) or 'name'; values of one label OR, labels AND"),
    sex: list[str] = Query([], description="M, F, O"),
    age_min: int | None = Query(None, ge=0, le=150),
    age_max: int | None = Query(None, ge=0, le=150),
    manufacturer: list[str] = Query([]),
    country: list[str] = Query([]),
    partner: list[str] = Query([]),
    sort: str = Query("date_desc", description=f"one of {sorted(query.SORTS)}"),
    page: int = Query(1, ge=1, le=100_000),
    page_size: int = Query(10, ge=1, le=query.MAX_PAGE_SIZE),
    customer: Customer = Depends(require_customer),
    db: ServiceDB = Depends(get_db),
) -> dict:
    started = time.perf_counter()
    filters = query.StudyFilters(
        q=q, modality=modality, body_region=body_region, label=label, sex=sex,
        age_min=age_min, age_max=age_max, manufacturer=manufacturer, country=country,
        partner=partner, sort=sort, page=page, page_size=page_size,
    )
    regions = entitled_regions(request, customer)
    audit = partial(db.audit, customer=customer, endpoint="/api/studies", filters=filters.applied(),
                    regions=regions, client=request.client.host if request.client else None)
    if page_size > customer.max_page_size:
        audit(status=400)
        raise HTTPException(400, f"page_size above the {customer.plan} plan's limit of {customer.max_page_size}")
    try:
        out = query.search_studies(request.app.state.stores, filters, regions)
    except ValueError as exc:
        audit(status=400)
        raise HTTPException(400, str(exc)) from exc
    audit(status=200, result_count=out["total"], duration_ms=(time.perf_counter() - started) * 1000)
    return out


@router.get(
    "/{study_uid}",
    response_model=StudyDetail,
    responses={401: {"model": Problem}, 404: {"model": Problem}},
    summary="One study with its series",
)
def detail(
    study_uid: str,
    request: Request,
    customer: Customer = Depends(require_customer),
    db: ServiceDB = Depends(get_db),
) -> dict:
    regions = entitled_regions(request, customer)
    out = query.study_detail(request.app.state.stores, study_uid, regions)
    db.audit(customer=customer, endpoint="/api/studies/{study_uid}", status=200 if out else 404,
             filters={"study_uid": study_uid}, regions=regions, result_count=1 if out else 0,
             client=request.client.host if request.client else None)
    if out is None:
        raise HTTPException(404, "no such study in your regions")
    return out
