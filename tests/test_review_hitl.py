"""Researchers' review through Airflow (issue 11.4), answered through Airflow's REST API.

Two partners with a review policy read the same generated export: one run is
approved, the other rejected, each by a PATCH to ``.../hitlDetails`` from a
thread (``synth.airflow_run.answer_reviews``, TestClient on the core API), the
request the Required Actions page sends. A third partner, without a review,
shows that a Great Expectations checkpoint failing inside a real DAG run stops
it before publication and that the run's identity maps are still swept.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from foundation.partners import load_partners
from foundation.schema import TABLES
from transforms.parquet_store import PartnerTables, read_table

pytestmark = [pytest.mark.dag, pytest.mark.timeout(900)]

POLICY = {"redacted_pixels": True, "new_modality": True, "max_items": 3, "timeout_hours": 1}


@pytest.fixture(scope="module")
def partners_dir(tmp_path_factory) -> Path:
    from synth import generate

    base = tmp_path_factory.mktemp("review")
    generate(base / "incoming", 1, 5)
    folder = base / "partners"
    folder.mkdir()
    template = yaml.safe_load((Path(__file__).parent.parent / "include/partners/clinica_andes_co.yaml").read_text())
    for pid, review in (("review_ok_co", POLICY), ("review_no_co", POLICY), ("review_gx_co", {})):
        cfg = {**template, "id": pid, "name": f"Review test {pid}", "schedule": None, "review": review,
               "source": {"type": "folder", "path": str(base / "incoming" / "clinica_andes_co")}}
        (folder / f"{pid}.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return folder


@pytest.fixture()
def partners(partners_dir, monkeypatch, airflow_db):
    monkeypatch.setenv("STA_PARTNERS_DIR", str(partners_dir))
    return {p.id: p for p in load_partners()}


def _ledger(partner) -> dict:
    (path,) = partner.root().ledger.glob("*.json")
    return json.loads(path.read_text())


def test_an_approved_review_publishes(partners):
    from synth.airflow_run import run_dag

    partner = partners["review_ok_co"]
    answered: list[dict] = []
    run = run_dag(partner.dag_id, review=lambda d: {"chosen_options": ["Approve"], "params_input": {}},
                  answered=answered)
    assert run.state == "success", [(t.task_id, t.state) for t in run.tasks]
    (answer,) = [a for a in answered if "detail" in a]
    assert answer["status"] == 200, answer
    detail = answer["detail"]
    assert detail["task_instance"]["task_id"] == "review.approve"
    assert "Approve" in detail["options"] and "data:image/png;base64," in detail["body"]
    assert "studies" in detail["subject"]
    ledger = _ledger(partner)
    assert ledger["review"]["decision"] == "approved" and ledger["review"]["reviewer"]
    assert ledger["published"] > 0
    assert read_table(partner.root().parquet, "instances", TABLES["instances"]).num_rows > 0
    states = {t.task_id: t.state for t in run.tasks}
    assert states["review.approve"] == "success" and states["sweep_identity"] == "success"


def test_a_rejected_review_quarantines_the_run_with_reason_and_reviewer(partners):
    from synth.airflow_run import run_dag

    partner = partners["review_no_co"]
    answered: list[dict] = []
    run = run_dag(partner.dag_id, answered=answered,
                  review=lambda d: {"chosen_options": ["Reject: identifying text in pixels"], "params_input": {}})
    assert run.state == "success", [(t.task_id, t.state) for t in run.tasks]
    assert [a["status"] for a in answered if "detail" in a] == [200]
    ledger = _ledger(partner)
    assert ledger["published"] == 0 and ledger["balanced"]
    assert ledger["review"]["decision"] == "rejected" and "pixels" in ledger["review"]["reason"]
    assert ledger["by_reason"]["review_rejected"] > 0
    assert not PartnerTables(partner.root().parquet).has("instances")
    assert not list(partner.root().dicom.rglob("*.dcm")) if partner.root().dicom.exists() else True
    reasons = [json.loads(p.read_text()) for p in partner.root().quarantine.rglob("*.reason.json")]
    rejected = [r for r in reasons if r["code"] == "review_rejected"]
    assert rejected and all(ledger["review"]["reviewer"] in r["detail"] for r in rejected)


def test_a_failing_checkpoint_in_a_dag_run_blocks_publication(partners, monkeypatch):
    """Inject broken de-identified metadata at the deidentify -> verify boundary of a real run."""
    import pyarrow as pa

    from pipeline import checkpoints
    from synth.airflow_run import run_dag

    def broken(ctx):  # noqa: ANN001, ANN202
        table = checkpoints.BUILDERS_ORIGINAL["deid_metadata"](ctx)
        tokens = table.column("patient_token").to_pylist()
        return table.set_column(table.schema.get_field_index("patient_token"), "patient_token",
                                pa.array(["not a token"] + tokens[1:]))

    monkeypatch.setattr(checkpoints, "BUILDERS_ORIGINAL", dict(checkpoints.BUILDERS), raising=False)
    monkeypatch.setitem(checkpoints.BUILDERS, "deid_metadata", broken)
    partner = partners["review_gx_co"]
    run = run_dag(partner.dag_id)
    states = {t.task_id: t.state for t in run.tasks}
    assert run.state == "failed"
    assert states["dicom_done"] == "failed" and states["publish"] == "upstream_failed"
    assert states["sweep_identity"] == "success"
    root = partner.root()
    assert not list(root.ledger.glob("*.json")) if root.ledger.exists() else True
    assert not PartnerTables(root.parquet).snapshot().tables
    assert not [p for p in root.path.rglob("*") if p.parent.name == "identity"]
    summary = json.loads((root.run_reports(run.run_id) / "checkpoints.json").read_text())
    assert summary["deid_metadata"]["success"] is False and summary["landing"]["success"] is True


def test_the_runs_checks_tab_serves_its_data_docs(partners):
    """The Checks tab of an ingest run (plugin app) serves the run's checkpoint page, to an authorised user only."""
    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    import sta_checks

    create_app(apps="core")  # the auth manager the plugin asks
    partner = partners["review_ok_co"]
    run_id = _ledger(partner)["run_id"]
    sta_checks.app.dependency_overrides[sta_checks.current_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    try:
        client = TestClient(sta_checks.app)
        page = client.get("/", params={"dag_id": partner.dag_id, "run_id": run_id})
        assert page.status_code == 200 and "deid_metadata" in page.text and "Data Docs" in page.text
        assert client.get("/", params={"dag_id": "link_co", "run_id": run_id}).status_code == 404
        escape = client.get(f"/files/{partner.id}/{run_id}/..%2F..%2Fledger%2Fx.json")
        assert escape.status_code == 404
    finally:
        sta_checks.app.dependency_overrides.clear()
    anonymous = TestClient(sta_checks.app).get("/", params={"dag_id": partner.dag_id, "run_id": run_id})
    assert anonymous.status_code in (401, 403)
