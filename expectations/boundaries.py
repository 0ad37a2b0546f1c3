"""Great Expectations checkpoints at the pipeline's stage boundaries, with Data Docs per run.

The publication gate (:mod:`expectations.gate`) checks the run's tables;
these checkpoints check what each stage hands the next one, so a broken
stage stops the run where it broke:

==============  ===========================  =====================================
boundary        data checked                 run by
==============  ===========================  =====================================
landing         the pull's manifest          classify, before sorting (pull -> classify)
deid_metadata   per-file DICOM rows          dicom_done (deidentify -> reports/verify)
report_text     per-report rows              build_tables, before building (reports -> tables)
labels          the run's labels table       validate (labels -> publish)
==============  ===========================  =====================================

Every suite is data (``SUITES``: column, expectation, arguments). Results
keep counts only (``partial_unexpected_count`` 0): a failing value may be an
identifier that escaped, and neither the task log nor the Data Docs may show
it. Data Docs are written per run to the folder the caller names (the
partner's ``reports/<run>/gx``), outside the raw zone.

GX is imported inside :func:`run_checkpoint` (5-7 s): never at DAG parse time.
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HEX32 = r"^[0-9a-f]{32}$"
HEX64 = r"^[0-9a-f]{64}$"
UID = r"^2\.25\.[0-9]{1,40}$"  # every UID the de-identifier writes is a keyed UID under 2.25
LANDING_ID = r"^L[0-9a-f]{20}(?:\.[a-z0-9]{1,5})?$"

#: boundary -> [(expectation class, kwargs)]; table-level expectations have no "column".
SUITES: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "landing": [
        ("ExpectTableColumnsToMatchSet", {"column_set": ["id", "size", "sha256", "carried_over"], "exact_match": True}),
        ("ExpectColumnValuesToNotBeNull", {"column": "id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "id"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "id", "regex": LANDING_ID}),
        ("ExpectColumnValuesToBeBetween", {"column": "size", "min_value": 0}),
        ("ExpectColumnValuesToNotBeNull", {"column": "sha256"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "sha256", "regex": HEX64}),
        ("ExpectColumnValuesToBeUnique", {"column": "sha256"}),  # the same content is fetched once
    ],
    "deid_metadata": [
        ("ExpectColumnValuesToNotBeNull", {"column": "sop_uid"}),
        ("ExpectColumnValuesToBeUnique", {"column": "sop_uid"}),
        *[("ExpectColumnValuesToMatchRegex", {"column": c, "regex": UID}) for c in ("sop_uid", "series_uid", "study_uid")],
        ("ExpectColumnValuesToNotBeNull", {"column": "patient_token"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "patient_token", "regex": HEX32}),
        ("ExpectColumnValuesToMatchRegex", {"column": "sha256", "regex": HEX64}),
        ("ExpectColumnValuesToBeBetween", {"column": "size_bytes", "min_value": 1}),
        ("ExpectColumnValuesToBeInSet", {"column": "sex", "value_set": ["M", "F", "O"]}),  # nulls are allowed
        ("ExpectColumnValuesToBeBetween", {"column": "age", "min_value": 0, "max_value": 130}),
        ("ExpectColumnValuesToNotBeNull", {"column": "modality"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "path", "regex": r"^[0-9.]+/[0-9.]+/[0-9.]+\.dcm$"}),
    ],
    "report_text": [
        ("ExpectColumnValuesToNotBeNull", {"column": "report_id"}),
        ("ExpectColumnValuesToBeUnique", {"column": "report_id"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "report_id", "regex": HEX32}),
        ("ExpectColumnValuesToMatchRegex", {"column": "study_uid", "regex": UID}),
        ("ExpectColumnValuesToMatchRegex", {"column": "patient_token", "regex": HEX32}),
        ("ExpectColumnValuesToBeInSet", {"column": "language", "value_set": ["es", "pt", "en"]}),
        ("ExpectColumnValuesToNotBeNull", {"column": "text_scrubbed"}),
        ("ExpectColumnValueLengthsToBeBetween", {"column": "text_scrubbed", "min_value": 1}),
        ("ExpectColumnValuesToBeBetween", {"column": "pages", "min_value": 1}),
    ],
    "labels": [
        ("ExpectColumnValuesToNotBeNull", {"column": "study_uid"}),
        ("ExpectColumnValuesToMatchRegex", {"column": "study_uid", "regex": UID}),
        ("ExpectColumnValuesToNotBeNull", {"column": "concept"}),
        ("ExpectColumnValuesToBeInSet", {"column": "certainty",
                                         "value_set": ["positive", "negative", "uncertain", "historical", "family"]}),
        ("ExpectColumnValuesToBeInSet", {"column": "source", "value_set": ["rule", "model"]}),
        ("ExpectColumnValuesToBeBetween", {"column": "confidence", "min_value": 0, "max_value": 1}),
        ("ExpectCompoundColumnsToBeUnique", {"column_list": ["study_uid", "concept"]}),
    ],
}


@dataclass
class CheckpointResult:
    """One boundary's verdict: counts and messages that never quote a value."""

    boundary: str
    success: bool
    rows: int
    failures: list[str] = field(default_factory=list)
    docs: str | None = None  # the Data Docs index of this run, when built

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CheckpointFailed(RuntimeError):
    """A stage boundary's data broke its expectations: the next stage must not run."""

    def __init__(self, result: CheckpointResult) -> None:
        self.result = result
        super().__init__(f"checkpoint {result.boundary} failed: " + "; ".join(result.failures[:10]))


_LOCK = threading.Lock()
_CONTEXTS: dict[str, Any] = {}


def _context(docs_dir: Path | None) -> tuple[Any, Any]:
    """An ephemeral GX context with every boundary's checkpoint (built once per process and docs folder)."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx
    import great_expectations.expectations as gxe
    from great_expectations.data_context.types.base import ProgressBarsConfig

    key = str(docs_dir or "")
    if key in _CONTEXTS:
        return _CONTEXTS[key]
    _CONTEXTS.clear()  # one run's docs folder at a time: a long-lived worker does not accumulate contexts
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    actions = []
    if docs_dir is not None:
        context.add_data_docs_site("run", {
            "class_name": "SiteBuilder", "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["run"])]
    source = context.data_sources.add_pandas(name="boundaries")
    checkpoints = {}
    for boundary, checks in SUITES.items():
        suite = context.suites.add(gx.ExpectationSuite(
            name=f"sta.boundary.{boundary}", expectations=[getattr(gxe, cls)(**kw) for cls, kw in checks]))
        batch = source.add_dataframe_asset(name=boundary).add_batch_definition_whole_dataframe(f"{boundary}_all")
        vd = context.validation_definitions.add(gx.ValidationDefinition(name=f"sta.boundary.{boundary}",
                                                                         data=batch, suite=suite))
        checkpoints[boundary] = context.checkpoints.add(gx.Checkpoint(
            name=f"sta.boundary.{boundary}", validation_definitions=[vd], actions=actions,
            result_format={"result_format": "BASIC", "partial_unexpected_count": 0}))
    _CONTEXTS[key] = (context, checkpoints)
    return _CONTEXTS[key]


def run_checkpoint(boundary: str, table: Any, *, run_id: str, docs_dir: Path | None = None) -> CheckpointResult:
    """Validate ``table`` (Arrow table or pandas frame) against a boundary's suite; Data Docs into ``docs_dir``."""
    import logging

    if boundary not in SUITES:
        raise KeyError(f"unknown boundary {boundary!r}; known: {', '.join(SUITES)}")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    frame = table.to_pandas() if hasattr(table, "to_pandas") else table
    if len(frame) == 0:  # nothing crossed this boundary (a run without reports): nothing to check
        return CheckpointResult(boundary, True, 0)
    from great_expectations.core.run_identifier import RunIdentifier

    with _LOCK:
        context, checkpoints = _context(docs_dir)
        result = checkpoints[boundary].run(batch_parameters={"dataframe": frame},
                                           run_id=RunIdentifier(run_name=f"{run_id}.{boundary}"))
        store = context.validation_results_store
        for key in store.list_keys():
            store.remove_key(key)
    (suite_result,) = result.run_results.values()
    failures = []
    for r in suite_result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        where = cfg.kwargs.get("column") or ",".join(cfg.kwargs.get("column_list") or []) or "table"
        n = (r.result or {}).get("unexpected_count")
        failures.append(f"{boundary}.{where}: {cfg.type}" + (f" ({n} rows)" if n is not None else ""))
    docs = str(Path(docs_dir) / "index.html") if docs_dir is not None else None
    return CheckpointResult(boundary, bool(result.success), len(frame), failures, docs)
