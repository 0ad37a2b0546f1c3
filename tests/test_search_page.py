"""The STA Standard search page in a real browser (Debian chromium, headless,
driven by Playwright), against a real service on loopback."""

from __future__ import annotations

import re

import pytest

from sta.service.search import StoreSet
from sta.service import create_app
from sta.service.db import ServiceDB
from tests.support.serve import serve_in_thread
from transforms.consolidate import consolidate_region
from synth.store_demo import write_demo_partners

pytestmark = pytest.mark.browser





@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from test_query_api import expected_order, flatten  # the independent expectations

    root = tmp_path_factory.mktemp("page")
    rows = write_demo_partners(root)
    consolidate_region("co", root)
    consolidate_region("br", root)
    db = ServiceDB(root / "service.sqlite")
    key = db.create_key("Navegador SA", "standard")[0]
    with serve_in_thread(create_app(StoreSet.discover(root), db)) as url:
        yield {"url": url, "key": key, "studies": flatten(rows), "expected": expected_order}


def _count_text(n_total: int, page_size: int = 10) -> str:
    last = min(n_total, page_size)
    return f"Mostrando {1 if n_total else 0} a {last} de {n_total:,} resultados"


def test_search_filter_select_and_patient_view(site, page, artifacts_dir):
    studies, expected = site["studies"], site["expected"]
    page.goto(site["url"] + "/")
    # The page asks for the key and keeps it.
    page.fill("#api-key-input", site["key"])
    page.click("#login-form button[type=submit]")
    count = page.locator("#count")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('Mostrando')")
    assert count.inner_text() == _count_text(len(studies))
    assert "Navegador SA" in page.inner_text("#account")

    # Filter by modality (two values) and sex through the sidebar's facets.
    page.check("#f-modality input[value=MR]")
    want = expected(studies, {"modality": ["MR"]})
    page.wait_for_function(f"document.querySelector('#count').textContent === {_count_text(len(want))!r}")
    page.check("#f-modality input[value=CT]")
    page.check("#f-sex input[value=F]")
    filters = {"modality": ["MR", "CT"], "sex": ["F"]}
    want = expected(studies, filters)
    page.wait_for_function(f"document.querySelector('#count').textContent === {_count_text(len(want))!r}")

    # Type a keyword (accented; the index is accent-free).
    page.fill("#q", "nódulo")
    page.press("#q", "Enter")
    filters["q"] = "nódulo"
    want = expected(studies, filters)
    assert want, "the demo data has female MR/CT studies mentioning a nodule"
    page.wait_for_function(f"document.querySelector('#count').textContent === {_count_text(len(want))!r}")
    cards = page.locator("#results .card")
    assert cards.count() == min(10, len(want))
    first = cards.first
    assert first.get_attribute("data-study") == want[0]
    first_study = next(s for s in studies if s["study_uid"] == want[0])
    assert re.search("n[oó]dulo", first.inner_text(), re.I)
    assert first_study["patient_token"] in first.inner_text()
    assert "Mujer" in first.inner_text()
    # The facet counts in the sidebar follow the query.
    assert page.locator("#f-modality input[value=MR]").is_checked()
    page.wait_for_selector("#results .card .thumb img")

    # Add the study to the selection.
    first.locator("button.add").click()
    assert page.inner_text("#sel-count") == "1"
    assert first.locator("button.add").inner_text() == "Agregado ✓"
    assert want[0] in page.inner_text("#sel-list")
    page.screenshot(path=str(artifacts_dir / "search_page.png"), full_page=True)

    # Open the patient view from the card.
    first.locator("a.patient-link").click()
    page.wait_for_selector("#view-patient:not([hidden]) .timeline li")
    token = first_study["patient_token"]
    own = sorted((s["study_date_shifted"].isoformat(), s["study_uid"]) for s in studies
                 if s["patient_token"] == token)
    items = page.locator("#timeline li")
    assert items.count() == len(own)
    assert [items.nth(i).get_attribute("data-study") for i in range(items.count())] == [u for _d, u in own]
    assert page.inner_text("#p-token") == token
    assert f"{len(own)} estudios" in page.inner_text("#p-summary")
    page.screenshot(path=str(artifacts_dir / "patient_view.png"), full_page=True)

    # Paging back in the results view.
    page.click("#back")
    page.uncheck("#f-sex input[value=F]")
    page.fill("#q", "")
    page.press("#q", "Enter")
    page.uncheck("#f-modality input[value=MR]")
    page.uncheck("#f-modality input[value=CT]")
    page.wait_for_function(f"document.querySelector('#count').textContent === {_count_text(len(studies))!r}")
    page.click("#pager button:has-text('Siguiente')")
    page.wait_for_function("document.querySelector('#count').textContent.startsWith('Mostrando 11 a 20')")


def test_wrong_key_is_refused_and_asked_again(site, page):
    page.goto(site["url"] + "/")
    page.fill("#api-key-input", "sta_not_a_key")
    page.click("#login-form button[type=submit]")
    page.wait_for_function("document.querySelector('#login-error').textContent.length > 0")
    assert page.is_visible("#login")
    assert "no es válida" in page.inner_text("#login-error")
