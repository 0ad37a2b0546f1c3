"""Published tables: partitioned, appended per run, one atomic commit, compaction, engine-readable."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from foundation.schema import PRIMARY_KEYS, STUDIES, TABLES
from transforms.parquet_store import SCHEMA_VERSION, SNAPSHOT, PartnerTables, read_table

KEY = PRIMARY_KEYS["studies"]


def studies(ids, modality="CT", year=2020, desc="d"):
    return pa.Table.from_pylist([{
        "study_uid": i, "patient_token": "t", "partner_id": "p1", "region": "co", "country": "co",
        "modality": modality, "modalities": [modality], "body_region": "chest",
        "study_date_shifted": dt.date(year, 3, 1), "study_description": desc, "age_at_study": 40, "sex": "F",
        "manufacturer": "m", "manufacturer_model": "mm", "n_series": 1, "n_instances": 1} for i in ids],
        schema=STUDIES)


def test_rows_land_in_partitions_and_runs_append_files(tmp_path):
    t = PartnerTables(tmp_path)
    t.upsert({"studies": (studies(["a", "b"]), KEY)})
    first = set(t.snapshot().tables["studies"])
    t.upsert({"studies": (studies(["c"], "MR", 2021), KEY)})
    files = t.snapshot().tables["studies"]
    assert first <= set(files)  # earlier files untouched: appended, not rewritten
    assert any("study_year=2020/study_modality=CT" in f for f in files)
    assert any("study_year=2021/study_modality=MR" in f for f in files)
    assert sorted(t.read("studies")["study_uid"].to_pylist()) == ["a", "b", "c"]


def test_a_rerun_publishes_no_duplicates_and_rewrites_only_touched_files(tmp_path):
    t = PartnerTables(tmp_path)
    t.upsert({"studies": (studies(["a", "b"]), KEY)})
    t.upsert({"studies": (studies(["z"], "MR", 2019), KEY)})
    untouched = [f for f in t.snapshot().tables["studies"] if "study_modality=MR" in f]
    t.upsert({"studies": (studies(["b"], desc="fixed"), KEY)})  # b re-published with a new value
    table = t.read("studies").to_pylist()
    assert sorted(r["study_uid"] for r in table) == ["a", "b", "z"]
    assert {r["study_uid"]: r["study_description"] for r in table}["b"] == "fixed"
    assert set(untouched) <= set(t.snapshot().tables["studies"])
    n = t.snapshot().number
    t.upsert({"studies": (studies(["a", "b", "z"]), KEY)})
    assert t.read("studies").num_rows == 3 and t.snapshot().number == n + 1


def test_compaction_merges_small_files_and_is_idempotent(tmp_path):
    t = PartnerTables(tmp_path, compact_after=100)
    for i in range(5):
        t.upsert({"studies": (studies([f"s{i}"]), KEY)})
    assert len(t.snapshot().tables["studies"]) == 5
    assert t.compact(min_files=3) == {"studies": 4}
    assert len(t.snapshot().tables["studies"]) == 1
    assert t.compact(min_files=3) == {}
    assert t.read("studies").num_rows == 5
    on_write = PartnerTables(tmp_path / "w", compact_after=3)
    for i in range(7):
        on_write.upsert({"studies": (studies([f"s{i}"]), KEY)})
    assert len(on_write.snapshot().tables["studies"]) < 3 and on_write.read("studies").num_rows == 7


def test_uncommitted_files_are_invisible_and_collected(tmp_path):
    t = PartnerTables(tmp_path)
    t.upsert({"studies": (studies(["a"]), KEY)})
    # a crash after writing a file but before the snapshot was replaced
    orphan = tmp_path / "studies" / "study_year=2020" / "study_modality=CT" / "part-crashed.parquet"
    pq.write_table(studies(["ghost"]), orphan)
    assert t.read("studies")["study_uid"].to_pylist() == ["a"]
    assert t.collect() == 1 and not orphan.exists()


def test_files_carry_schema_version_and_engines_read_the_glob(tmp_path):
    t = PartnerTables(tmp_path)
    t.upsert({"studies": (studies(["a", "b"]), KEY), "labels": (pa.Table.from_pylist([], TABLES["labels"]),
                                                               PRIMARY_KEYS["labels"])})
    t.upsert({"studies": (studies(["c"], "MR", 2022), KEY)})
    snap = json.loads((tmp_path / SNAPSHOT).read_text())
    assert snap["schema_version"] == SCHEMA_VERSION
    for rel in snap["tables"]["studies"]:
        meta = pq.ParquetFile(tmp_path / rel).schema_arrow.metadata
        assert meta[b"sta.schema_version"] == SCHEMA_VERSION.encode() and meta[b"sta.table"] == b"studies"
    rows = duckdb.sql(
        f"SELECT study_year, count(*) FROM read_parquet('{tmp_path}/studies/**/*.parquet', hive_partitioning = true)"
        " GROUP BY 1 ORDER BY 1").fetchall()
    assert rows == [(2020, 2), (2022, 1)]


def test_first_layout_single_files_are_read_and_adopted(tmp_path):
    pq.write_table(studies(["old1", "old2"]), tmp_path / "studies.parquet")
    assert read_table(tmp_path, "studies").num_rows == 2
    t = PartnerTables(tmp_path)
    t.upsert({"studies": (studies(["old2", "new"]), KEY)})
    assert sorted(t.read("studies")["study_uid"].to_pylist()) == ["new", "old1", "old2"]
    assert not (tmp_path / "studies.parquet").exists()


def test_missing_table_is_a_clear_error_or_empty_with_schema(tmp_path):
    t = PartnerTables(tmp_path)
    with pytest.raises(FileNotFoundError, match="studies"):
        t.read("studies")
    assert t.read("studies", STUDIES).num_rows == 0
