"""The sample-data generator: reproducible, valid files, and a truth file that tells the truth."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pydicom
import pytest
from pypdf import PdfReader

from synth import generate
from synth.people import cpf_check_digits

N = 8
SEED = 20260


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, dict]:
    """Two runs with the same seed: one here, one in a fresh interpreter with another hash seed."""
    a = tmp_path_factory.mktemp("synth_a")
    b = tmp_path_factory.mktemp("synth_b")
    sa = generate(a, N, SEED)
    code = ("import json, sys; from pathlib import Path; from synth import generate; "
            f"print(json.dumps(generate(Path(sys.argv[1]), {N}, {SEED})))")
    env = dict(os.environ, PYTHONHASHSEED="4242")
    proc = subprocess.run([sys.executable, "-c", code, str(b)], cwd=Path(__file__).resolve().parent.parent,
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    sb = json.loads(proc.stdout.strip().splitlines()[-1])
    return a, b, sa, sb


@pytest.fixture(scope="module")
def tree(trees) -> Path:
    return trees[0]


@pytest.fixture(scope="module")
def truth(tree: Path) -> dict:
    return json.loads((tree / "truth.json").read_text(encoding="utf-8"))


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _squash(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def test_same_seed_gives_byte_identical_trees(trees) -> None:
    a, b, sa, sb = trees
    ha, hb = _hashes(a), _hashes(b)
    assert ha == hb
    assert len(ha) > 50
    assert {k: v for k, v in sa.items() if k not in ("out", "truth", "seconds")} == \
        {k: v for k, v in sb.items() if k not in ("out", "truth", "seconds")}


def test_other_seed_gives_other_data(tmp_path: Path, truth: dict) -> None:
    generate(tmp_path, 3, SEED + 1, faults=False)
    other = json.loads((tmp_path / "truth.json").read_text(encoding="utf-8"))
    assert not other["faults"]
    assert not set(other["files"]) & set(truth["files"]) or \
        set(other["phi_values"]) != set(truth["phi_values"])


def test_refuses_to_overwrite_unless_asked(tree: Path, tmp_path: Path) -> None:
    with pytest.raises(FileExistsError):
        generate(tree, 2, SEED)
    generate(tmp_path, 2, 1, faults=False)
    generate(tmp_path, 2, 1, faults=False, overwrite=True)
    assert (tmp_path / "truth.json").exists()


def test_summary_matches_tree(trees, truth: dict) -> None:
    a, _, summary, _ = trees
    files = [p for p in a.rglob("*") if p.is_file() and p.name != "truth.json"]
    assert len(files) == len(truth["files"]) == sum(summary["files"].values())
    assert summary["truth"].endswith("truth.json")
    assert set(summary["files"]) == {"clinica_andes_co", "hospital_paulista_br"}
    assert not (a / ".truth-tmp").exists()


def test_every_dicom_parses_with_pixels(tree: Path, truth: dict) -> None:
    ts_seen = Counter()
    for rel, e in truth["files"].items():
        if e["kind"] != "dicom":
            continue
        raw = (tree / rel).read_bytes()
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(io.BytesIO(raw))
        assert ds.file_meta.TransferSyntaxUID == e["transfer_syntax"]
        assert ds.SOPInstanceUID == e["sop_uid"] == ds.file_meta.MediaStorageSOPInstanceUID
        assert ds.Modality == e["modality"]
        assert ds.AccessionNumber == e["accession"]
        arr = ds.pixel_array
        assert arr.shape[-2 if ds.SamplesPerPixel == 1 else -3] == ds.Rows
        ts_seen[ds.file_meta.TransferSyntaxUID.name] += 1
    assert set(ts_seen) == {"Explicit VR Little Endian", "Implicit VR Little Endian", "RLE Lossless"}
    assert ts_seen["Explicit VR Little Endian"] > ts_seen["Implicit VR Little Endian"]


def test_fast_writer_equals_pydicom_writer(tree: Path, truth: dict) -> None:
    """Our per-series element cache must write what pydicom itself would write."""
    checked = 0
    for rel, e in truth["files"].items():
        if e["kind"] == "dicom" and e["instance_number"] <= 2:
            raw = (tree / rel).read_bytes()
            buf = io.BytesIO()
            pydicom.dcmread(io.BytesIO(raw)).save_as(buf, enforce_file_format=True)
            assert buf.getvalue() == raw, rel
            checked += 1
    assert checked > 10


def test_truth_phi_is_really_in_the_dicom_files(tree: Path, truth: dict) -> None:
    names = 0
    for rel, e in truth["files"].items():
        if e["kind"] != "dicom":
            continue
        raw = (tree / rel).read_bytes()
        enc = "latin-1" if e["charset"] == "ISO_IR 100" else "utf-8"
        for value in e["phi"]:
            assert value.encode(enc) in raw, (rel, value)
        ds = pydicom.dcmread(io.BytesIO(raw), stop_before_pixels=True)
        assert str(ds.PatientName) == e["tags"]["PatientName"]
        assert str(ds.PatientName) in e["phi"]
        assert ds.PatientID == e["mrn"] and ds.IssuerOfPatientID in ("CANDES", "HPAUL")
        for kw in ("PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers", "ReferringPhysicianName",
                   "InstitutionName", "AccessionNumber", "StudyDate", "StudyTime", "StudyInstanceUID"):
            assert str(ds[kw].value) in e["phi"], kw
        assert "RequestAttributesSequence[0].ReferencedStudySequence[0].ReferencedSOPInstanceUID" in e["tags"]
        names += 1
    assert names > 50


def test_truth_phi_is_really_in_the_reports(tree: Path, truth: dict) -> None:
    langs = Counter()
    for rel, e in truth["files"].items():
        if e["kind"] != "report":
            continue
        data = (tree / rel).read_bytes()
        if e["format"] == "pdf":
            assert data.startswith(b"%PDF")
            text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
        else:
            text = data.decode(e["encoding"])
        text = _squash(text)
        for value in e["phi"]:
            assert _squash(value) in text, (rel, value)
        assert e["accession"] in text
        label = {"es": "Paciente:", "pt": "Nome:", "en": "Patient:"}[e["language"]]
        assert label in text
        langs[(e["partner"], e["language"])] += 1
    assert {lang for _, lang in langs} == {"es", "pt", "en"}
    assert langs[("clinica_andes_co", "es")] and langs[("hospital_paulista_br", "pt")]


def test_phi_values_is_the_sorted_union(truth: dict) -> None:
    values = truth["phi_values"]
    assert values == sorted(set(values), key=lambda s: s.encode("utf-8"))
    union = set()
    for e in truth["files"].values():
        for k, v in e.items():
            if "phi" in k:
                union.update(v if isinstance(v, list) else [])
    assert union <= set(values)


def test_all_modalities_with_findings(tree: Path, truth: dict) -> None:
    mods = {e["modality"] for e in truth["files"].values() if e["kind"] == "dicom"}
    assert mods >= {"CT", "MR", "US", "MG", "CR", "DX"}
    accs = {e["accession"] for e in truth["files"].values() if e["kind"] == "dicom"}
    assert {f["accession"] for f in truth["findings"]} == accs
    for f in truth["findings"]:
        assert f["labels"]["finding"]
        if f["modality"] == "MG":
            assert f["labels"]["birads"] in {"1", "2", "3", "4"}
        if f["report"]:
            assert truth["files"][f["report"]]["accession"] == f["accession"]


def test_burned_in_text_is_declared(tree: Path, truth: dict) -> None:
    burned = [(rel, e) for rel, e in truth["files"].items() if e["kind"] == "dicom" and e["burned_in_phi"]]
    assert {e["modality"] for _, e in burned} >= {"US"}
    for rel, e in burned:
        ds = pydicom.dcmread(tree / rel, stop_before_pixels=True)
        assert ds.BurnedInAnnotation == "YES"
        assert e["mrn"] in e["burned_in_phi"]
    if shutil.which("tesseract"):
        import numpy as np
        import pytesseract
        from PIL import Image

        rel, e = next((r, x) for r, x in burned if x["modality"] == "US")
        arr = pydicom.dcmread(tree / rel).pixel_array
        if arr.ndim == 4 or (arr.ndim == 3 and arr.shape[-1] != 3):
            arr = arr[0]
        img = Image.fromarray(np.asarray(arr, dtype=np.uint8)).convert("L")
        assert e["mrn"] in pytesseract.image_to_string(img)


def test_shared_patients_keep_id_and_change_name(tree: Path, truth: dict) -> None:
    shared = truth["shared_patients"]
    assert shared
    for nid, s in shared.items():
        names = s["names"]
        assert set(names) == {"clinica_andes_co", "hospital_paulista_br"}
        assert names["clinica_andes_co"] != names["hospital_paulista_br"]
        issuer = "RNEC" if s["national_id_type"] == "CC" else "RFB"
        for partner, files in s["files"].items():
            dcm = [f for f in files if truth["files"][f]["kind"] == "dicom"]
            assert dcm, partner
            ds = pydicom.dcmread(tree / dcm[0], stop_before_pixels=True)
            item = ds.OtherPatientIDsSequence[0]
            assert re.sub(r"\D", "", item.PatientID) == nid
            assert item.IssuerOfPatientID == issuer and item.TypeOfPatientID == "TEXT"
            assert str(ds.PatientName) == names[partner]


def test_national_ids(truth: dict) -> None:
    kinds = Counter()
    for p in truth["patients"].values():
        nid, kind = p["national_id"], p["national_id_type"]
        kinds[kind] += 1
        if kind == "CPF":
            assert len(nid) == 11 and cpf_check_digits(nid[:9]) == nid[9:]
        elif kind == "CC":
            assert 6 <= len(nid) <= 10 and nid.isdigit()
    assert kinds["CPF"] and kinds["CC"] and kinds[None]


def test_patient_without_national_id_has_no_document(tree: Path, truth: dict) -> None:
    keys = {k for k, p in truth["patients"].items() if p["national_id"] is None}
    rel = next(r for r, e in truth["files"].items() if e["kind"] == "dicom" and e["patient_key"] in keys)
    ds = pydicom.dcmread(tree / rel, stop_before_pixels=True)
    assert "OtherPatientIDsSequence" not in ds


def test_faults_are_present_and_broken(tree: Path, truth: dict) -> None:
    kinds = {"zero_byte", "truncated_dicom", "not_dicom", "random_binary", "dicomdir", "encrypted_pdf",
             "utf16_no_bom"}
    by_partner: dict[str, set[str]] = {}
    for f in truth["faults"]:
        by_partner.setdefault(f["partner"], set()).add(f["fault"])
        assert f["expected"]
        data = (tree / f["path"]).read_bytes()
        if f["fault"] == "zero_byte":
            assert data == b""
        elif f["fault"] == "truncated_dicom":
            with pytest.raises(Exception):
                pydicom.dcmread(io.BytesIO(data)).pixel_array
        elif f["fault"] == "not_dicom":
            assert f["path"].endswith(".dcm") and data[128:132] != b"DICM"
        elif f["fault"] == "dicomdir":
            ds = pydicom.dcmread(io.BytesIO(data))
            assert ds.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
        elif f["fault"] == "encrypted_pdf":
            assert PdfReader(io.BytesIO(data)).is_encrypted
        elif f["fault"] == "utf16_no_bom":
            assert not data.startswith((b"\xff\xfe", b"\xfe\xff"))
            assert truth["files"][f["path"]]["accession"] in data.decode("utf-16-le")
    assert by_partner == {"clinica_andes_co": kinds, "hospital_paulista_br": kinds}


def test_export_layout(tree: Path, truth: dict) -> None:
    rels = list(truth["files"])
    assert any(r.startswith("clinica_andes_co/informes/") for r in rels)
    assert any(r.startswith("hospital_paulista_br/laudos/") for r in rels)
    dicoms = [r for r, e in truth["files"].items() if e["kind"] == "dicom"]
    assert any(r.endswith(".dcm") for r in dicoms) and any("." not in r.rsplit("/", 1)[1] for r in dicoms)
    # several studies per patient across years
    years: dict[str, set[str]] = {}
    for e in truth["files"].values():
        if e["kind"] == "dicom":
            years.setdefault(e["patient_key"], set()).add(e["study_date"][:4])
    assert max(len(y) for y in years.values()) >= 2


def test_addresses_fit_dicom_lo() -> None:
    import random

    from synth.people import _address

    r = random.Random(5)
    for country in ("co", "br"):
        assert max(len(_address(r, country)[0]) for _ in range(5000)) <= 64
