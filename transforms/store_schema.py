"""Layout of a region's consolidated store (one DuckDB file per region).

The store holds the six published tables of ``foundation.schema`` exactly as
the partners published them (so a partner's rows can be replaced by
``partner_id`` alone), plus three tables of its own:

``store_meta``      key/value: the store's region and layout version. The query
                    service reads the region from here, so a store copied or
                    passed with ``--store`` still says where its rows live.
``store_partners``  one row per loaded partner: a fingerprint of the Parquet it
                    loaded, so a re-run with nothing re-published is a no-op.
``search_studies``  one row per study, denormalised for search: the filter
                    columns, labels as a list, the representative series and
                    its thumbnail, and ``card``, the JSON of everything a
                    result shows (report text, DICOM tags). Sorted by patient
                    token, numbered densely by ``sid``, ART-indexed on sid,
                    token and study UID, so a page or a timeline is a few
                    index lookups.
``search_terms``    the keyword index: (term, sid) of the accent-free,
                    lower-case words of each study's description, report and
                    series descriptions; ``search_vocab`` lists the terms.

The same ``rebuild_search`` fills ``search_studies`` for the consolidation
and for the synthetic benchmark store, so both have the same shape.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from foundation.schema import TABLES

LAYOUT_VERSION = "5"  # 5: concept labels with certainty, characterization columns (issue 13)

SEARCH_COLUMNS: list[tuple[str, str]] = [
    ("sid", "INTEGER"),  # dense row number, 1..n, in (patient_token, date, uid) order
    ("study_uid", "VARCHAR"),
    ("patient_token", "VARCHAR"),
    ("partner_id", "VARCHAR"),
    ("region", "VARCHAR"),
    ("country", "VARCHAR"),
    ("modality", "VARCHAR"),
    ("body_region", "VARCHAR"),
    ("study_date", "DATE"),
    ("age", "INTEGER"),
    ("sex", "VARCHAR"),
    ("manufacturer", "VARCHAR"),
    ("labels", "VARCHAR[]"),  # positive concept ids: the facets and filters (include/labelling/concepts.yaml)
    # Every label as 'concept:certainty' ('pneumonia:negative'): negatives and hedges stay queryable.
    ("label_certainties", "VARCHAR[]"),
    # Characterization (labelling/characterize.py): the surest value of each single-valued field,
    # and every 'field:value' (symptoms, history... are several).
    ("cluster", "VARCHAR"),
    ("age_group", "VARCHAR"),
    ("ethnicity", "VARCHAR"),
    ("contrast", "VARCHAR"),
    ("dimensionality", "VARCHAR"),
    ("slice_thickness", "DOUBLE"),
    ("pixel_spacing", "DOUBLE"),
    ("scan_phase", "VARCHAR"),
    ("care_setting", "VARCHAR"),
    ("procedure_context", "VARCHAR"),
    ("characteristics", "VARCHAR[]"),
    # JSON of every field a result shows (CARD_FIELDS), report text included;
    # the columns above are the ones searched, sorted or grouped on.
    ("card", "VARCHAR"),
]
SEARCH_COLUMNS_SQL = (
    "CREATE TABLE IF NOT EXISTS search_studies ("
    + ", ".join(f"{n} {t}" for n, t in SEARCH_COLUMNS) + ")"
)

# The fields of a result card, in ``search_studies.card`` (JSON). A page of
# results reads this one column for its ~10 rows: each extra column fetched
# costs about a millisecond per page at a million studies.
CARD_FIELDS = (
    "study_uid", "patient_token", "partner_id", "region", "country", "modality", "modalities",
    "body_region", "study_date", "study_description", "age", "sex", "manufacturer",
    "manufacturer_model", "n_series", "n_instances", "labels", "report_text", "report_language",
    "thumb_series_uid", "thumbnail", "body_part", "series_description", "rows", "cols",
    "label_certainties", "label_evidence", "cluster", "age_group", "ethnicity", "contrast", "dimensionality",
    "slice_thickness", "pixel_spacing", "scan_phase", "care_setting", "procedure_context", "characteristics",
)


def create_tables(con: duckdb.DuckDBPyConnection, region: str) -> None:
    """Create every table of the layout if missing and record the region.

    The six published tables take their columns from the Arrow schemas, so a
    column added to ``foundation.schema`` shows up here without a second list.
    """
    for name, schema in TABLES.items():
        empty = pa.Table.from_batches([], schema=schema)  # noqa: F841 - read by DuckDB below
        con.execute(f"CREATE TABLE IF NOT EXISTS {name} AS SELECT * FROM empty LIMIT 0")
    con.execute(SEARCH_COLUMNS_SQL)
    # Point lookups (a patient's rows, a series' thumbnail) use ART indexes
    # instead of scanning; measured ~40x faster at a million rows.
    con.execute("CREATE INDEX IF NOT EXISTS patients_token ON patients (patient_token)")
    con.execute("CREATE INDEX IF NOT EXISTS series_uid ON series (series_uid)")
    con.execute("CREATE INDEX IF NOT EXISTS series_study ON series (study_uid)")
    con.execute("CREATE TABLE IF NOT EXISTS search_terms (term VARCHAR, sid INTEGER)")
    con.execute("CREATE TABLE IF NOT EXISTS search_vocab (term VARCHAR, df INTEGER)")
    con.execute("CREATE TABLE IF NOT EXISTS store_meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
    con.execute(
        "CREATE TABLE IF NOT EXISTS store_partners ("
        " partner_id VARCHAR PRIMARY KEY, fingerprint VARCHAR, loaded_at TIMESTAMP,"
        " rows_json VARCHAR)"
    )
    existing = con.execute("SELECT value FROM store_meta WHERE key = 'region'").fetchone()
    if existing and existing[0] != region:
        raise PermissionError(f"store belongs to region {existing[0]!r}, not {region!r}")
    con.execute("INSERT OR REPLACE INTO store_meta VALUES ('region', ?)", [region])
    con.execute("INSERT OR REPLACE INTO store_meta VALUES ('layout_version', ?)", [LAYOUT_VERSION])


def rebuild_search(con: duckdb.DuckDBPyConnection) -> int:
    """Rebuild ``search_studies``, ``search_terms`` and ``search_vocab`` from
    the six base tables; returns the number of studies.

    Rebuilt whole rather than per partner because the row order matters:
    rows are sorted by patient token (then date), so DuckDB's per-row-group
    min/max lets a patient timeline read a few row groups instead of the
    table, and ``sid`` (the row number) is what the keyword index points at.

    ``search_terms`` is an inverted index (term, sid), sorted by term: a
    keyword is first matched against the small ``search_vocab`` (substring,
    so 'nodul' finds 'nodulo' and 'nodulos'), then the postings of the
    matching terms are read from the few row groups that hold them. This is
    what makes keyword search at a million studies cost tens of milliseconds
    instead of a scan of every report (measured: ~200 ms for a LIKE scan).
    """
    con.execute("DROP TABLE IF EXISTS search_studies")
    con.execute(f"CREATE OR REPLACE TEMP TABLE search_staging AS {_search_select_sql()}")
    con.execute(SEARCH_COLUMNS_SQL)
    columns = [n for n, _t in SEARCH_COLUMNS if n != "card"]
    card = "to_json(struct_pack(" + ", ".join(f"{f} := {f}" for f in CARD_FIELDS) + "))::VARCHAR"
    con.execute(f"INSERT INTO search_studies SELECT {', '.join(columns)}, {card} "
                "FROM search_staging ORDER BY sid")
    # A result page reads ~10 rows by sid: with the index that is a fetch of
    # those rows (~12 ms for 10 rows at a million studies) instead of a scan
    # decompressing every column (~470 ms measured).
    con.execute("CREATE UNIQUE INDEX search_sid ON search_studies (sid)")
    con.execute("CREATE INDEX search_token ON search_studies (patient_token)")
    con.execute("CREATE INDEX search_uid ON search_studies (study_uid)")
    con.execute(
        "CREATE OR REPLACE TABLE search_terms AS "
        "SELECT DISTINCT term, sid FROM ("
        "  SELECT sid, unnest(regexp_split_to_array(search_text, '[^\\p{L}\\p{N}]+')) AS term"
        "  FROM search_staging) WHERE term <> '' ORDER BY term, sid"
    )
    con.execute("DROP TABLE search_staging")
    con.execute(
        "CREATE OR REPLACE TABLE search_vocab AS "
        "SELECT term, count(*)::INTEGER AS df FROM search_terms GROUP BY term ORDER BY term"
    )
    return con.execute("SELECT count(*) FROM search_studies").fetchone()[0]


def _search_select_sql() -> str:
    """SQL of the rows of ``search_studies`` (plus their ``search_text``,
    which only the keyword index needs) from the six base tables.

    Why these choices:
    - ``labels`` lists the study's *positive* concept ids (``pneumonia``,
      ``birads_2``, ``normal``): only positive labels are facets and filters;
      ``label_certainties`` lists every label as ``concept:certainty`` so that
      "rules out pneumonia" (``pneumonia:negative``) is one list lookup too;
      ``label_evidence`` (card only) the evidence text of each label.
    - characterization: per single-valued field the value with the highest
      confidence becomes a column (``age_group``, ``contrast``,
      ``slice_thickness``...); ``characteristics`` lists every ``field:value``.
    - a study may have several reports (addenda): their texts are joined in
      report id order so results are stable.
    - ``search_text`` is ``lower(strip_accents(...))`` of the description,
      report text and series descriptions: the query side applies the same two
      DuckDB functions to each keyword, so 'Nódulo', 'NODULO' and 'nodulo'
      match each other in Spanish, Portuguese ('ç', 'ã') and English alike.
    - the representative series is the one with a thumbnail and the most
      instances (ties by series number), the one a human would look at first.
    """
    return """
WITH lab AS (
    SELECT study_uid, partner_id,
           list_sort(list_distinct(list(concept) FILTER (WHERE certainty = 'positive'))) AS labels,
           list_sort(list_distinct(list(concept || ':' || certainty))) AS label_certainties,
           list(struct_pack(concept := concept, certainty := certainty, confidence := confidence,
                            source := source, text := evidence_text, section := evidence_section)
                ORDER BY concept) AS label_evidence
    FROM labels GROUP BY study_uid, partner_id
), chr AS (
    SELECT study_uid, partner_id,
           arg_max(value, confidence) FILTER (WHERE field = 'cluster') AS cluster,
           arg_max(value, confidence) FILTER (WHERE field = 'age_group') AS age_group,
           arg_max(value, confidence) FILTER (WHERE field = 'ethnicity') AS ethnicity,
           arg_max(value, confidence) FILTER (WHERE field = 'contrast') AS contrast,
           arg_max(value, confidence) FILTER (WHERE field = 'dimensionality') AS dimensionality,
           arg_max(value_num, confidence) FILTER (WHERE field = 'slice_thickness_mm') AS slice_thickness,
           arg_max(value_num, confidence) FILTER (WHERE field = 'pixel_spacing_mm') AS pixel_spacing,
           arg_max(value, confidence) FILTER (WHERE field = 'scan_phase') AS scan_phase,
           arg_max(value, confidence) FILTER (WHERE field = 'care_setting') AS care_setting,
           arg_max(value, confidence) FILTER (WHERE field = 'procedure_context') AS procedure_context,
           list_sort(list_distinct(list(field || ':' || value))) AS characteristics
    FROM characteristics GROUP BY study_uid, partner_id
), rep AS (
    SELECT study_uid, partner_id,
           string_agg(text_scrubbed, E'\\n\\n' ORDER BY report_id) AS report_text,
           min(language) AS report_language
    FROM reports GROUP BY study_uid, partner_id
), ser AS (
    SELECT study_uid, partner_id,
           arg_max(series_uid, (thumbnail IS NOT NULL, n_instances, -series_number)) AS thumb_series_uid,
           arg_max(thumbnail, (thumbnail IS NOT NULL, n_instances, -series_number)) AS thumbnail,
           arg_max(body_part, (thumbnail IS NOT NULL, n_instances, -series_number)) AS body_part,
           arg_max(series_description, (thumbnail IS NOT NULL, n_instances, -series_number))
               AS series_description,
           string_agg(series_description, ' ') AS all_series_descriptions
    FROM series GROUP BY study_uid, partner_id
), inst AS (
    SELECT series_uid, partner_id, max(rows) AS rows, max(cols) AS cols
    FROM instances GROUP BY series_uid, partner_id
)
SELECT row_number() OVER (ORDER BY s.patient_token, s.study_date_shifted, s.study_uid)::INTEGER AS sid,
       s.study_uid, s.patient_token, s.partner_id, s.region, s.country,
       s.modality,
       coalesce(s.modalities, CASE WHEN s.modality IS NULL THEN [] ELSE [s.modality] END) AS modalities,
       coalesce(s.body_region, 'unknown') AS body_region,
       s.study_date_shifted AS study_date, s.study_description, s.age_at_study AS age, s.sex,
       s.manufacturer, s.manufacturer_model, s.n_series, s.n_instances,
       coalesce(lab.labels, []) AS labels,
       coalesce(lab.label_certainties, []) AS label_certainties, lab.label_evidence,
       chr.cluster, chr.age_group, chr.ethnicity, chr.contrast, chr.dimensionality, chr.slice_thickness,
       chr.pixel_spacing, chr.scan_phase, chr.care_setting, chr.procedure_context,
       coalesce(chr.characteristics, []) AS characteristics,
       rep.report_text, rep.report_language,
       lower(strip_accents(concat_ws(' ', s.study_description, rep.report_text,
                                     ser.all_series_descriptions))) AS search_text,
       ser.thumb_series_uid, ser.thumbnail, ser.body_part, ser.series_description,
       inst.rows, inst.cols
FROM studies s
LEFT JOIN lab ON lab.study_uid = s.study_uid AND lab.partner_id = s.partner_id
LEFT JOIN chr ON chr.study_uid = s.study_uid AND chr.partner_id = s.partner_id
LEFT JOIN rep ON rep.study_uid = s.study_uid AND rep.partner_id = s.partner_id
LEFT JOIN ser ON ser.study_uid = s.study_uid AND ser.partner_id = s.partner_id
LEFT JOIN inst ON inst.series_uid = ser.thumb_series_uid AND inst.partner_id = s.partner_id
ORDER BY 1
"""
