"""Identifiers in any written form (issue 10.1), planted the way hospital files carry them.

Each class is planted by the test in a file built with pydicom (descriptions,
code meanings, SR text, comments, sequences) and checked absent in the OUTPUT
BYTES, decoded every way a reader could (Latin-1, UTF-8), case-, accent- and
separator-insensitively. Hypothesis varies where and how a value is written.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from anonymization.batch import DeidSettings, build_deidentifier
from anonymization.dicom import Quarantine
from anonymization.phi_scan import PhiSet

KEY = os.environ["STA_SECRET_KEY"].encode()


def squash(text: str) -> str:
    """The test's own folding: no accents, no case, no separators at all."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", text.casefold())


def output_forms(path: Path) -> str:
    raw = path.read_bytes()
    return squash(raw.decode("latin-1")) + "|" + squash(raw.decode("utf-8", "ignore"))


@pytest.fixture(scope="module")
def deid():
    return build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)


def hospital_ct(**extra) -> Dataset:
    """A CT header as a hospital PACS exports it: UTF-8, request/SR-like sequences, comments."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = extra.pop("sop", "1.2.826.0.1.3680043.9.7.1.1")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.7.1.2"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName = "MUÑOZ PÉREZ^ANA LUCÍA"
    ds.PatientID = "52318907"
    ds.OtherPatientIDs = "41825739012"
    ds.PatientBirthDate = "19580703"
    ds.PatientSex = "F"
    ds.StudyDate, ds.StudyTime = "20240115", "101530"
    ds.AccessionNumber = "A7781234"
    ds.StudyDescription = "TAC TORAX"
    ds.SeriesDescription = "AXIAL 1.25"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.Rows, ds.Columns = 2, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(8)
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def code_item(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", meaning
    return item


# -- each class of 10.1, planted and checked in the output bytes -----------------------------------
PLANTED = [
    # (where, value as written, the forms that must not survive (squashed))
    ("StudyDescription", "TAC TORAX CC 52.318.907", ["52318907"]),
    ("SeriesDescription", "CPF 418.257.390-12 AXIAL", ["41825739012"]),
    ("ImageComments", "Paciente nacida el 3 de julio de 1958, control", ["3dejuliode1958", "19580703"]),
    ("StudyDescription", "TORAX 3 Jul 1958", ["3jul1958"]),
    ("StudyDescription", "TORAX ana", ["ana"]),  # a 3-letter given name, another case
    ("SeriesDescription", "MUNOZ AXIAL", ["munoz"]),  # the header's accent dropped
    ("StudyDescription", "TORAX 03/07/1958", ["03071958"]),
]


@pytest.mark.parametrize("where,value,forms", PLANTED, ids=[p[1] for p in PLANTED])
def test_identifier_written_in_another_form_does_not_survive(deid, tmp_path, where, value, forms):
    src = save(hospital_ct(**{where: value}), tmp_path / "in.dcm")
    result = deid.deidentify_file(src, tmp_path / "out")
    text = output_forms(result.output)
    for form in forms:
        assert squash(form) not in text, form
    out = pydicom.dcmread(result.output)
    if where != "ImageComments":
        assert "TORAX" in str(out.get("StudyDescription", "TORAX")) or "AXIAL" in str(out.get("SeriesDescription", ""))


def test_cjk_two_character_names_are_found_in_text_without_spaces(deid, tmp_path):
    ds = hospital_ct(PatientName="Yamada^Tarou=山田^太郎", StudyDescription="胸部CT 山田太郎 様")
    result = deid.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    text = output_forms(result.output)
    assert "山田" not in text and "太郎" not in text and "yamada" not in text
    assert "胸部ct" in text  # the rest of the description survives


def test_a_relatives_name_in_sr_text_deep_in_a_sequence_is_scrubbed_not_blanked(deid, tmp_path):
    inner = Dataset()
    inner.RelationshipType, inner.ValueType = "CONTAINS", "TEXT"
    inner.ConceptNameCodeSequence = Sequence([code_item("Finding")])
    inner.TextValue = "Acompañada por su hija Lucía Fernández Ríos. Nódulo de 8 mm en lóbulo superior."
    outer = Dataset()
    outer.RelationshipType, outer.ValueType = "CONTAINS", "CONTAINER"
    outer.ContentSequence = Sequence([inner])
    ds = hospital_ct(ContentSequence=Sequence([outer]))
    result = deid.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    text = output_forms(result.output)
    assert "fernandez" not in text and "lucia" not in text
    out = pydicom.dcmread(result.output)
    kept = out.ContentSequence[0].ContentSequence[0].TextValue
    assert "Nódulo de 8 mm" in kept  # readable: scrubbed with surrogates, not emptied


def test_code_meanings_are_checked_too(deid, tmp_path):
    ds = hospital_ct(AnatomicRegionSequence=Sequence([code_item("Tórax de Muñoz 52318907")]))
    result = deid.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    text = output_forms(result.output)
    assert "52318907" not in text and "munoz" not in text


def test_national_ids_by_checksum_are_removed_even_when_the_header_does_not_hold_them(deid, tmp_path):
    # a valid CPF and a Chilean RUT that belong to nobody in the header (a relative, a companion)
    ds = hospital_ct(StudyDescription="TORAX", ImageComments="Responsable: CPF 529.982.247-25, RUT 12.345.678-5")
    result = deid.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    text = output_forms(result.output)
    assert "52998224725" not in text and "123456785" not in text


# -- one rule for cleaner and verifier ----------------------------------------------------------------
def test_the_rule_matches_forms_and_names_kinds_not_values():
    phi = PhiSet()
    phi.add_text("52318907", kind="patient_id")
    phi.add_name("GARCÍA^JOSÉ", kind="patient_name")
    phi.add_date("19580703", kind="birth_date")
    assert {k for k, _s, _e in phi.find("cc 52.318.907")} == {"patient_id"}
    assert {k for k, _s, _e in phi.find("Jose Garcia")} == {"patient_name"}
    assert {k for k, _s, _e in phi.find("nacido el 3 de julio de 1958")} == {"birth_date"}
    assert {k for k, _s, _e in phi.find("born Jul 3, 1958")} == {"birth_date"}
    assert phi.find("1958") == []  # a year alone is not the birth date
    assert phi.find("523189", "number") == []  # part of an ID in a number is not the ID
    assert phi.find("52318907", "number")


# -- hypothesis: where and how a value is written --------------------------------------------------------
SEPARATORS = st.sampled_from(["", ".", " ", "-", "/", ". "])
FIELDS = st.sampled_from(["StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments",
                          "PerformedProcedureStepDescription", "code_meaning", "sr_text", "request"])


def _id_form(digits: str, sep: str, prefix: str) -> str:
    groups = [digits[max(0, i - 3): i] for i in range(len(digits), 0, -3)][::-1]
    return prefix + sep.join(groups)


def _place(ds: Dataset, field: str, text: str) -> None:
    if field == "code_meaning":
        ds.AnatomicRegionSequence = Sequence([code_item(text)])
    elif field == "sr_text":
        item = Dataset()
        item.RelationshipType, item.ValueType, item.TextValue = "CONTAINS", "TEXT", text
        ds.ContentSequence = Sequence([item])
    elif field == "request":
        req = Dataset()
        req.RequestedProcedureDescription = text
        ds.RequestAttributesSequence = Sequence([req])
    else:
        setattr(ds, field, text)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    digits=st.from_regex(r"[1-9][0-9]{6,9}", fullmatch=True),
    sep=SEPARATORS,
    prefix=st.sampled_from(["", "CC ", "C.C. ", "DNI ", "ID:", "HC-"]),
    field=FIELDS,
    case=st.sampled_from([str.upper, str.lower, str.title]),
)
def test_fuzz_an_id_written_anywhere_in_any_form_never_survives(deid, tmp_path_factory, digits, sep, prefix, field, case):
    tmp = tmp_path_factory.mktemp("fz")
    ds = hospital_ct(PatientID=digits)
    _place(ds, field, case(f"control {_id_form(digits, sep, prefix)} torax"))
    try:
        result = deid.deidentify_file(save(ds, tmp / "in.dcm"), tmp / "out")
    except Quarantine as q:
        assert q.reason == "residual_phi" and digits not in str(q)  # refused, never leaked in a reason
        return
    assert digits not in output_forms(result.output)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    day=st.integers(1, 28), month=st.integers(1, 12), year=st.integers(1930, 1999),
    style=st.sampled_from(["{d} de {mes} de {y}", "{d} {mon} {y}", "{dd}/{mm}/{y}", "{y}-{mm}-{dd}", "{mon} {d}, {y}",
                           "{d} de {mes_pt} de {y}"]),
    field=FIELDS,
)
def test_fuzz_a_birth_date_written_in_words_or_numbers_never_survives(deid, tmp_path_factory, day, month, year, style, field):
    meses = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
             "noviembre", "diciembre"]
    meses_pt = ["janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro",
                "novembro", "dezembro"]
    mons = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    written = style.format(d=day, dd=f"{day:02d}", mm=f"{month:02d}", y=year, mes=meses[month - 1],
                           mes_pt=meses_pt[month - 1], mon=mons[month - 1])
    tmp = tmp_path_factory.mktemp("fd")
    ds = hospital_ct(PatientBirthDate=f"{year}{month:02d}{day:02d}")
    _place(ds, field, f"nacimiento {written} torax")
    try:
        result = deid.deidentify_file(save(ds, tmp / "in.dcm"), tmp / "out")
    except Quarantine as q:
        assert q.reason == "residual_phi"
        return
    out = pydicom.dcmread(result.output)
    values = " ".join(str(e.value) for e in out.iterall() if e.VR in ("LO", "SH", "LT", "ST", "UT", "UC"))
    assert squash(written) not in squash(values), written
