"""The FastAPI application: routers, the audit middleware, the pages, health."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from sta.service.audit import AuditMiddleware
from sta.service.db import ServiceDB
from sta.service.routers import accounts, exports, me, patients, rx, sql, studies, thumbnails
from sta.service.search import StoreSet
from sta.service.settings import DeliverySettings

STATIC = Path(__file__).resolve().parent / "static"


# Every router of the service. Another area adds its router here (one line).
ROUTERS = [studies.router, patients.router, thumbnails.router, me.router, accounts.router, exports.router,
           sql.router, rx.router]


def create_app(stores: StoreSet, db: ServiceDB, delivery: DeliverySettings | None = None) -> FastAPI:
    """The service over ``stores`` with accounts, audit and orders in ``db``;
    ``delivery`` defaults to ``DeliverySettings.from_env`` over the stores' data root."""
    app = FastAPI(
        title="STA query service",
        version="1.0",
        description=(
            "Search de-identified imaging studies (STA Standard), order exports, query a Pro SQL "
            "workspace. Every `/api` request needs a customer key or session token in the "
            "`X-API-Key` header; results come only from the regions the customer is entitled to; "
            "every request is audited and every delivered study metered."
        ),
    )
    app.state.stores = stores
    app.state.db = db
    app.state.delivery = delivery or DeliverySettings.from_env(stores.data_root)
    app.add_middleware(AuditMiddleware)
    for r in ROUTERS:
        app.include_router(r)

    @app.get("/healthz", tags=["ops"], summary="Liveness and the regions served")
    def healthz() -> dict:
        return {"status": "ok", "regions": stores.available(None)}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    @app.get("/descarga", include_in_schema=False)  # the export email's link: the page downloads with the stored key
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return app


def create_app_from_env() -> FastAPI:
    """App factory for ``uvicorn --factory`` with several worker processes
    (``sta serve --workers N``): each worker opens the stores itself, from
    ``STA_SERVE_STORES`` (os.pathsep-separated store files) or, when unset,
    every store under ``STA_DATA_ROOT``; keys from ``STA_SERVICE_DB``."""
    import os

    from foundation.paths import data_root
    from sta.service.db import default_db_path

    paths = [p for p in os.environ.get("STA_SERVE_STORES", "").split(os.pathsep) if p]
    stores = StoreSet.from_paths([Path(p) for p in paths]) if paths else StoreSet.discover(data_root())
    return create_app(stores, ServiceDB(default_db_path(data_root())))
