"""Every ``/api`` request is audited here, once, by an ASGI middleware.

Why a middleware and not a call in each handler: a refused request (401 no
key, 403 plan, 404 not yours, 422 bad parameters: FastAPI answers those
before a handler runs) must be audited too, and a handler that forgets its
audit call would be a silent hole. Handlers and dependencies fill this
request's ``RequestAudit`` (``Audit`` dependency): the customer, the filters
as applied, the regions searched, the result count, and which partners'
studies were delivered (metering). The middleware adds the endpoint (the
route's template, never a raw path with a token in it), the response status
and the duration, and writes the audit row and the delivery rows in a worker
thread after the response is sent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from fastapi import Request

log = logging.getLogger(__name__)


@dataclass
class RequestAudit:
    """What one request did, as the handler describes it."""

    customer: Any | None = None
    filters: dict[str, Any] | None = None
    regions: list[str] | None = None
    result_count: int | None = None
    # Metering: (region, partner_id) per delivered study, under ``kind``.
    delivered: list[tuple[str | None, str]] = field(default_factory=list)
    kind: str | None = None
    ref: str | None = None

    def deliver(self, kind: str, studies: list[dict[str, Any]], ref: str | None = None) -> None:
        """Record result rows (dicts with region and partner_id) as delivered."""
        self.kind, self.ref = kind, ref
        self.delivered = [(s.get("region"), s["partner_id"]) for s in studies if s.get("partner_id")]


def audit_of(request: Request) -> RequestAudit:
    """This request's record (created by the middleware)."""
    rec = request.scope.setdefault("state", {}).get("audit")
    if rec is None:
        rec = request.scope["state"]["audit"] = RequestAudit()
    return rec


class AuditMiddleware:
    """Pure ASGI (no response buffering, so streamed downloads stay streamed)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rec = RequestAudit()
        scope.setdefault("state", {})["audit"] = rec
        status = {"code": 500, "written": False}

        async def write() -> None:
            if status["written"]:
                return
            status["written"] = True
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "(no route)"
            headers = dict(scope.get("headers") or [])
            key = headers.get(b"x-api-key", b"").decode("latin-1")
            client = (scope.get("client") or (None,))[0]
            elapsed = (time.perf_counter() - started) * 1000
            try:
                await to_thread.run_sync(_write, scope["app"].state.db, rec, endpoint, status["code"],
                                         elapsed, client, key)
            except Exception:  # noqa: BLE001 - an audit failure is logged loudly, never hidden
                log.exception("could not write the audit record of %s", endpoint)

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Written before the last byte leaves: a client that has the
                # answer also finds it in the audit log.
                await write()
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            await write()


def _write(db: Any, rec: RequestAudit, endpoint: str, status: int, elapsed: float, client: str | None,
           key: str) -> None:
    db.audit(customer=rec.customer, endpoint=endpoint, status=status, filters=rec.filters,
             regions=rec.regions, result_count=rec.result_count, duration_ms=elapsed, client=client,
             key_prefix=key[:12] or None)
    if rec.customer is not None and rec.kind and rec.delivered and status < 400:
        db.record_delivery(rec.customer, rec.kind, rec.delivered, rec.ref)
