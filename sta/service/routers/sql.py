"""``POST /api/sql``: a query on the customer's Pro workspace.

Pro and Enterprise only (403 otherwise); the workspace is the one the
``provision_workspace`` run built, rebuilt here when a store of the
customer's regions changed since (or built at the first query of a Pro
account made by an operator). Refused statements (file or network access, ATTACH,
COPY, INSTALL/LOAD, SET/PRAGMA, CREATE outside scratch) are a 403 with the
reason; SQL errors and limits hit are a 400. Every query is audited (its
text, row count, status) and the studies it returns are metered.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from delivery.fulfilment import ensure_workspace
from delivery.workspaces import QueryFailed, QueryRefused, run_isolated
from sta.service.deps import Audit, CurrentCustomer, Settings
from sta.service.models import Problem

router = APIRouter(prefix="/api", tags=["sql"])


class SqlIn(BaseModel):
    sql: str = Field(min_length=1, max_length=20_000)


class SqlOut(BaseModel):
    columns: list[str]
    rows: list[list]
    row_count: int
    truncated: bool = Field(description="more rows than the row limit: add LIMIT or aggregate")
    elapsed_ms: float


@router.post("/sql", response_model=SqlOut,
             responses={400: {"model": Problem}, 403: {"model": Problem}},
             summary="Run SQL on your Pro workspace (read-only, limited)")
def sql(body: SqlIn, customer: CurrentCustomer, settings: Settings, audit: Audit) -> dict:
    audit.filters = {"sql": body.sql[:4000]}
    if not customer.may_use_sql:
        raise HTTPException(403, "SQL workspaces are part of the Pro plan: ask for it from your account")
    try:
        ws = ensure_workspace(settings.data_root, customer)
        out = run_isolated(ws, body.sql, settings.sql_limits)
    except QueryRefused as exc:
        raise HTTPException(403, f"refused: {exc}") from exc
    except QueryFailed as exc:
        raise HTTPException(400, str(exc)) from exc
    audit.result_count = out["row_count"]
    audit.kind, audit.delivered = "sql", out.pop("studies")
    return out
