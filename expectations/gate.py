"""Run the publication gate: GX suites over a partner run's tables.

``validate_tables`` is what a partner DAG calls between "tables written to
staging" and "tables published"; a result with ``success=False`` must block
publication, and its ``failures`` (one line per broken expectation, table and
column first) are what an operator reads in the task log or the alert.

How GX 1.x is used, and why:

* an ephemeral Data Context (``gx.get_context(mode="ephemeral")``): nothing is
  written to disk, no Data Docs. It holds only the static suites, so a process
  builds it once; each run's data and parameters go in with ``run()`` and its
  results are dropped afterwards (nothing of one partner's run stays for the
  next);
* one pandas Data Source with one dataframe Data Asset, whole-dataframe Batch
  Definition, Expectation Suite, Validation Definition and Checkpoint per
  table. A Checkpoint passes the same ``batch_parameters`` to all of its
  Validation Definitions, and a dataframe asset takes its dataframe from them,
  so one Checkpoint can only carry one table's dataframe: one per table it is;
* run-dependent values (partner, region, parent keys) are suite parameters,
  given to ``Checkpoint.run(expectation_parameters=...)``;
* result format BASIC with up to 20 unexpected values (SUMMARY's value counts
  cost 40% more time and the messages quote at most 3 values);
* progress bars off (context variable) and analytics off
  (``GX_ANALYTICS_ENABLED=false``, forced before GX is imported).

Fail closed: an expectation that cannot be evaluated is a failure, and an
error of GX itself propagates (the task fails, nothing is published).
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import pyarrow as pa

from expectations.suites import (
    NEVER_REVEAL,
    REVEAL_IF_MATCHES,
    Check,
    parent_columns,
    suite_checks,
    suite_parameters,
)
from foundation.schema import TABLES

MAX_EXAMPLES = 3
MAX_EXAMPLE_CHARS = 48


@dataclass
class GateResult:
    """The outcome of the gate for one partner run.

    ``failures`` are human-readable lines such as
    ``"studies.patient_token: 3 null values"``; ``statistics`` counts rows and
    expectations per table and the time spent.
    """

    success: bool
    partner_id: str
    region: str
    run_id: str
    failures: list[str] = field(default_factory=list)
    statistics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, default=str)

    def raise_for_failures(self) -> None:
        """Raise :class:`GateFailed` (a ``ValueError``) listing the failures."""
        if not self.success:
            raise GateFailed(self)


class GateFailed(ValueError):
    def __init__(self, result: GateResult) -> None:
        self.result = result
        lines = "\n  ".join(result.failures)
        super().__init__(
            f"publication gate failed for partner {result.partner_id} run {result.run_id}: "
            f"{len(result.failures)} failure(s):\n  {lines}"
        )


def validate_tables(
    tables: Mapping[str, pa.Table],
    *,
    partner_id: str,
    region: str,
    run_id: str,
    published_keys: Mapping[str, Iterable[Any]] | None = None,
    max_age: int | None = None,
) -> GateResult:
    """Validate a run's tables (name -> Arrow table) with one GX suite per table.

    Tables missing from ``tables`` count as empty tables (a run may have no
    reports): cross-table rules still apply (instances without studies fail),
    and their own suites, vacuous on no rows, are skipped. A name that is not a
    published table is a failure.

    ``published_keys`` (``{"studies.study_uid": [...], ...}``) are keys this
    partner published in earlier runs; children may refer to them (a report
    linked to a study whose images came in an earlier run). ``max_age`` bounds
    ``studies.age_at_study``: pass the partner profile's ``age_cap`` when it has
    one; by default 90 in region ``us`` (HIPAA Safe Harbor), 120 elsewhere.
    """
    if not partner_id or not region:
        raise ValueError("partner_id and region are required")
    import_seconds = _import_gx()
    started = time.perf_counter()
    failures: list[str] = []
    for name in tables:
        if name not in TABLES:
            failures.append(f"{name}: not a published table (known: {', '.join(TABLES)})")
    run_tables: dict[str, pa.Table] = {
        name: tables[name] if name in tables else schema.empty_table()
        for name, schema in TABLES.items()
    }
    # Columns whose type or presence is wrong are reported once, not once per
    # expectation that then fails to evaluate on them.
    broken: dict[str, set[str]] = {}
    for name, table in run_tables.items():
        type_lines = _type_failures(name, table)
        failures.extend(line for line, _col in type_lines)
        broken[name] = {col for _line, col in type_lines}
    params = suite_parameters(
        run_tables,
        partner_id=partner_id,
        region=region,
        published_keys=published_keys,
        max_age=max_age,
    )

    # An absent table is an empty one; its suite would pass vacuously, so it is
    # not run - except the studies suite of a run with instances (it must fail).
    to_run = {
        name
        for name in run_tables
        if name in tables or (name == "studies" and params["studies_min_rows"])
    }
    results = _run_checkpoints(run_tables, params, run_id=run_id, only=to_run)

    stats: dict[str, Any] = {"tables": {}}
    for name, (paired, suite_stats) in results.items():
        stats["tables"][name] = {
            "rows": run_tables[name].num_rows,
            "provided": name in tables,
            **{k: suite_stats.get(k) for k in (*_STAT_KEYS, "seconds")},
        }
        failed = [(c, r) for c, r in paired if not r.success]
        for check, res in failed:
            if check.meta.get("kind") == "columns":
                lines, missing = _column_set_failures(check, res)
                failures.extend(lines)
                broken[name] |= missing
        for check, res in failed:
            if check.meta.get("kind") == "columns" or check.column in broken[name]:
                continue
            line = _describe(check, res, params)
            if line:
                failures.append(line)
    for key in _STAT_KEYS:
        stats[key] = sum(t[key] or 0 for t in stats["tables"].values())
    stats["seconds"] = round(time.perf_counter() - started, 3)
    stats["gx_import_seconds"] = round(import_seconds, 3)
    stats["gx_version"] = _gx_version()
    return GateResult(
        success=not failures,
        partner_id=partner_id,
        region=region,
        run_id=run_id,
        failures=failures,
        statistics=stats,
    )


def validate_parquet_dir(
    path: Path,
    partner_id: str,
    region: str,
    run_id: str,
    *,
    published_dir: Path | None = None,
    max_age: int | None = None,
) -> GateResult:
    """Validate the ``<path>/<table>.parquet`` files that exist (others count as empty).

    ``published_dir`` is the partner's published Parquet folder
    (``PartnerRoot.parquet``): the key columns of its parent tables are read so
    that rows of this run may refer to studies published by earlier runs.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"no staging folder {path}")
    tables = {
        name: pq.read_table(path / f"{name}.parquet")
        for name in TABLES
        if (path / f"{name}.parquet").is_file()
    }
    return validate_tables(
        tables,
        partner_id=partner_id,
        region=region,
        run_id=run_id,
        published_keys=read_published_keys(published_dir) if published_dir else None,
        max_age=max_age,
    )


def read_published_keys(published_dir: Path) -> dict[str, list[Any]]:
    """``{"<parent>.<column>": keys}`` from a partner's published parent tables."""
    from transforms.parquet_store import PartnerTables

    published = PartnerTables(Path(published_dir))
    out: dict[str, list[Any]] = {}
    for parent, columns in parent_columns().items():
        if not published.has(parent):
            continue
        table = published.read(parent, columns=list(columns))
        for col in columns:
            out[f"{parent}.{col}"] = table.column(col).drop_null().unique().to_pylist()
    return out


# --------------------------------------------------------------------------- GX

_STAT_KEYS = (
    "evaluated_expectations",
    "successful_expectations",
    "unsuccessful_expectations",
)


def _import_gx() -> float:
    """Import GX (5-8 s the first time in a process) with analytics off; return the seconds."""
    started = time.perf_counter()
    os.environ["GX_ANALYTICS_ENABLED"] = "false"  # no phoning home from a PHI pipeline
    import great_expectations  # noqa: F401

    return time.perf_counter() - started


def _gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


class _Gate:
    """The GX objects of the gate: one ephemeral context, a checkpoint per table.

    They depend on nothing but the (static) suites, so a process builds them
    once and reuses them for every run it validates (a test session, a worker
    validating batches): building them costs about as much as validating a
    small run. Runs are serialised by a lock (GX objects are not thread-safe),
    and validation results are dropped from the in-memory store after each run
    so that a long-lived process does not accumulate them.
    """

    def __init__(self) -> None:
        import great_expectations as gx
        import great_expectations.expectations as gxe
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.lock = threading.Lock()
        self.context = gx.get_context(mode="ephemeral")
        self.context.variables.progress_bars = ProgressBarsConfig(
            globally=False, metric_calculations=False
        )
        source = self.context.data_sources.add_pandas(name="staging")
        self.checkpoints: dict[str, tuple[tuple[Check, ...], Any]] = {}
        for name, checks in suite_checks().items():
            # All expectations at construction: add_expectation() on a suite
            # in a store re-serialises the whole suite each time (quadratic).
            # meta["check"] pairs each result with its Check (GX reorders).
            suite = self.context.suites.add(
                gx.ExpectationSuite(
                    name=f"sta.{name}",
                    expectations=[
                        getattr(gxe, c.expectation)(**c.kwargs, meta={**c.meta, "check": i})
                        for i, c in enumerate(checks)
                    ],
                )
            )
            batch = source.add_dataframe_asset(name=name).add_batch_definition_whole_dataframe(
                name=f"{name}_whole"
            )
            vd = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=f"sta.{name}", data=batch, suite=suite)
            )
            checkpoint = self.context.checkpoints.add(
                gx.Checkpoint(
                    name=f"sta.{name}.gate",
                    validation_definitions=[vd],
                    result_format={"result_format": "BASIC", "partial_unexpected_count": 20},
                )
            )
            self.checkpoints[name] = (checks, checkpoint)

    def run(
        self, tables: Mapping[str, pa.Table], params: dict[str, Any], run_id: str, only: set[str]
    ) -> dict[str, tuple[list[tuple[Check, Any]], dict[str, Any]]]:
        from great_expectations.core.run_identifier import RunIdentifier

        gx_run_id = RunIdentifier(run_name=run_id)
        out: dict[str, tuple[list[tuple[Check, Any]], dict[str, Any]]] = {}
        with self.lock:
            try:
                for name, (checks, checkpoint) in self.checkpoints.items():
                    if name not in only:
                        out[name] = ([], {k: 0 for k in _STAT_KEYS} | {"seconds": 0.0})
                        continue
                    started = time.perf_counter()
                    result = checkpoint.run(
                        batch_parameters={"dataframe": tables[name].to_pandas()},
                        expectation_parameters=params,
                        run_id=gx_run_id,
                    )
                    (suite_result,) = result.run_results.values()
                    paired = [
                        (checks[int(r.expectation_config.meta["check"])], r)
                        for r in suite_result.results
                    ]
                    stats = dict(suite_result.statistics)
                    stats["seconds"] = round(time.perf_counter() - started, 3)
                    out[name] = (paired, stats)
            finally:
                store = self.context.validation_results_store
                for key in store.list_keys():
                    store.remove_key(key)
        return out


_GATE: _Gate | None = None
_GATE_LOCK = threading.Lock()


def _run_checkpoints(
    tables: Mapping[str, pa.Table], params: dict[str, Any], *, run_id: str, only: set[str]
) -> dict[str, tuple[list[tuple[Check, Any]], dict[str, Any]]]:
    """Run the checkpoints of the tables in ``only`` (building the GX objects on first use)."""
    global _GATE
    with _GATE_LOCK:
        if _GATE is None:
            _GATE = _Gate()
    return _GATE.run(tables, params, run_id, only)


# ---------------------------------------------------------------------- messages


def _describe(check: Check, res: Any, params: Mapping[str, Any]) -> str | None:
    """One readable line for a failed expectation, table and column first."""
    result = res.result or {}
    exc = _exception_message(res.exception_info)
    if exc:
        return f"{check.where}: could not check ({check.expectation}): {exc}"
    n = result.get("unexpected_count")
    eg = ""
    if check.show_values and check.column not in NEVER_REVEAL:
        eg = _examples(result.get("partial_unexpected_list") or [], REVEAL_IF_MATCHES.get(check.column or ""))
    values = {**params, "n": n if n is not None else "some", "eg": eg}
    return f"{check.where}: " + _singular(check.message.format(**values), n)


def _column_set_failures(check: Check, res: Any) -> tuple[list[str], set[str]]:
    """Missing columns one line each (named like any column failure), extras in one."""
    exc = _exception_message(res.exception_info)
    if exc:
        return [f"{check.where}: could not check columns: {exc}"], set()
    expected = list(check.kwargs["column_set"])
    observed = list((res.result or {}).get("observed_value") or [])
    missing = [c for c in expected if c not in observed]
    extra = [c for c in observed if c not in expected]
    lines = [f"{check.table}.{c}: column missing" for c in missing]
    if extra:
        lines.append(f"{check.table}: columns not in foundation.schema: {', '.join(extra)}")
    return lines, set(missing)


_SINGULAR = (("values", "value"), ("paths", "path"), ("null values", "null value"))


def _singular(text: str, n: Any) -> str:
    """'1 values outside ...' reads badly in an alert: '1 value outside ...'."""
    if n == 1:
        for plural, one in _SINGULAR:
            if text.startswith(f"1 {plural}"):
                return "1 " + one + text[len(plural) + 2 :]
    return text


def _examples(values: list[Any], reveal_if: str | None = None) -> str:
    shown: list[str] = []
    for value in values:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        value = value.item() if hasattr(value, "item") else value
        if reveal_if and not re.match(reveal_if, str(value)):
            text = f"<hidden, {len(str(value))} chars>"
        else:
            text = repr(value)
        if len(text) > MAX_EXAMPLE_CHARS:
            text = text[: MAX_EXAMPLE_CHARS - 3] + "..."
        if text not in shown:
            shown.append(text)
        if len(shown) == MAX_EXAMPLES:
            break
    return f" (e.g. {', '.join(shown)})" if shown else ""


def _exception_message(info: Any) -> str | None:
    """GX puts either one exception dict or a dict of them (per metric) here."""
    if not info:
        return None
    candidates = [info] if "raised_exception" in info else list(info.values())
    for item in candidates:
        if isinstance(item, Mapping) and item.get("raised_exception"):
            return str(item.get("exception_message") or "error").splitlines()[0][:300]
    return None


# ------------------------------------------------------------------------ types

_KINDS = (
    ("integer", pa.types.is_integer),
    ("floating", pa.types.is_floating),
    ("string", lambda t: pa.types.is_string(t) or pa.types.is_large_string(t)),
    ("date", lambda t: pa.types.is_date(t) or pa.types.is_timestamp(t)),
    ("boolean", pa.types.is_boolean),
    ("list", lambda t: pa.types.is_list(t) or pa.types.is_large_list(t)),
)


def _kind(t: pa.DataType) -> str:
    for name, test in _KINDS:
        if test(t):
            return name
    return str(t)


def _type_failures(name: str, table: pa.Table) -> list[tuple[str, str]]:
    """Column types of the wrong kind (e.g. an age written as text).

    Checked on the Arrow schema, before pandas conversion blurs it (an int
    column with nulls becomes float64 in pandas). Width differences (int32 vs
    int64) are accepted: readers cast them.
    """
    expected = TABLES[name]
    out = []
    for f in expected:
        if f.name not in table.column_names:
            continue
        actual = table.schema.field(f.name).type
        if pa.types.is_null(actual):
            continue  # an all-null column of an empty or sparse table
        if _kind(actual) != _kind(f.type):
            out.append((f"{name}.{f.name}: type {actual}, expected {f.type}", f.name))
    return out
