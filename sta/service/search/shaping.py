"""Result shaping: a store row (its ``card`` JSON, see
``transforms.store_schema.CARD_FIELDS``) becomes the result the API returns,
with the DICOM tags a card shows and a report excerpt."""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb

from delivery.cards import dicom_tags

EXCERPT_CHARS = 280

# Where the findings start in a report (es, pt, en): the excerpt starts there
# rather than at the letterhead and the (scrubbed) patient block.
_FINDINGS_RE = re.compile(r"\b(hallazgos|achados|findings)\b", re.I)


tags = dicom_tags  # one definition, shared with the export builder


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str | None:
    """A short excerpt of a report for a result card, from its findings."""
    if not text:
        return None
    m = _FINDINGS_RE.search(text)
    flat = " ".join((text[m.start():] if m else text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def thumbnail_url(region: str, series_uid: str) -> str:
    return f"/api/thumbnails/{region}/{series_uid}"


def card(card_json: str) -> dict[str, Any]:
    """A result from the store's ``card`` JSON."""
    return result(json.loads(card_json))


def result(row: dict[str, Any]) -> dict[str, Any]:
    text = row["report_text"]
    thumb = None
    if row["thumbnail"] and row["thumb_series_uid"]:
        thumb = thumbnail_url(row["region"], row["thumb_series_uid"])
    return {
        "study_uid": row["study_uid"],
        "patient_token": row["patient_token"],
        "region": row["region"],
        "partner_id": row["partner_id"],
        "country": row["country"],
        "modality": row["modality"],
        "modalities": list(row["modalities"] or []),
        "body_region": row["body_region"],
        "study_date": row["study_date"],
        "study_description": row["study_description"],
        "age": row["age"],
        "sex": row["sex"],
        "manufacturer": row["manufacturer"],
        "labels": list(row["labels"] or []),
        "label_certainties": list(row.get("label_certainties") or []),
        "characteristics": list(row.get("characteristics") or []),
        "slice_thickness": row.get("slice_thickness"),
        "report_language": row["report_language"],
        "report_text": text,
        "report_excerpt": excerpt(text),
        "tags": tags(row),
        "thumbnail_url": thumb,
    }


def rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The cursor's rows as dicts."""
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]
