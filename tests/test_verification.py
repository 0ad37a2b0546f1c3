"""Issue 11 without Airflow: runs killed mid-stage are repaired, checkpoints stop the run, verify quarantines.

The stages run in the DAG's order through ``pipeline.runner`` on generated
partner files. A "crash" is a child process that dies with ``os._exit``
inside a stage (no ``finally`` runs, like SIGKILL); the next normal run must
leave no identity map and no orphan file, and publish exactly what a run that
never crashed publishes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expectations.boundaries import CheckpointFailed
from foundation.partners import PartnerConfig
from foundation.schema import TABLES
from pipeline.context import RunContext
from pipeline.repair import orphan_files
from pipeline.runner import run_all
from transforms.parquet_store import PartnerTables, read_table

PARTNER = "clinica_andes_co"


@pytest.fixture(scope="module")
def incoming(tmp_path_factory) -> Path:
    from synth import generate

    out = tmp_path_factory.mktemp("incoming")
    generate(out, 1, 5)
    return out / PARTNER


def _partner(incoming: Path, **extra) -> PartnerConfig:
    return PartnerConfig.model_validate({
        "id": PARTNER, "name": "Clínica test", "country": "co", "region": "co",
        "source": {"type": "folder", "path": str(incoming)}, "profile": "latam",
        "report_languages": ["es", "en"], "batch_size": 100,
        "identity": {"national_id_issuers": {"RNEC": "CO-CC", "RFB": "BR-CPF"}}, **extra})


def _ctx(incoming: Path, base: Path, run_id: str, **extra) -> RunContext:
    return RunContext.of(_partner(incoming, **extra), run_id, base)


def _published(ctx: RunContext) -> dict[str, int]:
    return {name: read_table(ctx.root.parquet, name, TABLES[name]).num_rows for name in TABLES}


def _identity_maps(ctx: RunContext) -> list[Path]:
    return [p for p in ctx.root.path.rglob("*") if p.parent.name == "identity"]


@pytest.fixture(scope="module")
def reference(incoming, tmp_path_factory) -> dict[str, int]:
    """What a run that never crashed publishes."""
    from expectations.boundaries import _context

    _context(None)  # GX imported once here, inherited by the forked children
    ctx = _ctx(incoming, tmp_path_factory.mktemp("reference"), "r1")
    out = run_all(ctx)
    assert out["publish"]["published"] > 0
    return _published(ctx)


def _die(*_a, **_k):  # noqa: ANN002, ANN003
    os._exit(9)


def _crash(ctx: RunContext, target: str, attribute: str, when=None) -> None:  # noqa: ANN001
    """Run every stage in a forked child that exits hard at ``target.attribute`` (``Class.method`` allowed)."""

    def child() -> None:
        import importlib

        owner = importlib.import_module(target)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        original = getattr(owner, name)

        def patched(*a, **k):  # noqa: ANN002, ANN003, ANN202
            if when is None or when(*a, **k):
                _die()
            return original(*a, **k)

        setattr(owner, name, patched)
        run_all(ctx)
        os._exit(0)

    proc = multiprocessing.get_context("fork").Process(target=child)
    proc.start()
    proc.join(300)
    assert proc.exitcode == 9, f"the run did not die at {target}.{attribute} (exit {proc.exitcode})"


CRASHES = {
    # deidentify: after the batch's identity map is written, before the stage returns
    "deidentify": ("pipeline.deidentify", "write_json", lambda path, _data: path.parent.name == "sources"),
    # verify: identity maps loaded, files checked, before the hits are acted on (its finally never runs)
    "verify": ("pipeline.verify", "_quarantine_hits", None),
    # publish: DICOM moved into dicom/, tables not committed
    "publish": ("transforms.parquet_store", "PartnerTables.upsert", None),
    # after the commit, before the ledger
    "publish_after_commit": ("pipeline.publish", "finish_commit", None),
}


@pytest.mark.parametrize("stage", sorted(CRASHES))
def test_a_run_killed_mid_stage_is_repaired_by_the_next_run(stage, incoming, reference, tmp_path):
    target, attribute, when = CRASHES[stage]
    _crash(_ctx(incoming, tmp_path, "dead"), target, attribute, when)
    dead = _ctx(incoming, tmp_path, "dead")
    if stage in ("deidentify", "verify"):
        assert _identity_maps(dead), "the crash should leave identity maps behind (else the test proves nothing)"
    if stage == "publish":
        assert orphan_files(dead.root), "the crash should leave moved, uncommitted files behind"
    if stage == "publish_after_commit":
        assert not dead.root.ledger_file("dead").exists()

    ctx = _ctx(incoming, tmp_path, "next")
    out = run_all(ctx)
    assert out["pull"]["repaired"]["dead_runs"] == 1
    assert not _identity_maps(ctx)
    assert not orphan_files(ctx.root)
    assert not (ctx.root.work_root / "dead").exists()
    assert _published(ctx) == reference
    ledgers = sorted(p.name for p in ctx.root.ledger.glob("*.json"))
    if stage == "publish_after_commit":  # rolled forward: the repair published the dead run's ledger
        assert ledgers == ["dead.json", "next.json"]
        assert out["pull"]["repaired"]["rolled_forward"] == 1
    else:  # rolled back: its files came again from landing and this run published them
        assert ledgers == ["next.json"]
        assert out["pull"]["repaired"]["rolled_back"] == 1
        ledger = json.loads(ctx.root.ledger_file("next").read_text())
        assert ledger["balanced"] and ledger["published"] > 0
        assert not (ctx.root.quarantine / "dead").exists()


# -- Great Expectations at every boundary ---------------------------------------------------------------


@pytest.fixture(scope="module")
def staged_template(incoming, tmp_path_factory) -> Path:
    """A run taken up to its tables (nothing published), built once."""
    from pipeline import checkpoints, classify, deidentify, pull, reports, tables, verify

    base = tmp_path_factory.mktemp("staged")
    ctx = _ctx(incoming, base, "r1")
    pull.run(ctx)
    batches = classify.run(ctx)
    for b in batches["dicom"]:
        deidentify.run(ctx, b)
    checkpoints.check(ctx, "deid_metadata")
    for b in batches["report"]:
        reports.run(ctx, b)
    verify.run(ctx)
    tables.run(ctx)
    return base


@pytest.fixture()
def staged(staged_template, incoming, tmp_path) -> RunContext:
    """A copy of the staged run, for corrupting one boundary at a time."""
    import shutil

    shutil.copytree(staged_template, tmp_path / "data")
    return _ctx(incoming, tmp_path / "data", "r1")


def _rewrite(path: Path, change) -> None:  # noqa: ANN001
    rows = pq.read_table(path).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)


def _assert_nothing_published(ctx: RunContext) -> None:
    assert not PartnerTables(ctx.root.parquet).snapshot().tables
    assert not list(ctx.root.ledger.glob("*.json")) if ctx.root.ledger.exists() else True
    assert not list(ctx.root.dicom.rglob("*.dcm")) if ctx.root.dicom.exists() else True


def test_a_broken_landing_manifest_stops_classify(staged):
    from pipeline import classify

    report = json.loads(staged.run.pull_report.read_text())
    report["fetched"][1]["sha256"] = report["fetched"][0]["sha256"]  # the same content fetched twice
    staged.run.pull_report.write_text(json.dumps(report))
    with pytest.raises(CheckpointFailed, match="landing.sha256"):
        classify.run(staged)
    _assert_nothing_published(staged)


def test_broken_deidentified_metadata_stops_at_dicom_done(staged):
    from pipeline import checkpoints

    _rewrite(staged.run.rows_files("dicom")[0], lambda rows: rows[0].update(patient_token="PEREZ^JUAN"))
    with pytest.raises(CheckpointFailed, match="deid_metadata.patient_token"):
        checkpoints.check(staged, "deid_metadata")
    _assert_nothing_published(staged)


def test_broken_report_text_stops_build_tables(staged):
    from pipeline import tables

    _rewrite(staged.run.rows_files("report")[0], lambda rows: rows[0].update(language="xx", text_scrubbed=""))
    with pytest.raises(CheckpointFailed, match="report_text"):
        tables.run(staged)
    _assert_nothing_published(staged)


def test_broken_labels_stop_validate(staged):
    from pipeline import validate

    uid = pq.read_table(staged.run.table("studies")).column("study_uid")[0].as_py()
    pq.write_table(pa.Table.from_pylist([{"study_uid": uid, "partner_id": PARTNER, "concept": "x", "certainty": "positive",
                                          "confidence": 7.0, "model": "m", "model_version": "1"}],
                                        schema=TABLES["labels"]), staged.run.table("labels"))
    with pytest.raises(CheckpointFailed, match="labels.confidence"):
        validate.run(staged)
    _assert_nothing_published(staged)


def test_broken_tables_stop_validate(staged):
    from pipeline import validate

    _rewrite(staged.run.table("studies"), lambda rows: rows[0].update(patient_token=None))
    with pytest.raises(validate.GateFailed):
        validate.run(staged)
    _assert_nothing_published(staged)


def test_checkpoints_write_data_docs_without_values(staged):
    from pipeline import checkpoints

    _rewrite(staged.run.rows_files("dicom")[0], lambda rows: rows[0].update(patient_token="PEREZ^JUAN"))
    with pytest.raises(CheckpointFailed):
        checkpoints.check(staged, "deid_metadata")
    reports = staged.root.run_reports("r1")
    index = (reports / "index.html").read_text()
    assert "FAILED" in index and "landing" in index and "Data Docs" in index
    pages = list((reports / "gx").rglob("*.html"))
    assert pages and not any("PEREZ" in p.read_text(errors="ignore") for p in pages)


# -- verify ---------------------------------------------------------------------------------------------------


def test_verify_quarantines_an_output_that_holds_an_identifying_value(incoming, tmp_path):
    """A name planted into a staged output after de-identification is found, and the file is quarantined."""
    from pipeline import classify, deidentify, pull, verify
    from pipeline.deidentify import load_identities

    ctx = _ctx(incoming, tmp_path, "r1")
    pull.run(ctx)
    for b in classify.run(ctx)["dicom"]:
        deidentify.run(ctx, b)
    rows = pq.read_table(ctx.run.rows_files("dicom")[0]).to_pylist()
    victim = rows[0]
    name = next(v for e in load_identities(ctx).values() if e["study_uid"] == victim["study_uid"]
                for v in e["phi"] if "^" in v)
    staged = ctx.run.staged_dicom / victim["path"]
    data = staged.read_bytes()
    staged.write_bytes(data + name.encode("latin-1", "ignore"))  # trailing bytes after the pixel data
    out = verify.run(ctx)
    assert out["quarantined"] == 1 and out["identity_maps_removed"] > 0
    assert not staged.exists()
    assert victim["sop_uid"] not in pq.read_table(ctx.run.rows_files("dicom")[0]).column("sop_uid").to_pylist()
    lines = [json.loads(x) for x in ctx.run.verification.read_text().splitlines()]
    hit = next(ln for ln in lines if ln["file"] == f"dicom/{victim['path']}")
    assert hit["outcome"] == "residual" and name not in json.dumps(lines)
    reasons = [json.loads(p.read_text()) for p in ctx.quarantine.glob("*.reason.json")]
    assert any(r["code"] == "residual_phi_verify" and r["stage"] == "verify" for r in reasons)
    assert not _identity_maps(ctx)


def test_identity_maps_are_gone_after_verify_even_when_it_fails(incoming, tmp_path, monkeypatch):
    from pipeline import classify, deidentify, pull, verify

    ctx = _ctx(incoming, tmp_path, "r1")
    pull.run(ctx)
    for b in classify.run(ctx)["dicom"]:
        deidentify.run(ctx, b)
    assert _identity_maps(ctx)
    monkeypatch.setattr(verify, "verify_dicom", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        verify.run(ctx)
    assert not _identity_maps(ctx)


def test_review_reject_quarantines_the_run_and_publishes_only_the_ledger(incoming, tmp_path):
    ctx = _ctx(incoming, tmp_path, "r1", review={"redacted_pixels": True, "new_modality": True})
    out = run_all(ctx, review=lambda prepared: {"chosen_options": ["Reject: identifying text in pixels"],
                                                "responded_by_user": {"id": "ana", "name": "Ana Researcher"}})
    assert out["review"]["decision"] == "rejected" and out["review"]["quarantined"] > 0
    ledger = json.loads(ctx.root.ledger_file("r1").read_text())
    assert ledger["published"] == 0 and ledger["balanced"] and ledger["review"]["reviewer"] == "Ana Researcher"
    assert ledger["by_reason"]["review_rejected"] == out["review"]["quarantined"]
    assert not PartnerTables(ctx.root.parquet).has("instances")
    reasons = [json.loads(p.read_text()) for p in ctx.quarantine.glob("*.reason.json")]
    rejected = [r for r in reasons if r["code"] == "review_rejected"]
    assert rejected and "Ana Researcher" in rejected[0]["detail"] and "pixels" in rejected[0]["detail"]


def test_review_without_answer_times_out_to_reject(incoming, tmp_path):
    ctx = _ctx(incoming, tmp_path, "r1", review={"new_modality": True, "timeout_hours": 2})
    out = run_all(ctx, review=lambda prepared: {"chosen_options": ["Reject: other"], "responded_by_user": None})
    assert out["review"]["decision"] == "rejected" and out["review"]["reviewer"] == "timeout"
    assert "no decision within 2 h" in out["review"]["reason"]
    assert json.loads(ctx.root.ledger_file("r1").read_text())["published"] == 0


def test_review_sheet_shows_the_selected_studies(incoming, tmp_path):
    ctx = _ctx(incoming, tmp_path, "r1", review={"redacted_pixels": True, "new_modality": True, "max_items": 2})
    seen: list[dict] = []

    def approve(prepared: dict) -> dict:
        seen.append(prepared)
        return {"chosen_options": ["Approve"], "responded_by_user": {"name": "ana"}}

    out = run_all(ctx, review=approve)
    assert out["review"]["decision"] == "approved" and out["publish"]["published"] > 0
    (prepared,) = seen
    assert prepared["required"] and prepared["shown"] == 2 and prepared["studies"] >= 2
    assert "data:image/png;base64," in prepared["body"] and "new modality" in prepared["body"]
    sheet = ctx.root.run_reports("r1") / "review"
    assert list(sheet.glob("*.png")) and (sheet / "review.html").exists()


def test_thumbnail_outlines_redacted_regions_in_red(tmp_path):
    """Boxes come from comparing the de-identified pixels with the original's (which is never shown)."""
    import numpy as np
    import pydicom
    from PIL import Image
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from pipeline.review import thumbnail

    def write(path: Path, arr: np.ndarray) -> Path:
        ds = pydicom.Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality, ds.Rows, ds.Columns = "US", arr.shape[0], arr.shape[1]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit, ds.PixelRepresentation = 7, 0
        ds.PixelData = arr.tobytes()
        ds.save_as(path, enforce_file_format=True)
        return path

    rng = np.random.default_rng(1)
    original = (rng.random((200, 300)) * 120).astype(np.uint8)
    original[10:30, 20:150] = 250  # the burned-in caption
    redacted = original.copy()
    redacted[10:30, 20:150] = 0
    png = thumbnail(write(tmp_path / "out.dcm", redacted), write(tmp_path / "in.dcm", original))
    img = np.asarray(Image.open(__import__("io").BytesIO(png)).convert("RGB")).astype(int)
    red = (img[..., 0] > 200) & (img[..., 1] < 60) & (img[..., 2] < 60)
    assert red.any()
    ys, xs = np.nonzero(red)
    scale = 256 / 300
    assert ys.min() <= 12 * scale and xs.min() <= 22 * scale and xs.max() >= 148 * scale
    assert ys.max() <= 40 * scale  # only around the caption
    plain = thumbnail(tmp_path / "out.dcm", None)
    assert not ((np.asarray(Image.open(__import__("io").BytesIO(plain)).convert("RGB"))[..., 0] > 200)
                & (np.asarray(Image.open(__import__("io").BytesIO(plain)).convert("RGB"))[..., 1] < 60)).any()

