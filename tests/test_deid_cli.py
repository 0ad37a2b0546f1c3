"""`sta deid`: key required, outputs named by new UIDs, one manifest line per input."""

from __future__ import annotations

import glob
import json
import os
import re
import struct
import subprocess
import sys
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from anonymization.batch import DeidSettings, build_deidentifier
from anonymization.dicom import Quarantine
from anonymization.keys import Keyring
from anonymization.phi_scan import PhiSet
from anonymization.profiles import ProfileError, load_profile
from foundation.partners import ConfigError, load_partner
from tests.support.deid_files import (
    CHARSET_DIR, DEVICE_FIELDS, _charset_files, _graphics, _image, _names, _raw_element, _rich_bytes, _rich_dataset,
    _save, _write, code_item, fold, hospital_ct, identifying_values, leaks, output_forms, output_text, real_world_files,
    save, squash,
)

PROJECT = Path(__file__).resolve().parent.parent
KEY = os.environ["STA_SECRET_KEY"].encode()


def test_cli_refuses_without_a_key_and_prints_a_summary(tmp_path):
    src = _write(_rich_dataset(), tmp_path / "in" / "a" / "x.dcm")
    (tmp_path / "in" / "a" / "junk.dcm").write_bytes(b"junk")
    env = {k: v for k, v in os.environ.items() if k != "STA_SECRET_KEY"}
    sta = [sys.executable, "-m", "sta.cli", "deid", str(tmp_path / "in"), str(tmp_path / "out"),
           "--quarantine", str(tmp_path / "q"), "--workers", "2"]
    refused = subprocess.run(sta, capture_output=True, text=True, env=env, cwd=PROJECT)
    assert refused.returncode == 2 and "STA_SECRET_KEY" in refused.stdout + refused.stderr
    done = subprocess.run(sta, capture_output=True, text=True, env=os.environ | {}, cwd=PROJECT)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["input"] == 2 and summary["published"] == 1 and summary["by_reason"] == {"not_dicom": 1}
    # outputs are named by their new UIDs, never by input folder or file names
    outputs = list((tmp_path / "out").rglob("*.dcm"))
    assert len(outputs) == 1 and "x.dcm" not in str(outputs[0]) and outputs[0].name.startswith("2.25.")
    assert json.loads((tmp_path / "q" / "a" / "junk.dcm.reason.json").read_text())["code"] == "not_dicom"
    assert src.exists()


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


def test_manifest_names_inputs_whose_names_are_not_utf8(tmp_path):
    """File names are bytes on Linux: one that is not UTF-8 is still a manifest line (JSON escapes)."""
    from anonymization.batch import deidentify_tree

    inp = tmp_path / "in"
    inp.mkdir()
    (inp / "P\udce9REZ_1958.dcm").write_bytes(save(hospital_ct(), tmp_path / "x.dcm").read_bytes())
    manifest = tmp_path / "m.jsonl"
    summary = deidentify_tree(inp, tmp_path / "out", tmp_path / "q", DeidSettings("latam", clean_pixels=False),
                              manifest=manifest)
    lines = [json.loads(line) for line in manifest.read_text(encoding="ascii").splitlines()]
    assert [line["input"] for line in lines] == ["P\udce9REZ_1958.dcm"] and summary["published"] == 1
    assert "1958" not in lines[0]["output"] and "REZ" not in lines[0]["output"]


def test_two_inputs_with_one_sop_instance_uid_are_both_published_never_overwritten(tmp_path):
    from anonymization.batch import deidentify_tree

    inp = tmp_path / "in"
    a = save(hospital_ct(), inp / "a.dcm")
    (inp / "copy_of_a.dcm").write_bytes(a.read_bytes())  # the same file twice: one output
    b = hospital_ct(StudyDescription="TAC TORAX CONTRASTADO")  # same UIDs, other content
    save(b, inp / "b.dcm")
    manifest = tmp_path / "m.jsonl"
    deidentify_tree(inp, tmp_path / "out", tmp_path / "q", DeidSettings("latam", clean_pixels=False), manifest=manifest)
    lines = {json.loads(line)["input"]: json.loads(line) for line in manifest.read_text().splitlines()}
    assert all(line["status"] == "published" for line in lines.values())
    assert lines["a.dcm"]["output"] == lines["copy_of_a.dcm"]["output"]
    assert lines["b.dcm"]["output"] != lines["a.dcm"]["output"] and lines["b.dcm"]["output"].endswith(".2.dcm")
    outputs = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(outputs) == 2
    assert pydicom.dcmread(tmp_path / "out" / lines["b.dcm"]["output"]).StudyDescription == "TAC TORAX CONTRASTADO"


def test_a_code_fault_fails_the_batch_instead_of_quarantining_good_files(tmp_path):
    """A broken installation (an ImportError inside the de-identifier) is not a reason to quarantine
    a valid file: it propagates, so the task fails and the file stays where it was."""
    from anonymization.batch import deidentify_one
    from pydicom.data import get_testdata_file

    class Broken:
        def deidentify_file(self, *_a, **_k):
            raise ImportError("a module of the de-identifier is missing")

    src = Path(get_testdata_file("CT_small.dcm"))
    with pytest.raises(ImportError):
        deidentify_one(Broken(), src, "ct.dcm", tmp_path / "out", tmp_path / "q", keep_relpath=False)
    assert not (tmp_path / "q").exists() or not any((tmp_path / "q").iterdir())
    assert src.exists()
