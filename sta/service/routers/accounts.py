"""Accounts: sign-up (Standard at once; Pro and Enterprise as requests),
sessions, plan requests, the regions on offer.

Sign-up needs no key (it makes one); everything else is behind
``X-API-Key`` (an API key or a session token from ``POST /api/session``).
Approving a Pro request is an operator's act (``sta account approve``), not
an API call a customer could make.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from sta.service.deps import DB, Audit, CurrentCustomer, Stores

router = APIRouter(prefix="/api", tags=["account"])


class SignUp(BaseModel):
    name: str = Field(min_length=2, max_length=120, description="organisation or person")
    email: str = Field(min_length=5, max_length=254)
    password: str = Field(min_length=10, max_length=200)
    plan: Literal["standard", "pro", "enterprise"] = "standard"
    regions: list[str] | None = Field(None, description="regions to search (default: every region on offer)")
    message: str | None = Field(None, max_length=2000, description="for Pro/Enterprise: what you need")


class PlanRequestOut(BaseModel):
    id: int
    plan: str
    status: str


class SignUpOut(BaseModel):
    customer: str
    plan: str
    regions: list[str] | None
    api_key: str = Field(description="shown once; send it as X-API-Key")
    request: PlanRequestOut | None = None


class Login(BaseModel):
    email: str = Field(max_length=254)
    password: str = Field(max_length=200)


class SessionOut(BaseModel):
    token: str = Field(description="send it as X-API-Key until it expires")
    expires_at: str


class PlanRequestIn(BaseModel):
    plan: Literal["pro", "enterprise"]
    message: str | None = Field(None, max_length=2000)


@router.get("/regions", summary="Regions on offer (for the sign-up form)")
def regions(stores: Stores) -> dict:
    return {"regions": stores.available(None)}


@router.post("/signup", status_code=201, response_model=SignUpOut, summary="Create an account")
def sign_up(body: SignUp, db: DB, stores: Stores, audit: Audit) -> dict:
    offered = stores.available(None)
    wanted = body.regions if body.regions is not None else offered
    unknown = sorted({r.strip().lower() for r in wanted} - set(offered))
    if unknown:
        raise HTTPException(422, f"regions not on offer: {', '.join(unknown)}")
    audit.filters = {"plan": body.plan, "regions": wanted}
    try:
        out = db.sign_up(body.name, body.email, body.password, body.plan, wanted, body.message)
    except ValueError as exc:
        raise HTTPException(409 if "exists" in str(exc) else 422, str(exc)) from exc
    audit.customer = out["customer"]
    req = None
    if out["request"]:
        r = db.plan_request(out["request"])
        req = {"id": r["id"], "plan": r["plan"], "status": r["status"]}
    return {"customer": out["customer"].name, "plan": "standard", "regions": out["customer"].regions,
            "api_key": out["key"], "request": req}


@router.post("/session", response_model=SessionOut, summary="Log in with email and password")
def log_in(body: Login, db: DB) -> dict:
    got = db.log_in(body.email, body.password)
    if got is None:
        raise HTTPException(401, "wrong email or password")
    return {"token": got[0], "expires_at": got[1]}


@router.delete("/session", status_code=204, summary="Log out (end this session)")
def log_out(request: Request, customer: CurrentCustomer, db: DB) -> None:
    db.log_out(request.headers.get("x-api-key", ""))


@router.post("/plan-requests", status_code=202, response_model=PlanRequestOut,
             summary="Ask for Pro (an operator approves; the workspace is then built) or Enterprise")
def request_plan(body: PlanRequestIn, customer: CurrentCustomer, db: DB) -> dict:
    if customer.plan == body.plan:
        raise HTTPException(409, f"the account is already {body.plan}")
    rid = db.request_plan(customer.id, body.plan, body.message)
    r = db.plan_request(rid)
    return {"id": r["id"], "plan": r["plan"], "status": r["status"]}


@router.get("/plan-requests", response_model=list[PlanRequestOut], summary="Your plan requests")
def my_requests(customer: CurrentCustomer, db: DB) -> list[dict]:
    return [{"id": r["id"], "plan": r["plan"], "status": r["status"]}
            for r in db.plan_requests(customer_id=customer.id)]
