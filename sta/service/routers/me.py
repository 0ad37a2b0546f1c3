"""``/api/me``: who a key belongs to (the page uses it to check a key)."""

from __future__ import annotations

from fastapi import APIRouter

from sta.service.deps import CurrentCustomer, Regions, Stores
from sta.service.search.partners import display_names, label_vocabulary
from sta.service.models import Me, Problem

router = APIRouter(prefix="/api", tags=["account"])


@router.get("/me", response_model=Me, responses={401: {"model": Problem}})
def me(customer: CurrentCustomer, regions: Regions) -> dict:
    return {
        "customer": customer.name,
        "plan": customer.plan,
        "regions": regions,
        "max_page_size": customer.max_page_size,
    }


@router.get("/partners", response_model=dict[str, str], responses={401: {"model": Problem}},
            summary="Display names of the data partners in your regions (partner id -> name)")
def partners(regions: Regions, stores: Stores) -> dict:
    return display_names(stores.partners(regions))


@router.get("/vocabulary", summary="Display names of the label concepts (es/pt/en), for the page")
def vocabulary() -> dict:
    return label_vocabulary()
