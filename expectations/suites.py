"""The publication gate's expectation suites, declared as data.

One suite per published table (``foundation.schema.TABLES``): the suites are
the stage boundary between "a partner run produced tables" and "the tables
may be published". They are declared here as plain :class:`Check` records so
that a reviewer reads what is enforced without reading GX code, and so that
this module imports in milliseconds (``gate`` turns the records into GX
expectations only when it validates).

The suites do not depend on the run: whatever varies per run (the partner,
its region, the keys of parent tables used for referential integrity, whether
a ``studies`` row is required) is a GX *suite parameter*
(``{"$PARAMETER": name}``) whose value :func:`suite_parameters` computes from
the run's tables. The same suite definitions can therefore be exported as JSON
(:func:`suite_documents`) and audited once.

Why these checks (what publishing a bad row would break):

* schema columns exist and no extra column appears: the store, the query
  service and the Pro databases read these columns by name, and a column not
  in the contract (say, a forgotten ``patient_name``) must never be published;
* primary keys not null and unique: re-publication replaces a partner's rows
  by key, and duplicates double-count search results and partner payments;
* ``partner_id`` equals the partner and ``region`` its region: no table holds
  two partners' rows before consolidation, and data never crosses regions;
* UIDs look like keyed UIDs (``2.25.<decimal>``, PS3.5 B.2) and tokens like
  keyed tokens (32 lowercase hex): an original hospital UID (``1.2.840...``)
  or a raw identifier in these columns means de-identification was skipped;
* referential integrity: an orphan instance/series/report/label cannot be
  found from a study, and a study without its patient row breaks the patient
  view. GX has no cross-table expectation, so the child column is checked
  with ``expect_column_values_to_be_in_set`` against the parent's keys (this
  run's, plus those the partner published earlier: late reports);
* value domains: sex, age (0-90 in the US, where 90 means 90+ under HIPAA
  Safe Harbor; 0-120 elsewhere, or the profile's cap),
  DICOM modality, image size, report text present, relative file paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

import pyarrow as pa

from foundation.schema import PRIMARY_KEYS, TABLES

# Patterns, shared with tests and with the messages.
KEYED_UID_RE = r"^2\.25\.\d{1,39}$"
"""A UID derived under the UUID root 2.25 (PS3.5 B.2): what de-identification emits."""
TOKEN_RE = r"^[0-9a-f]{32}$"
"""A patient token: keyed HMAC-SHA256, first 32 lowercase hex chars (anonymization.keys)."""
SHA256_RE = r"^[0-9a-f]{64}$"
# A published path is relative to the partner root and cannot climb out of it.
UNSAFE_PATH_RE = r"^/|^[A-Za-z]:|(?:^|/)\.\.(?:/|$)|\\"

SEX_VALUES = ["M", "F", "O"]  # null allowed: unknown
# Upper bound of age_at_study. Under HIPAA Safe Harbor (US profile, age_cap 90)
# ages over 89 are published as 90, so 91+ means the cap was not applied; other
# jurisdictions keep real ages, bounded by plausibility only. Callers that know
# the partner's profile pass its age_cap explicitly.
HIPAA_MAX_AGE = 90
PLAUSIBLE_MAX_AGE = 120


def default_max_age(region: str) -> int:
    return HIPAA_MAX_AGE if region == "us" else PLAUSIBLE_MAX_AGE
REPORT_LANGUAGES = ["es", "pt", "en"]
REPORT_FORMATS = ["txt", "pdf", "image"]
MAX_IMAGE_SIDE = 65535  # Rows/Columns are US (unsigned 16-bit), PS3.5 6.2

# Modality defined terms retired from PS3.3 C.7.3.1.1.1 that legacy archives
# still carry; the current terms come from pydicom's copy of CID 33.
RETIRED_MODALITIES = (
    "AS", "CD", "CF", "CP", "CS", "DD", "DF", "DM", "DS", "EC", "FA", "FS",
    "LP", "MA", "MS", "OPR", "ST", "VF",
)  # fmt: skip

UID_COLUMNS = ("study_uid", "series_uid", "sop_uid")

# A failure message quotes a few offending values, but the gate exists because
# something may have gone wrong with de-identification: an identifier column
# is quoted only where the value already has its de-identified shape (an
# original UID or a raw document number stays out of logs and alerts), and
# free text and paths are never quoted.
REVEAL_IF_MATCHES: dict[str, str] = {
    # Under STA's own 2.25 root: derived, never a hospital's original UID.
    **{col: r"^2\.25\.[0-9.]{1,60}$" for col in UID_COLUMNS},
    "patient_token": TOKEN_RE,
}
NEVER_REVEAL = frozenset({"text_scrubbed", "path", "study_description", "series_description"})
TABLES_WITH_REGION = tuple(t for t, s in TABLES.items() if "region" in s.names)


@dataclass(frozen=True)
class ForeignKey:
    """``table.column`` must only hold values of ``parent.parent_column``."""

    table: str
    column: str
    parent: str
    parent_column: str

    @property
    def parameter(self) -> str:
        return f"keys_{self.parent}_{self.parent_column}"


FOREIGN_KEYS: tuple[ForeignKey, ...] = (
    ForeignKey("instances", "series_uid", "series", "series_uid"),
    ForeignKey("instances", "study_uid", "studies", "study_uid"),
    ForeignKey("series", "study_uid", "studies", "study_uid"),
    ForeignKey("reports", "study_uid", "studies", "study_uid"),
    ForeignKey("labels", "study_uid", "studies", "study_uid"),
    ForeignKey("studies", "patient_token", "patients", "patient_token"),
)

# Columns that must be present on every row beyond the primary keys.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "patients": ("partner_id", "region"),
    "studies": ("patient_token", "partner_id", "region"),
    "series": ("study_uid", "partner_id"),
    "instances": ("series_uid", "study_uid", "partner_id", "path"),
    "reports": ("study_uid", "partner_id", "text_scrubbed"),
    "labels": ("partner_id",),
}


@dataclass(frozen=True)
class Check:
    """One expectation of a table's suite, and how to say that it failed.

    ``expectation`` is a GX 1.x class name in ``great_expectations.expectations``;
    ``kwargs`` are its arguments (values may be ``{"$PARAMETER": name}``);
    ``message`` is formatted with ``n`` (unexpected count), ``eg`` (a few
    offending values, or "") and the suite parameters, and is prefixed with
    ``table.column: `` by the gate.
    """

    table: str
    expectation: str
    kwargs: Mapping[str, Any]
    message: str
    column: str | None = None
    show_values: bool = True
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        if self.column:
            return f"{self.table}.{self.column}"
        cols = self.kwargs.get("column_list")
        return f"{self.table}.({', '.join(cols)})" if cols else self.table


def param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


@lru_cache(maxsize=1)
def modalities() -> tuple[str, ...]:
    """DICOM modality defined terms: CID 33 "Modality" plus retired terms.

    Generated from pydicom's concept dictionary (itself generated from the
    DICOM standard's PS3.16), not typed by hand; imported lazily (~1 s).
    """
    from pydicom.sr._concepts_dict import concepts

    current = {
        code
        for by_code in concepts["DCM"].values()
        for code, (_meaning, cids) in by_code.items()
        if 33 in cids
    }
    return tuple(sorted(current | set(RETIRED_MODALITIES)))


def _table_checks(table: str, schema: pa.Schema) -> list[Check]:
    checks: list[Check] = []
    cols = schema.names
    # One expectation for the whole column list (missing and extra columns):
    # one ExpectColumnToExist per column would double the suite's run time.
    checks.append(
        Check(
            table,
            "ExpectTableColumnsToMatchSet",
            {"column_set": list(cols), "exact_match": True},
            "",
            meta={"kind": "columns"},
        )
    )

    # Primary key.
    pk = PRIMARY_KEYS[table]
    not_null = list(dict.fromkeys([*pk, *REQUIRED_COLUMNS.get(table, ())]))
    for col in not_null:
        checks.append(
            Check(table, "ExpectColumnValuesToNotBeNull", {"column": col}, "{n} null values", col)
        )
    if len(pk) == 1:
        checks.append(
            Check(
                table,
                "ExpectColumnValuesToBeUnique",
                {"column": pk[0]},
                "{n} rows share a duplicated primary key{eg}",
                pk[0],
            )
        )
    else:
        checks.append(
            Check(
                table,
                "ExpectCompoundColumnsToBeUnique",
                {"column_list": list(pk)},
                "{n} rows share a duplicated primary key",
                show_values=False,
            )
        )

    # Tenancy and residency.
    checks.append(
        Check(
            table,
            "ExpectColumnValuesToBeInSet",
            {"column": "partner_id", "value_set": param("partner_ids")},
            "{n} values other than the partner '{partner_id}'{eg}",
            "partner_id",
        )
    )
    if "region" in cols:
        checks.append(
            Check(
                table,
                "ExpectColumnValuesToBeInSet",
                {"column": "region", "value_set": param("regions")},
                "{n} values other than the partner's region '{region}'{eg}",
                "region",
            )
        )

    # De-identification left its marks: keyed UIDs and tokens.
    for col in UID_COLUMNS:
        if col in cols:
            checks.append(
                Check(
                    table,
                    "ExpectColumnValuesToMatchRegex",
                    {"column": col, "regex": KEYED_UID_RE},
                    "{n} values not matching a keyed UID (2.25.<digits>){eg}",
                    col,
                )
            )
    if "patient_token" in cols:
        checks.append(
            Check(
                table,
                "ExpectColumnValuesToMatchRegex",
                {"column": "patient_token", "regex": TOKEN_RE},
                "{n} values not matching a patient token (32 lowercase hex){eg}",
                "patient_token",
            )
        )

    # Referential integrity (GX has no cross-table expectation).
    for fk in FOREIGN_KEYS:
        if fk.table == table:
            checks.append(
                Check(
                    table,
                    "ExpectColumnValuesToBeInSet",
                    {"column": fk.column, "value_set": param(fk.parameter)},
                    f"{{n}} values not in {fk.parent}.{fk.parent_column}{{eg}}",
                    fk.column,
                )
            )

    # Value domains.
    for col in ("sex",):
        if col in cols:
            checks.append(
                Check(
                    table,
                    "ExpectColumnValuesToBeInSet",
                    {"column": col, "value_set": SEX_VALUES},
                    "{n} values not in {{M, F, O, null}}{eg}",
                    col,
                )
            )
    if "modality" in cols:
        checks.append(
            Check(
                table,
                "ExpectColumnValuesToBeInSet",
                {"column": "modality", "value_set": param("modalities")},
                "{n} values not in the DICOM modalities (CID 33){eg}",
                "modality",
            )
        )
    return checks


def _domain_checks() -> list[Check]:
    between = "ExpectColumnValuesToBeBetween"
    in_set = "ExpectColumnValuesToBeInSet"
    return [
        Check(
            "studies",
            between,
            {"column": "age_at_study", "min_value": 0, "max_value": param("max_age")},
            "{n} values outside [0, {max_age}]{eg}",
            "age_at_study",
        ),
        Check(
            "studies",
            "ExpectTableRowCountToBeBetween",
            {"min_value": param("studies_min_rows")},
            "no rows, but instances has {instances_rows} rows (a run with instances must have studies)",
            meta={"kind": "row_count"},
        ),
        Check(
            "patients",
            between,
            {"column": "birth_decade", "min_value": 1880, "max_value": 2100},
            "{n} values outside [1880, 2100]{eg}",
            "birth_decade",
        ),
        *(
            Check(
                "instances",
                between,
                {"column": col, "min_value": 1, "max_value": MAX_IMAGE_SIDE},
                f"{{n}} values outside [1, {MAX_IMAGE_SIDE}]{{eg}}",
                col,
            )
            for col in ("rows", "cols")
        ),
        Check(
            "instances",
            between,
            {"column": "frames", "min_value": 1},
            "{n} values below 1{eg}",
            "frames",
        ),
        Check(
            "instances",
            "ExpectColumnValuesToNotMatchRegex",
            {"column": "path", "regex": UNSAFE_PATH_RE},
            "{n} paths not relative to the partner root{eg}",
            "path",
        ),
        Check(
            "instances",
            "ExpectColumnValuesToMatchRegex",
            {"column": "sha256", "regex": SHA256_RE},
            "{n} values not matching a SHA-256 hex digest{eg}",
            "sha256",
        ),
        Check(
            "reports",
            in_set,
            {"column": "language", "value_set": REPORT_LANGUAGES},
            "{n} values not in {{es, pt, en}}{eg}",
            "language",
        ),
        Check(
            "reports",
            in_set,
            {"column": "source_format", "value_set": REPORT_FORMATS},
            "{n} values not in {{txt, pdf, image}}{eg}",
            "source_format",
        ),
        Check(
            "labels",
            between,
            {"column": "confidence", "min_value": 0, "max_value": 1},
            "{n} values outside [0, 1]{eg}",
            "confidence",
        ),
    ]


@lru_cache(maxsize=1)
def suite_checks() -> dict[str, tuple[Check, ...]]:
    """Every table's suite, in ``foundation.schema.TABLES`` order."""
    suites = {t: _table_checks(t, s) for t, s in TABLES.items()}
    for check in _domain_checks():
        suites[check.table].append(check)
    return {t: tuple(c) for t, c in suites.items()}


def suite_parameters(
    tables: Mapping[str, pa.Table],
    *,
    partner_id: str,
    region: str,
    published_keys: Mapping[str, Iterable[Any]] | None = None,
    max_age: int | None = None,
) -> dict[str, Any]:
    """The run-dependent values the suites refer to with ``$PARAMETER``.

    ``tables`` holds every table of the run (absent ones as empty tables).
    Parent keys are the distinct non-null values of the run's parent table,
    plus ``published_keys["<parent>.<column>"]``: keys the partner published in
    earlier runs (a report may arrive, and be linked to its study, runs after
    the study's images). A parent with no keys yields an empty set, so every
    child row is then reported as an orphan. ``max_age`` defaults to
    :func:`default_max_age` of the region.
    """
    published_keys = published_keys or {}
    params: dict[str, Any] = {
        "partner_id": partner_id,
        "region": region,
        "partner_ids": [partner_id],
        "regions": [region],
        "modalities": list(modalities()),
        "max_age": default_max_age(region) if max_age is None else max_age,
        "instances_rows": tables["instances"].num_rows if "instances" in tables else 0,
    }
    params["studies_min_rows"] = 1 if params["instances_rows"] else 0
    for fk in FOREIGN_KEYS:
        if fk.parameter in params:
            continue
        parent = tables.get(fk.parent)
        keys: set[Any] = set()
        if parent is not None and fk.parent_column in parent.column_names:
            keys.update(parent.column(fk.parent_column).drop_null().unique().to_pylist())
        keys.update(k for k in published_keys.get(f"{fk.parent}.{fk.parent_column}", ()) if k is not None)
        params[fk.parameter] = sorted(keys)
    return params


def parent_columns() -> dict[str, tuple[str, ...]]:
    """Parent table -> key columns that children refer to (what to read from published tables)."""
    out: dict[str, tuple[str, ...]] = {}
    for fk in FOREIGN_KEYS:
        out[fk.parent] = tuple(dict.fromkeys([*out.get(fk.parent, ()), fk.parent_column]))
    return out


def suite_documents() -> dict[str, list[dict[str, Any]]]:
    """The suites as JSON-ready documents (GX expectation type names), for review and audit.

    ``python -c "import json, expectations.suites as s; print(json.dumps(s.suite_documents(), indent=1))"``
    """
    import re

    return {
        table: [
            {
                "type": re.sub(r"(?<!^)(?=[A-Z])", "_", c.expectation).lower(),
                "kwargs": dict(c.kwargs),
                "on_failure": f"{c.where}: {c.message}" if c.message else f"{c.where}: missing/extra columns",
            }
            for c in checks
        ]
        for table, checks in suite_checks().items()
    }
