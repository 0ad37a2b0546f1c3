"""API-key authentication as a FastAPI dependency.

Every ``/api`` route depends on ``require_customer``: a missing, unknown or
revoked ``X-API-Key`` is a 401 (and an audit entry), so no handler can forget
the check.
"""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from sta.service.db import Customer, ServiceDB

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="customer API key")


def get_db(request: Request) -> ServiceDB:
    return request.app.state.db


def require_customer(
    request: Request,
    key: str | None = Security(api_key_header),
    db: ServiceDB = Depends(get_db),
) -> Customer:
    customer = db.authenticate(key)
    if customer is None:
        db.audit(
            customer=None,
            endpoint=request.url.path,
            status=401,
            client=request.client.host if request.client else None,
            key_prefix=(key or "")[:12] or None,
        )
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key" if key else "missing API key (header X-API-Key)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    return customer


def entitled_regions(request: Request, customer: Customer) -> list[str]:
    """The customer's regions that this service has a store for."""
    return request.app.state.stores.available(customer.regions)
