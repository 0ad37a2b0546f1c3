"""The planned content of one study at one partner, shared by the DICOM and report writers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from .partners import Device, Partner
from .people import NameForm, Person
from .protocols import Finding, Protocol


@dataclass(frozen=True)
class PatientAtPartner:
    """A person as one hospital registered them."""

    partner: Partner
    person: Person
    name: NameForm  # the spelling this hospital uses
    spelling: tuple[str, ...]  # variant operations applied ('' for the home spelling)
    mrn: str
    national_id_written: str | None  # as stored in OtherPatientIDsSequence (CPF maybe punctuated)
    other_names: str | None  # OtherPatientNames, when the hospital kept an alias

    @property
    def pn(self) -> str:
        return self.name.pn()

    @property
    def national_issuer(self) -> str | None:
        if self.person.id_type == "CC":
            return "RNEC"
        if self.person.id_type == "CPF":
            return "RFB"
        return None


@dataclass(frozen=True)
class Staff:
    referring: str  # PN
    requesting: str
    performing: str
    reading: str
    operator: str
    referring_display: str  # for reports
    reading_display: str
    reading_license: str


@dataclass
class Study:
    number: int  # order of the study for this patient at this partner
    patient: PatientAtPartner
    protocol: Protocol
    modality: str
    device: Device
    finding: Finding
    study_date: date
    study_time: str  # HHMMSS
    accession: str
    study_id: str
    requested_procedure_id: str
    sps_id: str
    study_uid: str
    charset: str
    department: str
    staff: Staff
    study_description: str
    description_has_name: bool
    language: str  # of the report
    report_format: str | None  # 'txt', 'pdf' or None (no report for this study)
    report_encoding: str
    prior_date: date | None  # an earlier study of the patient, cited in the report
    files: list[str] = field(default_factory=list)  # relpaths written for this study
