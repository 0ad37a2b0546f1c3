"""Which stage a landed file goes to: DICOM, a diagnosis report, or neither.

Decided from the content first (the DICM prefix, a PDF or image signature)
and the name second: hospitals export DICOM without extensions and name
reports anything. A file that is neither is quarantined as
``unsupported_type`` rather than ignored, so the ledger balances.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path

REPORT_SUFFIXES = {".txt", ".pdf", ".rtf", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}
_SIGNATURES = {
    b"%PDF": "report",
    b"\x89PNG": "report",
    b"\xff\xd8\xff": "report",
    b"II*\x00": "report",
    b"MM\x00*": "report",
    b"{\\rtf": "report",
}


class Kind(str, Enum):
    DICOM = "dicom"
    REPORT = "report"
    EMPTY = "empty"
    OTHER = "other"


def classify(path: Path) -> Kind:
    size = path.stat().st_size
    if size == 0:
        return Kind.EMPTY
    with path.open("rb") as fh:
        head = fh.read(132)
    if len(head) == 132 and head[128:132] == b"DICM":
        return Kind.DICOM
    for sig, kind in _SIGNATURES.items():
        if head.startswith(sig):
            return Kind(kind)
    suffix = path.suffix.lower()
    if suffix in (".dcm", ".dicom", ".ima") or path.name.upper() == "DICOMDIR":
        return Kind.DICOM  # the de-identifier decides (and quarantines) what it cannot read
    if suffix in REPORT_SUFFIXES:
        return Kind.REPORT
    if suffix == "" and len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00"):
        return Kind.DICOM  # a dataset without preamble, as old modalities write it
    return Kind.OTHER
