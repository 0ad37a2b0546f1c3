"""The quarantine in the Airflow UI: a menu page and a tab on every ``ingest_<partner>`` run.

A FastAPI app mounted by the API server at ``/sta-quarantine`` (``fastapi_apps``)
and shown inside the UI (``external_views``): *Browse → STA quarantine* lists
every partner's quarantined files by run, stage and reason; each run of an
ingest DAG gets a *Quarantine* tab with that run's files; a file's page shows
its reason and the same de-identified preview as ``sta quarantine show``.
Read-only: reprocess, release and purge are done with the CLI, which
records who did what.

Plugin apps are not behind Airflow's auth, so this one checks for itself:
the caller's Airflow token (the UI's ``_token`` cookie, or ``Authorization:
Bearer``) is validated by Airflow's auth manager, and a partner is shown only
to a user who may read its DAG. Files are named by landing id; nothing here
shows a raw path or value. Logic: :mod:`transforms.quarantine_admin`.
"""

from __future__ import annotations

import html
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse

from airflow.plugins_manager import AirflowPlugin

PREFIX = "/sta-quarantine"
app = FastAPI(title="STA quarantine", description="Quarantined partner files (read-only)", docs_url=None,
              redoc_url=None, openapi_url=None)


async def current_user(request: Request) -> Any:
    """The Airflow user behind this request (401/403 otherwise): the same check as Airflow's own API."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token)


def _visible_partners(user: Any, wanted: str | None = None) -> list[Any]:
    """Partners whose ingest DAG this user may read (and that load)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails

    from foundation.partners import load_partners_checked

    partners, _ = load_partners_checked()
    am = get_auth_manager()
    return [p for p in partners if (wanted is None or p.id == wanted)
            and am.is_authorized_dag(method="GET", details=DagDetails(id=p.dag_id), user=user)]


def _partner_of(dag_id: str | None) -> str | None:
    return dag_id[len("ingest_"):] if dag_id and dag_id.startswith("ingest_") else None


def _items(user: Any, partner: str | None, run: str | None, stage: str | None, reason: str | None,
           dag_id: str | None = None) -> list[Any]:
    from foundation.paths import safe_run_id
    from transforms.quarantine_admin import list_items

    if dag_id and not partner:
        return []  # the run tab of a DAG that is not a partner's ingest DAG (e.g. link_<region>)
    return list_items(_visible_partners(user, partner), run=safe_run_id(run) if run else None, stage=stage,
                      reason=reason)


@app.get("/api/items")
def api_items(partner: str | None = None, dag_id: str | None = None, run_id: str | None = None,
              stage: str | None = None, reason: str | None = None, user: Any = Depends(current_user)) -> dict:
    """Quarantined files (JSON), filtered like ``sta quarantine list``."""
    from transforms.quarantine_admin import summary

    items = _items(user, partner or _partner_of(dag_id), run_id, stage, reason, dag_id)
    return {"items": [i.to_dict() for i in items], "summary": summary(items)}


@app.get("/api/items/{partner_id}/{landing_id}")
def api_item(partner_id: str, landing_id: str, user: Any = Depends(current_user)) -> dict:
    """One file's reason and de-identified preview (JSON), like ``sta quarantine show``."""
    from transforms.quarantine_admin import QuarantineError, show

    partners = _visible_partners(user, partner_id)
    if not partners:
        raise HTTPException(404, "no such partner (or not yours to see)")
    try:
        return show(partners[0], landing_id)
    except QuarantineError as exc:
        raise HTTPException(404, str(exc)) from exc


_STYLE = """<style>body{font-family:system-ui,sans-serif;margin:1rem;color:#222}table{border-collapse:collapse}
td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left;font-size:.9rem}th{background:#f4f4f4}
code{font-size:.85rem}.muted{color:#777}pre{white-space:pre-wrap;background:#f8f8f8;padding:.6rem}</style>"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
                        f"{_STYLE}</head><body><h2>{html.escape(title)}</h2>{body}</body></html>")


@app.get("/", response_class=HTMLResponse)
def page_list(partner: str | None = None, dag_id: str | None = None, run_id: str | None = None,
              stage: str | None = None, reason: str | None = None, user: Any = Depends(current_user)) -> HTMLResponse:
    from transforms.quarantine_admin import summary

    e = html.escape
    items = _items(user, partner or _partner_of(dag_id), run_id, stage, reason, dag_id)
    s = summary(items)
    counts = ", ".join(f"{e(k)}: {v}" for k, v in sorted(s["by_reason"].items())) or "none"
    rows = "".join(
        f"<tr><td>{e(i.partner_id)}</td><td><code>{e(i.run)}</code></td>"
        f"<td><a href='{PREFIX}/items/{e(i.partner_id)}/{e(i.landing_id)}'><code>{e(i.landing_id)}</code></a></td>"
        f"<td>{e(i.stage)}</td><td>{e(i.reason)}</td><td>{e(i.description)}</td><td>{e(i.original)}</td>"
        f"<td class='muted'>{e(i.at)}</td></tr>"
        for i in items)
    where = ", ".join(f"{k}={e(str(v))}" for k, v in (("partner", partner or _partner_of(dag_id)), ("run", run_id),
                                                         ("stage", stage), ("reason", reason)) if v)
    body = (f"<p>{s['items']} quarantined files{' (' + where + ')' if where else ''}; by reason: {counts}</p>"
            "<table><tr><th>partner</th><th>run</th><th>landing id</th><th>stage</th><th>reason</th>"
            "<th>meaning</th><th>original</th><th>at</th></tr>" + rows + "</table>"
            "<p class='muted'>Reprocess, release and purge: <code>sta quarantine --help</code> "
            "(runbook: docs/runbook.md).</p>")
    return _page("STA quarantine", body)


@app.get("/items/{partner_id}/{landing_id}", response_class=HTMLResponse)
def page_item(partner_id: str, landing_id: str, user: Any = Depends(current_user)) -> HTMLResponse:
    e = html.escape
    info = api_item(partner_id, landing_id, user)
    pv = info.pop("preview", {})
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in info.items())
    attrs = "".join(f"<tr><th>{e(k)}</th><td>{e(str(v))}</td></tr>" for k, v in (pv.get("attributes") or {}).items())
    text = f"<pre>{e(pv['text'])}</pre>" if pv.get("text") else ""
    note = f"<p class='muted'>{e(pv['note'])}</p>" if pv.get("note") else ""
    back = f"{PREFIX}/?{urlencode({'partner': partner_id})}"
    body = (f"<p><a href='{back}'>&larr; {e(partner_id)}</a></p><table>{rows}</table>"
            f"<h3>Preview: {e(str(pv.get('kind')))} ({e(str(pv.get('size', '?')))} bytes)</h3>"
            f"<table>{attrs}</table>{note}{text}")
    return _page(f"Quarantined {landing_id}", body)


class StaQuarantinePlugin(AirflowPlugin):
    name = "sta_quarantine"
    fastapi_apps = [{"app": app, "url_prefix": PREFIX, "name": "STA quarantine"}]
    external_views = [
        {"name": "STA quarantine", "href": f"{PREFIX}/", "destination": "nav", "category": "browse",
         "url_route": "sta-quarantine"},
        {"name": "Quarantine", "href": f"{PREFIX}/?dag_id={{DAG_ID}}&run_id={{RUN_ID}}", "destination": "dag_run",
         "url_route": "sta-quarantine-run"},
    ]
