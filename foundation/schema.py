"""Arrow schemas of the published tables (per partner, then per region).

One place defines the columns so that the Parquet writer, the Great
Expectations suites, the consolidated store and the query service agree.
Every table carries ``partner_id`` so that a partner re-publishing can replace
its own rows only.
"""

from __future__ import annotations

import pyarrow as pa

PATIENTS = pa.schema(
    [
        ("patient_token", pa.string()),
        ("partner_id", pa.string()),
        ("region", pa.string()),
        ("sex", pa.string()),  # M, F, O or null
        ("birth_decade", pa.int32()),  # e.g. 1950; null when unknown or capped (US 90+)
    ]
)

STUDIES = pa.schema(
    [
        ("study_uid", pa.string()),
        ("patient_token", pa.string()),
        ("partner_id", pa.string()),
        ("region", pa.string()),
        ("country", pa.string()),
        ("modality", pa.string()),  # primary modality of the study
        ("modalities", pa.list_(pa.string())),
        ("body_region", pa.string()),  # head_neck, chest, abdomen, msk, pelvis, breast, whole_body, unknown
        ("study_date_shifted", pa.date32()),
        ("study_description", pa.string()),
        ("age_at_study", pa.int32()),  # years; 90 means 90+ under the US profile
        ("sex", pa.string()),
        ("manufacturer", pa.string()),
        ("manufacturer_model", pa.string()),
        ("n_series", pa.int32()),
        ("n_instances", pa.int32()),
    ]
)

SERIES = pa.schema(
    [
        ("series_uid", pa.string()),
        ("study_uid", pa.string()),
        ("partner_id", pa.string()),
        ("modality", pa.string()),
        ("body_part", pa.string()),
        ("series_number", pa.int32()),
        ("series_description", pa.string()),
        ("n_instances", pa.int32()),
        ("thumbnail", pa.string()),  # path relative to the partner root, or null
    ]
)

INSTANCES = pa.schema(
    [
        ("sop_uid", pa.string()),
        ("series_uid", pa.string()),
        ("study_uid", pa.string()),
        ("partner_id", pa.string()),
        ("sop_class_uid", pa.string()),
        ("transfer_syntax", pa.string()),
        ("path", pa.string()),  # de-identified file, relative to the partner root
        ("rows", pa.int32()),
        ("cols", pa.int32()),
        ("frames", pa.int32()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),  # of the de-identified file
        ("pixels_modified", pa.bool_()),
    ]
)

REPORTS = pa.schema(
    [
        ("report_id", pa.string()),  # keyed hash of the raw file's content
        ("study_uid", pa.string()),
        ("patient_token", pa.string()),
        ("partner_id", pa.string()),
        ("language", pa.string()),
        ("source_format", pa.string()),  # txt, pdf, image
        ("pages", pa.int32()),
        ("ocr_pages", pa.int32()),
        ("text_scrubbed", pa.string()),
    ]
)

# Report labels (labelling/, issue 13): one row per study and concept, the
# concept's certainty decided over every mention in the study's reports.
# Only positive labels are search facets; the others stay queryable
# ("studies that rule out pneumonia"). Concept ids: include/labelling/concepts.yaml.
LABELS = pa.schema(
    [
        ("study_uid", pa.string()),
        ("partner_id", pa.string()),
        ("concept", pa.string()),  # e.g. pneumonia, fracture, birads_4, normal
        ("certainty", pa.string()),  # positive, negative, uncertain, historical, family
        ("label_es", pa.string()),
        ("label_pt", pa.string()),
        ("label_en", pa.string()),
        ("confidence", pa.float32()),
        ("source", pa.string()),  # rule or model
        ("model", pa.string()),
        ("model_version", pa.string()),
        ("cluster", pa.string()),  # labelling cluster the study was routed to (include/labelling/clusters)
        ("report_id", pa.string()),  # the report holding the evidence
        ("evidence_start", pa.int32()),  # character offsets in that report's text_scrubbed
        ("evidence_end", pa.int32()),
        ("evidence_section", pa.string()),  # findings, impression, indication, history, body...
        ("evidence_text", pa.string()),
    ]
)

# Study characterization (labelling/characterize.py): demographics, image
# attributes, clinical context; one row per study, field and value, each with
# where it was read and a confidence. Fields: age_group, sex, ethnicity,
# resolution, pixel_spacing_mm, slice_thickness_mm, dimensionality, contrast,
# scan_phase, care_setting, symptom, history, procedure_context, body_region,
# cluster. ``value_num`` holds the number of numeric fields (mm, pixels, age).
CHARACTERISTICS = pa.schema(
    [
        ("study_uid", pa.string()),
        ("partner_id", pa.string()),
        ("field", pa.string()),
        ("value", pa.string()),
        ("value_num", pa.float64()),
        ("source", pa.string()),  # dicom, description, report, labeller, derived, rules
        ("confidence", pa.float32()),
        ("evidence", pa.string()),  # the DICOM attribute, or "start-end" offsets in the report
    ]
)

# One row per de-identified DICOM file, written by the deidentify stage into
# the run folder (``rows/dicom-NNNNN.parquet``) and read by the tables stage.
# The fields are those of ``anonymization.dicom.DeidResult`` (same names)
# plus ``path``, the staged file relative to ``staged_dicom/``.
DICOM_ROW = pa.schema(
    [
        ("sop_uid", pa.string()),
        ("series_uid", pa.string()),
        ("study_uid", pa.string()),
        ("sop_class_uid", pa.string()),
        ("transfer_syntax", pa.string()),
        ("path", pa.string()),
        ("rows", pa.int32()),
        ("cols", pa.int32()),
        ("frames", pa.int32()),
        ("size_bytes", pa.int64()),
        ("sha256", pa.string()),
        ("pixels_modified", pa.bool_()),
        ("patient_token", pa.string()),
        ("modality", pa.string()),
        ("body_part", pa.string()),
        ("study_date_shifted", pa.date32()),
        ("study_description", pa.string()),
        ("series_description", pa.string()),
        ("series_number", pa.int32()),
        ("age", pa.int32()),
        ("sex", pa.string()),
        ("birth_year", pa.int32()),
        ("manufacturer", pa.string()),
        ("manufacturer_model", pa.string()),
        ("profile", pa.string()),  # the de-identification profile chosen for this file (issue 16.3)
    ]
)


def dicom_row(result: object, path: str) -> dict:
    """The DICOM row of a de-identification result (any object with DICOM_ROW's attributes)."""
    return {name: (path if name == "path" else getattr(result, name)) for name in DICOM_ROW.names}


TABLES: dict[str, pa.Schema] = {
    "patients": PATIENTS,
    "studies": STUDIES,
    "series": SERIES,
    "instances": INSTANCES,
    "reports": REPORTS,
    "labels": LABELS,
    "characteristics": CHARACTERISTICS,
}

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "patients": ("patient_token", "partner_id"),
    "studies": ("study_uid",),
    "series": ("series_uid",),
    "instances": ("sop_uid",),
    "reports": ("report_id",),
    "labels": ("study_uid", "concept"),
    "characteristics": ("study_uid", "field", "value"),
}
