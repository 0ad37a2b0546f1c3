"""Who a DICOM file is about, read before anything is removed.

The patient token, the date offset, the age, and the list of original
identifying values (for the residual scan and for scrubbing the linked
report) all come from the input header. Nothing here is written to output;
the ``PatientIdentity`` stays in the partner's enclave for the duration of a
run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydicom.dataset import Dataset

from anonymization.dicom_dates import age_years, parse_age, parse_da
from anonymization.dicom_elements import TEXT_VRS
from anonymization.dicom_rules import RuleBook
from anonymization.keys import Keyring
from anonymization.phi_scan import PhiSet

# Text attributes whose values identify someone even when short.
IDENTIFIER_KEYWORDS = frozenset(
    {
        "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "AccessionNumber", "StudyID",
        "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID",
        "PatientAddress", "PatientTelephoneNumbers", "InstitutionName", "InstitutionAddress",
        "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "MedicalRecordLocator",
        "AdmissionID", "ServiceEpisodeID", "PlacerOrderNumberImagingServiceRequest",
        "FillerOrderNumberImagingServiceRequest", "MilitaryRank", "BranchOfService",
        "RegionOfResidence", "CountryOfResidence", "PatientInsurancePlanCodeSequence",
        "ResponsibleOrganization", "PatientReligiousPreference", "DetectorID", "GantryID",
        "OtherPatientIDsSequence", "ClinicalTrialSubjectID", "VisitComments",
    }
)
WEAK_KEYWORDS = frozenset({"InstitutionName", "InstitutionalDepartmentName", "StationName"})
DATE_KEYWORDS_FOR_AGE = ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate")


@dataclass
class PatientIdentity:
    token: str
    offset: timedelta
    age: int | None  # whole years at the study, before any cap
    sex: str | None
    birth_year: int | None
    phi: PhiSet = field(default_factory=PhiSet)
    accession: str | None = None  # raw; used only to link reports in the enclave


def national_document(ds: Any, issuers: dict[str, str]) -> tuple[str, str, str] | None:
    """(country, type, number) from PatientID or OtherPatientIDsSequence, per the partner's issuers.

    ``issuers`` maps IssuerOfPatientID values to "CO-CC" style country-type pairs.
    """
    candidates = [(str(ds.get("PatientID", "")), str(ds.get("IssuerOfPatientID", "")))]
    for item in ds.get("OtherPatientIDsSequence", []) or []:
        candidates.append((str(item.get("PatientID", "")), str(item.get("IssuerOfPatientID", ""))))
    for number, issuer in candidates:
        kind = issuers.get(issuer.strip())
        if kind and number.strip():
            country, _, doc_type = kind.partition("-")
            return country, doc_type or "ID", number.strip()
    return None


def add_element_phi(
    phi: PhiSet, keyword: str, vr: str, values: list[str], *, private: bool, private_creator: bool
) -> None:
    """One element's identifying values into ``phi`` (shared by every reader of a header).

    Public elements: names (PN), dates and times, and the identifier attributes;
    private elements: anything that looks like a name (``^``) or a long number,
    because vendors park patient names and IDs in their own tags.
    """
    if private:
        if private_creator:
            return  # vendor names such as "GEMS_ACQU_01", not identities
        if vr in TEXT_VRS or vr == "UN":
            for text in values:
                if "^" in text:
                    phi.add_name(text, kind="person_name")
                elif len(text.strip()) >= 5 and any(ch.isdigit() for ch in text):
                    phi.add_text(text, kind="private_identifier")
        return
    kind = value_kind(keyword, vr)
    if vr == "PN":
        for v in values:
            phi.add_name(v, kind)
    elif vr == "DA":
        for v in values:
            phi.add_date(v, kind)
    elif vr == "DT":
        for v in values:
            phi.add_date(v[:8], kind)
    elif vr == "TM":
        for v in values:
            phi.add_time(v)
    elif vr in TEXT_VRS and keyword in IDENTIFIER_KEYWORDS:
        for v in values:
            phi.add_text(v, weak=keyword in WEAK_KEYWORDS, kind=kind)


_KIND_BY_KEYWORD = {"PatientName": "patient_name", "PatientBirthDate": "birth_date", "PatientID": "patient_id",
                    "OtherPatientIDs": "patient_id", "AccessionNumber": "accession_number"}


def value_kind(keyword: str, vr: str) -> str:
    """The kind of an identifying value, as named in quarantine reasons (never the value itself)."""
    kind = _KIND_BY_KEYWORD.get(keyword)
    if kind:
        return kind
    if vr == "PN":
        return "person_name"
    if vr in ("DA", "DT"):
        return "date"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", keyword).lower() or "identifier"


def collect_phi(ds: Dataset, rules: RuleBook, phi: PhiSet) -> None:
    """Every identifying value of a pydicom dataset, at any depth, into ``phi``."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value or []:
                collect_phi(item, rules, phi)
            continue
        if elem.value is None or elem.value == "":
            continue
        values = elem.value if elem.VM > 1 else [elem.value]
        texts = [v.decode("latin-1", "ignore") if isinstance(v, bytes) else str(v) for v in values]
        add_element_phi(phi, elem.keyword, elem.VR, texts, private=elem.tag.is_private,
                        private_creator=elem.tag.is_private and elem.tag.is_private_creator)


def read_identity(
    ds: Any, keyring: Keyring, rules: RuleBook, issuers: dict[str, str], partner_id: str,
    phi: PhiSet | None = None,
) -> PatientIdentity:
    """Token, offset, age and identifying values of one header.

    ``ds`` is a pydicom Dataset or anything with ``get(keyword, default)``
    returning decoded strings (and item lists for OtherPatientIDsSequence), such
    as the de-identifier's own element view; ``phi`` is passed when the caller
    already collected the values while reading (one walk instead of two).
    """
    doc = national_document(ds, issuers)
    name = str(ds.get("PatientName", "") or "")
    birth = str(ds.get("PatientBirthDate", "") or "")
    local = str(ds.get("PatientID", "") or "")
    token = keyring.patient_token(
        document=doc,
        name=name or None,
        birth_date=birth or None,
        fallback_id=f"{partner_id}|{local}" if local else f"{partner_id}|unknown",
    )
    offset = keyring.time_offset(token)  # one range for the deployment: same offset across partners

    age = parse_age(str(ds.get("PatientAge", "") or ""))
    birth_date = parse_da(birth) if birth else None
    if age is None and birth_date is not None:
        for kw in DATE_KEYWORDS_FOR_AGE:
            when = parse_da(str(ds.get(kw, "") or ""))
            if when is not None:
                age = age_years(birth_date, when)
                break
    birth_year = birth_date.year if birth_date else None
    if birth_year is None and age is not None:
        when = parse_da(str(ds.get("StudyDate", "") or ""))
        birth_year = (when.year - age) if when else None
    sex = str(ds.get("PatientSex", "") or "").strip().upper() or None
    if phi is None:
        phi = PhiSet()
        collect_phi(ds, rules, phi)
    if doc:
        phi.add_text(doc[2], kind="patient_id")
    accession = str(ds.get("AccessionNumber", "") or "").strip() or None
    return PatientIdentity(token, offset, age, sex if sex in ("M", "F", "O") else None, birth_year, phi, accession)


def age_string(age: int | None, cap: int | None) -> str | None:
    if age is None or age < 0:
        return None
    if cap is not None and age >= cap:
        age = cap
    return f"{min(age, 999):03d}Y"


def study_date(value: str) -> date | None:
    return parse_da(value) if value else None
