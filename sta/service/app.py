"""The FastAPI application: routers, the audit middleware, the pages, health."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from sta.service.audit import AuditMiddleware
from sta.service.db import ServiceDB
from sta.service.routers import me, patients, studies, thumbnails
from sta.service.search import StoreSet

STATIC = Path(__file__).resolve().parent / "static"


def create_app(stores: StoreSet, db: ServiceDB) -> FastAPI:
    """The service over ``stores`` with accounts, audit and orders in ``db``."""
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
    app.add_middleware(AuditMiddleware)
    for r in (studies.router, patients.router, thumbnails.router, me.router):
        app.include_router(r)

    @app.get("/healthz", tags=["ops"], summary="Liveness and the regions served")
    def healthz() -> dict:
        return {"status": "ok", "regions": stores.available(None)}

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
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
