"""A partner's published tables: partitioned Parquet, appended per run, committed by snapshot.

A partner of 325,000 files publishes for years; rewriting whole tables on
every run (the first layout) costs O(history) per run. Here each table is a
folder of Parquet files in Hive-style partitions (``studies`` by study year
and modality, the other tables by a hash bucket of the study or patient), and
a run only *adds* files:

- Rows are upserts by primary key. New keys land in a new file of their
  partition; a key published before (a re-run, a fixed profile) supersedes
  its old row: only the files holding such keys are rewritten without them.
- A run's changes become visible in one step: the list of live files is
  ``_snapshot.json`` (schema version, snapshot number, files per table),
  replaced atomically (``os.replace``). Files not in the snapshot are
  invisible to readers that go through it and are removed by ``collect``
  (a crash between writing files and committing leaves only such orphans).
- ``compact`` merges a partition's small files into one, as its own commit.

Readers: ``read_table``/``table_files`` (the project's code), or a
distributed engine over ``<parquet>/<table>/**/*.parquet`` with Hive
partitioning (README: Trino/Spark); every file carries the table name and
schema version in its Parquet metadata. Single-file tables of the first
layout (``<table>.parquet``) are still read, and replaced by the first
publication in the new layout.
"""

from __future__ import annotations

import json
import os
import uuid
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

SCHEMA_VERSION = "2"
SNAPSHOT = "_snapshot.json"
BUCKETS = 16


def _year(col: str) -> Callable[[dict[str, Any]], str]:
    def part(row: dict[str, Any]) -> str:
        v = row.get(col)
        return str(v.year) if v is not None and hasattr(v, "year") else "unknown"

    return part


def _value(col: str) -> Callable[[dict[str, Any]], str]:
    def part(row: dict[str, Any]) -> str:
        v = row.get(col)
        text = "".join(c if c.isalnum() else "_" for c in str(v)) if v not in (None, "") else "unknown"
        return text[:32]

    return part


def _bucket(col: str) -> Callable[[dict[str, Any]], str]:
    def part(row: dict[str, Any]) -> str:
        return f"{zlib.crc32(str(row.get(col) or '').encode()) % BUCKETS:02d}"

    return part


# Partition spec per table: (directory key, how a row gives its value). A
# table not listed has a single partition. Keys always map to the same
# partition (the values are functions of the row's own, deterministic data).
PARTITIONS: dict[str, list[tuple[str, Callable[[dict[str, Any]], str]]]] = {
    "studies": [("study_year", _year("study_date_shifted")), ("modality", _value("modality"))],
    "series": [("bucket", _bucket("study_uid"))],
    "instances": [("bucket", _bucket("study_uid"))],
    "reports": [("bucket", _bucket("study_uid"))],
    "labels": [("bucket", _bucket("study_uid"))],
    "characteristics": [("bucket", _bucket("study_uid"))],
    "patients": [("bucket", _bucket("patient_token"))],
}


def _keys(table: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    if len(columns) == 1:
        return pc.cast(table[columns[0]], pa.string())
    parts = [pc.fill_null(pc.cast(table[c], pa.string()), "") for c in columns]
    return pc.binary_join_element_wise(*parts, "\x1f")


def merge_table(path: Path, new: pa.Table, key: tuple[str, ...]) -> int:
    """Upsert ``new`` into ONE Parquet file by key (small state files such as
    the accession links); returns the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pq.read_table(path)
        if old.schema != new.schema:
            old = old.select(new.schema.names).cast(new.schema)
        keep = pc.invert(pc.is_in(_keys(old, key), value_set=_keys(new, key)))
        merged = pa.concat_tables([old.filter(keep), new])
    else:
        merged = new
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(merged, tmp, compression="zstd")
    os.replace(tmp, path)
    return merged.num_rows


def _partition_dir(table: str, rel: str) -> str:
    """``studies/study_year=2020/modality=CT/part-x.parquet`` -> ``study_year=2020/modality=CT``."""
    part = Path(rel).parent.relative_to(table)
    return "" if str(part) == "." else str(part)


@dataclass
class Snapshot:
    number: int = 0
    tables: dict[str, list[str]] = field(default_factory=dict)  # table -> files relative to the parquet dir
    schema_version: str = SCHEMA_VERSION

    def to_json(self) -> dict[str, Any]:
        return {"snapshot": self.number, "schema_version": self.schema_version, "tables": self.tables}


class PartnerTables:
    """The published tables under one partner's ``parquet/`` folder."""

    def __init__(self, folder: Path, compact_after: int = 8) -> None:
        self.folder = Path(folder)
        self.compact_after = compact_after  # files per partition that trigger a merge on write

    # -- reading ---------------------------------------------------------
    def snapshot(self) -> Snapshot:
        path = self.folder / SNAPSHOT
        if not path.is_file():
            return Snapshot()
        data = json.loads(path.read_text(encoding="utf-8"))
        return Snapshot(int(data["snapshot"]), {k: list(v) for k, v in data["tables"].items()},
                        str(data.get("schema_version", SCHEMA_VERSION)))

    def files(self, table: str) -> list[Path]:
        """Live files of ``table`` (the snapshot's, or the first layout's single file)."""
        snap = self.snapshot()
        if table in snap.tables:
            return [self.folder / f for f in snap.tables[table]]
        legacy = self.folder / f"{table}.parquet"
        return [legacy] if legacy.is_file() else []

    def read(self, table: str, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
        files = self.files(table)
        if not files:
            if schema is None:
                raise FileNotFoundError(f"no published table {table!r} under {self.folder}")
            return schema.empty_table() if columns is None else schema.empty_table().select(columns)
        parts = [pq.read_table(f, columns=columns) for f in files]
        if schema is not None:
            names = columns or schema.names
            target = pa.schema([schema.field(n) for n in names])
            parts = [p.select(names).cast(target) for p in parts]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def has(self, table: str) -> bool:
        return bool(self.files(table))

    # -- writing ---------------------------------------------------------
    def _write(self, table: str, partition: str, rows: pa.Table, tag: str) -> str:
        rel = f"{table}/{partition}/part-{tag}-{uuid.uuid4().hex[:12]}.parquet" if partition else \
            f"{table}/part-{tag}-{uuid.uuid4().hex[:12]}.parquet"
        dest = self.folder / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        meta = {b"sta.table": table.encode(), b"sta.schema_version": SCHEMA_VERSION.encode()}
        rows = rows.replace_schema_metadata({**(rows.schema.metadata or {}), **meta})
        tmp = dest.with_name("." + dest.name + ".tmp")
        pq.write_table(rows, tmp, compression="zstd")
        os.replace(tmp, dest)
        return rel

    @staticmethod
    def _partition_of(table: str, rows: pa.Table) -> list[str]:
        spec = PARTITIONS.get(table)
        if not spec:
            return [""] * rows.num_rows
        cols = {c for _k, _f in spec for c in rows.schema.names}
        pylist = rows.select(sorted(cols)).to_pylist()
        return ["/".join(f"{k}={f(r)}" for k, f in spec) for r in pylist]

    def upsert(self, changes: dict[str, tuple[pa.Table, tuple[str, ...]]], tag: str = "run") -> dict[str, int]:
        """Add ``{table: (rows, key)}`` as one commit; returns live rows per changed table.

        Only files holding a superseded key are rewritten; everything else is
        appended. Nothing is visible until the snapshot is replaced.
        """
        snap = self.snapshot()
        tables = {t: list(fs) for t, fs in snap.tables.items()}
        dropped: list[Path] = []
        counts: dict[str, int] = {}
        for table, (new, key) in changes.items():
            live = tables.get(table)
            if live is None:  # first publication in this layout: adopt the single-file table
                live = []
                legacy = self.folder / f"{table}.parquet"
                if legacy.is_file():
                    old = pq.read_table(legacy).select(new.schema.names).cast(new.schema)
                    new = self._union(old, new, key)
                    dropped.append(legacy)
            new_keys = _keys(new, key)
            kept: list[str] = []
            for rel in live:
                path = self.folder / rel
                old_keys = _keys(pq.read_table(path, columns=list(key)), key)
                hit = pc.is_in(old_keys, value_set=new_keys)
                if not pc.any(hit).as_py():
                    kept.append(rel)
                    continue
                rest = pq.read_table(path).filter(pc.invert(hit))
                dropped.append(path)
                if rest.num_rows:
                    kept.append(self._write(table, _partition_dir(table, rel), rest, tag))
            by_part: dict[str, list[int]] = defaultdict(list)
            for i, part in enumerate(self._partition_of(table, new)):
                by_part[part].append(i)
            for part, idx in sorted(by_part.items()):
                kept.append(self._write(table, part, new.take(pa.array(idx, pa.int64())), tag))
            kept = self._compacted(table, kept, dropped)
            tables[table] = sorted(kept)
            counts[table] = sum(pq.ParquetFile(self.folder / f).metadata.num_rows for f in kept)
        self._commit(Snapshot(snap.number + 1, tables))
        for path in dropped:
            path.unlink(missing_ok=True)
        return counts

    def _compacted(self, table: str, files: list[str], dropped: list[Path]) -> list[str]:
        """Merge partitions that reached ``compact_after`` files, within the same commit."""
        by_part: dict[str, list[str]] = defaultdict(list)
        for rel in files:
            by_part[_partition_dir(table, rel)].append(rel)
        out: list[str] = []
        for part, rels in sorted(by_part.items()):
            if len(rels) < self.compact_after:
                out.extend(rels)
                continue
            merged = pa.concat_tables([pq.read_table(self.folder / r) for r in rels], promote_options="default")
            out.append(self._write(table, part, merged, "compact"))
            dropped.extend(self.folder / r for r in rels)
        return out

    @staticmethod
    def _union(old: pa.Table, new: pa.Table, key: tuple[str, ...]) -> pa.Table:
        keep = pc.invert(pc.is_in(_keys(old, key), value_set=_keys(new, key)))
        return pa.concat_tables([old.filter(keep), new])

    def _commit(self, snap: Snapshot) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{SNAPSHOT}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(snap.to_json(), indent=1, sort_keys=True), encoding="utf-8")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / SNAPSHOT)

    def compact(self, min_files: int = 4, tables: Iterable[str] | None = None) -> dict[str, int]:
        """Merge each partition holding ``min_files`` or more files into one file.

        Idempotent: a compacted partition has one file and is left alone.
        Returns the number of files removed per table.
        """
        snap = self.snapshot()
        new_tables = {t: list(fs) for t, fs in snap.tables.items()}
        dropped: list[Path] = []
        removed: dict[str, int] = {}
        for table in tables or list(snap.tables):
            by_part: dict[str, list[str]] = defaultdict(list)
            for rel in snap.tables.get(table, []):
                by_part[str(Path(rel).parent)].append(rel)
            out = []
            for part_dir, rels in sorted(by_part.items()):
                if len(rels) < min_files:
                    out.extend(rels)
                    continue
                merged = pa.concat_tables([pq.read_table(self.folder / r) for r in rels], promote_options="default")
                out.append(self._write(table, _partition_dir(table, rels[0]), merged, "compact"))
                dropped.extend(self.folder / r for r in rels)
                removed[table] = removed.get(table, 0) + len(rels) - 1
            new_tables[table] = sorted(out)
        if dropped:
            self._commit(Snapshot(snap.number + 1, new_tables))
            for path in dropped:
                path.unlink(missing_ok=True)
        return removed

    def collect(self) -> int:
        """Delete Parquet files no snapshot lists (left by a crash before commit)."""
        snap = self.snapshot()
        live = {f for fs in snap.tables.values() for f in fs}
        gone = 0
        for table in snap.tables:
            base = self.folder / table
            if not base.is_dir():
                continue
            for path in base.rglob("*.parquet"):
                rel = str(path.relative_to(self.folder))
                if rel not in live:
                    path.unlink()
                    gone += 1
            for path in base.rglob(".*.tmp"):
                path.unlink()
        return gone


def read_table(parquet_dir: Path, table: str, schema: pa.Schema | None = None) -> pa.Table:
    """A published table of one partner, whatever its layout."""
    return PartnerTables(parquet_dir).read(table, schema)


def table_files(parquet_dir: Path, table: str) -> list[Path]:
    return PartnerTables(parquet_dir).files(table)
