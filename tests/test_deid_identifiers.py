"""Identifiers in any written form (issue 10.1), planted the way hospital files carry them, checked absent in the output bytes; names in any character set; hypothesis varies where and how a value is written."""

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
SEPARATORS = st.sampled_from(["", ".", " ", "-", "/", ". "])
FIELDS = st.sampled_from(["StudyDescription", "SeriesDescription", "ProtocolName", "ImageComments",
                          "PerformedProcedureStepDescription", "code_meaning", "sr_text", "request"])
NAMES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZÁÉÍÓÚÑÇÃ", min_size=5, max_size=12)
TEXT_VRS = ["LO", "SH", "LT", "ST", "UT", "PN"]
PUBLIC_BY_VR = {"LO": "ProtocolName", "SH": "StationName", "LT": "AdditionalPatientHistory",
                "ST": "InstitutionAddress", "UT": "TextValue", "PN": "OperatorsName"}


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
    ds = hospital_ct(StudyDescription="TORAX", ImageComments="Responsable: CPF 529.982.247-25, RUT 12.345.678-5",
                     AnatomicRegionSequence=Sequence([code_item("Torax, clinica CNPJ 11.222.333/0001-81")]),
                     RequestAttributesSequence=Sequence([_request("Tutor CURP GODE561231HDFRRN09")]))
    result = deid.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    text = output_forms(result.output)
    assert "52998224725" not in text and "123456785" not in text
    assert "11222333000181" not in text and "gode561231hdfrrn09" not in text


def _request(description: str) -> Dataset:
    req = Dataset()
    req.RequestedProcedureDescription = description
    return req


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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    surname=NAMES,
    given_name=NAMES,
    places=st.lists(
        st.tuples(st.sampled_from(["public", "private", "nested", "deep"]), st.sampled_from(TEXT_VRS),
                  st.integers(min_value=0x10, max_value=0xFF)),
        min_size=1, max_size=6,
    ),
)
def test_phi_planted_anywhere_never_survives(deid, tmp_path_factory, surname, given_name, places):
    from anonymization.phi_scan import _STOPWORDS

    assume(surname not in _STOPWORDS and given_name not in _STOPWORDS)  # words, not names
    # nor the words the de-identifier itself writes (LongitudinalTemporalInformationModified, dummies...)
    own = {"MODIFIED", "ANONYMIZED", "ANONYMOUS", "BASIC", "OPTION", "CLEAN", "PIXEL", "RETAIN", "PROFILE",
           "DESCRIPTORS", "GRAPHICS", "DEVICE", "IDENTITY", "PATIENT", "CHARACTERISTICS", "LONGITUDINAL",
           "TEMPORAL", "INFORMATION", "DATES", "APPLICATION", "CONFIDENTIALITY", "LATAM", "ANNEX"}
    assume(surname not in own and given_name not in own)
    tmp = tmp_path_factory.mktemp("prop")
    ds = _rich_dataset(PatientName=f"{surname}^{given_name}")
    value = f"{surname}^{given_name}"
    for i, (where, vr, el) in enumerate(places):
        text = value if vr == "PN" else f"{given_name} {surname}"
        if where == "public":
            setattr(ds, PUBLIC_BY_VR[vr], text)
        elif where == "private":
            ds.add_new(0x00290010, "LO", "RANDOM_CREATOR")
            ds.add_new(0x00291000 + el, vr, text)
        else:
            inner = Dataset()
            inner.add_new(0x00081030, "LO", text)
            inner.add_new(0x00100010, "PN", value)
            if where == "deep":
                deeper = Dataset()
                deeper.add_new(0x00324000, "LT", text)
                inner.ReferencedSeriesSequence = Sequence([deeper])
            ds.ReferencedStudySequence = Sequence([inner])
    src = _write(ds, tmp / "in.dcm")
    slow = _pydicom_reader(deid)
    try:
        slow_bytes = slow.deidentify_file(src, tmp / "slow", "x.dcm").output.read_bytes()
    except Quarantine as q:
        slow_bytes = q.reason
    try:
        result = deid.deidentify_file(src, tmp / "out")
    except Quarantine as q:
        assert slow_bytes == q.reason  # both readers refuse, for the same reason
        return  # refusing is a safe outcome
    assert result.output.read_bytes() == slow_bytes  # the fast reader and pydicom's agree
    raw = fold(result.output.read_bytes().decode("utf-8", "ignore"))
    for part in (surname, given_name):
        assert not re.search(rf"(?<!\w){re.escape(fold(part))}(?!\w)", raw), part


@pytest.mark.parametrize("src", _charset_files(), ids=lambda p: p.name)
def test_names_in_any_character_set_do_not_survive_in_any_encoding(deid_no_pixels, tmp_path, src):
    ds = pydicom.dcmread(src)
    if "SOPInstanceUID" not in ds:  # chrSQEncoding*: a bare dataset; give it the UIDs of a composite object
        ds.SOPClassUID, ds.SOPInstanceUID = "1.2.840.10008.5.1.4.1.1.7", "1.2.3.4.5.99"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.4", "1.2.3.4.5"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        src = tmp_path / src.name
        ds.save_as(src, enforce_file_format=True)
    names = _names(ds)
    assert names, src.name
    try:
        result = deid_no_pixels.deidentify_file(src, tmp_path / "out")
    except Quarantine as q:
        assert q.reason == "residual_phi", q  # refusing is safe; nothing else is expected here
        return
    data = result.output.read_bytes()
    out = pydicom.dcmread(result.output)
    decoded = " ".join(str(e.value) for e in out.iterall() if e.VR not in ("OB", "OW", "SQ"))
    encodings = set(convert_encodings(ds.get("SpecificCharacterSet", "ISO_IR 6")))
    for name in names:
        assert name not in decoded, (src.name, "decoded")
        for enc in encodings | {"utf-8", "latin-1"}:
            try:
                raw = encode_string(name, [enc]) if enc not in ("utf-8", "latin-1") else name.encode(enc)
            except (UnicodeError, LookupError, ValueError):
                continue
            if len(raw) >= 4 or not raw.isascii():
                assert raw not in data, (src.name, enc)
    assert out.PatientName == result.patient_token


def test_a_name_in_utf8_under_a_missing_character_set_is_still_known(tmp_path):
    """No SpecificCharacterSet (so ISO-IR 6/Latin-1), but the modality wrote UTF-8: the name is
    read both ways, so the descriptor that spells it in ASCII is cleaned too."""
    ds = _image("1.2.3.100.1.11", StudyDescription="TAC TORAX GARCIA", SeriesDescription="MUÑOZ AXIAL")
    ds.PatientName = "X"
    ds["PatientName"].value = "GARCÍA MUÑOZ^JOSÉ".encode("utf-8")  # raw bytes, as the modality sent them
    src = _save(ds, tmp_path / "utf8.dcm")
    assert b"GARC\xc3\x8dA" in src.read_bytes() and b"SpecificCharacterSet" not in src.read_bytes()
    d = build_deidentifier(DeidSettings("latam", clean_pixels=False), KEY)
    result = d.deidentify_file(src, tmp_path / "out")
    out = pydicom.dcmread(result.output)
    assert "GARCIA" not in str(out.get("StudyDescription", "")).upper()
    assert "TORAX" in out.StudyDescription
    assert "MUÑOZ" not in str(out.get("SeriesDescription", "")).upper()


_SLOW: dict[int, object] = {}


def _pydicom_reader(deid):
    """The same de-identifier reading every file through pydicom (the reference reader)."""
    if id(deid) not in _SLOW:
        slow = build_deidentifier(DeidSettings("latam", {}, "test", {"RNEC": "CO-CC"}, clean_pixels=False), KEY)
        slow.fast_reader = False
        _SLOW[id(deid)] = slow
    return _SLOW[id(deid)]


def test_safe_listed_private_text_is_checked_like_any_kept_value(tmp_path):
    overrides = {"options": {"retain_safe_private": True},
                 "safe_private": [{"creator": "ACME_PROTO", "elements": [1, 2]}]}
    deid = build_deidentifier(DeidSettings("latam", overrides, clean_pixels=False), KEY)
    ds = hospital_ct()
    ds.add_new(0x00090010, "LO", "ACME_PROTO")
    ds.add_new(0x00091001, "LO", "Protocolo torax Muñoz 52.318.907")
    ds.add_new(0x00091002, "LO", "HELICAL 0.6")
    result = deid.deidentify_file(save(ds, tmp_path / "p.dcm"), tmp_path / "out")
    out = pydicom.dcmread(result.output)
    assert out[0x00091002].value == "HELICAL 0.6"  # safe and clean: kept as it was
    text = output_forms(result.output)
    assert "52318907" not in text and "munoz" not in text


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    family=st.sampled_from(["LI", "WU", "NG", "PAZ", "LUZ", "MUÑOZ", "GÜEMES", "IBÁÑEZ", "山田", "金", "Иванов"]),
    given_name=st.sampled_from(["ANA", "EVA", "IAN", "JOSÉ", "太郎", "Ольга", "ÂNGELA"]),
    form=st.sampled_from([str.upper, str.lower, str.title, lambda s: "".join(
        c for c in __import__("unicodedata").normalize("NFKD", s) if not __import__("unicodedata").combining(c))]),
    field=FIELDS,
)
def test_fuzz_short_accented_and_cjk_name_parts_never_survive(deid, tmp_path_factory, family, given_name, form, field):
    tmp = tmp_path_factory.mktemp("fn")
    ds = hospital_ct(PatientName=f"{family}^{given_name}")
    _place(ds, field, f"control {form(family)} torax {form(given_name)}")
    try:
        result = deid.deidentify_file(save(ds, tmp / "in.dcm"), tmp / "out")
    except Quarantine as q:
        assert q.reason == "residual_phi"
        return
    out = pydicom.dcmread(result.output)
    words = set()
    for e in out.iterall():
        if e.VR in ("LO", "SH", "LT", "ST", "UT", "UC") and e.value:
            words.update(squash(w) for w in re.findall(r"[^\W\d_]+", str(e.value)))
    for part in (family, given_name):
        assert squash(part) not in words, part


def test_a_relatives_name_in_a_code_meaning_deep_in_a_sequence_is_removed(deid, tmp_path):
    inner = Dataset()
    inner.ConceptNameCodeSequence = Sequence([code_item("Acompañante: su hija Lucía Fernández")])
    outer = Dataset()
    outer.ContentSequence = Sequence([inner])
    ds = hospital_ct(ContentSequence=Sequence([outer]))
    result = deid.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    text = output_forms(result.output)
    assert "fernandez" not in text and "lucia" not in text
    assert "acompanante" in text  # the rest of the meaning stays


def test_an_unknown_name_in_a_descriptor_goes_and_the_modality_words_stay(deid, tmp_path):
    """Audit A6: the name recogniser's span swallowed 'TC' and 'AX', emptying the whole description."""
    ds = hospital_ct(SeriesDescription="TC Quintero AX")
    result = deid.deidentify_file(save(ds, tmp_path / "in.dcm"), tmp_path / "out")
    out = pydicom.dcmread(result.output)
    assert "Quintero" not in str(out.get("SeriesDescription", "")) and "TC" in out.SeriesDescription
    assert "AX" in out.SeriesDescription
