"""The query service's API and CLI against results computed independently.

A real server on loopback serves two regional stores built from the demo
partners; expected results are computed here in plain Python from the rows
the partners published, not with the SQL under test.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import httpx
import pytest

from sta.cli import main as sta_main
from sta.service.search import StoreSet
from sta.service import create_app
from sta.service.db import ServiceDB
from tests.support.serve import serve_in_thread
from transforms.consolidate import consolidate_region
from synth.store_demo import demo_token, write_demo_partners, write_partner


# ---------------------------------------------------------------- expected side
def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKD", text or "")
    return "".join(c for c in text if not unicodedata.combining(c)).lower()


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^0-9a-z]+", _norm(text)) if w]


def flatten(rows: dict) -> list[dict]:
    """One dict per study with its labels, characterization, report and series text."""
    out = []
    for pid, tables in rows.items():
        labels: dict[str, set] = {}
        certainties: dict[str, set] = {}
        for lab in tables["labels"]:
            certainties.setdefault(lab["study_uid"], set()).add(f"{lab['concept']}:{lab['certainty']}")
            if lab["certainty"] == "positive":
                labels.setdefault(lab["study_uid"], set()).add(lab["concept"])
        chars: dict[str, set] = {}
        thickness: dict[str, tuple] = {}
        for c in tables.get("characteristics", []):
            chars.setdefault(c["study_uid"], set()).add(f"{c['field']}:{c['value']}")
            if c["field"] == "slice_thickness_mm":
                best = thickness.get(c["study_uid"])
                if best is None or c["confidence"] > best[0]:
                    thickness[c["study_uid"]] = (c["confidence"], c["value_num"])
        reports = {r["study_uid"]: r["text_scrubbed"] for r in tables["reports"]}
        series: dict[str, list[str]] = {}
        for s in tables["series"]:
            series.setdefault(s["study_uid"], []).append(s["series_description"] or "")
        for s in tables["studies"]:
            text = " ".join([s["study_description"] or "", reports.get(s["study_uid"], ""),
                             *series.get(s["study_uid"], [])])
            out.append({**s, "labels": labels.get(s["study_uid"], set()),
                        "certainties": certainties.get(s["study_uid"], set()),
                        "characteristics": chars.get(s["study_uid"], set()),
                        "thickness": thickness.get(s["study_uid"], (0, None))[1],
                        "words": _words(text)})
    return out


def family(concept: str) -> str:
    return re.sub(r"_[0-9]+$", "", concept)


def matches(s: dict, f: dict, exclude: str | None = None) -> bool:
    def any_of(name: str, value) -> bool:
        return name == exclude or not f.get(name) or value in f[name]

    if not any_of("modality", s["modality"]) or not any_of("sex", s["sex"]):
        return False
    if not any_of("body_region", s["body_region"]) or not any_of("manufacturer", s["manufacturer"]):
        return False
    if not any_of("country", s["country"]) or not any_of("partner", s["partner_id"]):
        return False
    if exclude != "age":
        if f.get("age_min") is not None and s["age_at_study"] < f["age_min"]:
            return False
        if f.get("age_max") is not None and s["age_at_study"] > f["age_max"]:
            return False
    if exclude != "label" and f.get("label"):
        by_family: dict[str, list[str]] = {}
        for lab in f["label"]:
            by_family.setdefault(family(lab), []).append(lab)
        for wanted in by_family.values():
            if not any(c in wanted or family(c) in wanted for c in s["labels"]):
                return False
    for name, key in (("label_certainty", "certainties"), ("characteristic", "characteristics")):
        if exclude != name and f.get(name):
            by: dict[str, list[str]] = {}
            for v in f[name]:
                by.setdefault(v.split(":")[0], []).append(v)
            if not all(any(v in s[key] for v in wanted) for wanted in by.values()):
                return False
    if exclude != "slice_thickness" and (f.get("thickness_min") is not None or f.get("thickness_max") is not None):
        if s["thickness"] is None or not (f.get("thickness_min", 0) <= s["thickness"] <= f.get("thickness_max", 1e9)):
            return False
    if f.get("date_from") and s["study_date_shifted"].isoformat() < f["date_from"]:
        return False
    if f.get("date_to") and s["study_date_shifted"].isoformat() > f["date_to"]:
        return False
    if f.get("q"):
        for concepts, words in _keyword_terms(f["q"]):
            if concepts:  # a concept keyword: the concept's positive labels, in any language
                if not any(c in concepts or family(c) in concepts for c in s["labels"]):
                    return False
            elif not all(any(kw in w for w in s["words"]) for kw in words):
                return False
    return True


def _keyword_terms(q: str) -> list[tuple[list[str], list[str]]]:
    """The documented keyword semantics (README, issue 13): a phrase or word naming a concept in
    es/pt/en means that concept's positive labels; other words match the report's words."""
    from labelling import match_keyword

    words = _words(q)
    if len(words) > 1 and match_keyword(q):
        return [(match_keyword(q), words)]
    return [(match_keyword(w), [w]) for w in words]


def expected_order(studies: list[dict], f: dict) -> list[str]:
    hits = [s for s in studies if matches(s, f)]
    sort = f.get("sort", "date_desc")
    key = {"date_desc": lambda s: (-s["study_date_shifted"].toordinal(), s["study_uid"]),
           "date_asc": lambda s: (s["study_date_shifted"].toordinal(), s["study_uid"]),
           "age_desc": lambda s: (-s["age_at_study"], s["study_uid"]),
           "age_asc": lambda s: (s["age_at_study"], s["study_uid"])}[sort]
    return [s["study_uid"] for s in sorted(hits, key=key)]


def expected_facets(studies: list[dict], f: dict) -> dict[str, dict[str, int]]:
    values = {
        "modality": lambda s: [s["modality"]], "body_region": lambda s: [s["body_region"]],
        "sex": lambda s: [s["sex"]], "manufacturer": lambda s: [s["manufacturer"]],
        "country": lambda s: [s["country"]], "partner": lambda s: [s["partner_id"]],
        "age": lambda s: [f"{s['age_at_study'] // 10 * 10}-{s['age_at_study'] // 10 * 10 + 9}"],
        "label": lambda s: sorted(s["labels"]),
        "label_certainty": lambda s: sorted(s["certainties"]),
        "characteristic": lambda s: sorted(s["characteristics"]),
        "slice_thickness": lambda s: [] if s["thickness"] is None else [f"{round(s['thickness'] * 2) / 2:g}"],
    }
    out = {}
    for facet, fn in values.items():
        counts: dict[str, int] = {}
        for s in studies:
            if matches(s, f, exclude=facet):
                for v in fn(s):
                    counts[v] = counts.get(v, 0) + 1
        out[facet] = counts
    return out


# ---------------------------------------------------------------- environment
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    rows = write_demo_partners(root)
    consolidate_region("co", root)
    consolidate_region("br", root)
    db = ServiceDB(root / "service" / "service.sqlite")
    keys = {
        "all": db.create_key("Acme AI", "standard")[0],
        "co": db.create_key("Andes Vision", "standard", ["co"])[0],
        "pro": db.create_key("Pampa Labs", "pro", ["co", "br"])[0],
        "revoked": db.create_key("Old Corp", "standard")[0],
    }
    db.revoke(keys["revoked"][:12])
    with serve_in_thread(create_app(StoreSet.discover(root), db)) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            yield {"root": root, "rows": rows, "studies": flatten(rows), "db": db, "keys": keys,
                   "client": client, "url": url}


def get(env, path, key="all", **params):
    headers = {"X-API-Key": env["keys"][key]} if key else {}
    return env["client"].get(path, params=params, headers=headers)


SINGLE = [
    {"modality": ["MR"]},
    {"modality": ["MR", "CT"]},
    {"sex": ["F"]},
    {"age_min": 40, "age_max": 60},
    {"age_min": 70},
    {"body_region": ["breast"]},
    {"label": ["birads_2"]},
    {"label": ["birads"]},
    {"label": ["birads_2", "birads_3"]},
    {"label": ["pneumonia"]},
    {"label_certainty": ["benign:uncertain"]},
    {"date_from": "2018-01-01", "date_to": "2020-12-31"},
    {"manufacturer": ["Siemens"]},
    {"country": ["br"]},
    {"partner": ["co_clinica_sur"]},
    {"q": "nodulo"},
    {"q": "NÓDULO"},
    {"q": "fratura"},
    {"q": "calcificacion"},
    {"q": "nódulo pulmonar"},
    {"q": "head_neck"},
]
COMBINED = [
    {"modality": ["MR", "CT"], "sex": ["F"], "age_min": 40, "age_max": 60, "q": "nodulo"},
    {"modality": ["MR", "CT"], "sex": ["F"], "age_min": 40, "age_max": 80},
    {"modality": ["MG", "US"], "label": ["birads_2"], "sex": ["F"]},
    {"country": ["co"], "q": "fractura", "sort": "age_asc"},
    {"label": ["nodule", "abnormal"]},
    {"label": ["fracture", "pneumonia"], "country": ["br"]},
    {"label": ["abnormal"], "modality": ["CT", "CR", "DX"], "sort": "age_desc"},
    {"label": ["birads"], "label_certainty": ["benign:positive", "benign:uncertain"], "date_from": "2016-06-01"},
    {"partner": ["br_hospital_sp", "co_hospital_norte"], "age_max": 50, "sort": "date_asc"},
    {"q": "nodule", "country": ["co", "br"], "manufacturer": ["GE Healthcare", "Philips"]},
    {"body_region": ["chest", "abdomen"], "sex": ["M"], "q": "opacidad"},
]


@pytest.mark.parametrize("filters", SINGLE + COMBINED, ids=lambda f: json.dumps(f, ensure_ascii=False))
def test_search_matches_independent_results_and_facets(env, filters):
    want = expected_order(env["studies"], filters)
    if filters in SINGLE:
        assert want, "the demo data should have hits for every single filter"
    r = get(env, "/api/studies", **filters, page_size=50)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == len(want)
    assert [x["study_uid"] for x in body["results"]] == want
    assert body["facets"] == expected_facets(env["studies"], filters)


def test_keywords_ignore_accents_and_case_in_every_language(env):
    a = get(env, "/api/studies", q="nodulo", page_size=50).json()
    b = get(env, "/api/studies", q="NÓDULO", page_size=50).json()
    assert a["total"] == b["total"] > 0
    langs = {x["report_language"] for x in a["results"]}
    assert {"es", "pt"} <= langs  # "nódulo" in both Spanish and Portuguese reports
    pt = get(env, "/api/studies", q="calcificacoes").json()  # a concept: found in every language
    assert pt["total"] > 0 and all("calcification" in x["labels"] for x in pt["results"])
    assert {"es", "pt"} <= {x["report_language"] for x in pt["results"]}


def test_paging_and_sorting(env):
    want = expected_order(env["studies"], {"sort": "age_asc"})
    pages = [get(env, "/api/studies", sort="age_asc", page=p, page_size=7).json() for p in (1, 2, 3)]
    assert [x["study_uid"] for p in pages for x in p["results"]] == want[:21]
    assert all(p["total"] == len(want) for p in pages)
    beyond = get(env, "/api/studies", page=1000, page_size=10).json()
    assert beyond["results"] == [] and beyond["total"] == len(want)
    assert get(env, "/api/studies", sort="bogus").status_code == 400
    assert get(env, "/api/studies", page_size=0).status_code == 422


def test_result_carries_token_uid_tags_report_labels_and_thumbnail(env):
    body = get(env, "/api/studies", label="birads_2", page_size=1).json()
    item = body["results"][0]
    study = next(s for s in env["studies"] if s["study_uid"] == item["study_uid"])
    assert item["patient_token"] == study["patient_token"] and re.fullmatch(r"[0-9a-f]{32}", item["patient_token"])
    assert item["age"] == study["age_at_study"] and item["sex"] == study["sex"]
    assert item["country"] == study["country"] and "birads_2" in item["labels"]
    assert "BI-RADS 2" in item["report_text"] and item["report_excerpt"]
    assert item["tags"]["Modality"] == study["modality"]
    assert item["tags"]["PatientAge"] == f"{study['age_at_study']:03d}Y"
    assert item["tags"]["Rows"] == 512
    thumb = env["client"].get(item["thumbnail_url"], headers={"X-API-Key": env["keys"]["all"]})
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/png"
    assert thumb.content[:8] == b"\x89PNG\r\n\x1a\n"
    detail = get(env, f"/api/studies/{item['study_uid']}").json()
    assert detail["series"] and detail["series"][0]["thumbnail_url"] == item["thumbnail_url"]


def test_patient_timeline_spans_partners_and_regions(env):
    token = demo_token(0)
    want = sorted((s["study_date_shifted"].isoformat(), s["study_uid"])
                  for s in env["studies"] if s["patient_token"] == token)
    body = get(env, f"/api/patients/{token}").json()
    assert [(s["study_date"], s["study_uid"]) for s in body["studies"]] == want
    assert body["regions"] == ["br", "co"]
    assert body["partners"] == ["br_hospital_sp", "co_clinica_sur", "co_hospital_norte"]
    assert body["n_studies"] == len(want)
    assert get(env, "/api/patients/" + "0" * 32).status_code == 404
    assert get(env, "/api/patients/not-a-token").status_code == 422


def test_customer_sees_only_entitled_regions(env):
    co = get(env, "/api/studies", key="co", page_size=50).json()
    assert co["regions"] == ["co"]
    assert co["total"] == len([s for s in env["studies"] if s["region"] == "co"])
    assert co["facets"]["country"] == {"co": co["total"]}
    assert {x["region"] for x in co["results"]} == {"co"}
    token = demo_token(0)
    timeline = get(env, f"/api/patients/{token}", key="co").json()
    assert timeline["regions"] == ["co"] and all(s["region"] == "co" for s in timeline["studies"])
    br_only = next(s for s in env["studies"] if s["region"] == "br"
                   and not any(o["patient_token"] == s["patient_token"] and o["region"] == "co"
                               for o in env["studies"]))
    assert get(env, f"/api/patients/{br_only['patient_token']}", key="co").status_code == 404
    br_study = get(env, "/api/studies", country="br", page_size=1).json()["results"][0]
    assert get(env, br_study["thumbnail_url"], key="co").status_code == 404
    assert get(env, f"/api/studies/{br_study['study_uid']}", key="co").status_code == 404
    # Asking for another region's rows by filter gives nothing either.
    assert get(env, "/api/studies", key="co", country="br").json()["total"] == 0
    me = get(env, "/api/me", key="co").json()
    assert me == {"customer": "Andes Vision", "plan": "standard", "regions": ["co"], "max_page_size": 50}


@pytest.mark.parametrize("path", ["/api/studies", f"/api/patients/{demo_token(0)}",
                                  "/api/thumbnails/co/x", "/api/studies/x", "/api/me"])
def test_requests_without_a_valid_key_get_401(env, path):
    assert env["client"].get(path).status_code == 401
    r = env["client"].get(path, headers={"X-API-Key": "sta_wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "ApiKey"
    assert env["client"].get(path, headers={"X-API-Key": env["keys"]["revoked"]}).status_code == 401


def test_plan_limits_page_size(env):
    assert get(env, "/api/studies", key="all", page_size=60).status_code == 400
    assert get(env, "/api/studies", key="pro", page_size=60).status_code == 200


def test_every_search_is_audited(env):
    before = env["db"].audit_entries(limit=1)[0]["id"]
    r = get(env, "/api/studies", key="co", modality=["MR", "CT"], q="nódulo").json()
    env["client"].get("/api/studies", headers={"X-API-Key": "sta_nope"})
    entries = [e for e in env["db"].audit_entries(limit=20) if e["id"] > before]
    ok = next(e for e in entries if e["status"] == 200)
    assert ok["customer"] == "Andes Vision" and ok["endpoint"] == "/api/studies"
    assert ok["filters"]["modality"] == ["MR", "CT"] and ok["filters"]["q"] == "nódulo"
    assert ok["result_count"] == r["total"] and ok["regions"] == ["co"]
    assert ok["ts"].endswith("+00:00") and ok["key_prefix"] == env["keys"]["co"][:12]
    refused = next(e for e in entries if e["status"] == 401)
    assert refused["customer"] is None and refused["key_prefix"] == "sta_nope"


def test_cli_prints_the_audit_log(env, capsys, monkeypatch):
    monkeypatch.setenv("STA_DATA_ROOT", str(env["root"]))
    get(env, "/api/studies", key="co", sex="F")
    assert sta_main(["apikey", "audit", "--customer", "Andes Vision", "--limit", "1"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["customer"] == "Andes Vision" and entry["filters"]["sex"] == ["F"]


def test_cli_search_prints_what_the_api_returns(env, capsys, monkeypatch):
    monkeypatch.setenv("STA_DATA_ROOT", str(env["root"]))
    args = ["search", "--modality", "MR", "--modality", "CT", "--sex", "F", "--age-min", "40",
            "--age-max", "80", "--json"]
    assert sta_main(args) == 0
    cli = json.loads(capsys.readouterr().out)
    api = get(env, "/api/studies", modality=["MR", "CT"], sex="F", age_min=40, age_max=80).json()
    assert cli == api
    assert sta_main(["search", "--q", "nodulo"]) == 0
    assert re.search(r"Mostrando 1 a 10 de \d+ resultados", capsys.readouterr().out)


def test_cli_lists_patients_linked_across_partners(env, capsys, monkeypatch):
    monkeypatch.setenv("STA_DATA_ROOT", str(env["root"]))
    assert sta_main(["search", "--linked", "--page-size", "50", "--json"]) == 0
    linked = json.loads(capsys.readouterr().out)
    partners_of: dict[str, set] = {}
    for s in env["studies"]:
        partners_of.setdefault(s["patient_token"], set()).add(s["partner_id"])
    assert {p["patient_token"] for p in linked} == {t for t, ps in partners_of.items() if len(ps) > 1}
    assert demo_token(0) in {p["patient_token"] for p in linked if p["regions"] == ["br", "co"]}


def test_cli_apikey_create_gives_a_working_key(env, capsys, monkeypatch):
    monkeypatch.setenv("STA_DATA_ROOT", str(env["root"]))
    assert sta_main(["apikey", "create", "--customer", "Nuevo Cliente", "--plan", "pro",
                     "--regions", "br"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("sta_")
    me = env["client"].get("/api/me", headers={"X-API-Key": key}).json()
    assert me["plan"] == "pro" and me["regions"] == ["br"]


def test_openapi_documents_the_search(env):
    spec = env["client"].get("/openapi.json").json()
    params = {p["name"] for p in spec["paths"]["/api/studies"]["get"]["parameters"]}
    assert {"q", "modality", "body_region", "label", "sex", "age_min", "age_max", "manufacturer",
            "country", "partner", "sort", "page", "page_size"} <= params
    assert "ApiKeyHeader" in json.dumps(spec["components"]["securitySchemes"]) or spec["components"][
        "securitySchemes"]
    assert "/api/patients/{token}" in spec["paths"]


def test_service_picks_up_a_new_store_without_restart(tmp_path):
    rows = write_demo_partners(tmp_path)
    consolidate_region("co", tmp_path)
    db = ServiceDB(tmp_path / "service.sqlite")
    key = db.create_key("Acme", "standard")[0]
    stores = StoreSet.discover(tmp_path)
    with serve_in_thread(create_app(stores, db)) as url:
        h = {"X-API-Key": key}
        before = httpx.get(f"{url}/api/studies", headers=h).json()["total"]
        smaller = {t: v[:3] if t == "studies" else v for t, v in rows["co_clinica_sur"].items()}
        write_partner(tmp_path, "co", "co_clinica_sur", smaller)
        consolidate_region("co", tmp_path)
        stores.wait_reloaded()
        after = httpx.get(f"{url}/api/studies", headers=h).json()["total"]
    assert before == 48 and after == 24 + 3


def test_sta_serve_starts_the_service_and_the_page(env, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "sta.cli", "serve", "--port", str(port), "--data-root", str(env["root"]),
         "--db", str(env["root"] / "service" / "service.sqlite")],
        cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if httpx.get(url + "/healthz", timeout=2).json()["regions"] == ["br", "co"]:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.2)
        page = httpx.get(url + "/")
        assert page.status_code == 200 and "Búsqueda por palabras clave" in page.text
        assert httpx.get(url + "/static/app.js").status_code == 200
        r = httpx.get(url + "/api/studies", params={"modality": "MR"}, headers={"X-API-Key": env["keys"]["all"]})
        assert r.json()["total"] == len(expected_order(env["studies"], {"modality": ["MR"]}))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_synthetic_store_is_served_like_a_real_one(tmp_path):
    from sta.service.search import StudyFilters, patient_timeline, search_studies
    from synth.store import generate_store

    path = generate_store(tmp_path / "syn.duckdb", 3000, seed=7)
    again = generate_store(tmp_path / "syn2.duckdb", 3000, seed=7)
    stores = StoreSet.from_paths([path])
    assert stores.regions == ["co"]
    out = search_studies(stores, StudyFilters(page_size=5))
    assert out["total"] == 3000 and len(out["results"]) == 5
    assert sum(out["facets"]["modality"].values()) == 3000
    assert sum(out["facets"]["sex"].values()) == 3000
    mg = search_studies(stores, StudyFilters(modality=["MG"], label=["birads"]))
    assert mg["total"] == out["facets"]["modality"]["MG"]  # every mammogram has a BI-RADS label
    kw = search_studies(stores, StudyFilters(q="nódulo"))
    assert 0 < kw["total"] < 3000
    assert all("nodule" in r["labels"] for r in kw["results"])  # a concept keyword: its labels
    token = out["results"][0]["patient_token"]
    assert patient_timeline(stores, token)["n_studies"] >= 1
    same = search_studies(StoreSet.from_paths([again]), StudyFilters(page_size=5))
    assert same["results"] == out["results"]  # same seed, same store
