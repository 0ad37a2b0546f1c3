"""Unit tests of the pipeline's small libraries: classify, quarantine, Parquet merge, config roots.

Body regions and labels: tests/test_labelling*.py."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from foundation.paths import PartnerRoot
from transforms.classify import Kind, classify
from transforms.parquet_store import merge_table
from foundation.quarantine import Reason, quarantine_file, read_reason


def test_classify_by_content_then_name(tmp_path):
    cases = {
        "a.dcm": b"\0" * 128 + b"DICM" + b"\2\0\0\0",
        "noext": b"\0" * 128 + b"DICM" + b"\2\0",
        "r.pdf": b"%PDF-1.4\n...",
        "scan.bin": b"\x89PNG\r\n\x1a\n....",
        "r.txt": "Paciente: X".encode(),
        "empty.dcm": b"",
        "x.docx": b"PK\3\4 zip",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    kinds = {name: classify(tmp_path / name) for name in cases}
    assert kinds == {"a.dcm": Kind.DICOM, "noext": Kind.DICOM, "r.pdf": Kind.REPORT, "scan.bin": Kind.REPORT,
                     "r.txt": Kind.REPORT, "empty.dcm": Kind.EMPTY, "x.docx": Kind.OTHER}


def test_quarantine_keeps_the_path_and_writes_a_reason(tmp_path):
    src = tmp_path / "in" / "a" / "b.dcm"
    src.parent.mkdir(parents=True)
    src.write_bytes(b"raw")
    dst = quarantine_file(src, tmp_path / "q", "a/b.dcm", Reason("truncated", "deidentify", "cut", "run1"))
    assert dst.read_bytes() == b"raw" and src.exists()
    assert read_reason(dst)["code"] == "truncated" and read_reason(dst)["stage"] == "deidentify"
    with pytest.raises(PermissionError):
        quarantine_file(src, tmp_path / "q", "../../escape.dcm", Reason("x", "y"))


def test_merge_by_key_is_idempotent_and_replaces_rows(tmp_path):
    path = tmp_path / "t.parquet"
    first = pa.table({"k": ["a", "b"], "v": [1, 2]})
    assert merge_table(path, first, ("k",)) == 2
    assert merge_table(path, first, ("k",)) == 2  # same input again: no duplicates
    assert merge_table(path, pa.table({"k": ["b", "c"], "v": [20, 3]}), ("k",)) == 3
    rows = {r["k"]: r["v"] for r in pq.read_table(path).to_pylist()}
    assert rows == {"a": 1, "b": 20, "c": 3}


def test_partner_root_refuses_paths_outside_it(tmp_path):
    root = PartnerRoot(tmp_path, "co", "p1")
    assert root.ensure_inside(root.landing / "x" / "y.dcm")
    for bad in (tmp_path / "co" / "partners" / "p2" / "x", tmp_path / "br" / "partners" / "p1", root.landing / ".." / ".." / "p2"):
        with pytest.raises(PermissionError):
            root.ensure_inside(bad)


def test_ledger_refuses_to_publish_when_a_file_is_unaccounted(tmp_path, monkeypatch):
    from foundation.partners import PartnerConfig
    from pipeline.ledger import LedgerMismatch, build_ledger

    partner = PartnerConfig.model_validate({"id": "p1", "name": "P", "country": "co", "region": "co",
                                            "source": {"type": "folder", "path": "x"}})
    root = partner.root(tmp_path)
    work = root.work("r1")
    (work / "outcomes").mkdir(parents=True)
    (work / "pull_report.json").write_text(json.dumps({"fetched": [{"landing_relpath": "a"}, {"landing_relpath": "b"}]}))
    (work / "outcomes" / "dicom-00000.jsonl").write_text(json.dumps({"relpath": "a", "status": "published", "reason": None}) + "\n")
    with pytest.raises(LedgerMismatch):
        build_ledger(partner, root, "r1")
    (work / "outcomes" / "classify.jsonl").write_text(json.dumps({"relpath": "b", "status": "quarantined", "reason": "not_dicom"}) + "\n")
    ledger = build_ledger(partner, root, "r1")
    assert ledger["balanced"] and ledger["pulled"] == 2 and ledger["quarantined"] == 1
