"""Quarantine reasons and ``quarantine_file``: where refused raw files wait, each with a machine-readable reason.

A quarantined file keeps its path relative to the input (landing or the CLI's
INPUT_DIR) and gets ``<name>.reason.json`` beside it. The reason names the
stage and a stable code (``not_dicom``, ``truncated``, ``residual_phi`` ...)
and never an identifying value, so it can be shown to an engineer or counted
on a dashboard. Quarantine is inside the partner's enclave: it holds raw data.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

REASON_SUFFIX = ".reason.json"

#: Stable reason codes and what they mean (for people reading a quarantine).
#: Codes are data for dashboards and ``sta quarantine``: never rename one.
REASONS: dict[str, str] = {
    # classify
    "empty_file": "zero-byte file",
    "missing_in_landing": "pulled but gone from the landing area",
    "unsupported_type": "neither DICOM nor a report format",
    # DICOM de-identification
    "dicomdir": "a DICOMDIR index, not an image",
    "not_dicom": "not a DICOM file",
    "truncated": "file ends inside an element",
    "unreadable_header": "header cannot be parsed",
    "unreadable_element": "an element cannot be decoded",
    "missing_uid": "a required UID is missing",
    "write_error": "the de-identified file could not be written",
    "residual_phi": "an original identifying value survived de-identification",
    "burned_in_text": "pixels at risk of burned-in text and no cleaner available",
    "burned_in_text_residual": "burned-in text remained after redaction",
    "unreadable_pixel_data": "pixel data cannot be decoded",
    "unsupported_pixel_data": "pixel data in a format the cleaner cannot write",
    "ocr_failed": "OCR failed",
    "ocr_timeout": "OCR took too long",
    "ocr_unavailable": "tesseract is not installed",
    "burned_in_text_audit": "the sampled OCR audit found text on pixels the risk rule called safe",
    "document_no_text": "an encapsulated document with no readable text (never published empty)",
    "document_residual": "a known identifying value survived scrubbing of an encapsulated document",
    "document_unsupported": "an encapsulated document of a type that cannot be scrubbed",
    # reports
    "report_unlinked": "no study with this report's accession number",
    "extract_error": "text extraction failed unexpectedly",
    "scrub_error": "text scrubbing failed unexpectedly",
    "pdf_encrypted": "encrypted PDF",
    "pdf_corrupt": "damaged PDF",
    "pdf_no_pages": "PDF without pages",
    "pdf_too_many_pages": "more pages than a report has",
    "image_corrupt": "damaged image",
    "image_too_large": "image too large",
    "image_too_many_pages": "more image pages than a report has",
    "rtf_corrupt": "damaged RTF",
    "text_encoding": "text in an unknown encoding",
    "text_too_large": "text too large for a report",
    "unreadable": "unreadable file",
}


def describe(code: str) -> str:
    """What a reason code means, or the code itself for one not catalogued yet."""
    return REASONS.get(code, code)


@dataclass(frozen=True)
class Reason:
    code: str
    stage: str
    detail: str = ""
    run_id: str = ""


def quarantine_file(src: Path, quarantine_root: Path, relpath: str, reason: Reason, *, move: bool = False) -> Path:
    """Copy (or move) ``src`` to ``quarantine_root/relpath`` and write its reason beside it."""
    dst = quarantine_root / relpath
    if quarantine_root.resolve() not in dst.resolve().parents:
        raise PermissionError(f"quarantine path escapes its root: {relpath!r}")
    if not quarantine_root.exists():  # originals keep their PHI: the pipeline's user only (issue 11.1)
        quarantine_root.mkdir(mode=0o700, parents=True, exist_ok=True)
    dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if src.exists():
        if move:
            shutil.move(str(src), dst)
        else:
            shutil.copy2(src, dst)
        if dst.is_file():
            os.chmod(dst, 0o600)
    record = asdict(reason) | {"file": relpath, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    dst.with_name(dst.name + REASON_SUFFIX).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return dst


def read_reason(quarantined: Path) -> dict:
    return json.loads(quarantined.with_name(quarantined.name + REASON_SUFFIX).read_text(encoding="utf-8"))
