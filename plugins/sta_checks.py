"""A run's checks in the Airflow UI: Great Expectations Data Docs and the review sheet, as a run tab.

Every ``ingest_<partner>`` run gets a *Checks* tab (``external_views``,
destination ``dag_run``) showing ``<partner>/reports/<run>/index.html``: each
stage boundary's checkpoint verdict with a link to its GX Data Docs page, and
the researchers' review sheet when the run had one. Files are served by a
FastAPI app mounted by the API server at ``/sta-checks``.

Plugin apps are not behind Airflow's auth, so this one checks for itself:
the caller's Airflow token (the UI's cookie or ``Authorization: Bearer``)
is validated by Airflow's auth manager, and a partner's reports are served
only to a user who may read its DAG. What is served holds no identifying
value (counts, reason codes, de-identified thumbnails).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse

from airflow.plugins_manager import AirflowPlugin

PREFIX = "/sta-checks"
app = FastAPI(title="STA checks", docs_url=None, redoc_url=None, openapi_url=None)


async def current_user(request: Request) -> Any:
    """The Airflow user behind this request (401/403 otherwise)."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token)


def _partner(partner_id: str, user: Any) -> Any:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    from foundation.partners import load_partners_checked

    for p in load_partners_checked()[0]:
        if p.id == partner_id and get_auth_manager().is_authorized_dag(method="GET", details=DagDetails(id=p.dag_id),
                                                                       user=user):
            return p
    raise HTTPException(404, "no such partner, or not yours to see")


@app.get("/")
def run_tab(dag_id: str, run_id: str, user: Any = Depends(current_user)) -> RedirectResponse:
    """The run tab: the run's checks page (404 for DAGs that are not a partner's ingest DAG)."""
    from foundation.paths import safe_run_id

    if not dag_id.startswith("ingest_"):
        raise HTTPException(404, "not a partner ingest DAG")
    partner = _partner(dag_id[len("ingest_"):], user)
    return RedirectResponse(f"files/{partner.id}/{safe_run_id(run_id)}/index.html")  # relative: works mounted or not


@app.get("/files/{partner_id}/{run}/{path:path}")
def files(partner_id: str, run: str, path: str, user: Any = Depends(current_user)) -> FileResponse:
    partner = _partner(partner_id, user)
    base = partner.root().run_reports(run).resolve()
    target = (base / path).resolve()
    if base not in target.parents or not target.is_file():
        raise HTTPException(404, "no such report")
    return FileResponse(Path(target))


class StaChecksPlugin(AirflowPlugin):
    name = "sta_checks"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "STA checks"}]
    external_views = [
        {"name": "Checks", "href": f"{PREFIX}/?dag_id={{DAG_ID}}&run_id={{RUN_ID}}", "destination": "dag_run",
         "url_route": "sta-checks-run"},
    ]
