"""From per-file rows to the published tables of one run (schemas in foundation/schema.py)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from anonymization.keys import Keyring
from foundation.partners import PartnerConfig
from foundation.paths import RunFolder
from foundation.profiles import Profile
from foundation.schema import TABLES

NON_IMAGE_MODALITIES = {"SR", "PR", "KO", "DOC", "REG", "SEG", "RTSTRUCT", "RTPLAN"}


def _rows(work: RunFolder, kind: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in work.rows_files(kind):
        out.extend(pq.read_table(f).to_pylist())
    return out


def _thumbnail(work: RunFolder, series_uid: str, staged_path: str) -> str | None:
    try:
        from transforms.thumbnails import make_thumbnail
    except ImportError:
        return None
    target = work.thumbnail(series_uid)
    target.parent.mkdir(exist_ok=True)
    try:
        made = make_thumbnail(work.staged_dicom / staged_path, target)
    except Exception:  # noqa: BLE001 - a thumbnail is a convenience, never a reason to fail a run
        return None
    return f"thumbnails/{Path(made).name}" if made else None


def build_tables(partner: PartnerConfig, profile: Profile, work: RunFolder) -> dict[str, pa.Table]:
    """The six published tables of a run from its per-file rows (ages capped by the profile)."""
    dicom = _rows(work, "dicom")
    reports = _rows(work, "report")
    cap = profile.age_cap

    instances = [
        {k: r[k] for k in ("sop_uid", "series_uid", "study_uid", "sop_class_uid", "transfer_syntax", "rows",
                           "cols", "frames", "size_bytes", "sha256", "pixels_modified")}
        | {"partner_id": partner.id, "path": f"dicom/{r['path']}"}
        for r in dicom
    ]

    by_series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in dicom:
        by_series[r["series_uid"]].append(r)
    series = []
    for uid, members in sorted(by_series.items()):
        first = members[0]
        middle = sorted(members, key=lambda r: r["sop_uid"])[len(members) // 2]
        series.append(
            {
                "series_uid": uid, "study_uid": first["study_uid"], "partner_id": partner.id,
                "modality": first["modality"], "body_part": first["body_part"],
                "series_number": first["series_number"], "series_description": first["series_description"],
                "n_instances": len(members), "thumbnail": _thumbnail(work, uid, middle["path"]),
            }
        )

    by_study: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in dicom:
        by_study[r["study_uid"]].append(r)
    studies = []
    for uid, members in sorted(by_study.items()):
        mods = Counter(m["modality"] for m in members if m["modality"])
        imaging = [m for m, _ in mods.most_common() if m not in NON_IMAGE_MODALITIES]
        first = members[0]
        desc = next((m["study_description"] for m in members if m["study_description"]), None)
        ages = [m["age"] for m in members if m["age"] is not None]
        age = min(ages[0], cap) if ages and cap else (ages[0] if ages else None)
        dates = [m["study_date_shifted"] for m in members if m["study_date_shifted"]]
        primary = imaging[0] if imaging else (mods.most_common(1)[0][0] if mods else None)
        studies.append(
            {
                "study_uid": uid, "patient_token": first["patient_token"], "partner_id": partner.id,
                "region": partner.region, "country": partner.country, "modality": primary,
                # Inferred with a confidence by the labelling stage (pipeline/label.py).
                "modalities": sorted(mods), "body_region": None,
                "study_date_shifted": min(dates) if dates else None, "study_description": desc, "age_at_study": age,
                "sex": first["sex"], "manufacturer": first["manufacturer"],
                "manufacturer_model": first["manufacturer_model"],
                "n_series": len({m["series_uid"] for m in members}), "n_instances": len(members),
            }
        )

    patients: dict[str, dict[str, Any]] = {}
    for r in dicom:
        capped = cap is not None and r["age"] is not None and r["age"] >= cap
        decade = None if capped or r["birth_year"] is None else (r["birth_year"] // 10) * 10
        patients.setdefault(
            r["patient_token"],
            {"patient_token": r["patient_token"], "partner_id": partner.id, "region": partner.region,
             "sex": r["sex"], "birth_decade": decade},
        )

    data = {
        "patients": list(patients.values()),
        "studies": studies,
        "series": series,
        "instances": instances,
        "reports": reports,
        "labels": [],  # written by the labelling stage (pipeline/label.py), with the characteristics
    }
    return {name: pa.Table.from_pylist(rows, schema=TABLES[name]) for name, rows in data.items()}


def write_links(work: RunFolder) -> int:
    """Keyed accession -> study, kept in the partner's state for reports arriving later.

    Read from the identity maps, so it runs before they are swept (pipeline/verify.py).
    """
    keyring = Keyring.from_env()
    rows = []
    for p in work.identity_files():
        for key, entry in json.loads(p.read_text(encoding="utf-8")).items():
            if key.startswith("study:"):
                continue
            rows.append({"accession_key": keyring.content_id(key.encode()), "study_uid": entry["study_uid"],
                         "patient_token": entry["patient_token"]})
    if rows:
        pq.write_table(pa.Table.from_pylist(rows), work.tables_links)
    return len(rows)
