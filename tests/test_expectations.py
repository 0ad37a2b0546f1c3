"""The publication gate (``expectations``): GX suites over a run's tables.

Each test builds a small valid run (every table of ``foundation.schema``),
breaks one thing the way a buggy stage would, and checks that the gate refuses
the run with a line naming the table and column. GX is imported once per
session (5-8 s); each validation then takes 1-3 s.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from expectations.gate import GateFailed, GateResult, validate_parquet_dir, validate_tables
from foundation.schema import TABLES

PROJECT = Path(__file__).resolve().parent.parent
PARTNER, REGION = "clinica_andes", "co"


def _token(i: int) -> str:
    return hashlib.sha256(f"patient-{i}".encode()).hexdigest()[:32]


def _uid(*parts: int) -> str:
    return "2.25." + "".join(f"{p:03d}" for p in (7, *parts))


def build_run(n_studies: int = 6, series_per_study: int = 2, instances_per_series: int = 3) -> dict[str, pa.Table]:
    """A valid run: patients, studies, series, instances, one report and one label per study."""
    rows: dict[str, list[dict]] = {name: [] for name in TABLES}
    n_patients = max(1, n_studies // 2)
    for p in range(n_patients):
        rows["patients"].append(
            dict(patient_token=_token(p), partner_id=PARTNER, region=REGION, sex="MFO"[p % 3], birth_decade=1950)
        )
    for s in range(n_studies):
        study = _uid(s)
        rows["studies"].append(
            dict(
                study_uid=study, patient_token=_token(s % n_patients), partner_id=PARTNER, region=REGION,
                country=REGION, modality="MG", modalities=["MG"], body_region="breast",
                study_date_shifted=dt.date(2019, 5, 1), study_description="MAMMOGRAPHY", age_at_study=40 + s % 45,
                sex="F", manufacturer="ACME", manufacturer_model="M1", n_series=series_per_study,
                n_instances=series_per_study * instances_per_series,
            )
        )  # fmt: skip
        rows["reports"].append(
            dict(
                report_id=hashlib.sha256(study.encode()).hexdigest(), study_uid=study,
                patient_token=_token(s % n_patients), partner_id=PARTNER, language="es", source_format="pdf",
                pages=1, ocr_pages=0, text_scrubbed="BI-RADS 1. Sin hallazgos.",
            )
        )  # fmt: skip
        rows["labels"].append(
            dict(study_uid=study, partner_id=PARTNER, concept="birads_1", certainty="positive", confidence=0.93,
                 source="rule", model="birads-mg", model_version="0.1")
        )  # fmt: skip
        for k in range(series_per_study):
            series = _uid(s, k)
            rows["series"].append(
                dict(series_uid=series, study_uid=study, partner_id=PARTNER, modality="MG", body_part="BREAST",
                     series_number=k + 1, series_description="CC", n_instances=instances_per_series, thumbnail=None)
            )  # fmt: skip
            for j in range(instances_per_series):
                sop = _uid(s, k, j)
                rows["instances"].append(
                    dict(
                        sop_uid=sop, series_uid=series, study_uid=study, partner_id=PARTNER,
                        sop_class_uid="1.2.840.10008.5.1.4.1.1.1.2", transfer_syntax="1.2.840.10008.1.2.1",
                        path=f"dicom/{study}/{series}/{sop}.dcm", rows=3328, cols=2560, frames=1,
                        size_bytes=17_000_000, sha256=hashlib.sha256(sop.encode()).hexdigest(),
                        pixels_modified=False,
                    )
                )  # fmt: skip
    return {name: pa.Table.from_pylist(r, schema=TABLES[name]) for name, r in rows.items()}


def with_values(table: pa.Table, column: str, change: Callable[[list], None]) -> pa.Table:
    """``table`` with ``column`` replaced by its values after ``change(values)``."""
    values = table.column(column).to_pylist()
    change(values)
    i = table.schema.get_field_index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))


def validate(tables: dict[str, pa.Table]) -> GateResult:
    return validate_tables(tables, partner_id=PARTNER, region=REGION, run_id="manual__2026-11-22T09:00:00+00:00")


def set_at(index: int, value: object) -> Callable[[list], None]:
    return lambda values: values.__setitem__(index, value)


@pytest.fixture(scope="module")
def run() -> dict[str, pa.Table]:
    return build_run()


def test_importing_the_package_does_not_import_great_expectations() -> None:
    code = "import sys, expectations, expectations.suites; assert 'great_expectations' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT, timeout=60)


def test_a_valid_run_passes_every_suite(run: dict[str, pa.Table]) -> None:
    result = validate(run)

    assert result.success, result.failures
    assert result.failures == []
    stats = result.statistics
    assert set(stats["tables"]) == set(TABLES)
    assert stats["tables"]["instances"]["rows"] == 36
    assert stats["evaluated_expectations"] == stats["successful_expectations"] > 60
    assert stats["seconds"] < 10
    json.loads(json.dumps(result.to_dict()))  # JSON-ready for XCom and the ledger
    result.raise_for_failures()


def _duplicate_sop(run: dict[str, pa.Table]) -> dict[str, pa.Table]:
    sops = run["instances"].column("sop_uid").to_pylist()
    return {**run, "instances": with_values(run["instances"], "sop_uid", set_at(1, sops[0]))}


def _null_tokens(run: dict[str, pa.Table]) -> dict[str, pa.Table]:
    studies = run["studies"]
    for i in (0, 2, 4):
        studies = with_values(studies, "patient_token", set_at(i, None))
    return {**run, "studies": studies}


def _other_partner(run: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return {**run, "series": with_values(run["series"], "partner_id", set_at(3, "hospital_norte"))}


def _orphan_instance(run: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return {**run, "instances": with_values(run["instances"], "series_uid", set_at(5, "2.25.999999"))}


def _original_uid(run: dict[str, pa.Table]) -> dict[str, pa.Table]:
    hospital_uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    return {**run, "instances": with_values(run["instances"], "sop_uid", set_at(0, hospital_uid))}


def _age_130(run: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return {**run, "studies": with_values(run["studies"], "age_at_study", set_at(1, 130))}


def _other_region(run: dict[str, pa.Table]) -> dict[str, pa.Table]:
    return {**run, "patients": with_values(run["patients"], "region", set_at(0, "br"))}


@pytest.mark.parametrize(
    ("defect", "expected"),
    [
        (_duplicate_sop, "instances.sop_uid: 2 rows share a duplicated primary key"),
        (_null_tokens, "studies.patient_token: 3 null values"),
        (_other_partner, "series.partner_id: 1 value other than the partner 'clinica_andes' (e.g. 'hospital_norte')"),
        (_orphan_instance, "instances.series_uid: 1 value not in series.series_uid (e.g. '2.25.999999')"),
        (_original_uid, "instances.sop_uid: 1 value not matching a keyed UID"),
        (_age_130, "studies.age_at_study: 1 value outside [0, 120] (e.g. 130)"),
        (_other_region, "patients.region: 1 value other than the partner's region 'co' (e.g. 'br')"),
    ],
    ids=["duplicate-key", "null-token", "wrong-partner", "orphan-instance", "bad-uid", "age-130", "wrong-region"],
)
def test_a_defect_fails_the_gate_naming_table_and_column(
    run: dict[str, pa.Table], defect: Callable, expected: str
) -> None:
    result = validate(defect(run))

    assert not result.success
    assert len(result.failures) == 1, result.failures  # one defect, one line
    assert result.failures[0].startswith(expected), result.failures
    with pytest.raises(GateFailed, match=expected.split(":")[0]):
        result.raise_for_failures()


def test_ages_over_89_fail_under_hipaa_safe_harbor(run: dict[str, pa.Table]) -> None:
    """In the US, 90 stands for 90+: a 93 means the profile's age cap was not applied."""
    old = {**run, "studies": with_values(run["studies"], "age_at_study", set_at(0, 93))}
    us = {name: with_values(t, "region", lambda v: v.__setitem__(slice(None), ["us"] * len(v)))
          if "region" in t.column_names else t for name, t in old.items()}  # fmt: skip

    assert validate(old).success  # Colombia keeps real ages
    result = validate_tables(us, partner_id=PARTNER, region="us", run_id="r")
    assert result.failures == ["studies.age_at_study: 1 value outside [0, 90] (e.g. 93)"]


def test_an_original_identifier_is_not_quoted_in_the_failure(run: dict[str, pa.Table]) -> None:
    """A raw document number where a token belongs must not reach logs and alerts."""
    result = validate({**run, "patients": with_values(run["patients"], "patient_token", set_at(0, "CC-79123456"))})

    assert not result.success
    text = "\n".join(result.failures)
    assert "patients.patient_token: 1 value not matching a patient token" in text
    assert "79123456" not in text
    assert "<hidden, 11 chars>" in text


def test_instances_without_studies_fail(run: dict[str, pa.Table]) -> None:
    result = validate({"series": run["series"], "instances": run["instances"]})

    assert not result.success
    assert "studies: no rows, but instances has 36 rows (a run with instances must have studies)" in result.failures
    assert any(f.startswith("instances.study_uid: 36 values not in studies.study_uid") for f in result.failures)


def test_a_run_without_reports_or_labels_passes(run: dict[str, pa.Table]) -> None:
    partial = {k: v for k, v in run.items() if k not in ("reports", "labels")}
    partial["labels"] = TABLES["labels"].empty_table()

    result = validate(partial)

    assert result.success, result.failures
    assert result.statistics["tables"]["reports"] == {**result.statistics["tables"]["reports"], "rows": 0, "provided": False}


def test_an_empty_run_passes() -> None:
    assert validate({}).success


def test_schema_drift_is_reported_per_column(run: dict[str, pa.Table]) -> None:
    patients = run["patients"].append_column("patient_name", pa.array(["PEREZ^JUAN"] * run["patients"].num_rows))
    studies = run["studies"].drop_columns(["age_at_study"])
    labels = run["labels"].set_column(
        run["labels"].schema.get_field_index("confidence"), "confidence", pa.array(["high"] * run["labels"].num_rows)
    )
    reports = with_values(run["reports"], "text_scrubbed", set_at(2, None))

    result = validate({**run, "patients": patients, "studies": studies, "labels": labels, "reports": reports})

    assert not result.success
    assert sorted(result.failures) == sorted(
        [
            "labels.confidence: type string, expected float",
            "patients: columns not in foundation.schema: patient_name",
            "studies.age_at_study: column missing",
            "reports.text_scrubbed: 1 null value",
        ]
    )


def test_an_unknown_table_is_refused(run: dict[str, pa.Table]) -> None:
    result = validate({**run, "patients_raw": run["patients"]})

    assert result.failures == [
        "patients_raw: not a published table (known: patients, studies, series, instances, reports, labels, "
        "characteristics)"
    ]


def test_a_staging_folder_is_validated_from_its_parquet_files(run: dict[str, pa.Table], tmp_path: Path) -> None:
    for name in ("patients", "studies", "series", "instances"):
        pq.write_table(run[name], tmp_path / f"{name}.parquet")

    result = validate_parquet_dir(tmp_path, PARTNER, REGION, "r1")

    assert result.success, result.failures
    provided = {t: s["provided"] for t, s in result.statistics["tables"].items()}
    assert provided == {"patients": True, "studies": True, "series": True, "instances": True,
                        "reports": False, "labels": False, "characteristics": False}  # fmt: skip


def test_a_late_report_may_refer_to_a_study_published_by_an_earlier_run(
    run: dict[str, pa.Table], tmp_path: Path
) -> None:
    """Reports can arrive runs after their images; the gate then checks against published studies."""
    staging, published = tmp_path / "staging", tmp_path / "parquet"
    staging.mkdir()
    published.mkdir()
    pq.write_table(run["studies"], published / "studies.parquet")
    pq.write_table(run["reports"], staging / "reports.parquet")
    pq.write_table(run["labels"], staging / "labels.parquet")

    alone = validate_parquet_dir(staging, PARTNER, REGION, "r3")
    linked = validate_parquet_dir(staging, PARTNER, REGION, "r3", published_dir=published)

    assert sorted(alone.failures) == [
        "labels.study_uid: 6 values not in studies.study_uid (e.g. '2.25.007000', '2.25.007001', '2.25.007002')",
        "reports.study_uid: 6 values not in studies.study_uid (e.g. '2.25.007000', '2.25.007001', '2.25.007002')",
    ]
    assert linked.success, linked.failures


def test_the_cli_exits_1_and_lists_failures(
    run: dict[str, pa.Table], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from expectations.cli import main

    pq.write_table(run["instances"], tmp_path / "instances.parquet")

    code = main([str(tmp_path), "--partner-id", PARTNER, "--region", REGION, "--run-id", "r2", "--json"])

    assert code == 1
    out = json.loads(capsys.readouterr().out)
    assert out["success"] is False and out["run_id"] == "r2"
    assert "studies: no rows, but instances has 36 rows (a run with instances must have studies)" in out["failures"]
