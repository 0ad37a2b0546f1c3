"""Compatibility names for routers written before ``sta.service.deps``:
new code declares ``CurrentCustomer`` / ``Regions`` / ``Audit`` from
``sta.service.deps`` instead."""

from __future__ import annotations

from fastapi import Request

from sta.service.db import Customer
from sta.service.deps import api_key_header, get_db, require_customer

__all__ = ["api_key_header", "entitled_regions", "get_db", "require_customer"]


def entitled_regions(request: Request, customer: Customer) -> list[str]:
    """The customer's regions that this service has a store for."""
    return request.app.state.stores.available(customer.regions)
