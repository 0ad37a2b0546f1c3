"""Stage 4: extract, link to a study, scrub and verify one batch of diagnosis reports.

A report is linked to its study by accession number: first among this run's
identity maps, then among studies of earlier runs (keyed accession in the
partner's state). Unlinked, unreadable or still-identifying reports are
quarantined with a reason code.
"""

from __future__ import annotations

import datetime as dt

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.paths import PartnerRoot
from pipeline.context import RunContext, read_json, record_outcomes, timed, write_json
from pipeline.deidentify import load_identities


@timed
def run(ctx: RunContext, batch: int) -> dict[str, Any]:
    from anonymization.keys import Keyring
    from anonymization.phi_scan import PhiSet, scan_texts
    from anonymization.text_phi import TextScrubber, link_keys
    from transforms.text_extract import ExtractionError, extract_text

    work = ctx.work()
    partner = ctx.partner
    files = read_json(work.batch("report", batch))
    identities = load_identities(ctx)
    links = load_links(ctx.root)
    keyring = Keyring.from_env()
    scrubber = TextScrubber(partner.report_languages)
    hint = partner.report_languages[0] if len(partner.report_languages) == 1 else None
    rows, outcomes = [], []
    sources: dict[str, str] = {}

    def refuse(rel: str, src: Path, code: str, detail: str = "") -> None:
        ctx.quarantine_file(src, rel, code, "reports", detail)
        outcomes.append({"relpath": rel, "status": "quarantined", "reason": code, "kind": "report"})

    for rel in files:
        src = ctx.landing(rel)
        try:
            extracted = extract_text(src, hint)
        except ExtractionError as exc:
            refuse(rel, src, exc.reason_code, str(exc)[:200])
            continue
        except Exception as exc:  # noqa: BLE001 - fail closed
            refuse(rel, src, "extract_error", f"{type(exc).__name__}")
            continue
        try:
            keys = link_keys(extracted.text, extracted.language)  # US reports: month-first dates
            accession = str(keys.get("accession_number") or keys.get("accession") or "").strip()
            ident = identities.get(accession) if accession else None
            link = links.get(keyring.content_id(accession.encode())) if accession and ident is None else None
            if ident is None and link is None:
                refuse(rel, src, "report_unlinked", "no study with this report's accession number")
                continue
            study_uid = (ident or link)["study_uid"]
            token = (ident or link)["patient_token"]
            # The patient token's offset: the one its DICOM dates moved by, whichever partner sent them.
            offset = (dt.timedelta(days=ident["offset_days"]) if ident
                      else keyring.time_offset(token, ctx.profile.date_shift_range_days))
            known = list(ident["phi"]) if ident else []
            for k, v in keys.items():
                if k != "study_date" and v:
                    known.extend(str(x) for x in (v if isinstance(v, list) else [v]))
            result = scrubber.scrub(extracted.text, extracted.language, known_phi=known,
                                    date_offset=offset, profile=ctx.profile.name)  # us_hipaa: years only
            phi = PhiSet()
            for value in known:
                (phi.add_name if "^" in value else phi.add_text)(value)
            if result.residual or scan_texts(phi, [("text", result.text)]):
                refuse(rel, src, "residual_phi", "an original identifying value survived scrubbing")
                continue
        except Exception as exc:  # noqa: BLE001
            refuse(rel, src, "scrub_error", f"{type(exc).__name__}")
            continue
        report_id = keyring.content_id(src.read_bytes())
        sources[report_id] = rel
        rows.append(
            {
                "report_id": report_id, "study_uid": study_uid,
                "patient_token": token, "partner_id": partner.id, "language": extracted.language,
                "source_format": extracted.source_format, "pages": extracted.pages,
                "ocr_pages": len(extracted.ocr_pages), "text_scrubbed": result.text,
                # Mean Tesseract confidence of OCR'd words (None: text layer): the review policy's signal.
                "ocr_confidence": (round(sum(w.conf for w in extracted.words) / len(extracted.words), 1)
                                   if extracted.ocr_pages and extracted.words else None),
            }
        )
        outcomes.append({"relpath": rel, "status": "published", "reason": None, "kind": "report"})
    record_outcomes(work, f"report-{batch:05d}", outcomes)
    write_json(work.sources_file("report", batch), sources)
    if rows:
        work.rows.mkdir(exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), work.rows_file("report", batch))
    published = sum(o["status"] == "published" for o in outcomes)
    return {"batch": batch, "files": len(files), "published": published, "quarantined": len(files) - published}


def load_links(root: PartnerRoot) -> dict[str, dict[str, str]]:
    """Studies of earlier runs by keyed accession, for reports that arrive after their images."""
    path = root.study_links
    if not path.exists():
        return {}
    return {r["accession_key"]: r for r in pq.read_table(path).to_pylist()}
