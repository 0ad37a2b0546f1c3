"""Stage: verify every output before anything is published, then forget the identities.

Independently of the checks the de-identifier and the scrubber ran on their
own output, every output of the run is searched for the identifying values of
its own input (the run's identity maps):

* **DICOM**: the header re-read with the *other* reader (pydicom, while the
  de-identifier's default is the fast reader) and every decoded value
  searched (``anonymization.dicom.verify.residuals``), then the whole file's
  bytes, pixel data included, for the strong values (IDs, names, dates);
* **a sample of pixels per batch** OCR'd (every file whose pixels were
  redacted, up to ``OCR_REDACTED`` per batch, plus ``OCR_OTHER`` others with
  pixel data), the words read searched for the study's identifying values;
* **report text**: each scrubbed report for its study's values;
* **Parquet rows**: every text column of every per-file row for the run's values.

A hit quarantines the file (reason ``residual_phi_verify``, stage ``verify``):
its output is removed from staging, its rows dropped, its outcome changed, so
the tables built next never hold it. Each output gets one line in the leak
ledger (``verification.jsonl``, published beside the run ledger): what was
checked, which classes of values were searched, the outcome; never a value.

Then the keyed accession links are written and the identity maps deleted, on
success or failure: nothing after this stage needs them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.context import RunContext, record_outcomes, timed
from pipeline.deidentify import load_identities

OCR_REDACTED = 2  # files whose pixels were redacted, OCR'd per batch
OCR_OTHER = 1  # other files with pixel data, OCR'd per batch
REASON = "residual_phi_verify"


@timed
def run_batch(ctx: RunContext, batch: int) -> dict[str, Any]:
    """Verify one DICOM batch (a mapped task: the byte scans and OCR of a partner's files spread over workers)."""
    work = ctx.work()
    lines, hits = _verify_dicom_batch(ctx, _PhiIndex(load_identities(ctx)), batch)
    _write_batch(work.verification_batch(batch), lines, hits)
    return {"batch": batch, "checked": len(lines), "ocr_checked": sum("ocr" in ln["checked"] for ln in lines),
            "residual": len(hits)}


@timed
def run(ctx: RunContext) -> dict[str, Any]:
    """Verify the reports, act on every hit (batches' and reports'), write links and the leak ledger, forget identities.

    A DICOM batch whose mapped verification left no result (run from a shell, or a batch added after) is verified here:
    no output is published unverified.
    """
    from pipeline.repair import sweep_identity
    from transforms.tables import write_links

    work = ctx.work()
    try:
        phi = _PhiIndex(load_identities(ctx))
        lines: list[dict[str, Any]] = []
        hits: dict[str, set[str]] = {"dicom": set(), "report": set()}
        for rows_file in work.rows_files("dicom"):
            batch = int(rows_file.stem.rsplit("-", 1)[1])
            done = work.verification_batch(batch)
            if not done.exists():
                _write_batch(done, *_verify_dicom_batch(ctx, phi, batch))
            data = json.loads(done.read_text(encoding="utf-8"))
            lines.extend(data["lines"])
            hits["dicom"].update(data["hits"])
        for rows_file in work.rows_files("report"):
            for r in pq.read_table(rows_file).to_pylist():
                line = verify_report(r, phi.of(r["study_uid"]))
                lines.append(line)
                if line["outcome"] != "clean":
                    hits["report"].add(r["report_id"])
        quarantined = _quarantine_hits(ctx, hits)
        links = write_links(work)
    finally:
        swept = sweep_identity(work)
    with work.verification.open("w", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, sort_keys=True) + "\n")
    return {"checked": len(lines), "ocr_checked": sum("ocr" in ln["checked"] for ln in lines),
            "quarantined": quarantined, "links": links, "identity_maps_removed": swept}


def _verify_dicom_batch(ctx: RunContext, phi: "_PhiIndex", batch: int) -> tuple[list[dict[str, Any]], list[str]]:
    rows = pq.read_table(ctx.run.rows_file("dicom", batch)).to_pylist() if ctx.run.rows_file("dicom", batch).exists() else []
    sample = _ocr_sample(rows)
    lines, hits = [], []
    for r in rows:
        line = verify_dicom(ctx.run.staged_dicom / r["path"], phi.of(r["study_uid"]), r,
                            ocr=r["sop_uid"] in sample, languages=ctx.partner.report_languages)
        lines.append(line)
        if line["outcome"] != "clean":
            hits.append(r["path"])
    return lines, hits


def _write_batch(path: Path, lines: list[dict[str, Any]], hits: list[str]) -> None:
    from pipeline.context import write_json

    write_json(path, {"lines": lines, "hits": hits})


# -- what is searched -----------------------------------------------------------------------------


class _PhiIndex:
    """The run's identifying values per study (from the identity maps), as PhiSets."""

    def __init__(self, identities: dict[str, dict[str, Any]]) -> None:
        self.by_study: dict[str, list[str]] = {}
        self.weak: dict[str, set[str]] = {}
        for entry in identities.values():
            self.by_study.setdefault(entry["study_uid"], []).extend(entry["phi"])
            self.weak.setdefault(entry["study_uid"], set()).update(entry.get("weak", []))
        self._cache: dict[str, Any] = {}

    def of(self, study_uid: str) -> Any:
        if study_uid not in self._cache:
            self._cache[study_uid] = phi_set(self.by_study.get(study_uid, []), self.weak.get(study_uid, set()))
        return self._cache[study_uid]


def phi_set(values: list[str], weak: set[str] | frozenset[str] = frozenset()) -> Any:
    """A PhiSet from raw identifying values: names (``^``), dates (8 digits), the rest as identifiers."""
    import re

    from anonymization.phi_scan import PhiSet

    phi = PhiSet()
    for v in values:
        if v in weak:
            phi.add_text(v, weak=True)
        elif "^" in v:
            phi.add_name(v)
        elif re.fullmatch(r"(19|20)\d{6}", v):
            phi.add_date(v)
        else:
            phi.add_text(v)
    return phi


def classes(phi: Any) -> list[str]:
    """Which kinds of values were searched (names, identifiers, dates...): never the values."""
    kinds = set(phi.kinds.values()) | set(phi.digits.values())
    if phi.dates:
        kinds.add("date")
    return sorted(kinds)


# -- DICOM ----------------------------------------------------------------------------------------


def verify_dicom(path: Path, phi: Any, row: dict[str, Any], *, ocr: bool, languages: list[str]) -> dict[str, Any]:
    """One staged file: decoded values (pydicom reader), all bytes, optionally OCR of its pixels."""
    from anonymization.dicom.readers import read_header
    from anonymization.dicom.verify import residuals
    from anonymization.phi_scan import scan_bytes

    line: dict[str, Any] = {"file": f"dicom/{row['path']}", "kind": "dicom", "classes": classes(phi),
                            "checked": ["row_columns"], "outcome": "clean"}
    bad = row_hits(phi, row, ("study_description", "series_description", "body_part", "manufacturer",
                              "manufacturer_model"))
    if bad:
        line.update(outcome="residual", where=[f"row.{c}" for c in bad])
        return line
    try:
        data = path.read_bytes()
        with path.open("rb") as fp:
            header = read_header(fp, len(data), "pydicom")
    except Exception as exc:  # noqa: BLE001 - an output we cannot read back is not published
        line.update(outcome="unreadable", error=type(exc).__name__)
        return line
    line["checked"].append("header_values")
    found = residuals(phi, header.nodes)
    if found:
        line.update(outcome="residual", where=sorted({f"({t >> 16:04X},{t & 0xFFFF:04X}) {k}" for t, k in found}))
        return line
    line["checked"].append("file_bytes" if header.pixels else "header_bytes")
    if scan_bytes(phi, data, ("latin-1", "utf-8", "utf-16-le")):
        line.update(outcome="residual", where=["bytes"])
        return line
    if ocr and header.pixels:
        read = ocr_words(data, languages)
        if read is None:
            line["ocr"] = "not_decodable"
        else:
            line["checked"].append("ocr")
            if read and phi.find(read, "text"):
                line.update(outcome="residual", where=["pixels (ocr)"])
    return line


def _ocr_sample(rows: list[dict[str, Any]]) -> set[str]:
    """Per batch: the first redacted files and one other image, chosen by a hash (stable across re-runs)."""
    ordered = sorted(rows, key=lambda r: hashlib.sha256(r["sop_uid"].encode()).hexdigest())
    images = [r for r in ordered if (r.get("rows") or 0) > 0 and r.get("modality") not in ("SR", "PR", "KO")]
    redacted = [r["sop_uid"] for r in images if r.get("pixels_modified")][:OCR_REDACTED]
    others = [r["sop_uid"] for r in images if not r.get("pixels_modified")][:OCR_OTHER]
    return set(redacted + others)


def ocr_words(data: bytes, languages: list[str]) -> str | None:
    """Text Tesseract reads on the first and last frames of a de-identified file (None: not decodable)."""
    import io

    import numpy as np
    import pydicom
    from PIL import Image

    from anonymization.ocr_redact import display_rgb, ocr_language
    from anonymization.text_regions import normalise
    from foundation.ocr import ExtractionError, ocr_image

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        arr = ds.pixel_array
    except Exception:  # noqa: BLE001 - no decoder for this transfer syntax
        return None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    picks = [arr] if frames == 1 else [arr[0], arr[-1]]
    words: list[str] = []
    for frame in picks:
        frame, photo = display_rgb(np.asarray(frame), photometric)
        gray = normalise(frame, photo)
        try:
            words.extend(w.text for w in ocr_image(Image.fromarray(gray), lang=ocr_language(languages), psm=11))
        except ExtractionError:
            return None
    return " ".join(words)


# -- reports ----------------------------------------------------------------------------------------


def verify_report(row: dict[str, Any], phi: Any) -> dict[str, Any]:
    line = {"file": f"report:{row['report_id']}", "kind": "report", "classes": classes(phi),
            "checked": ["text", "row_columns"], "outcome": "clean"}
    bad = row_hits(phi, row, ("text_scrubbed",))
    if bad:
        line.update(outcome="residual", where=[c if c == "text_scrubbed" else f"row.{c}" for c in bad])
    return line


def row_hits(phi: Any, row: dict[str, Any], columns: tuple[str, ...]) -> list[str]:
    """Free-text columns of a per-file row holding an identifying value (device fields: strong values only).

    Keys (UIDs, tokens, hashes) are keyed outputs and codes (language, sex) are
    closed vocabularies checked by the Great Expectations checkpoints.
    """
    from anonymization.phi_scan import DEVICE_FIELDS

    device = {"manufacturer": "Manufacturer", "manufacturer_model": "ManufacturerModelName"}
    out = []
    for column in columns:
        value = row.get(column)
        if not isinstance(value, str) or not value:
            continue
        context = "device" if device.get(column) in DEVICE_FIELDS else "text"
        if phi.find(value, context):
            out.append(column)
    return out


# -- acting on a hit ---------------------------------------------------------------------------------


def _quarantine_hits(ctx: RunContext, hits: dict[str, set[str]]) -> int:
    """Quarantine the originals of outputs that failed verification and drop their outputs and rows."""
    work = ctx.run
    outcomes: list[dict[str, Any]] = []
    for kind, key_column in (("dicom", "path"), ("report", "report_id")):
        if not hits[kind]:
            continue
        sources = work.sources_map(kind)
        for key in sorted(hits[kind]):
            rel = sources.get(key)
            if rel is None:
                raise RuntimeError(f"verify: an output of kind {kind} has no source (cannot quarantine it)")
            ctx.quarantine_file(ctx.landing(rel), rel, REASON, "verify",
                                "an identifying value of the input was found in the output")
            outcomes.append({"relpath": rel, "status": "quarantined", "reason": REASON, "kind": kind})
            if kind == "dicom":
                (work.staged_dicom / key).unlink(missing_ok=True)
        for rows_file in work.rows_files(kind):
            table = pq.read_table(rows_file)
            keep = [v not in hits[kind] for v in table.column(key_column).to_pylist()]
            if not all(keep):
                pq.write_table(table.filter(pa.array(keep)), rows_file)
    record_outcomes(work, "verify", outcomes)  # read after the batches' outcomes: these replace them
    return len(outcomes)
