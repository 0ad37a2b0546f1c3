"""Profiles: data validated on load, chosen per file, US Safe Harbor, jurisdiction checks, safe private elements."""

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


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(ProfileError, match="unknown de-identification profile 'martian'.*latam"):
        load_profile("martian")


def test_profiles_are_data_with_the_annex_e_table_generated_from_the_standard():
    from anonymization.annex_e_table import ATTRIBUTES, EDITION

    assert EDITION == "2026c" and len(ATTRIBUTES) > 600
    assert load_profile("us_hipaa").age_cap == 90 and load_profile("latam").age_cap is None
    assert load_profile("latam_mammography").pixel_policy.mode("MG") == "always"


def test_us_profile_caps_ages_over_89(tmp_path):
    d = build_deidentifier(DeidSettings("us_hipaa", clean_pixels=False), KEY)
    src = _write(_rich_dataset(), tmp_path / "in.dcm")  # born 1927, seen 2024: 96
    out = pydicom.dcmread(d.deidentify_file(src, tmp_path / "out").output)
    assert out.PatientAge == "090Y"
    assert "InstitutionName" not in out or not out.InstitutionName


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


def test_safe_private_elements_survive_only_when_listed(tmp_path):
    ds = _rich_dataset()
    ds.add_new(0x00190010, "LO", "GEMS_ACQU_01")
    ds.add_new(0x0019100C, "DS", "12.5")
    ds.add_new(0x0019100D, "LO", "GARCIA MARQUEZ")
    src = _write(ds, tmp_path / "in.dcm")
    overrides = {"options": {"retain_safe_private": True},
                 "safe_private": [{"creator": "GEMS_ACQU_01", "elements": [0x0C]}]}
    d = build_deidentifier(DeidSettings("latam", overrides, clean_pixels=False), KEY)
    out = pydicom.dcmread(d.deidentify_file(src, tmp_path / "out").output)
    private = {int(e.tag): e.value for e in out if e.tag.is_private}
    assert private.get(0x0019100C) == "12.5"
    assert 0x0019100D not in private and 0x00091001 not in private
