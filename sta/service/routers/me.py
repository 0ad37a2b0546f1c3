"""``/api/me``: who a key belongs to (the page uses it to check a key)."""

from __future__ import annotations

from fastapi import APIRouter

from sta.service.deps import CurrentCustomer, Regions
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
