"""The dependencies every route declares, as ``Annotated`` types:

- ``DB``: the service database (accounts, audit, metering, orders);
- ``Stores``: the attached regional stores;
- ``Audit``: this request's audit record (see ``sta.service.audit``): a
  handler only *describes* what it did (filters, result count, which
  partners' studies it delivered); the audit middleware writes the record,
  with the response's status, once per request, refused ones included;
- ``CurrentCustomer``: the customer of the ``X-API-Key`` header (an API key or
  a session token); a missing, unknown, revoked or expired one is a 401, so no
  handler can forget the check;
- ``Regions``: the customer's regions that this service has a store for;
- ``Settings``: delivery settings (customer areas, link signer, run trigger).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from sta.service.audit import RequestAudit, audit_of
from sta.service.db import Customer, ServiceDB
from sta.service.search import StoreSet
from sta.service.settings import DeliverySettings

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="customer API key (sta_…) or session token (sess_…)")


def get_db(request: Request) -> ServiceDB:
    return request.app.state.db


def get_stores(request: Request) -> StoreSet:
    return request.app.state.stores


DB = Annotated[ServiceDB, Depends(get_db)]
Stores = Annotated[StoreSet, Depends(get_stores)]
Audit = Annotated[RequestAudit, Depends(audit_of)]


def require_customer(audit: Audit, db: DB, key: str | None = Security(api_key_header)) -> Customer:
    customer = db.authenticate(key)
    if customer is None:
        raise HTTPException(
            status_code=401,
            detail="missing or invalid API key" if key else "missing API key (header X-API-Key)",
            headers={"WWW-Authenticate": "ApiKey"},
        )
    audit.customer = customer
    return customer


CurrentCustomer = Annotated[Customer, Depends(require_customer)]


def entitled_regions(customer: CurrentCustomer, stores: Stores, audit: Audit) -> list[str]:
    """The customer's regions that this service has a store for."""
    regions = stores.available(customer.regions)
    audit.regions = regions
    return regions


Regions = Annotated[list[str], Depends(entitled_regions)]


def get_settings(request: Request) -> DeliverySettings:
    return request.app.state.delivery


Settings = Annotated[DeliverySettings, Depends(get_settings)]
