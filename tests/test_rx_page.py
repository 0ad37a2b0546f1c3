"""The ``/rx`` population-trends page in a real browser (Debian chromium via Playwright)."""

from __future__ import annotations


import httpx
import pytest

from tests.support.serve import serve_in_thread

pytestmark = pytest.mark.browser




@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from medication.engine import Checker, read_jsonl
    from medication.store import OrderStore
    from sta.service import create_app
    from sta.service.db import ServiceDB
    from sta.service.search import StoreSet
    from synth.medication import generate

    root = tmp_path_factory.mktemp("rxpage")
    generate(root / "input", patients=80, seed=9)
    store = OrderStore(root / "rx")
    checker = Checker(store, load_model=False)
    checker.load_history(read_jsonl(root / "input" / "history.jsonl"))
    checker.train()
    store.add_decisions([checker.check(o).row() for o in read_jsonl(root / "input" / "orders.jsonl")])
    db = ServiceDB(root / "service" / "service.sqlite")
    key = db.create_key("Clínica Andes", "standard")[0]
    app = create_app(StoreSet.discover(root), db)
    app.state.rx_store = store
    with serve_in_thread(app) as url:
        yield {"url": url, "key": key}


def test_trends_page_shows_tables_and_plots(site, page, artifacts_dir):
    api = httpx.get(site["url"] + "/api/rx/trends", params={"dx": "J02"}, headers={"X-API-Key": site["key"]}).json()
    page.goto(site["url"] + "/rx")
    page.fill("#rx-key", site["key"])
    page.fill("#rx-dx", "j02")
    page.click("#rx-filters button[type=submit]")
    page.wait_for_selector("body[data-loaded='1']", timeout=30000)
    assert page.locator("#tbl-doses tbody tr").count() == len(api["doses"]) > 0
    assert page.locator("#tbl-anomalies tbody tr").count() == len(api["anomalies"]) > 0
    first = page.locator("#tbl-anomalies tbody tr").first.inner_text()
    assert api["anomalies"][0]["month"] in first
    for name in ("doses", "anomalies", "prescribers"):
        assert page.locator(f"#plot-{name} svg").count() == 1
    page.screenshot(path=str(artifacts_dir / "rx_trends.png"), full_page=True)


def test_wrong_key_says_so(site, page):
    page.goto(site["url"] + "/rx")
    page.fill("#rx-key", "sta_not_a_key")
    page.click("#rx-filters button[type=submit]")
    page.wait_for_function("document.querySelector('#rx-error').textContent.includes('401')")
