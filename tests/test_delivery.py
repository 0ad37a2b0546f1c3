"""Customers get their data: sign-up → search → cart → export through the
``export`` DAG (Airflow ``dag.test()``) → email received by a real SMTP server
(aiosmtpd on loopback) → single-use, expiring, owner-only download; Pro
requests provisioned through the ``provision_workspace`` DAG; SQL escapes
refused and analytics answered; metering equal to what was delivered; every
refused request audited.

Expected values are computed here from the rows the partners published, not
with the code under test.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sqlite3
import time
import zipfile
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from delivery.links import LinkSigner, derive_secret
from sta.cli import main as sta_main
from sta.service import create_app
from sta.service.db import ServiceDB
from sta.service.search import StoreSet
from sta.service.settings import DeliverySettings
from synth.store_demo import DEMO_PARTNERS, build_demo_rows, write_partner
from tests.support.serve import serve_in_thread
from tests.support.smtp import smtp_server
from transforms.consolidate import consolidate_region

PASSWORD = "una-clave-larga-123"
MONTH = datetime.now(timezone.utc).strftime("%Y-%m")


def publish_with_files(root: Path) -> dict:
    """The demo partners, with a real file behind every published instance
    (its SHA-256 recorded as the pipeline does)."""
    rows = build_demo_rows()
    for region, _country, pid, _langs in DEMO_PARTNERS:
        proot = root / region / "partners" / pid
        for i, inst in enumerate(rows[pid]["instances"]):
            data = b"DICM" + hashlib.sha256(f"{pid}{i}".encode()).digest() * (64 + i % 7)
            path = proot / inst["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            inst["sha256"] = hashlib.sha256(data).hexdigest()
            inst["size_bytes"] = len(data)
        # Characterization of CT/MR studies (as labelling/characterize.py writes it).
        for k, st in enumerate(rows[pid]["studies"]):
            if st["modality"] in ("CT", "MR"):
                rows[pid].setdefault("characteristics", []).extend([
                    {"study_uid": st["study_uid"], "partner_id": pid, "field": "slice_thickness_mm",
                     "value": str([0.625, 1.25, 2.5, 5.0][k % 4]), "value_num": [0.625, 1.25, 2.5, 5.0][k % 4],
                     "source": "dicom", "confidence": 1.0, "evidence": "SliceThickness"},
                    {"study_uid": st["study_uid"], "partner_id": pid, "field": "contrast",
                     "value": "with" if k % 3 == 0 else "without", "value_num": None, "source": "description",
                     "confidence": 0.8, "evidence": "StudyDescription"}])
        write_partner(root, region, pid, rows[pid])
    consolidate_region("co", root)
    consolidate_region("br", root)
    return rows


class Recorder:
    """The run trigger: records the runs the service asks Airflow for."""

    def __init__(self) -> None:
        self.runs: list[tuple[str, dict]] = []

    def __call__(self, dag_id: str, conf: dict) -> str:
        self.runs.append((dag_id, conf))
        return f"manual__{len(self.runs)}"


@pytest.fixture(scope="module")
def env(tmp_path_factory, airflow_db):
    root = tmp_path_factory.mktemp("delivery")
    rows = publish_with_files(root)
    db = ServiceDB(root / "service" / "service.sqlite")
    trigger = Recorder()
    saved = {k: os.environ.get(k) for k in ("STA_DATA_ROOT", "AIRFLOW_CONN_SMTP_DEFAULT", "STA_PUBLIC_URL")}
    with smtp_server() as mailbox:
        settings = DeliverySettings(data_root=root, signer=LinkSigner(derive_secret(os.environ["STA_SECRET_KEY"])),
                                    trigger=trigger)
        with serve_in_thread(create_app(StoreSet.discover(root), db, settings)) as url:
            settings.public_url = url
            os.environ.update({"STA_DATA_ROOT": str(root), "AIRFLOW_CONN_SMTP_DEFAULT": mailbox.airflow_conn_uri(),
                               "STA_PUBLIC_URL": url})
            try:
                with httpx.Client(base_url=url, timeout=60) as client:
                    yield {"root": root, "rows": rows, "db": db, "client": client, "url": url,
                           "mailbox": mailbox, "trigger": trigger, "settings": settings}
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v


def signup(env, name: str, plan: str = "standard", regions=("co",)) -> dict:
    r = env["client"].post("/api/signup", json={"name": name, "email": email_of(name),
                                                "password": PASSWORD, "plan": plan, "regions": list(regions)})
    assert r.status_code == 201, r.text
    return r.json()


def email_of(name: str) -> str:
    import unicodedata

    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return f"{ascii_name.lower().replace(' ', '.')}@example.org"


def h(key: str) -> dict:
    return {"X-API-Key": key}


def get_dag(dag_id: str):
    """The DAG parsed from its own file in dags/ (another area's broken DAG file must not stop this test)."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent.parent / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def run_dag(dag_id: str, conf: dict):
    dr = get_dag(dag_id).test(run_conf=conf)
    assert dr.state == "success", f"{dag_id} run ended {dr.state}"
    return dr


def studies_of(env, region: str) -> list[dict]:
    return [s for tables in env["rows"].values() for s in tables["studies"] if s["region"] == region]


# ------------------------------------------------------------------ export flow
def test_signup_search_cart_export_email_and_download(env):
    client, box = env["client"], env["mailbox"]
    acct = signup(env, "Visión Andina")
    key = acct["api_key"]
    assert acct["plan"] == "standard" and acct["regions"] == ["co"] and key.startswith("sta_")
    # Immediate access: search the customer's region.
    found = client.get("/api/studies", params={"modality": "MR", "page_size": 50}, headers=h(key)).json()
    assert found["regions"] == ["co"] and found["total"] > 0
    cart = [r["study_uid"] for r in found["results"][:4]]
    br_study = studies_of(env, "br")[0]["study_uid"]  # not in the customer's regions
    r = client.post("/api/exports", json={"study_uids": cart + [br_study], "format": "dicom"}, headers=h(key))
    assert r.status_code == 202, r.text
    order_id = r.json()["id"]
    status = client.get(f"/api/exports/{order_id}", headers=h(key)).json()
    assert status["status"] == "queued" and status["progress"] == 0 and status["download_url"] is None
    assert env["trigger"].runs[-1] == ("export", {"order_id": order_id})

    before_mail = len(box.messages)
    run_dag("export", {"order_id": order_id})

    status = client.get(f"/api/exports/{order_id}", headers=h(key)).json()
    assert status["status"] == "ready" and status["progress"] == 1 and status["n_studies"] == len(cart)
    (msg,) = box.wait_for(before_mail + 1)[before_mail:]
    assert msg["X-Envelope-To"] == "vision.andina@example.org"
    assert order_id in msg["Subject"]
    html = box.html_of(msg)
    page_link = re.search(r'href="([^"]+)"', html).group(1)
    assert page_link.startswith(env["url"] + f"/descarga?pedido={order_id}&amp;token=")
    link = re.search(r'(http://[^"&\s<]+/api/exports/[^"&\s<]+/download\?token=[^"&\s<]+)', html).group(1)
    assert link.startswith(env["url"] + f"/api/exports/{order_id}/download?token=")
    assert page_link.replace("&amp;", "&").split("token=")[1] == link.split("token=")[1]

    # The link works once, for its owner.
    got = httpx.get(link, headers=h(key), timeout=60)
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(got.content))
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["exported"] == len(cart) and manifest["not_available"] == [br_study]
    assert manifest["regions"] == ["co"]
    for f in manifest["files"]:
        assert hashlib.sha256(zf.read(f["name"])).hexdigest() == f["sha256"]
    published = {(i["study_uid"], i["sha256"]) for t in env["rows"].values() for i in t["instances"]
                 if i["study_uid"] in cart}
    dicoms = [f for f in manifest["files"] if f["name"].startswith("dicom/")]
    assert {(f["name"].split("/")[1], f["sha256"]) for f in dicoms} == published
    lines = [json.loads(x) for x in zf.read("studies.jsonl").decode().splitlines()]
    assert [x["study_uid"] for x in lines] == cart
    assert all(x["region"] == "co" and x["dicom_tags"]["Modality"] == "MR" for x in lines)
    assert httpx.get(link, headers=h(key), timeout=30).status_code == 410  # used

    # Another customer can't use a link, nor see the order.
    other = signup(env, "Otra Empresa", regions=("co", "br"))["api_key"]
    fresh = client.get(f"/api/exports/{order_id}", headers=h(key)).json()["download_url"]
    assert client.get(fresh, headers=h(other)).status_code in (403, 404)
    assert client.get(f"/api/exports/{order_id}", headers=h(other)).status_code == 404
    assert client.get(fresh).status_code == 401
    assert client.get(fresh, headers=h(key)).status_code == 200  # the owner's fresh link still works

    # An expired link is refused.
    signer = env["settings"].signer
    token = signer.sign(order_id, env["db"].customer("Visión Andina").id)
    saved, signer.max_age_s = signer.max_age_s, 0
    try:
        time.sleep(1.1)  # itsdangerous counts whole seconds
        r = client.get(f"/api/exports/{order_id}/download", params={"token": token}, headers=h(key))
    finally:
        signer.max_age_s = saved
    assert r.status_code == 410 and "expired" in r.json()["detail"]
    forged = fresh.rsplit(".", 1)[0] + ".AAAA"
    assert client.get(forged, headers=h(key)).status_code == 403

    # Metered: every exported study against its partner.
    exported = Counter(s["partner_id"] for t in env["rows"].values() for s in t["studies"] if s["study_uid"] in cart)
    rows = env["db"].fetch("SELECT partner_id, sum(studies) AS n FROM deliveries WHERE kind = 'export' AND ref = ? "
                           "GROUP BY partner_id", [order_id])
    assert {r["partner_id"]: r["n"] for r in rows} == dict(exported)


def test_export_json_through_the_cli_is_the_same_builder(env, tmp_path, capsys):
    db = env["db"]
    db.create_key("Laboratorio CLI", "standard", ["co", "br"])
    uids = [s["study_uid"] for s in studies_of(env, "br")[:5]] + [studies_of(env, "co")[0]["study_uid"]]
    (tmp_path / "uids.txt").write_text("\n".join(uids))
    args = ["export", "--customer", "Laboratorio CLI", "--studies", str(tmp_path / "uids.txt"), "--format", "json",
            "--out", str(tmp_path / "out"), "--data-root", str(env["root"]), "--quiet", "--parquet"]
    assert sta_main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["exported"] == 6 and summary["not_available"] == 0
    out = tmp_path / "out"
    lines = [json.loads(x) for x in (out / "studies.jsonl").read_text().splitlines()]
    assert [x["study_uid"] for x in lines] == uids
    by_uid = {x["study_uid"]: x for x in lines}
    chars = chars_of(env)
    for uid, rec in by_uid.items():
        if uid in chars:
            assert {c["field"] for c in rec["characteristics"]} == set(chars[uid])
    for t in env["rows"].values():
        for lab in t["labels"]:
            if lab["study_uid"] in by_uid:
                assert {"concept": lab["concept"], "certainty": lab["certainty"]}.items() <= next(
                    x for x in by_uid[lab["study_uid"]]["labels"] if x["concept"] == lab["concept"]
                    and x["certainty"] == lab["certainty"]).items()
        for rep in t["reports"]:
            if rep["study_uid"] in by_uid:
                assert by_uid[rep["study_uid"]]["reports"][0]["text"] == rep["text_scrubbed"]
    sums = dict(line.split("  ", 1)[::-1] for line in (out / "SHA256SUMS").read_text().splitlines())
    for name, digest in sums.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    import pyarrow.parquet as pq

    assert pq.read_table(out / "tables" / "studies.parquet").num_rows == 6


def test_export_only_of_the_customers_regions(env, tmp_path, capsys):
    env["db"].create_key("Solo Brasil", "standard", ["br"])
    co = [s["study_uid"] for s in studies_of(env, "co")[:3]]
    (tmp_path / "u.json").write_text(json.dumps(co))
    assert sta_main(["export", "--customer", "Solo Brasil", "--studies", str(tmp_path / "u.json"), "--format",
                     "dicom", "--out", str(tmp_path / "o"), "--data-root", str(env["root"]), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["exported"] == 0 and summary["not_available"] == 3
    assert not (tmp_path / "o" / "dicom").exists()


def test_export_requests_are_validated(env):
    key = signup(env, "Validaciones SA")["api_key"]
    c = env["client"]
    assert c.post("/api/exports", json={"study_uids": [], "format": "json"}, headers=h(key)).status_code == 422
    assert c.post("/api/exports", json={"study_uids": ["../etc"], "format": "json"}, headers=h(key)).status_code == 422
    assert c.post("/api/exports", json={"study_uids": ["1.2"], "format": "xml"}, headers=h(key)).status_code == 422
    assert c.post("/api/exports", json={"study_uids": ["1.2"], "format": "json"}).status_code == 401
    assert c.get("/api/exports/exp_nothing", headers=h(key)).status_code == 404


def chars_of(env) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for t in env["rows"].values():
        for c in t.get("characteristics", []):
            out.setdefault(c["study_uid"], {})[c["field"]] = c["value_num"] if c["value_num"] is not None else c["value"]
    return out


def test_characterization_and_slice_thickness_filter_and_facet(env):
    key = signup(env, "Caracteriza SA", regions=("co", "br"))["api_key"]
    c, chars = env["client"], chars_of(env)
    r = c.get("/api/studies", params={"thickness_min": 1, "thickness_max": 3, "page_size": 50}, headers=h(key)).json()
    want = {u for u, f in chars.items() if 1 <= f["slice_thickness_mm"] <= 3}
    assert want and {x["study_uid"] for x in r["results"]} == want and r["total"] == len(want)
    assert r["facets"]["slice_thickness"] == dict(Counter(
        f"{round(f['slice_thickness_mm'] * 2) / 2:g}" for f in chars.values()))
    r = c.get("/api/studies", params={"characteristic": "contrast:with", "modality": "CT", "page_size": 50},
              headers=h(key)).json()
    want = {u for u, f in chars.items() if f["contrast"] == "with"
            and next(s for s in studies_of(env, "co") + studies_of(env, "br") if s["study_uid"] == u)["modality"] == "CT"}
    assert {x["study_uid"] for x in r["results"]} == want
    assert r["facets"]["characteristic"]["contrast:with"] == sum(
        1 for u, f in chars.items() if f["contrast"] == "with"
        and next(s for s in studies_of(env, "co") + studies_of(env, "br") if s["study_uid"] == u)["modality"] == "CT")
    item = r["results"][0]
    assert "contrast:with" in item["characteristics"] and item["slice_thickness"] is not None


# ------------------------------------------------------------------ accounts
def test_sessions_log_in_and_expire(env):
    signup(env, "Sesiones SA")
    c = env["client"]
    assert c.post("/api/session", json={"email": "sesiones.sa@example.org", "password": "wrong-password"}).status_code == 401
    s = c.post("/api/session", json={"email": "sesiones.sa@example.org", "password": PASSWORD}).json()
    assert s["token"].startswith("sess_")
    assert c.get("/api/me", headers=h(s["token"])).json()["customer"] == "Sesiones SA"
    stored = env["db"].fetch("SELECT token_hash FROM sessions")
    assert all(s["token"] not in r["token_hash"] for r in stored)  # hashed
    with env["db"].tx() as con:
        con.execute("UPDATE sessions SET expires_at = '2000-01-01T00:00:00+00:00'")
    assert c.get("/api/me", headers=h(s["token"])).status_code == 401


def test_keys_and_passwords_are_stored_hashed(env):
    acct = signup(env, "Hash Check")
    con = sqlite3.connect(env["db"].path)
    dump = "\n".join(con.iterdump())
    assert acct["api_key"] not in dump and PASSWORD not in dump


def test_enterprise_contact_is_recorded(env):
    acct = signup(env, "Gran Hospital", plan="enterprise")
    assert acct["plan"] == "standard" and acct["request"]["status"] == "recorded"
    reqs = env["db"].plan_requests(status="recorded")
    assert any(r["customer"] == "Gran Hospital" and r["plan"] == "enterprise" for r in reqs)


# ------------------------------------------------------------------ Pro SQL
@pytest.fixture(scope="module")
def pro(env):
    acct = signup(env, "Pampa Pro", plan="pro", regions=("co",))
    key, rid = acct["api_key"], acct["request"]["id"]
    assert acct["request"]["status"] == "requested"
    c = env["client"]
    # Before approval: Standard, no SQL.
    assert c.post("/api/sql", json={"sql": "SELECT 1"}, headers=h(key)).status_code == 403
    # The run refuses a request nobody approved.
    assert get_dag("provision_workspace").test(run_conf={"request_id": rid}).state == "failed"
    assert sta_main(["account", "approve", str(rid), "--by", "operadora", "--data-root", str(env["root"]),
                     "--db", str(env["db"].path)]) == 0
    run_dag("provision_workspace", {"request_id": rid})
    assert env["db"].plan_request(rid)["status"] == "provisioned"
    assert c.get("/api/me", headers=h(key)).json()["plan"] == "pro"
    return {"key": key, "rid": rid}


def test_sql_answers_analytics_from_the_entitled_regions(env, pro):
    r = env["client"].post("/api/sql", headers=h(pro["key"]), json={
        "sql": "SELECT modality, count(*) AS n FROM studies GROUP BY modality ORDER BY modality"})
    assert r.status_code == 200, r.text
    want = Counter(s["modality"] for s in studies_of(env, "co"))
    assert {m: n for m, n in r.json()["rows"]} == dict(want)
    # Scratch tables work within a request.
    r = env["client"].post("/api/sql", headers=h(pro["key"]), json={
        "sql": "CREATE TABLE scratch.f AS SELECT * FROM studies WHERE sex = 'F'; SELECT count(*) FROM scratch.f"})
    assert r.status_code == 200 and r.json()["rows"] == [[sum(s["sex"] == "F" for s in studies_of(env, "co"))]]
    # br rows are not in a co customer's workspace.
    r = env["client"].post("/api/sql", headers=h(pro["key"]), json={"sql": "SELECT DISTINCT region FROM studies"})
    assert r.json()["rows"] == [["co"]]


def escapes(env) -> list[tuple[str, str]]:
    root = env["root"]
    other_ws = next((root / "customers").glob("c*/workspace.duckdb"), root / "x")
    partner_file = root / "br" / "partners" / "br_hospital_sp" / "parquet" / "studies.parquet"
    return [
        ("read_csv", "SELECT * FROM read_csv('/etc/passwd')"),
        ("replacement scan", "SELECT * FROM '/etc/passwd'"),
        ("partner parquet", f"SELECT * FROM read_parquet('{partner_file}')"),
        ("another workspace", f"ATTACH '{other_ws}' AS other"),
        ("attach", "ATTACH ':memory:' AS x"),
        ("copy to", "COPY studies TO '/tmp/stolen.csv'"),
        ("copy select", "COPY (SELECT * FROM studies) TO '/tmp/stolen.parquet' (FORMAT parquet)"),
        ("export", "EXPORT DATABASE '/tmp/stolen'"),
        ("install", "INSTALL httpfs"),
        ("load", "LOAD httpfs"),
        ("set memory", "SET memory_limit = '64GB'"),
        ("set threads", "SET threads = 64"),
        ("pragma", "PRAGMA enable_external_access"),
        ("reset lock", "RESET lock_configuration"),
        ("create outside scratch", "CREATE TABLE mine AS SELECT * FROM studies"),
        ("create in workspace", "CREATE TABLE ws.main.mine AS SELECT 1"),
        ("glob", "SELECT * FROM glob('/etc/*')"),
        ("read_text", "SELECT * FROM read_text('/etc/hostname')"),
        ("detach", "DETACH ws"),
        ("use", "USE scratch"),
        ("checkpoint", "CHECKPOINT"),
        ("httpfs url", "SELECT * FROM read_parquet('http://127.0.0.1:1/x.parquet')"),
        ("secret", "CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')"),
        ("query()", "SELECT * FROM query('ATTACH ''/tmp/x'' AS y')"),
        ("vacuum", "VACUUM"),
        ("huge strings", "SELECT repeat('a', 1000000) FROM range(3000)"),
    ]


def test_sql_escapes_are_refused(env, pro):
    written = set(Path("/tmp").glob("stolen*"))
    for name, sql in escapes(env):
        r = env["client"].post("/api/sql", json={"sql": sql}, headers=h(pro["key"]))
        assert r.status_code in (400, 403), f"{name}: {r.status_code} {r.text}"
        assert r.json()["detail"], name
    assert set(Path("/tmp").glob("stolen*")) == written


def test_sql_stops_long_queries_and_limits_results(env, pro):
    from delivery.workspaces import Limits

    saved = env["settings"].sql_limits
    env["settings"].sql_limits = Limits(seconds=0.5, max_rows=100)
    try:
        r = env["client"].post("/api/sql", headers=h(pro["key"]),
                               json={"sql": "SELECT count(*) FROM range(100000000000) a, range(10) b"})
        assert r.status_code == 400 and "limit" in r.json()["detail"]
        r = env["client"].post("/api/sql", headers=h(pro["key"]), json={"sql": "SELECT * FROM range(1000)"})
        assert r.status_code == 200 and r.json()["row_count"] == 100 and r.json()["truncated"]
        assert env["client"].post("/api/sql", headers=h(pro["key"]), json={"sql": "x" * 30_000}).status_code == 422
    finally:
        env["settings"].sql_limits = saved


def test_sta_sql_prints_rows_and_refuses_escapes(env, pro, capsys):
    base = ["--data-root", str(env["root"]), "--db", str(env["db"].path)]
    assert sta_main(["sql", "--customer", "Pampa Pro", "SELECT count(*) AS n FROM studies", *base]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": len(studies_of(env, "co"))}]
    assert sta_main(["sql", "--customer", "Pampa Pro", "SELECT * FROM read_csv('/etc/passwd')", *base]) != 0
    err = capsys.readouterr().err
    assert "sta sql:" in err and ("disabled" in err or "refused" in err)
    assert sta_main(["sql", "--customer", "Pampa Pro", "ATTACH ':memory:' AS x", *base]) == 2
    assert "refused: ATTACH" in capsys.readouterr().err


def test_every_sql_query_is_audited(env, pro):
    db = env["db"]
    before = db.fetch_one("SELECT max(id) AS m FROM audit")["m"]
    env["client"].post("/api/sql", json={"sql": "SELECT 42"}, headers=h(pro["key"]))
    env["client"].post("/api/sql", json={"sql": "INSTALL httpfs"}, headers=h(pro["key"]))
    got = db.fetch("SELECT endpoint, status, filters FROM audit WHERE id > ? ORDER BY id", [before])
    assert [(g["endpoint"], g["status"]) for g in got] == [("/api/sql", 200), ("/api/sql", 403)]
    assert json.loads(got[1]["filters"])["sql"] == "INSTALL httpfs"


# ------------------------------------------------------------------ metering and audit
def test_metering_totals_equal_what_was_delivered(env, pro, capsys):
    key = signup(env, "Medidor SA", regions=("co", "br"))["api_key"]
    c = env["client"]
    delivered: Counter = Counter()
    for params in ({"modality": "CT"}, {"sex": "F", "page": 2}, {"q": "nodulo", "page_size": 30}):
        body = c.get("/api/studies", params=params, headers=h(key)).json()
        delivered.update(r["partner_id"] for r in body["results"])
    thumbs = [r for r in c.get("/api/studies", params={"page_size": 3}, headers=h(key)).json()["results"]]
    delivered.update(r["partner_id"] for r in thumbs)
    for r in thumbs:
        assert c.get(r["thumbnail_url"], headers=h(key)).status_code == 200
        delivered[r["partner_id"]] += 1
    timeline = c.get(f"/api/patients/{thumbs[0]['patient_token']}", headers=h(key)).json()
    delivered.update(s["partner_id"] for s in timeline["studies"])
    assert sta_main(["usage", "--month", MONTH, "--json", "--db", str(env["db"].path)]) == 0
    usage = json.loads(capsys.readouterr().out)
    mine = next(x for x in usage["customers"] if x["customer"] == "Medidor SA")
    assert mine["partners"] == dict(delivered) and mine["studies"] == sum(delivered.values())
    # Per-partner totals are the sum over customers.
    for p in usage["partners"]:
        assert p["studies"] == sum(p["customers"].values())
    assert usage["studies_delivered"] == sum(p["studies"] for p in usage["partners"])
    # SQL results that return studies are metered too.
    before = env["db"].fetch_one("SELECT coalesce(sum(studies), 0) AS n FROM deliveries WHERE kind = 'sql'")["n"]
    env["client"].post("/api/sql", json={"sql": "SELECT study_uid FROM studies LIMIT 7"}, headers=h(pro["key"]))
    after = env["db"].fetch_one("SELECT coalesce(sum(studies), 0) AS n FROM deliveries WHERE kind = 'sql'")["n"]
    assert after - before == 7


@pytest.mark.parametrize("case", ["401", "403", "404", "422", "thumbnail"])
def test_refused_requests_and_thumbnails_are_audited(env, case):
    key = signup(env, f"Auditado {case}")["api_key"]
    db, c = env["db"], env["client"]
    before = db.fetch_one("SELECT max(id) AS m FROM audit")["m"]
    if case == "401":
        want = ("/api/studies", 401)
        c.get("/api/studies", headers=h("sta_bogus_key"))
    elif case == "403":
        want = ("/api/sql", 403)
        c.post("/api/sql", json={"sql": "SELECT 1"}, headers=h(key))
    elif case == "404":
        want = ("/api/patients/{token}", 404)
        c.get("/api/patients/" + "f" * 32, headers=h(key))
    elif case == "422":
        want = ("/api/patients/{token}", 422)
        c.get("/api/patients/NOT-A-TOKEN", headers=h(key))
    else:
        url = c.get("/api/studies", params={"page_size": 1}, headers=h(key)).json()["results"][0]["thumbnail_url"]
        before = db.fetch_one("SELECT max(id) AS m FROM audit")["m"]
        want = ("/api/thumbnails/{region}/{series_uid}", 200)
        c.get(url, headers=h(key))
    got = db.fetch("SELECT endpoint, status, customer, key_prefix FROM audit WHERE id > ?", [before])
    assert [(g["endpoint"], g["status"]) for g in got] == [want]
    assert got[0]["key_prefix"] is not None


def test_orders_become_airflow_runs_through_the_rest_api(env):
    """The service's trigger speaks Airflow's REST API (token, then a DAG run
    with the order in its conf): checked against Airflow's own API app."""
    from airflow.api_fastapi.app import create_app as airflow_app
    from airflow.models.dagrun import DagRun
    from fastapi.testclient import TestClient

    from sta.service.airflow_client import AirflowTrigger

    get_dag("export")  # parsed and serialized by the export test's run
    with TestClient(airflow_app(apps="all")) as tc:
        trigger = AirflowTrigger("http://testserver", "admin", "admin", client=tc)
        run_id = trigger("export", {"order_id": "exp_rest_check"})
    runs = [r for r in DagRun.find(dag_id="export") if r.run_id == run_id]
    assert len(runs) == 1 and runs[0].conf == {"order_id": "exp_rest_check"}
    assert runs[0].state == "queued"


def test_pro_account_made_by_an_operator_gets_its_workspace_at_first_query(env, capsys):
    env["db"].create_key("Operador Pro", "pro", ["br"])
    base = ["--data-root", str(env["root"]), "--db", str(env["db"].path)]
    assert sta_main(["sql", "--customer", "Operador Pro", "SELECT DISTINCT region FROM studies", *base]) == 0
    assert json.loads(capsys.readouterr().out) == [{"region": "br"}]
