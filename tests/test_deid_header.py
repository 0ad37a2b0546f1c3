"""Annex E on the header: planted PHI in sequences, private tags and descriptions; keyed UIDs and references across files; dates and times; tokens; Clean Graphics."""

from __future__ import annotations

import glob
import json
import os
import re
import struct
import subprocess
import sys
import warnings
from datetime import datetime, timedelta
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


def test_planted_phi_in_sequences_private_tags_and_descriptions_is_removed(deid, tmp_path):
    src = _write(_rich_dataset(), tmp_path / "in.dcm")
    result = deid.deidentify_file(src, tmp_path / "out")
    out = pydicom.dcmread(result.output)
    text = output_text(out)
    raw = fold(result.output.read_bytes().decode("latin-1"))
    for value in ("garcia", "marquez", "gabriel", "778899", "1020304050", "19270306", "aracataca",
                  "555 1234", "acc20240001", "macondo", "buendia", "aureliano", "ursula", "rp 555"):
        assert value not in text, value
        assert value not in raw, value
    assert not [e for e in out if e.tag.is_private]
    assert out.PatientSex == "M" and out.PatientAge == "096Y"  # kept characteristics, age from birth date
    assert "TORAX" in out.StudyDescription  # clean descriptors keeps the useful words
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == Keyring(KEY).uid("1.2.3.4.5.6.2")
    # free text is scrubbed with surrogates (issue 10.1), not blanked: the sentence stays readable
    assert "paciente" in out.ImageComments and "778899" not in out.ImageComments
    assert out.ReferringPhysicianName != "BUENDÍA^AURELIANO"


def test_uids_are_keyed_consistent_across_files_and_differ_by_key(tmp_path):
    a = _write(_rich_dataset(sop="1.2.3.4.5.6.1"), tmp_path / "a.dcm")
    b = _write(_rich_dataset(sop="1.2.3.4.5.6.2"), tmp_path / "b.dcm")
    d1 = build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)
    d2 = build_deidentifier(DeidSettings("latam", clean_pixels=False), b"another-key-of-32-bytes-length!!")
    ra, rb = d1.deidentify_file(a, tmp_path / "o1"), d1.deidentify_file(b, tmp_path / "o1")
    assert ra.study_uid == rb.study_uid and ra.series_uid == rb.series_uid and ra.sop_uid != rb.sop_uid
    rc = d2.deidentify_file(a, tmp_path / "o2")
    assert rc.study_uid != ra.study_uid
    assert rc.patient_token != ra.patient_token
    again = d1.deidentify_file(a, tmp_path / "o3")
    assert again.sop_uid == ra.sop_uid and again.sha256 == ra.sha256  # deterministic, byte for byte


def test_dates_and_times_move_together_so_intervals_survive(deid, tmp_path):
    src = _write(_rich_dataset(), tmp_path / "in.dcm")
    out = pydicom.dcmread(deid.deidentify_file(src, tmp_path / "out").output)

    def dt(d: str, t: str) -> datetime:
        return datetime.strptime(d + t.split(".")[0], "%Y%m%d%H%M%S")

    # Dates move by whole days (the same as a date written alone or in a report) and times of day by
    # the offset's seconds modulo 24 h: day intervals survive exactly, time intervals modulo a day.
    before = dt("20240116", "090000") - dt("20240115", "101530")
    after = dt(out.ContentDate, out.ContentTime) - dt(out.StudyDate, out.StudyTime)
    day = timedelta(days=1)
    assert (after % day) == (before % day)
    days_after = (datetime.strptime(out.ContentDate, "%Y%m%d") - datetime.strptime(out.StudyDate, "%Y%m%d")).days
    assert days_after == 1
    assert out.StudyDate != "20240115" and out.StudyTime.split(".")[0] != "101530"
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_paired_date_and_time_move_by_exactly_the_patient_offset(tmp_path):
    d = build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)
    result = d.deidentify_file(_save(_image("1.2.3.100.1.8"), tmp_path / "a.dcm"), tmp_path / "out")
    out = pydicom.dcmread(result.output)
    offset = Keyring(KEY).time_offset(result.patient_token, d.profile.date_shift_range_days)
    for date_kw, time_kw, before in (("StudyDate", "StudyTime", "20230701235930"),
                                     ("ContentDate", "ContentTime", "20230702000115")):
        was = datetime.strptime(before, "%Y%m%d%H%M%S")
        assert out[date_kw].value == (was.date() + timedelta(days=offset.days)).strftime("%Y%m%d"), date_kw
        clock = (was + timedelta(seconds=offset.seconds)).time()  # the time of day, mod 24 h, no carry
        assert out[time_kw].value == clock.strftime("%H%M%S"), time_kw


def test_the_same_national_id_gives_the_same_token_whatever_the_name(tmp_path):
    d = build_deidentifier(DeidSettings("latam", {}, "p1", {"RNEC": "CO-CC"}, clean_pixels=False), KEY)
    other = build_deidentifier(DeidSettings("latam", {}, "p2", {"RNEC": "CO-CC"}, clean_pixels=False), KEY)
    a = _write(_rich_dataset(), tmp_path / "a.dcm")
    b = _write(_rich_dataset(PatientName="Garcia Marquez^Gabriel", PatientID="999", study="9.9.9"), tmp_path / "b.dcm")
    assert d.deidentify_file(a, tmp_path / "o").patient_token == other.deidentify_file(b, tmp_path / "o").patient_token


def test_keyring_refuses_a_missing_key():
    from anonymization.keys import MissingKeyError, load_key

    with pytest.raises(MissingKeyError):
        load_key("")
    assert Keyring(KEY).uid("1.2.3") == Keyring(KEY).uid("1.2.3 ")


def test_sr_and_seg_references_map_to_the_referenced_files_new_uids(tmp_path):
    d = build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)
    image = _save(_image("1.2.3.100.1.1"), tmp_path / "ct.dcm")
    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = "1.2.840.10008.5.1.4.1.1.2", "1.2.3.100.1.1"
    series = Dataset()
    series.SeriesInstanceUID = "1.2.3.100.1"
    series.ReferencedSOPSequence = Sequence([ref])
    evidence = Dataset()
    evidence.StudyInstanceUID = "1.2.3.100"
    evidence.ReferencedSeriesSequence = Sequence([series])
    content = Dataset()  # an SR IMAGE content item referencing the CT
    content.RelationshipType, content.ValueType = "CONTAINS", "IMAGE"
    content.ReferencedSOPSequence = Sequence([ref])
    sr = _image("1.2.3.100.2.1", sop_class="1.2.840.10008.5.1.4.1.1.88.22", series="1.2.3.100.2", Modality="SR",
                CurrentRequestedProcedureEvidenceSequence=Sequence([evidence]), ContentSequence=Sequence([content]))
    seg_frame = Dataset()  # SEG: source image of each frame
    seg_frame.DerivationImageSequence = Sequence([Dataset()])
    seg_frame.DerivationImageSequence[0].SourceImageSequence = Sequence([ref])
    seg = _image("1.2.3.100.3.1", sop_class="1.2.840.10008.5.1.4.1.1.66.4", series="1.2.3.100.3", Modality="SEG",
                 ReferencedSeriesSequence=Sequence([series]), PerFrameFunctionalGroupsSequence=Sequence([seg_frame]))
    out_ct = pydicom.dcmread(d.deidentify_file(image, tmp_path / "out").output)
    out_sr = pydicom.dcmread(d.deidentify_file(_save(sr, tmp_path / "sr.dcm"), tmp_path / "out").output)
    out_seg = pydicom.dcmread(d.deidentify_file(_save(seg, tmp_path / "seg.dcm"), tmp_path / "out").output)

    new_sop = out_ct.SOPInstanceUID
    assert new_sop != "1.2.3.100.1.1"
    ev = out_sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert ev.StudyInstanceUID == out_ct.StudyInstanceUID
    assert ev.ReferencedSeriesSequence[0].SeriesInstanceUID == out_ct.SeriesInstanceUID
    assert ev.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == new_sop
    assert out_sr.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == new_sop
    src_ref = out_seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert src_ref.ReferencedSOPInstanceUID == new_sop
    assert out_seg.ReferencedSeriesSequence[0].SeriesInstanceUID == out_ct.SeriesInstanceUID
    assert out_seg.FrameOfReferenceUID == out_ct.FrameOfReferenceUID == out_sr.FrameOfReferenceUID
    # class UIDs are registered, not identities: they stay what they are
    assert src_ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert out_ct.StudyInstanceUID == out_sr.StudyInstanceUID == out_seg.StudyInstanceUID


@pytest.mark.parametrize("clean_graphics", [True, False])
def test_clean_graphics_removes_overlays_curves_icons_and_annotation_text(tmp_path, clean_graphics):
    d = build_deidentifier(DeidSettings("latam", {"options": {"clean_graphics": clean_graphics}}, clean_pixels=False), KEY)
    src = _save(_graphics(_image("1.2.3.100.1.7")), tmp_path / "g.dcm")
    result = d.deidentify_file(src, tmp_path / "out")
    out = pydicom.dcmread(result.output)
    tags = {int(e.tag) for e in out.iterall()}
    assert not any(t >> 24 == 0x50 for t in tags), "curves"
    assert not [t for t in tags if t >> 16 == 0x6000 and t & 0xFFFF in (0x3000, 0x4000, 0x0022, 0x1500)], "overlay data/text"
    assert "IconImageSequence" not in out
    assert b"QUINTERO" not in result.output.read_bytes().upper()
    for ann in out.get("GraphicAnnotationSequence", []):
        for t in ann.get("TextObjectSequence", []):
            assert "QUINTERO" not in str(t.get("UnformattedTextValue", "")).upper()
    codes = {i.CodeValue for i in out.DeidentificationMethodCodeSequence}
    assert ("113103" in codes) == clean_graphics


def test_an_encapsulated_pdf_is_published_readable_and_scrubbed(tmp_path):
    """Encapsulated PDF (PS3.3 A.45): the document is scrubbed and kept, never emptied or copied as is."""
    documents = pytest.importorskip("anonymization.documents")
    pdf = documents.write_pdf(["Informe de MUÑOZ PÉREZ ANA LUCÍA, documento 52318907.\nNódulo de 8 mm en lóbulo superior."])
    ds = hospital_ct(SOPClassUID="1.2.840.10008.5.1.4.1.1.104.1", Modality="DOC")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    for kw in ("Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "SamplesPerPixel",
               "PhotometricInterpretation", "PixelData"):
        delattr(ds, kw)
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) & 1 else b"")
    deid = build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)
    result = deid.deidentify_file(save(ds, tmp_path / "doc.dcm"), tmp_path / "out")
    out = pydicom.dcmread(result.output)
    assert out.MIMETypeOfEncapsulatedDocument == "application/pdf"
    text = " ".join(documents.pdf_pages(bytes(out.EncapsulatedDocument)))
    assert "Nódulo de 8 mm" in text  # readable
    assert "52318907" not in text and "MUÑOZ" not in text.upper() and "MUNOZ" not in text.upper()


def test_a_residual_names_the_element_and_the_kind_of_value_never_the_value(tmp_path):
    """A public binary element the rules keep (an ICC profile) carrying the patient ID as bytes."""
    ds = hospital_ct()
    ds.ICCProfile = b"acsp" + b"\x00" * 12 + b"patient 52318907 " + b"\x00" * 11
    deid = build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)
    with pytest.raises(Quarantine) as q:
        deid.deidentify_file(save(ds, tmp_path / "icc.dcm"), tmp_path / "out")
    assert str(q.value) == "residual_phi: (0028,2000) patient_id"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*.dcm"))
