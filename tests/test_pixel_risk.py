"""The one pixel-risk rule (issue 9.3): profile data, one function, the same answer in `sta deid` and the DAG.

Three files hospitals really send, each with the patient's name drawn into
the pixels and nothing in the header admitting it:

* a CT dose screen saved by the scanner (ImageType DERIVED\\SECONDARY\\SCREEN SAVE,
  CT Image Storage, BurnedInAnnotation NO),
* a dose report captured as a Secondary Capture (modality CT, ORIGINAL\\PRIMARY),
* an ultrasound image (BurnedInAnnotation absent).

All three must be OCR-cleaned by `sta deid` and by the partner DAG: the
name is gone from the output pixels and from the thumbnails, and
BurnedInAnnotation is NO only after that.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from anonymization.pixel_risk import pixels_at_risk
from foundation.profiles import load_profile

PROJECT = Path(__file__).resolve().parent.parent
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
NAME, PID = "QUINTERO ALVAREZ^MARTINA", "52318907"
CT_IMAGE, SC_IMAGE, US_IMAGE = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.7", "1.2.840.10008.5.1.4.1.1.6.1"


def _ds(modality: str, sop_class: str, arr: np.ndarray, **attrs) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = NAME, PID, "19580703", "F"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber = "20240105", "101500", "CA240000077"
    ds.Modality = modality
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    ds.Manufacturer = "ACME"
    ds.Rows, ds.Columns = arr.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for k, v in attrs.items():
        setattr(ds, k, v)
    ds.PixelData = arr.tobytes()
    return ds


def _screen(lines: list[str], size=(512, 384), background: int = 30) -> np.ndarray:
    img = Image.new("L", size, background)
    d = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, 16)
    for k, line in enumerate(lines):
        d.text((16, 16 + 26 * k), line, font=font, fill=235)
    return np.array(img)


def hospital_files() -> dict[str, Dataset]:
    """The three at-risk files of this issue, as a scanner, a PACS capture and an ultrasound write them."""
    dose = ["Dose Report", f"Patient: {NAME.replace('^', ' ')}", f"ID: {PID}", "CTDIvol 12.3 mGy  DLP 456 mGy*cm"]
    screen_save = _ds("CT", CT_IMAGE, _screen(dose), ImageType=["DERIVED", "SECONDARY", "SCREEN SAVE"],
                      BurnedInAnnotation="NO", SeriesDescription="Patient Protocol")
    dose_sc = _ds("CT", SC_IMAGE, _screen(dose[1:] + ["Total DLP 980"]), ImageType=["ORIGINAL", "PRIMARY"],
                  ConversionType="WSD", BurnedInAnnotation="NO")
    rng = np.random.default_rng(3)
    us = (rng.random((384, 512)) * 20).astype(np.uint8)
    us[80:340, 120:400] = (rng.random((260, 280)) * 140 + 40).astype(np.uint8)
    img = Image.fromarray(us)
    ImageDraw.Draw(img).text((10, 8), f"{NAME.replace('^', ' ')}  {PID}", font=ImageFont.truetype(FONT, 16), fill=255)
    ultrasound = _ds("US", US_IMAGE, np.array(img))
    return {"screen_save_ct": screen_save, "dose_report_sc": dose_sc, "ultrasound": ultrasound}


def name_left(arr: np.ndarray) -> list[str]:
    """Words of the planted name or ID still readable by an independent OCR (two preprocessings)."""
    import pytesseract

    g = arr if arr.ndim == 2 else arr[..., :3].mean(axis=-1)
    g = (g.astype(np.float32) / max(1.0, float(g.max())) * 255).astype(np.uint8)
    views = [Image.fromarray(255 - g), Image.fromarray(np.where(g >= 128, 0, 255).astype(np.uint8)).resize((g.shape[1] * 2, g.shape[0] * 2))]
    text = " ".join(pytesseract.image_to_string(v, lang="eng", config="--psm 11") for v in views).upper()
    return [w for w in ("QUINTERO", "ALVAREZ", "MARTINA", PID) if w in text]


# ------------------------------------------------------------------ the rule as data


def test_the_three_files_are_at_risk_by_the_profile_rule_and_a_plain_ct_is_not():
    profile = load_profile("latam")
    files = hospital_files()
    reasons = {k: pixels_at_risk(ds, profile).reason for k, ds in files.items()}
    assert all(pixels_at_risk(ds, profile) for ds in files.values()), reasons
    assert reasons == {"screen_save_ct": "image_type:SCREEN SAVE", "dose_report_sc": "sop_class",
                       "ultrasound": "sop_class"}
    plain = _ds("CT", CT_IMAGE, np.zeros((8, 8), np.uint8), ImageType=["ORIGINAL", "PRIMARY", "AXIAL"])
    assert not pixels_at_risk(plain, profile)
    # The same rule is data: a profile without the SCREEN SAVE value trusts the screen save...
    other = profile.pixel_risk.model_copy(update={"image_type": ["SECONDARY"]})
    assert pixels_at_risk(files["screen_save_ct"], other).reason == "image_type:SECONDARY"
    other = profile.pixel_risk.model_copy(update={"image_type": [], "series_description": []})
    assert not pixels_at_risk(files["screen_save_ct"], other)
    # ...and a profile with the option off cleans nothing.
    off = load_profile("latam", {"options": {"clean_pixel_data": False}})
    assert not pixels_at_risk(files["ultrasound"], off)


def test_every_profile_declares_the_rule_and_overrides_merge():
    from foundation.profiles import available_profiles

    for name in available_profiles():
        rule = load_profile(name).pixel_risk
        assert rule.sop_classes and "SCREEN SAVE" in rule.image_type and rule.modalities.get("US") == "always", name
    assert load_profile("latam_mammography").pixel_risk.mode("MG") == "always"
    assert load_profile("latam").pixel_risk.mode("MG") == "flagged"
    # partner overrides written with the section's former name still apply
    assert load_profile("latam", {"pixel_policy": {"modalities": {"CR": "always"}}}).pixel_risk.mode("CR") == "always"


def test_conversion_type_series_description_and_sop_families():
    profile = load_profile("latam")
    arr = np.zeros((8, 8), np.uint8)
    assert pixels_at_risk(_ds("DX", "1.2.840.10008.5.1.4.1.1.1", arr, ConversionType="DF"), profile).reason == "conversion_type:DF"
    assert pixels_at_risk(_ds("CT", CT_IMAGE, arr, SeriesDescription="Dose Report"), profile).reason == "series_description"
    assert pixels_at_risk(_ds("OT", "1.2.840.10008.5.1.4.1.1.7.2", arr), profile).reason == "sop_class"  # multi-frame SC
    # "1.2.840.10008.5.1.4.1.1.77.1.1" (VL endoscopy) is in its family, "...1.1.7" is not a prefix of it
    assert pixels_at_risk(_ds("XX", "1.2.840.10008.5.1.4.1.1.77.1.1", arr), profile).reason == "sop_class"


def test_audit_sampling_is_deterministic_and_follows_the_profile_rate():
    profile = load_profile("latam", {"pixel_risk": {"audit_rate": 0.25}})
    arr = np.zeros((8, 8), np.uint8)
    files = [_ds("CT", CT_IMAGE, arr, ImageType=["ORIGINAL", "PRIMARY"]) for _ in range(400)]
    picks = [pixels_at_risk(ds, profile).audit for ds in files]
    assert 60 <= sum(picks) <= 140
    assert picks == [pixels_at_risk(ds, profile).audit for ds in files]
    none = load_profile("latam", {"pixel_risk": {"audit_rate": 0.0}})
    assert not any(pixels_at_risk(ds, none).audit for ds in files)


# ------------------------------------------------------------------ sta deid


def _write(files: dict[str, Dataset], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, ds in files.items():
        ds.save_as(folder / f"{name}.dcm", enforce_file_format=True)


def _sta_deid(src: Path, out: Path, q: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sta.cli", "deid", str(src), str(out), "--quarantine", str(q), *extra],
                          capture_output=True, text=True, cwd=PROJECT, env={**os.environ, "OMP_THREAD_LIMIT": "1"},
                          timeout=300)


def test_sta_deid_cleans_all_three_and_quarantines_them_without_a_cleaner(tmp_path):
    files = hospital_files()
    _write(files, tmp_path / "in")
    r = _sta_deid(tmp_path / "in", tmp_path / "out", tmp_path / "q")
    assert r.returncode == 0, r.stderr[-3000:]
    outputs = sorted((tmp_path / "out").rglob("*.dcm"))
    assert len(outputs) == 3, (r.stdout[-2000:], sorted(p.name for p in (tmp_path / "q").rglob("*")))
    by_class = {}
    for path in outputs:
        ds = pydicom.dcmread(path)
        by_class[(ds.SOPClassUID, ds.Modality)] = ds
        assert ds.BurnedInAnnotation == "NO"
        assert name_left(ds.pixel_array) == [], ds.SOPClassUID
    assert set(by_class) == {(CT_IMAGE, "CT"), (SC_IMAGE, "CT"), (US_IMAGE, "US")}
    # Without a pixel cleaner, at-risk files are refused, never published as they are.
    r = _sta_deid(tmp_path / "in", tmp_path / "out2", tmp_path / "q2", "--no-pixel-cleaning")
    assert not list((tmp_path / "out2").rglob("*.dcm"))
    reasons = [json.loads(p.read_text())["code"] for p in (tmp_path / "q2").rglob("*.reason.json")]
    assert sorted(reasons) == ["burned_in_text"] * 3, reasons


# ------------------------------------------------------------------ the partner DAG


@pytest.mark.dag
def test_partner_dag_cleans_all_three_and_their_thumbnails(airflow_db, tmp_path_factory):
    from foundation.partners import load_partners
    from synth.airflow_run import run_dag

    root = tmp_path_factory.mktemp("pixel-risk-data")
    old = os.environ.get("STA_DATA_ROOT")
    os.environ["STA_DATA_ROOT"] = str(root)
    try:
        partner = next(p for p in load_partners() if p.id == "clinica_andes_co")
        _write(hospital_files(), root / "incoming" / partner.id / "2024" / "dose")
        run = run_dag(partner.dag_id)
        assert run.state == "success", [(t.task_id, t.map_index, t.state) for t in run.tasks]
        published = sorted(partner.root().dicom.rglob("*.dcm"))
        quarantined = [json.loads(p.read_text()) for p in partner.root().quarantine.rglob("*.reason.json")]
        assert len(published) == 3, quarantined
        for path in published:
            ds = pydicom.dcmread(path)
            assert ds.BurnedInAnnotation == "NO"
            assert name_left(ds.pixel_array) == [], ds.SOPClassUID
        thumbs = sorted(partner.root().thumbnails.rglob("*.png")) + sorted(partner.root().thumbnails.rglob("*.webp"))
        assert thumbs
        for t in thumbs:
            assert name_left(np.array(Image.open(t).convert("L"))) == [], t.name
    finally:
        if old is None:
            os.environ.pop("STA_DATA_ROOT", None)
        else:
            os.environ["STA_DATA_ROOT"] = old
