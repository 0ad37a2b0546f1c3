"""End to end: generated partners -> their Airflow DAGs (dag.test) -> published Parquet.

Checked against the generator's ground truth, with the test's own matching:
no planted PHI value in any published byte, every pulled file accounted
for, outputs are valid DICOM whose pixels equal the input's when unchanged,
and a second run publishes no duplicates.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import pydicom
import pytest

from foundation.landing import landing_id
from foundation.partners import load_partners
from foundation.paths import data_root
from foundation.schema import TABLES
from transforms.parquet_store import read_table

pytestmark = pytest.mark.dag

TEXT_VRS = {"PN", "LO", "SH", "LT", "ST", "UT", "UC", "AE", "CS", "DA", "TM", "DT", "AS", "UR"}


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def phi_terms(values: list[str]) -> set[str]:
    """Whole values and name components, folded; tiny tokens are not evidence."""
    terms: set[str] = set()
    for v in values:
        terms.add(fold(v))
        if "^" in v:
            terms.update(fold(c) for c in re.split(r"[\^=]", v))
    generic = {"dr", "dra", "", "medico", "clinica", "hospital"}
    return {t for t in terms if t not in generic and len(t.replace(" ", "")) >= 4}


def find(terms: set[str], text: str) -> list[str]:
    return sorted(t for t in terms if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text))


@pytest.fixture(scope="module")
def ingested(airflow_db, session_dir):
    from synth.airflow_run import run_dag
    from synth import generate

    incoming = data_root() / "incoming"
    summary = generate(incoming, 5, 11)
    truth = json.loads(Path(summary["truth"]).read_text())
    runs = {p.id: run_dag(p.dag_id) for p in load_partners()}
    return truth, runs


def _ledgers(partner) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(partner.root().ledger.glob("*.json"), key=lambda p: p.stat().st_mtime)]


def _table(partner, name: str) -> list[dict]:
    return read_table(partner.root().parquet, name, TABLES[name]).to_pylist()


def test_partner_dags_succeed(ingested):
    _truth, runs = ingested
    for pid, run in runs.items():
        assert run.state == "success", (pid, [(t.task_id, t.state) for t in run.tasks])
        assert any(t.task_id == "deidentify" and t.map_index >= 0 for t in run.tasks)


def test_every_pulled_file_is_accounted_for(ingested):
    truth, _runs = ingested
    for partner in load_partners():
        ledger = _ledgers(partner)[-1]
        source_files = [k for k, v in truth["files"].items() if v["partner"] == partner.id]
        assert ledger["balanced"] is True
        assert ledger["pulled"] == len(source_files)
        assert ledger["published"] + ledger["quarantined"] + ledger["rejected"] == ledger["pulled"]
        # every planted fault is refused, with a reason file beside it in quarantine
        for fault in (f for f in truth["faults"] if f["partner"] == partner.id):
            rel = fault["path"].split("/", 1)[1]
            outcome = next(o for o in ledger["files"] if o["id"] == landing_id(rel))
            allowed = {"quarantined", "rejected"} | ({"published"} if "published_scrubbed" in fault["expected"] else set())
            assert outcome["status"] in allowed, fault
        reasons = list(partner.root().quarantine.rglob("*.reason.json"))
        assert len(reasons) == ledger["quarantined"]


def test_no_planted_phi_survives_in_published_dicom_or_parquet(ingested):
    truth, _runs = ingested
    for partner in load_partners():
        values = [v for f in truth["files"].values() if f["partner"] == partner.id for v in f.get("phi", [])]
        terms = phi_terms(values)
        long_terms = {t for t in terms if not t.replace(" ", "").isdigit() or len(t.replace(" ", "")) >= 8}
        root = partner.root()
        dicoms = list(root.dicom.rglob("*.dcm"))
        assert dicoms
        for path in dicoms:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            texts: list[str] = []

            def walk(d):
                for e in d:
                    if e.VR == "SQ":
                        for item in e.value or []:
                            walk(item)
                    elif e.VR in TEXT_VRS:
                        texts.append(str(e.value))

            walk(ds)
            walk(ds.file_meta)
            assert not find(terms, fold(" | ".join(texts))), path
            header = path.read_bytes()[: 64 * 1024]
            assert not find(long_terms, fold(header.decode("latin-1"))), path
            assert not find(long_terms, fold(header.decode("utf-8", "ignore"))), path
        for table in TABLES:
            rows = _table(partner, table)
            # partner_id names the partner on purpose (customers filter by it); every other value is checked
            text = fold(" | ".join(str(v) for r in rows for k, v in r.items() if isinstance(v, str) and k != "partner_id"))
            assert not find(terms, text), table
        for thumb in (root.path / "thumbnails").glob("*"):
            assert not find(long_terms, fold(thumb.read_bytes().decode("latin-1"))), thumb


def test_outputs_are_valid_dicom_with_unchanged_pixels(ingested):
    truth, _runs = ingested
    by_sha = {}
    for rel, f in truth["files"].items():
        if f["kind"] == "dicom" and f.get("sha256"):
            by_sha.setdefault(f["partner"], []).append(rel)
    for partner in load_partners():
        instances = _table(partner, "instances")
        assert instances
        unchanged = [i for i in instances if not i["pixels_modified"]]
        assert unchanged
        # pixel bytes of every unchanged output equal one input's pixel bytes
        inputs = {}
        for rel in by_sha.get(partner.id, []):
            src = data_root() / "incoming" / rel
            if not src.exists():
                continue
            try:
                ds = pydicom.dcmread(src)
            except Exception:
                continue
            if "PixelData" in ds:
                inputs[(ds.Rows, ds.Columns, len(ds.PixelData))] = inputs.get((ds.Rows, ds.Columns, len(ds.PixelData)), set()) | {bytes(ds.PixelData)}
        for inst in unchanged:
            out = pydicom.dcmread(partner.root().path / inst["path"])
            assert out.PatientIdentityRemoved == "YES"
            key = (out.Rows, out.Columns, len(out.PixelData))
            assert bytes(out.PixelData) in inputs.get(key, set()), inst["path"]


def test_patients_seen_at_both_partners_share_a_token(ingested):
    truth, _runs = ingested
    assert truth["shared_patients"]
    tokens = {}
    for partner in load_partners():
        tokens[partner.id] = {r["patient_token"] for r in _table(partner, "patients")}
    a, b = tokens.values()
    assert a & b, "no patient linked across partners"


def test_reports_are_linked_scrubbed_and_published(ingested):
    for partner in load_partners():
        reports = _table(partner, "reports")
        studies = {r["study_uid"] for r in _table(partner, "studies")}
        assert reports, partner.id
        assert all(r["study_uid"] in studies for r in reports)


def test_rerunning_publishes_no_duplicates(ingested):
    from synth.airflow_run import run_dag

    partner = load_partners()[0]
    before = {name: len(_table(partner, name)) for name in TABLES}
    run = run_dag(partner.dag_id)
    assert run.state == "success"
    after = {name: len(_table(partner, name)) for name in TABLES}
    assert after == before
    for name in ("instances", "studies", "series"):
        table = _table(partner, name)
        key = {"instances": "sop_uid", "studies": "study_uid", "series": "series_uid"}[name]
        assert len({r[key] for r in table}) == len(table)


def test_landing_is_empty_after_a_successful_run(ingested):
    for partner in load_partners():
        leftovers = [p for p in partner.root().landing.rglob("*") if p.is_file()]
        assert leftovers == []
        assert not (partner.root().path / "work").exists() or not any((partner.root().path / "work").iterdir())


def test_linking_dags_give_one_timeline_across_partners(ingested):
    """The regions' link DAGs (run by Airflow) consolidate; a shared patient's timeline spans both partners."""
    from synth.airflow_run import run_dag
    from sta.service.search import StoreSet, linked_patients, patient_timeline

    regions = sorted({p.region for p in load_partners()})
    for region in regions:
        assert run_dag(f"link_{region}").state == "success"
    stores = StoreSet.discover(data_root())
    linked = linked_patients(stores, regions, limit=5)
    assert linked and set(linked[0]["partners"]) == {p.id for p in load_partners()}
    timeline = patient_timeline(stores, linked[0]["patient_token"], regions)
    assert {s["partner_id"] for s in timeline["studies"]} == {p.id for p in load_partners()}
    for region in regions:  # a store never holds another region's rows
        import duckdb

        con = duckdb.connect(str(data_root() / region / "store" / "consolidated.duckdb"), read_only=True)
        assert {r[0] for r in con.execute("select distinct region from studies").fetchall()} == {region}
        con.close()


# -- the enclave (issue 11.1): nothing identifying outside the partners' raw zones -------------------------

RAW_ZONE = {"landing", "work", "quarantine", "state"}


def _planted(truth: dict) -> tuple[set[str], set[str]]:
    """Folded PHI terms of every planted value, and the raw partner paths (names and MRNs in folder names)."""
    values = [v for f in truth["files"].values() for v in f.get("phi", [])]
    terms = {t for t in phi_terms(values) if not t.replace(" ", "").isdigit() or len(t.replace(" ", "")) >= 6}
    # A time of day alone (HHMMSS, as DICOM writes StudyTime) identifies nobody and is six digits that
    # every log timestamp's microseconds and every long UID also produce: the times are checked shifted
    # in the DICOM tests, not searched verbatim here.
    terms = {t for t in terms if not _time_of_day(t)}
    # A partner's own name ("Clínica Andes" as its reports write it) names the partner, not a patient: it is in the
    # partner's id on purpose (DAG ids, asset names, paths). Every other planted value is searched.
    partner_names = [fold(p.id) for p in load_partners()] + [fold(p.name) for p in load_partners()]
    terms = {t for t in terms if not any(re.search(rf"(?<!\w){re.escape(t)}(?!\w)", n) for n in partner_names)}
    paths = {rel.split("/", 1)[1] for rel in truth["files"] if "/" in rel}
    return terms, {p for p in paths if "/" in p}


def _time_of_day(term: str) -> bool:
    digits = term.replace(" ", "")
    if not (digits.isdigit() and len(digits) in (6, 9)):
        return False
    hh, mm, ss = int(digits[:2]), int(digits[2:4]), int(digits[4:6])
    return hh < 24 and mm < 60 and ss < 60 and (len(digits) == 6 or " " in term)


_MATCHERS: dict[frozenset[str], re.Pattern[str]] = {}


def _find_all(terms: set[str], folded: str) -> list[str]:
    """Every term found in folded text, by one alternation (a scan per term is too slow over MBs)."""
    key = frozenset(terms)
    if not key:
        return []
    if key not in _MATCHERS:
        alternation = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
        _MATCHERS[key] = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
    return sorted(set(_MATCHERS[key].findall(folded)))


_EXACT: list[re.Pattern[str]] = []


def _exact_values(truth: dict) -> None:
    """The truth file's values as written (8+ characters), searched verbatim, case-insensitive, not inside a longer
    token (the way an auditor greps): IDs, phones, UIDs, addresses, names as the hospital wrote them."""
    names = [p.name.lower() for p in load_partners()]
    values = sorted({v.lower() for v in truth.get("phi_values", []) if len(v) >= 8}, key=len, reverse=True)
    values = [v for v in values if not any(v in n for n in names)]
    assert values
    _EXACT[:] = [re.compile(r"(?<![0-9a-z])(?:" + "|".join(re.escape(v) for v in values) + r")(?![0-9a-z])")]


def _hits(terms: set[str], paths: set[str], raw: bytes) -> list[str]:
    text = raw.decode("utf-8", "ignore")
    found = [p for p in paths if p in text]
    if _EXACT:
        found += sorted({f"exact:{m}" for m in _EXACT[0].findall(text.lower())})
    return found + _find_all(terms, fold(text))


def _outside_raw_zone() -> list[Path]:
    """Every file under the data root that is not in a partner's raw zone or the generator's input."""
    base = data_root()
    out = []
    for p in base.rglob("*"):
        rel = p.relative_to(base).parts
        if not p.is_file() or rel[0] == "incoming":
            continue
        if len(rel) > 4 and rel[1] == "partners" and rel[3] in RAW_ZONE and not p.name.endswith(".reason.json"):
            continue  # raw zone (quarantine reason files are checked: they are shown on dashboards)
        out.append(p)
    return out


def test_no_planted_phi_outside_the_raw_zone(ingested):
    """Every planted value searched in the Airflow metadata DB (every table, XCom included), the task logs,
    ledgers, leak ledgers, reason files, Data Docs, published files and the regions' stores: none found."""
    import os
    import sqlite3

    truth, _runs = ingested
    terms, paths = _planted(truth)
    assert terms and paths
    _exact_values(truth)
    home = Path(os.environ["AIRFLOW_HOME"])
    db = sqlite3.connect(str(home / "airflow.db"))
    leaks = []
    tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
    for table in tables:
        for row in db.execute(f'select * from "{table}"'):
            blob = " | ".join(v.decode("utf-8", "ignore") if isinstance(v, bytes) else str(v) for v in row if v is not None)
            leaks += [f"db:{table}: {h}" for h in _hits(terms, paths, blob.encode())]
    db.close()
    assert "xcom" in tables
    for log in (home / "logs").rglob("*") if (home / "logs").exists() else []:
        if log.is_file():
            leaks += [f"log:{log.name}: {h}" for h in _hits(terms, paths, log.read_bytes())]
    leaks += _service_and_store_leaks(terms, paths)
    files = _outside_raw_zone()
    assert any(f.suffix == ".parquet" for f in files) and any(f.suffix == ".dcm" for f in files)
    assert any(f.name.endswith(".reason.json") for f in files) and any(f.name.endswith(".jsonl") for f in files)
    for f in files:
        if f.name.endswith(("-shm", "-wal", "-journal")) or not f.exists():
            continue  # SQLite's transient side files of a service another test is running (the DB itself is read)
        if f.suffix in (".dcm", ".png", ".duckdb", ".parquet", ".gif", ".ico"):
            data = f.read_bytes()  # binary: names and long IDs as bytes (short numbers occur by chance)
            long_terms = {t for t in terms if not t.replace(" ", "").isdigit() or len(t.replace(" ", "")) >= 8}
            leaks += [f"{f.name}: {h}" for h in _find_all(long_terms, fold(data.decode("latin-1"))) if len(h) >= 5]
            leaks += [f"{f.name}: path" for p in paths if p.encode() in data]
        else:
            leaks += [f"{f.relative_to(data_root())}: {h}" for h in _hits(terms, paths, f.read_bytes())]
    assert not leaks, leaks[:20]


def test_raw_zone_is_private_and_holds_no_identity_map(ingested):
    for partner in load_partners():
        root = partner.root()
        for name in RAW_ZONE:
            assert (root.path / name).stat().st_mode & 0o077 == 0, name
        for p in root.quarantine.rglob("*"):
            assert "/" not in p.relative_to(root.quarantine).as_posix().split("/", 1)[-1]  # <run>/<landing id>
            if p.is_file() and not p.name.endswith(".reason.json"):
                assert p.name.startswith("L"), p.name
                assert p.stat().st_mode & 0o077 == 0
        assert not list(root.path.rglob("identity"))


def test_cleanup_xcom_lists_no_path(ingested):
    _truth, runs = ingested
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        for pid, run in runs.items():
            rows = session.query(XComModel).filter(XComModel.run_id == run.run_id, XComModel.task_id == "cleanup").all()
            assert "landing_deleted" in {r.key for r in rows}, pid  # a dict return: one XCom per key
            for r in rows:
                value = json.dumps(r.value, default=str)
                assert "/" not in value, (r.key, value)


def test_every_output_has_a_leak_ledger_line(ingested):
    for partner in load_partners():
        root = partner.root()
        ledger = _ledgers(partner)[0]
        lines = [json.loads(x) for f in root.ledger.glob("*.verification.jsonl") for x in f.read_text().splitlines()]
        files = {ln["file"] for ln in lines}
        for inst in _table(partner, "instances"):
            assert inst["path"] in files
        assert all(set(ln) >= {"file", "kind", "checked", "classes", "outcome"} for ln in lines)
        assert any("ocr" in ln["checked"] for ln in lines)
        assert ledger["verification"]["files"] >= len(_table(partner, "instances"))
        index = root.reports / ledger["run_id"].replace(":", "_").replace("+", "_") / "index.html"
        assert "landing" in index.read_text() and "deid_metadata" in index.read_text()


def _service_and_store_leaks(terms: set[str], paths: set[str]) -> list[str]:
    """Use the query service as a customer would (its DB records keys, audit, metering), then read every text
    value of the service DB and of each region's consolidated store."""
    import sqlite3

    import duckdb
    from fastapi.testclient import TestClient

    from sta.service import create_app
    from sta.service.db import ServiceDB
    from sta.service.search import StoreSet

    db_path = data_root() / "service" / "service.sqlite"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    db = ServiceDB(db_path)
    key = db.create_key("Enclave check", "standard")[0]
    client = TestClient(create_app(StoreSet.discover(data_root()), db))
    found = client.get("/api/studies", params={"q": "nodulo"}, headers={"X-API-Key": key})
    assert found.status_code == 200
    for study in found.json().get("items", [])[:3]:
        client.get(f"/api/patients/{study['patient_token']}", headers={"X-API-Key": key})
    leaks = []
    con = sqlite3.connect(str(db_path))
    for (table,) in con.execute("select name from sqlite_master where type='table'").fetchall():
        blob = " | ".join(str(v) for row in con.execute(f'select * from "{table}"') for v in row if v is not None)
        leaks += [f"service:{table}: {h}" for h in _hits(terms, paths, blob.encode())]
    con.close()
    stores = sorted(data_root().glob("*/store/*.duckdb"))
    assert stores
    for store in stores:
        con = duckdb.connect(str(store), read_only=True)
        for table, column in con.execute("select table_name, column_name from information_schema.columns "
                                         "where data_type like '%VARCHAR%'").fetchall():
            values = con.execute(f'select distinct cast("{column}" as varchar) from "{table}"').fetchall()
            blob = " | ".join(v for (v,) in values if v)
            leaks += [f"store:{table}.{column}: {h}" for h in _hits(terms, paths, blob.encode())
                      if column != "partner_id"]
        con.close()
    return leaks


def test_report_dates_tell_one_truth_across_partners_and_dicom(ingested):
    """Issue 12: a patient's birth date reads the same in every report of every partner, and a report's
    "compared with the prior study of <date>" is that prior study's shifted DICOM StudyDate."""
    from anonymization.recognizers.dates import find_dates
    from synth.reports import LABELS

    dobs: dict[str, set] = {}
    study_days: dict[str, set] = {}
    priors: list[tuple[str, object, str]] = []
    for partner in load_partners():
        for s in _table(partner, "studies"):
            study_days.setdefault(s["patient_token"], set()).add(s["study_date_shifted"])
        for rep in _table(partner, "reports"):
            lang, text = rep["language"], rep["text_scrubbed"]
            for line in text.splitlines():
                if line.startswith(LABELS[lang]["dob"]):
                    found = [d.date for d in find_dates(line, lang) if d.date and not d.partial]
                    assert found, (partner.id, lang)  # shifted, not masked
                    dobs.setdefault(rep["patient_token"], set()).add(found[0])
                if LABELS[lang]["prior"] in line:
                    after = line.split(LABELS[lang]["prior"], 1)[1][:16]
                    found = [d.date for d in find_dates(after, lang) if d.date and not d.partial]
                    assert found, (partner.id, lang)
                    priors.append((rep["patient_token"], found[0], partner.id))
    assert dobs and all(len(v) == 1 for v in dobs.values()), {t[:6]: sorted(map(str, v)) for t, v in dobs.items() if len(v) > 1}
    shared = [t for t in dobs if sum(t in {r["patient_token"] for r in _table(p, "reports")} for p in load_partners()) == 2]
    assert shared, "no patient with reports at both partners"
    assert priors, "no published report cites a prior study"
    for token, day, pid in priors:
        assert day in study_days.get(token, set()), (pid, str(day))
