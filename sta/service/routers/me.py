"""``/api/me``: who a key belongs to (the page uses it to check a key)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from sta.service.auth import entitled_regions, require_customer
from sta.service.db import Customer
from sta.service.models import Me, Problem

router = APIRouter(prefix="/api", tags=["account"])


@router.get("/me", response_model=Me, responses={401: {"model": Problem}})
def me(request: Request, customer: Customer = Depends(require_customer)) -> dict:
    return {
        "customer": customer.name,
        "plan": customer.plan,
        "regions": entitled_regions(request, customer),
        "max_page_size": customer.max_page_size,
    }
