"""The DICOM attributes a study shows (result cards, export packages), from
the store's ``search_studies.card`` JSON (``transforms.store_schema.CARD_FIELDS``).
One definition, used by the search service and the export builder."""

from __future__ import annotations

from typing import Any


def dicom_tags(row: dict[str, Any]) -> dict[str, Any]:
    """Selected DICOM attributes under their DICOM keywords (empty ones left out)."""
    out = {
        "Modality": row.get("modality"),
        "ModalitiesInStudy": "\\".join(row.get("modalities") or []),
        "BodyPartExamined": row.get("body_part"),
        "StudyDescription": row.get("study_description"),
        "SeriesDescription": row.get("series_description"),
        "StudyDate": row["study_date"].replace("-", "") if row.get("study_date") else None,
        "PatientSex": row.get("sex"),
        "PatientAge": f"{row['age']:03d}Y" if row.get("age") is not None else None,
        "Manufacturer": row.get("manufacturer"),
        "ManufacturerModelName": row.get("manufacturer_model"),
        "Rows": row.get("rows"),
        "Columns": row.get("cols"),
        "NumberOfStudyRelatedSeries": row.get("n_series"),
        "NumberOfStudyRelatedInstances": row.get("n_instances"),
    }
    return {k: v for k, v in out.items() if v not in (None, "")}
