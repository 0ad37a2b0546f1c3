"""The two synthetic data partners and their equipment.

Each partner is written the way its hospital exports: its own folder layout,
file naming, name-spelling habits, private tags and report language. The
details are invented but shaped after real PACS exports from Colombia and
Brazil.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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


ANDES = Partner(
    id="clinica_andes_co",
    country="co",
    code="CANDES",
    institution="Clínica Andes",
    institution_dicom="CLINICA ANDES MEDELLIN",
    institution_address="Carrera 48 # 19A-40, Medellín, Antioquia",
    phone="(604) 448 7000",
    city="Medellín",
    departments=("RADIOLOGIA SEDE POBLADO", "IMAGENES TORRE MEDICA 2", "URGENCIAS SEDE CENTRO",
                 "MAMOGRAFIA SEDE LAURELES"),
    language="es",
    english_share=0.15,
    national_issuer="RNEC",
    private_creator="ANDES_PACS 1.0",
    private_group=0x0009,
    reports_dir="informes",
    study_uid_root="1.2.826.0.1.3680043.9.7431",
    physician_prefix="Dr.",
    license_label="R.M.",
    devices={
        "CT": (
            Device("GE MEDICAL SYSTEMS", "Revolution EVO", "CTAND01", "AND4471CT", "gmp_vct.50", "1.2.840.113619.2.55.3"),
            Device("SIEMENS", "SOMATOM go.Up", "CTAND02", "108233", "syngo CT VA30A", "1.3.12.2.1107.5.1.4"),
        ),
        "MR": (
            Device("SIEMENS", "MAGNETOM Amira", "MRAND01", "175561", "syngo MR E11", "1.3.12.2.1107.5.2.50"),
            Device("Philips Medical Systems", "Ingenia", "MRAND02", "42867", "5.4.1", "1.3.46.670589.11"),
        ),
        "US": (
            Device("GE Healthcare", "LOGIQ E10", "USAND01", "LE10-880231", "R3.1.2", "1.2.840.113619.2.256"),
            Device("Philips", "EPIQ 5", "USAND02", "US51423067", "7.0.5", "1.2.840.113663.1500"),
        ),
        "MG": (
            Device("HOLOGIC, Inc.", "Selenia Dimensions", "MGAND01", "SDM120904271", "1.10.3.4", "1.2.840.113681.2"),
        ),
        "CR": (
            Device("FUJIFILM Corporation", "FCR CAPSULA XLII", "CRAND01", "55170432", "A08", "1.2.392.200036.9125.4"),
            Device("Carestream Health", "DirectView CR 975", "CRAND02", "39841", "5.7.412", "1.2.840.113564.9.1"),
        ),
        "DX": (
            Device("Canon Inc.", "CXDI-710C Wireless", "DXAND01", "71C0023", "2.16", "1.2.392.200046.100.3"),
            Device("Philips Medical Systems", "DigitalDiagnost", "DXAND02", "30011742", "4.1.3", "1.3.46.670589.30"),
        ),
    },
)

PAULISTA = Partner(
    id="hospital_paulista_br",
    country="br",
    code="HPAUL",
    institution="Hospital Paulista de Diagnóstico",
    institution_dicom="HOSPITAL PAULISTA",
    institution_address="Rua Cubatão, 1140 - Vila Mariana, São Paulo-SP",
    phone="(11) 5088-4200",
    city="São Paulo",
    departments=("RADIOLOGIA UNID VILA MARIANA", "DIAG IMAGEM UNID PARAISO", "PRONTO ATEND UNID MOEMA",
                 "MASTOLOGIA UNID VILA MARIANA"),
    language="pt",
    english_share=0.15,
    national_issuer="RFB",
    private_creator="PAULISTA_RIS 2.1",
    private_group=0x0011,
    reports_dir="laudos",
    study_uid_root="1.2.826.0.1.3680043.9.7432",
    physician_prefix="Dra.",
    license_label="CRM-SP",
    devices={
        "CT": (
            Device("TOSHIBA", "Aquilion", "CT_HP01", "CAA1342021", "V6.00ER005", "1.2.392.200036.9116.2.6"),
            Device("Philips", "Ingenuity CT", "CT_HP02", "200114", "4.1.2", "1.3.46.670589.33"),
        ),
        "MR": (
            Device("GE MEDICAL SYSTEMS", "SIGNA Explorer", "MR_HP01", "0000011440MR", "DV26.0_R03", "1.2.840.113619.2.312"),
            Device("SIEMENS", "MAGNETOM Aera", "MR_HP02", "141873", "syngo MR E11", "1.3.12.2.1107.5.2.32"),
        ),
        "US": (
            Device("SAMSUNG MEDISON CO., LTD.", "HS60", "US_HP01", "S0H3M3HK900012", "2.01.00", "1.2.410.200001.1"),
            Device("TOSHIBA_MEC_US", "Xario 200", "US_HP02", "99E1752", "V4.0", "1.2.392.200036.9116.7"),
        ),
        "MG": (
            Device("GE MEDICAL SYSTEMS", "Senographe Pristina", "MG_HP01", "MP0092", "ADS_60.10", "1.2.840.113619.2.66"),
            Device("SIEMENS", "Mammomat Inspiration", "MG_HP02", "4318", "VB30", "1.3.12.2.1107.5.12.7"),
        ),
        "CR": (
            Device("Agfa", "CR 30-X", "CR_HP01", "3427", "NX 3.0.9", "1.3.51.0.7"),
            Device("FUJIFILM Corporation", "FCR PRIMA T2", "CR_HP02", "79120031", "A10", "1.2.392.200036.9125.5"),
        ),
        "DX": (
            Device("Carestream Health", "DRX-Evolution", "DX_HP01", "80219", "5.7.412", "1.2.840.113564.9.2"),
            Device("SIEMENS", "Ysio Max", "DX_HP02", "11207", "VF10C", "1.3.12.2.1107.5.9.1"),
        ),
    },
)

PARTNERS: tuple[Partner, ...] = (ANDES, PAULISTA)
BY_COUNTRY = {p.country: p for p in PARTNERS}
