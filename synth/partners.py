"""The two synthetic data partners and their equipment.

Each partner is written the way its hospital exports: its own folder layout,
file naming, name-spelling habits, private tags and report language. The
details are invented but shaped after real PACS exports from Colombia and
Brazil; they are data in ``synth/data/partners.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .tables import table


@dataclass(frozen=True)
class Device:
    manufacturer: str
    model: str
    station: str
    serial: str
    software: str
    uid_root: str  # the vendor's UID root, for series and instance UIDs


@dataclass(frozen=True)
class Partner:
    id: str
    country: str
    code: str  # IssuerOfPatientID for the MRN
    institution: str  # as written in reports
    institution_dicom: str  # InstitutionName as the modalities write it
    institution_address: str
    phone: str
    city: str
    departments: tuple[str, ...]
    language: str  # main report language
    english_share: float  # share of reports written in English
    national_issuer: str  # issuer of the partner's own national document
    private_creator: str
    private_group: int
    reports_dir: str
    study_uid_root: str
    physician_prefix: str
    license_label: str  # how radiologists sign: 'R.M.' (CO) or 'CRM-SP' (BR)
    devices: dict[str, tuple[Device, ...]] = field(default_factory=dict)


def _partner(d: dict) -> Partner:
    devices = {m: tuple(Device(**x) for x in devs) for m, devs in d.pop("devices", {}).items()}
    return Partner(**{**d, "departments": tuple(d["departments"])}, devices=devices)


PARTNERS: tuple[Partner, ...] = tuple(_partner(dict(d)) for d in table("partners")["partners"])
BY_COUNTRY = {p.country: p for p in PARTNERS}
ANDES, PAULISTA = PARTNERS
