"""``sta quarantine`` on a real run's quarantine: the generator's planted faults, through the pipeline's stages."""

from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from sta.cli import main as sta

PROJECT = Path(__file__).resolve().parent.parent
PID = "qa_andes_co"
RUN = "manual__2026-12-01T10:00:00+00:00"


@pytest.fixture(scope="module")
def quarantined(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two synthetic patients with planted faults, pulled, classified, de-identified and reported."""
    base = tmp_path_factory.mktemp("quarantine")
    data, partners = base / "data", base / "partners"
    partners.mkdir()
    from synth import generate

    generate(data / "incoming", 2, 3)
    src = (PROJECT / "include" / "partners" / "clinica_andes_co.yaml").read_text(encoding="utf-8")
    (partners / f"{PID}.yaml").write_text(src.replace("id: clinica_andes_co", f"id: {PID}"), encoding="utf-8")
    old = {k: os.environ.get(k) for k in ("STA_DATA_ROOT", "STA_PARTNERS_DIR")}
    os.environ["STA_DATA_ROOT"], os.environ["STA_PARTNERS_DIR"] = str(data), str(partners)
    from pipeline import classify, deidentify, pull, reports
    from pipeline.context import RunContext

    ctx = RunContext.resolve(PID, RUN)
    pull.run(ctx)
    c = classify.run(ctx)
    for b in c["dicom"]:
        deidentify.run(ctx, b)
    for b in c["report"]:
        reports.run(ctx, b)
    truth = json.loads((data / "incoming" / "truth.json").read_text(encoding="utf-8"))
    yield {"ctx": ctx, "data": data, "truth": truth}
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _phi_values(truth: dict) -> set[str]:
    """Every planted identifying string of the truth file (names, ids, dates...) worth searching for."""
    out: set[str] = set()

    def walk(x) -> None:  # noqa: ANN001
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("phi", "burned_in_phi") or "name" in k.lower() or k.lower() in ("mrn", "patient_id"):
                    walk_values(v)
                else:
                    walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    def walk_values(v) -> None:  # noqa: ANN001
        if isinstance(v, str) and len(v) >= 5:
            out.add(v)
        elif isinstance(v, dict):
            for w in v.values():
                walk_values(w)
        elif isinstance(v, list):
            for w in v:
                walk_values(w)

    walk(truth)
    return out


def _cli(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    code = sta(["quarantine", *args])
    return code, capsys.readouterr().out


def test_list_shows_the_planted_faults_by_landing_id_and_reason(quarantined: dict, capsys) -> None:  # noqa: ANN001
    code, out = _cli(capsys, "list", "--partner", PID, "--json")
    assert code == 0
    listed = json.loads(out)
    items = listed["items"]
    reasons = {i["reason"] for i in items}
    assert len(items) >= 4
    assert {"empty_file", "dicomdir"} <= reasons or {"empty_file", "not_dicom"} <= reasons, reasons
    assert all(i["landing_id"].startswith("L") and i["original"] == "plain" for i in items)
    assert listed["summary"]["by_partner"] == {PID: len(items)}
    code, text = _cli(capsys, "list", "--partner", PID)
    phi = _phi_values(quarantined["truth"])
    assert not [v for v in phi if v in out or v in text], "identifying values in sta quarantine list"
    # filters
    one = items[0]["reason"]
    code, out = _cli(capsys, "list", "--partner", PID, "--reason", one, "--json")
    assert {i["reason"] for i in json.loads(out)["items"]} == {one}
    code, out = _cli(capsys, "list", "--partner", PID, "--stage", "classify", "--json")
    assert {i["stage"] for i in json.loads(out)["items"]} == {"classify"}


def test_seal_encrypts_originals_with_the_partners_key_and_show_still_previews(quarantined: dict, capsys,  # noqa: ANN001
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = quarantined["ctx"]
    code, out = _cli(capsys, "seal", "--partner", PID)
    assert code == 0 and json.loads(out)[PID]["sealed"] >= 4
    files = [p for p in ctx.root.quarantine.rglob("*") if p.is_file() and not p.name.endswith(".reason.json")
             and not p.name.startswith("_")]
    assert files and all(p.name.endswith(".sealed") for p in files)
    phi = [v.encode() for v in _phi_values(quarantined["truth"])]
    for p in files:
        raw = p.read_bytes()
        assert not any(v in raw for v in phi)  # encrypted at rest

    code, out = _cli(capsys, "list", "--partner", PID, "--json")
    items = json.loads(out)["items"]
    dicomish = [i for i in items if i["stage"] != "classify" and i["size"]]
    for item in items:
        code, shown = _cli(capsys, "show", "--partner", PID, item["landing_id"], "--json")
        assert code == 0
        info = json.loads(shown)
        assert info["reason"] == item["reason"] and info["description"]
        assert not [v for v in _phi_values(quarantined["truth"]) if v in shown], (item["reason"], shown)
    if dicomish:
        _cli(capsys, "show", "--partner", PID, dicomish[0]["landing_id"])  # the human-readable form works too

    # another partner's key (or a wrong one) cannot open them
    monkeypatch.setenv(f"STA_QUARANTINE_KEY_{PID.upper()}", "A" * 43)
    code, shown = _cli(capsys, "show", "--partner", PID, items[0]["landing_id"], "--json")
    assert json.loads(shown)["preview"]["kind"] in ("unavailable", "none")


def test_reprocess_puts_the_original_back_in_landing_for_the_next_pull(quarantined: dict, capsys) -> None:  # noqa: ANN001
    from transforms.pull import cleanup_landing, pull_partner

    ctx = quarantined["ctx"]
    # the run ends: landing cleaned up, state rows done (as a successful run leaves them)
    from pipeline.context import fetched

    cleanup_landing(ctx.root, fetched(ctx.run))
    assert pull_partner(ctx.partner, ctx.root, "next-run-0").fetched == []
    code, out = _cli(capsys, "list", "--partner", PID, "--json")
    target = next(i for i in json.loads(out)["items"] if i["reason"] != "empty_file")
    code, out = _cli(capsys, "reprocess", "--partner", PID, target["landing_id"])
    assert code == 0, out
    assert json.loads(out)["reprocess"] == [target["landing_id"]]
    again = pull_partner(ctx.partner, ctx.root, "next-run-1")
    from foundation.landing import landing_id

    assert [landing_id(f.landing_relpath) for f in again.fetched] == [target["landing_id"]]
    assert again.fetched[0].carried_over
    code, out = _cli(capsys, "list", "--partner", PID, "--json")
    assert target["landing_id"] not in {i["landing_id"] for i in json.loads(out)["items"]}
    code, out = _cli(capsys, "reprocess", "--partner", PID, "Lffffffffffffffffffff")
    assert code == 1 and "no such" in out


def test_release_records_the_reviewers_decision(quarantined: dict, capsys) -> None:  # noqa: ANN001
    ctx = quarantined["ctx"]
    code, out = _cli(capsys, "list", "--partner", PID, "--json")
    target = json.loads(out)["items"][0]
    assert sta(["quarantine", "release", "--partner", PID, target["landing_id"], "--reviewer", " ",
                "--decision", "discard"]) == 2  # a decision needs a name
    capsys.readouterr()
    code, out = _cli(capsys, "release", "--partner", PID, target["landing_id"], "--reviewer", "dr.reviewer",
                     "--decision", "discard", "--note", "export index, not an image")
    assert code == 0
    actions = [json.loads(x) for x in (ctx.root.quarantine / "_actions.jsonl").read_text().splitlines()]
    assert actions[-1] | {} == actions[-1] and actions[-1]["action"] == "release"
    assert (actions[-1]["by"], actions[-1]["decision"], actions[-1]["landing_id"]) == (
        "dr.reviewer", "discard", target["landing_id"])
    code, out = _cli(capsys, "list", "--partner", PID, "--json")
    assert target["landing_id"] not in {i["landing_id"] for i in json.loads(out)["items"]}


def test_purge_by_retention_writes_a_report(quarantined: dict, capsys) -> None:  # noqa: ANN001
    ctx = quarantined["ctx"]
    code, out = _cli(capsys, "list", "--partner", PID, "--json")
    before = json.loads(out)["items"]
    assert before
    code, out = _cli(capsys, "purge", "--partner", PID)  # default retention 30 days: all are fresh
    report = json.loads(out)[0]
    assert (report["purged"], report["retention_days"]) == (0, 30)
    # age one item past the retention
    old = before[0]
    rf = next(ctx.root.quarantine.rglob(f"{old['landing_id']}.reason.json"))
    reason = json.loads(rf.read_text())
    reason["at"] = (datetime.now(timezone.utc) - timedelta(days=31)).isoformat(timespec="seconds")
    rf.write_text(json.dumps(reason))
    code, out = _cli(capsys, "purge", "--partner", PID, "--dry-run")
    assert json.loads(out)[0]["landing_ids"] == [old["landing_id"]]
    assert rf.exists()
    code, out = _cli(capsys, "purge", "--partner", PID)
    report = json.loads(out)[0]
    assert report["landing_ids"] == [old["landing_id"]] and report["kept"] == len(before) - 1
    assert not rf.exists() and (ctx.root.quarantine / report["report"]).exists()
    assert not list(ctx.root.quarantine.rglob(f"{old['landing_id']}*"))


def test_a_partner_that_deletes_originals_keeps_only_the_reason(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from foundation.partners import PartnerConfig
    from foundation.quarantine import Reason, quarantine_file
    from transforms.quarantine_admin import list_items, seal

    monkeypatch.setenv("STA_DATA_ROOT", str(tmp_path))
    p = PartnerConfig.model_validate({"id": "del_co", "name": "x", "country": "co", "region": "co",
                                      "source": {"type": "folder", "path": "in"},
                                      "quarantine_originals": "delete"})
    src = tmp_path / "x.dcm"
    src.write_bytes(b"raw")
    from foundation.landing import landing_id

    quarantine_file(src, p.root().quarantine_run("r1"), landing_id("PAC/x.dcm"), Reason("not_dicom", "deidentify"))
    assert seal(p) == {"sealed": 0, "deleted": 1}
    [item] = list_items([p])
    assert (item.original, item.reason) == ("deleted", "not_dicom")
    shutil.rmtree(tmp_path / "co")


def test_the_airflow_view_needs_an_airflow_login_and_shows_landing_ids(quarantined: dict, airflow_db: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.api_fastapi.app import create_app, get_auth_manager
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")  # the suite's default logs all in
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "reviewer:admin")

    client = TestClient(create_app())
    assert client.get("/sta-quarantine/api/items").status_code == 401  # plugin apps get no auth from Airflow
    assert client.get("/sta-quarantine/", cookies={"_token": "forged"}).status_code in (401, 403)
    am = get_auth_manager()
    token = am.generate_jwt(am.deserialize_user({"sub": "reviewer", "role": "admin"}))
    auth = {"Authorization": f"Bearer {token}"}
    items = client.get("/sta-quarantine/api/items", params={"partner": PID}, headers=auth).json()["items"]
    assert items and all(i["landing_id"].startswith("L") for i in items)
    run = quarantined["ctx"].run_id
    tab = client.get("/sta-quarantine/", params={"dag_id": f"ingest_{PID}", "run_id": run}, headers=auth)
    assert tab.status_code == 200 and items[0]["landing_id"] in tab.text
    page = client.get(f"/sta-quarantine/items/{PID}/{items[0]['landing_id']}", headers=auth)
    assert page.status_code == 200 and items[0]["reason"] in page.text
    phi = _phi_values(quarantined["truth"])
    assert not [v for v in phi if v in tab.text or v in page.text]
    link = client.get("/sta-quarantine/", params={"dag_id": "link_co", "run_id": run}, headers=auth)
    assert "0 quarantined files" in link.text


def test_the_partner_key_comes_from_its_secret_or_is_derived_per_partner(monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    from transforms.quarantine_admin import QuarantineError, partner_key

    a, b = partner_key("part_a"), partner_key("part_b")
    assert len(a) == 32 and a != b  # derived from the deployment key, one per partner
    secret = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
    monkeypatch.setenv("AIRFLOW_CONN_STA_QUARANTINE_PART_A", json.dumps({"conn_type": "generic", "password": secret}))
    assert partner_key("part_a") == bytes(range(32))  # the Connection's password
    monkeypatch.setenv("STA_QUARANTINE_KEY_PART_A", base64.urlsafe_b64encode(b"x" * 16).decode())
    with pytest.raises(QuarantineError):
        partner_key("part_a")  # a key of the wrong size is refused, not padded
