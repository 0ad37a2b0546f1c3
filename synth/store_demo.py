"""A small, deterministic set of published partner Parquet for tests and demos.

Three partners in two regions (``co_hospital_norte`` and ``co_clinica_sur``
in ``co``, ``br_hospital_sp`` in ``br``) publish the tables of
``foundation.schema`` as the partner DAGs do. Some patients are seen at
several partners and in both regions, with the same token, which is what
linking has to bring together. Reports mix Spanish, Portuguese and English
with and without accents so that accent-insensitive search is exercised.

It stands in for the pipeline's output where the pipeline is not the thing
under test; its rows are plain Python, so tests can compute expected search
results from them independently of the SQL under test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from foundation.schema import TABLES
from labelling.labeller import label_report, table_row

DEMO_PARTNERS = [
    ("co", "co", "co_hospital_norte", ["es", "es", "en"]),
    ("co", "co", "co_clinica_sur", ["es"]),
    ("br", "br", "br_hospital_sp", ["pt", "pt", "en"]),
]
SHARED_PATIENTS = 4  # patients 0..3 are seen at every partner (both regions)

MODALITY_REGION = {
    "MR": ["head_neck", "msk", "abdomen"],
    "CT": ["chest", "abdomen", "head_neck"],
    "US": ["abdomen", "breast", "pelvis"],
    "MG": ["breast"],
    "CR": ["chest", "msk"],
    "DX": ["chest", "msk"],
}
MANUFACTURERS = ["GE Healthcare", "Siemens", "Philips", "Hologic"]
FINDINGS = {
    "es": [
        ("Se observa nódulo pulmonar de 8 mm en lóbulo superior derecho.", "finding", "pulmonary_nodule"),
        ("Ausencia del nódulo linfático. Estudio sin hallazgos.", "normal", "yes"),
        ("Calcificaciones benignas dispersas.", None, None),
        ("Fractura no desplazada del radio distal.", "finding", "fracture"),
        ("Opacidad basal compatible con neumonía.", "finding", "pneumonia"),
        ("Quiste simple en riñón izquierdo.", None, None),
    ],
    "pt": [
        ("Nódulo pulmonar de 6 mm no lobo superior.", "finding", "pulmonary_nodule"),
        ("Coração de dimensões normais. Exame sem alterações.", "normal", "yes"),
        ("Calcificações benignas esparsas.", None, None),
        ("Fratura sem desvio do rádio distal.", "finding", "fracture"),
        ("Opacidade basal compatível com pneumonia.", "finding", "pneumonia"),
    ],
    "en": [
        ("Pulmonary nodule of 5 mm in the right upper lobe.", "finding", "pulmonary_nodule"),
        ("No significant abnormality. Normal study.", "normal", "yes"),
        ("Non-displaced fracture of the distal radius.", "finding", "fracture"),
        ("Basal opacity consistent with pneumonia.", "finding", "pneumonia"),
    ],
}
DESCRIPTIONS = {"MR": "RM", "CT": "TAC", "US": "ECOGRAFIA", "MG": "MAMOGRAFIA", "CR": "RX", "DX": "RX DIGITAL"}


def demo_token(i: int) -> str:
    """The demo's patient token of person ``i`` (32 hex, like the real ones)."""
    return hashlib.sha256(f"sta-demo-person:{i}".encode()).hexdigest()[:32]


def _png(path: Path, seed: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("L", (48, 48))
    img.putdata([((x * 5 + y * 3 + seed * 17) % 256) for y in range(48) for x in range(48)])
    img.save(path, format="PNG")


def build_demo_rows(seed: int = 0, studies_per_partner: int = 24) -> dict[str, dict[str, list[dict]]]:
    """``{partner_id: {table: [row dict, ...]}}`` for the demo partners."""
    rng = random.Random(seed)
    people = []
    for i in range(24):
        people.append({"token": demo_token(i), "sex": "F" if i % 2 == 0 else "M",
                       "birth_year": 1940 + (i * 7) % 60})
    out: dict[str, dict[str, list[dict]]] = {}
    for p_index, (region, country, pid, langs) in enumerate(DEMO_PARTNERS):
        rows: dict[str, list[dict]] = {t: [] for t in TABLES}
        seen_patients: set[str] = set()
        for k in range(studies_per_partner):
            if k < SHARED_PATIENTS:
                person = people[k]  # the shared patients: one study at every partner
            else:
                person = people[rng.randrange(len(people))]
            modality = rng.choice(list(MODALITY_REGION))
            if modality == "MG" and person["sex"] != "F":
                modality = "CT"
            body_region = rng.choice(MODALITY_REGION[modality])
            date = dt.date(2015, 1, 1) + dt.timedelta(days=rng.randrange(3500) + p_index)
            age = date.year - person["birth_year"]
            lang = rng.choice(langs)
            text, _name, _value = rng.choice(FINDINGS[lang])
            study_uid = f"2.25.{100 + p_index}{k:04d}{seed}"
            manufacturer = "Hologic" if modality == "MG" else rng.choice(MANUFACTURERS)
            if body_region == "breast":
                birads = rng.choice(["1", "2", "2", "3", "4"])
                text += f" ACR BI-RADS {birads}."
            n_series = 1 + (k % 2)
            rows["studies"].append({
                "study_uid": study_uid, "patient_token": person["token"], "partner_id": pid,
                "region": region, "country": country, "modality": modality,
                "modalities": [modality], "body_region": body_region,
                "study_date_shifted": date, "study_description": f"{DESCRIPTIONS[modality]} {body_region.upper()}",
                "age_at_study": age, "sex": person["sex"], "manufacturer": manufacturer,
                "manufacturer_model": f"{manufacturer.split()[0]} M{k % 3}",
                "n_series": n_series, "n_instances": n_series * 2,
            })
            if person["token"] not in seen_patients:
                seen_patients.add(person["token"])
                rows["patients"].append({
                    "patient_token": person["token"], "partner_id": pid, "region": region,
                    "sex": person["sex"], "birth_decade": person["birth_year"] // 10 * 10,
                })
            for s in range(n_series):
                series_uid = f"{study_uid}.{s + 1}"
                thumb = f"thumbnails/{series_uid}.png" if s == 0 else None
                rows["series"].append({
                    "series_uid": series_uid, "study_uid": study_uid, "partner_id": pid,
                    "modality": modality, "body_part": body_region.upper(), "series_number": s + 1,
                    "series_description": f"{modality} serie {s + 1}", "n_instances": 2,
                    "thumbnail": thumb,
                })
                for n in range(2):
                    rows["instances"].append({
                        "sop_uid": f"{series_uid}.{n + 1}", "series_uid": series_uid,
                        "study_uid": study_uid, "partner_id": pid,
                        "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2", "transfer_syntax": "1.2.840.10008.1.2.1",
                        "path": f"dicom/{study_uid}/{series_uid}/{n + 1}.dcm", "rows": 512, "cols": 512,
                        "frames": 1, "size_bytes": 524_288, "sha256": hashlib.sha256(f"{series_uid}{n}".encode()).hexdigest(),
                        "pixels_modified": False,
                    })
            rows["reports"].append({
                "report_id": hashlib.sha256(f"report:{study_uid}".encode()).hexdigest()[:32],
                "study_uid": study_uid, "patient_token": person["token"], "partner_id": pid,
                "language": lang, "source_format": "txt", "pages": 1, "ocr_pages": 0,
                "text_scrubbed": text,
            })
            for lab in label_report(text, lang).labels:  # the pipeline's labeller on the demo text
                rows["labels"].append(table_row(lab, study_uid, pid))
        out[pid] = rows
    return out


def write_partner(data_root: Path, region: str, partner_id: str, rows: dict[str, list[dict]],
                  thumbnails: bool = True) -> Path:
    """Publish one partner's tables as ``<data_root>/<region>/partners/<id>/parquet``."""
    root = Path(data_root) / region / "partners" / partner_id
    pdir = root / "parquet"
    pdir.mkdir(parents=True, exist_ok=True)
    for table, schema in TABLES.items():
        pq.write_table(pa.Table.from_pylist(rows.get(table, []), schema=schema), pdir / f"{table}.parquet")
    if thumbnails:
        for i, s in enumerate(rows.get("series", [])):
            if s["thumbnail"]:
                _png(root / s["thumbnail"], i)
    return pdir


def write_demo_partners(data_root: Path, seed: int = 0, studies_per_partner: int = 24) -> dict[str, dict]:
    """Write the demo partners' Parquet under ``data_root``; returns their rows."""
    rows = build_demo_rows(seed, studies_per_partner)
    for region, _country, pid, _langs in DEMO_PARTNERS:
        write_partner(data_root, region, pid, rows[pid])
    return rows
