"""``sta deid IN OUT --quarantine Q --manifest FILE.jsonl`` (issue 10.5), profiles per file (16.3),
US Safe Harbor (10.7), and re-encoding of files whose elements have odd lengths (10.4)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset

from anonymization.batch import DeidSettings, build_deidentifier
from foundation.partners import ConfigError, load_partner
from test_deid_identifiers import hospital_ct, save

PROJECT = Path(__file__).resolve().parent.parent
KEY = os.environ["STA_SECRET_KEY"].encode()


def test_manifest_has_one_line_per_input_and_outputs_are_named_by_new_uids(tmp_path):
    inp = tmp_path / "in"
    named = save(hospital_ct(), inp / "MUNOZ PEREZ ANA 52318907" / "torax.dcm")
    save(hospital_ct(sop="1.2.826.0.1.3680043.9.7.1.9", BodyPartExamined="BREAST"), inp / "mg.dcm")
    (inp / "notes.txt").write_text("not dicom")
    (inp / "link.dcm").symlink_to(named)
    (inp / "dirlink").symlink_to(inp / "MUNOZ PEREZ ANA 52318907")
    os.mkfifo(inp / "pipe.dcm")
    manifest = tmp_path / "raw-side" / "manifest.jsonl"
    cmd = [sys.executable, "-m", "sta.cli", "deid", str(inp), str(tmp_path / "out"), "--quarantine",
           str(tmp_path / "q"), "--manifest", str(manifest), "--no-pixel-cleaning"]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=PROJECT, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    by_input = {line["input"]: line for line in lines}
    assert set(by_input) == {"MUNOZ PEREZ ANA 52318907/torax.dcm", "mg.dcm", "notes.txt", "link.dcm", "dirlink",
                             "pipe.dcm"}
    for line in lines:
        assert list(line)[:4] == ["input", "status", "output", "reason"]
        assert line["status"] in ("published", "quarantined", "rejected")
        assert (line["output"] is None) == (line["status"] != "published")
        assert (line["reason"] is None) == (line["status"] == "published")
    assert by_input["link.dcm"]["status"] == "rejected" and by_input["link.dcm"]["reason"] == "symlink"
    assert by_input["dirlink"]["reason"] == "symlink"
    assert by_input["pipe.dcm"] == {**by_input["pipe.dcm"], "status": "rejected", "reason": "fifo"}
    assert by_input["notes.txt"]["status"] == "quarantined" and by_input["notes.txt"]["reason"] == "not_dicom"
    ct = by_input["MUNOZ PEREZ ANA 52318907/torax.dcm"]
    assert ct["status"] == "published" and ct["profile"] == "latam"
    assert by_input["mg.dcm"]["profile"] == "latam_mammography"  # chosen per file by the latam rules
    for line in (ct, by_input["mg.dcm"]):
        out = tmp_path / "out" / line["output"]
        assert out.exists() and all(part.startswith("2.25.") for part in Path(line["output"]).with_suffix("").parts)
        assert "MUNOZ" not in line["output"] and "52318907" not in line["output"]
    summary = json.loads(done.stdout)
    assert summary["input"] == 6 and summary["published"] + summary["quarantined"] + summary["rejected"] == 6


def test_us_safe_harbor_dates_to_the_year_and_ages_over_89_aggregated(tmp_path):
    d = build_deidentifier(DeidSettings("us_hipaa", clean_pixels=False), KEY)
    ds = hospital_ct(PatientBirthDate="19280301", StudyDate="20240115", PatientAge="095Y",
                     AcquisitionDate="20240115", AcquisitionTime="101500", RegionOfResidence="Miami-Dade",
                     ImageComments="Vive en 1200 Brickell Ave, Miami, FL 33131")
    result = d.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    out = pydicom.dcmread(result.output)
    assert result.profile == "us_hipaa"
    assert out.StudyDate == "20240101" and result.study_date_shifted.year == 2024  # the year alone
    assert "AcquisitionTime" not in out and "StudyTime" not in out
    assert out.PatientAge == "090Y" and result.age == 90 and result.birth_year is None
    assert "RegionOfResidence" not in out and "InstitutionName" not in out
    text = result.output.read_bytes().decode("latin-1")
    assert "Brickell" not in text and "33131" not in text and "Miami" not in text
    # the expert-determination option keeps date shifting
    expert = build_deidentifier(DeidSettings("us_hipaa_expert", clean_pixels=False), KEY)
    shifted = pydicom.dcmread(expert.deidentify_file(save(ds, tmp_path / "in2.dcm"), tmp_path / "o2").output)
    assert shifted.StudyDate not in ("20240115", "20240101")


def test_a_us_partner_cannot_use_a_non_us_profile(tmp_path):
    base = {"id": "mercy_us", "name": "Mercy", "country": "us", "region": "us",
            "source": {"type": "folder", "path": "incoming/mercy_us"}}
    bad = tmp_path / "mercy_us.yaml"
    bad.write_text(json.dumps({**base, "profile": "latam"}))
    with pytest.raises(ConfigError, match=r"mercy_us.yaml.*profile.*'us'.*latam"):
        load_partner(bad)
    bad.write_text(json.dumps(base))  # no profile named: the country's default
    assert load_partner(bad).profile == "us_hipaa"


def test_a_private_element_with_an_odd_length_does_not_break_re_encoding(tmp_path):
    """The US files that failed with 're-encoding: BytesLengthException': a private element whose
    length does not fit its dictionary VR, in a file whose pixels are decoded and re-encoded."""
    ds = hospital_ct(Modality="US", SOPClassUID="1.2.840.10008.5.1.4.1.1.6.1")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.add_new(0x00090010, "LO", "GEMS_IDEN_01")
    path = save(ds, tmp_path / "us.dcm")
    raw = path.read_bytes()
    # append a private US element of 3 bytes (explicit VR 'US', length 3) before the pixel data
    pix = raw.index(b"\xe0\x7f\x10\x00")
    odd = struct.pack("<HH2sH", 0x0009, 0x1030, b"US", 3) + b"\x01\x02\x03"
    path.write_bytes(raw[:pix] + odd + raw[pix:])
    cleaned: list[bool] = []

    def cleaner(d: Dataset, known: list[str]) -> None:  # stands for the OCR cleaner: pixels rewritten
        d.PixelData = bytes(len(d.PixelData))
        d.BurnedInAnnotation = "NO"
        cleaned.append(True)

    deid = build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)
    deid.pixel_cleaner = cleaner
    result = deid.deidentify_file(path, tmp_path / "out")
    assert cleaned and result.pixels_modified
    out = pydicom.dcmread(result.output)
    assert not [e for e in out if e.tag.is_private]
