"""The customer's page in a real browser (Debian chromium via Playwright)
against a real service on loopback: sign-up → search with suggestion and
advanced filters (chips, shareable URL surviving a reload) → cart surviving
a reload → export order → ready → download; the UI in Spanish, Portuguese
and English; the Pro SQL box; patient search by patient-level filters.
Screenshots in test-artifacts/."""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from delivery.fulfilment import workspace_path
from delivery.links import LinkSigner, derive_secret
from delivery.workspaces import build_workspace
from delivery.catalog import discover_stores
from sta.service import create_app
from sta.service.db import ServiceDB
from sta.service.search import StoreSet
from sta.service.settings import DeliverySettings
from tests.support.serve import serve_in_thread

pytestmark = pytest.mark.browser





@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from test_delivery import publish_with_files

    root = tmp_path_factory.mktemp("delivery-page")
    rows = publish_with_files(root)
    db = ServiceDB(root / "service" / "service.sqlite")
    # No Airflow here: orders are built in a thread of the service by the same library code.
    settings = DeliverySettings(data_root=root, signer=LinkSigner(derive_secret(os.environ["STA_SECRET_KEY"])))
    pro_key, pro = db.create_key("Analítica Pro", "pro", ["co"])
    build_workspace(discover_stores(root), ["co"], workspace_path(root, pro.id))
    with serve_in_thread(create_app(StoreSet.discover(root), db, settings)) as url:
        yield {"url": url, "rows": rows, "db": db, "pro_key": pro_key, "root": root}


def studies(site, regions=("co", "br")) -> list[dict]:
    return [s for t in site["rows"].values() for s in t["studies"] if s["region"] in regions]


def positive(site) -> dict[str, set]:
    out: dict[str, set] = {}
    for t in site["rows"].values():
        for lab in t["labels"]:
            if lab["certainty"] == "positive":
                out.setdefault(lab["study_uid"], set()).add(lab["concept"])
    return out


def count_text(n: int, page_size: int = 10) -> str:
    return f"Mostrando {1 if n else 0} a {min(n, page_size)} de {n:,} resultados"


def wait_count(page, n: int) -> None:
    page.wait_for_function(f"document.querySelector('#count').textContent === {count_text(n)!r}")


def test_signup_filters_cart_export_and_download(site, page, artifacts_dir):
    page.goto(site["url"] + "/")
    page.click("#to-signup")
    page.fill("#su-name", "Navegante Datos")
    page.fill("#su-email", "navegante@example.org")
    page.fill("#su-password", "clave-muy-segura-1")
    page.wait_for_selector("#su-regions input[value=co]")
    page.screenshot(path=str(artifacts_dir / "signup.png"), full_page=True)
    page.click("#signup-form button[type=submit]")
    page.wait_for_selector("#signup-done:not([hidden])")
    assert page.inner_text("#signup-key").startswith("sta_")
    page.click("#signup-continue")
    everything = studies(site)
    wait_count(page, len(everything))
    assert "Navegante Datos" in page.inner_text("#account")

    # A suggestion chip: BIRADS (any BI-RADS category).
    page.click("#suggestions button[data-value=birads]")
    labels = positive(site)
    birads = [s for s in everything if any(c.startswith("birads_") for c in labels.get(s["study_uid"], ()))]
    assert birads
    wait_count(page, len(birads))
    assert "X BI-RADS" in page.inner_text("#active-filters")
    assert "label=birads" in page.url

    # The advanced panel: a partner by its display name, a date range.
    page.click("#advanced-toggle")
    assert page.is_visible("#f-partner")
    partner_label = page.locator("#f-partner label", has_text="Hospital Norte")
    partner_label.locator("input").check()
    want = [s for s in birads if s["partner_id"] == "co_hospital_norte"]
    wait_count(page, len(want))
    page.fill("#date-from", "2015-01-01")
    page.dispatch_event("#date-from", "change")
    want = [s for s in want if s["study_date_shifted"].isoformat() >= "2015-01-01"]
    wait_count(page, len(want))
    chips = page.inner_text("#active-filters")
    assert "Hospital Norte" in chips and "2015-01-01" in chips
    assert "partner=co_hospital_norte" in page.url and "date_from=2015-01-01" in page.url

    # The address is the search: a reload (or a shared link) gives the same page.
    shared = page.url
    page.reload()
    wait_count(page, len(want))
    assert page.is_visible("#advanced") and "Hospital Norte" in page.inner_text("#active-filters")

    # Cart: two studies, kept over a reload.
    cards = page.locator("#results .card")
    picked = [cards.nth(i).get_attribute("data-study") for i in range(min(2, cards.count()))]
    for i in range(len(picked)):
        cards.nth(i).locator("button.add").click()
    page.screenshot(path=str(artifacts_dir / "search_advanced.png"), full_page=True)
    page.goto(shared)
    wait_count(page, len(want))
    assert page.inner_text("#sel-count") == str(len(picked))
    assert page.locator("#results .card button.add.added").count() == len(picked)

    # The cart becomes an export order, followed in "Mis exportaciones".
    page.click("#sel-export")
    page.check("#export-form input[value=json]")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector("#view-exports:not([hidden]) tr[data-status=ready]", timeout=30_000)
    assert page.inner_text("#sel-count") == "0"
    row = page.locator("#exports-table tr[data-status=ready]").first
    assert "Lista" in row.inner_text()
    page.screenshot(path=str(artifacts_dir / "exports.png"), full_page=True)
    with page.expect_download() as dl:
        row.locator("button.download").click()
    data = Path(dl.value.path()).read_bytes()
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    assert manifest["exported"] == len(picked) and manifest["format"] == "json"

    # The email's link opens the page, which downloads with the stored key.
    order_id = row.get_attribute("data-order")
    customer = site["db"].customer("Navegante Datos")
    token = LinkSigner(derive_secret(os.environ["STA_SECRET_KEY"])).sign(order_id, customer.id)
    with page.expect_download() as dl:
        page.goto(f"{site['url']}/descarga?pedido={order_id}&token={token}")
    data = Path(dl.value.path()).read_bytes()
    assert json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))["exported"] == len(picked)


ENGLISH = re.compile(r"\b(Search|Loading|Showing|results|Filters|Add|Export|Sex|Age|Manufacturer|Patient|Sort)\b")


def test_ui_is_spanish_with_portuguese_and_english(site, page, artifacts_dir):
    page.goto(site["url"] + "/")
    page.fill("#api-key-input", site["pro_key"])
    page.click("#login-form button[type=submit]")
    wait_count(page, len(studies(site, ("co",))))
    body = page.inner_text("body")
    assert not ENGLISH.search(body), ENGLISH.search(body)
    # The slice-thickness slider (the store has characterization here).
    assert page.is_enabled("#thickness-max")
    page.eval_on_selector("#thickness-max", "e => { e.value = 2.5; e.dispatchEvent(new Event('input')) }")
    thick = {c["study_uid"]: c["value_num"] for t in site["rows"].values() for c in t.get("characteristics", [])
             if c["field"] == "slice_thickness_mm"}
    wait_count(page, sum(1 for s in studies(site, ("co",)) if thick.get(s["study_uid"]) is not None
                         and thick[s["study_uid"]] <= 2.5))
    assert "Grosor 0–2.5 mm" in page.inner_text("#active-filters") and "thickness_max=2.5" in page.url
    page.screenshot(path=str(artifacts_dir / "thickness.png"), full_page=True)
    page.click("#clear")
    page.select_option("#lang", "pt")
    page.wait_for_function("document.querySelector('#tab-studies').textContent === 'Buscar estudos'")
    assert page.inner_text("#advanced-toggle") == "Usar filtros avançados"
    page.screenshot(path=str(artifacts_dir / "search_pt.png"), full_page=True)
    page.select_option("#lang", "en")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('Showing')")
    assert page.inner_text("#tab-exports") == "My exports"
    page.reload()  # the choice is kept
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('Showing')")
    page.select_option("#lang", "es")


def test_pro_sql_box_answers_and_refuses(site, page, artifacts_dir):
    page.goto(site["url"] + "/")
    page.fill("#api-key-input", site["pro_key"])
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#tab-sql:not([hidden])")
    page.click("#tab-sql")
    page.fill("#sql-input", "SELECT modality, count(*) AS n FROM studies GROUP BY modality ORDER BY modality")
    page.click("#sql-run")
    page.wait_for_selector("#sql-result tbody tr")
    got = {r.locator("td").nth(0).inner_text(): int(r.locator("td").nth(1).inner_text())
           for r in page.locator("#sql-result tbody tr").all()}
    assert got == dict(Counter(s["modality"] for s in studies(site, ("co",))))
    page.screenshot(path=str(artifacts_dir / "sql.png"), full_page=True)
    page.fill("#sql-input", "SELECT * FROM read_csv('/etc/passwd')")
    page.click("#sql-run")
    page.wait_for_function("document.querySelector('#sql-error').textContent.length > 0")
    assert "disabled" in page.inner_text("#sql-error") or "refused" in page.inner_text("#sql-error")


def test_patient_search_by_patient_level_filters(site, page, artifacts_dir):
    page.goto(site["url"] + "/")
    page.fill("#api-key-input", site["pro_key"])  # region co only
    page.click("#login-form button[type=submit]")
    wait_count(page, len(studies(site, ("co",))))
    page.click("#tab-patients")
    page.check("#patients-form input[name=psex][value=F]")
    page.fill("#p-min-studies", "2")
    page.click("#patients-form button[type=submit]")
    page.wait_for_function("document.querySelector('#p-count').textContent.endsWith('pacientes')")
    per: dict[str, list] = {}
    for s in studies(site, ("co",)):
        per.setdefault(s["patient_token"], []).append(s)
    want = {t for t, ss in per.items() if len(ss) >= 2 and ss[0]["sex"] == "F"}
    rows = page.locator("#patients-table tbody tr")
    assert {rows.nth(i).get_attribute("data-token") for i in range(rows.count())} == want
    page.screenshot(path=str(artifacts_dir / "patients_search.png"), full_page=True)
    rows.first.locator("a.patient-link").click()
    page.wait_for_selector("#view-patient:not([hidden]) .timeline li")
