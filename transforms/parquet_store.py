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
import pyarrow.fs as pafs
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


# Partition spec per table: (directory key, how a row gives its value). Keys
# are never data column names (Spark refuses a column both in the files and
# in the path), so a Hive-partitioned engine sees them as extra columns. A
# table not listed has a single partition. Keys always map to the same
# partition (the values are functions of the row's own, deterministic data).
PARTITIONS: dict[str, list[tuple[str, Callable[[dict[str, Any]], str]]]] = {
    "studies": [("study_year", _year("study_date_shifted")), ("study_modality", _value("modality"))],
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
    """The published tables under one partner's ``parquet/`` folder.

    ``fs`` is a pyarrow filesystem: the local disk by default, or a region's
    object storage (``transforms.region_storage``), where writing an object
    is atomic, so the snapshot commit needs no rename.
    """

    def __init__(self, folder: Path | str, compact_after: int = 8, fs: pafs.FileSystem | None = None) -> None:
        self.fs = fs or pafs.LocalFileSystem()
        self.local = isinstance(self.fs, pafs.LocalFileSystem)
        self.folder = Path(folder) if self.local else None
        self.base = str(folder).rstrip("/")
        self.compact_after = compact_after  # files per partition that trigger a merge on write

    def _path(self, rel: str) -> str:
        return f"{self.base}/{rel}"

    def _is_file(self, rel: str) -> bool:
        return self.fs.get_file_info(self._path(rel)).type == pafs.FileType.File

    # -- reading ---------------------------------------------------------
    def snapshot(self) -> Snapshot:
        if not self._is_file(SNAPSHOT):
            return Snapshot()
        with self.fs.open_input_stream(self._path(SNAPSHOT)) as fh:
            data = json.loads(fh.read().decode("utf-8"))
        return Snapshot(int(data["snapshot"]), {k: list(v) for k, v in data["tables"].items()},
                        str(data.get("schema_version", SCHEMA_VERSION)))

    def relative_files(self, table: str) -> list[str]:
        snap = self.snapshot()
        if table in snap.tables:
            return list(snap.tables[table])
        legacy = f"{table}.parquet"
        return [legacy] if self._is_file(legacy) else []

    def files(self, table: str) -> list[Path] | list[str]:
        """Live files of ``table`` (the snapshot's, or the first layout's single file)."""
        rels = self.relative_files(table)
        return [self.folder / r for r in rels] if self.local else [self._path(r) for r in rels]

    def sizes(self, table: str) -> list[tuple[str, int, int]]:
        """``(name, size, mtime_ns)`` of each live file: a cheap identity of the table."""
        infos = self.fs.get_file_info([self._path(r) for r in self.relative_files(table)])
        return [(i.base_name, i.size or 0, i.mtime_ns or 0) for i in infos]

    def _read(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self._path(rel), columns=columns, filesystem=self.fs)

    def read(self, table: str, schema: pa.Schema | None = None, columns: list[str] | None = None) -> pa.Table:
        rels = self.relative_files(table)
        if not rels:
            if schema is None:
                raise FileNotFoundError(f"no published table {table!r} under {self.base}")
            return schema.empty_table() if columns is None else schema.empty_table().select(columns)
        parts = [self._read(r, columns) for r in rels]
        if schema is not None:
            names = columns or schema.names
            target = pa.schema([schema.field(n) for n in names])
            parts = [p.select(names).cast(target) for p in parts]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def has(self, table: str) -> bool:
        return bool(self.relative_files(table))

    # -- writing ---------------------------------------------------------
    def _put(self, rel: str, write: Callable[[str], None]) -> None:
        """Write one file so that no reader sees it half-written."""
        dest = self._path(rel)
        if self.local:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            tmp = str(Path(dest).with_name("." + Path(dest).name + f".{os.getpid()}.tmp"))
            write(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
        else:
            write(dest)  # an object store's PUT is atomic

    def _write(self, table: str, partition: str, rows: pa.Table, tag: str) -> str:
        rel = f"{table}/{partition}/part-{tag}-{uuid.uuid4().hex[:12]}.parquet" if partition else \
            f"{table}/part-{tag}-{uuid.uuid4().hex[:12]}.parquet"
        meta = {b"sta.table": table.encode(), b"sta.schema_version": SCHEMA_VERSION.encode()}
        rows = rows.replace_schema_metadata({**(rows.schema.metadata or {}), **meta})
        self._put(rel, lambda where: pq.write_table(rows, where, compression="zstd", filesystem=self.fs))
        return rel

    def _delete(self, rels: Iterable[str]) -> None:
        for rel in rels:
            try:
                self.fs.delete_file(self._path(rel))
            except FileNotFoundError:
                pass

    @staticmethod
    def _partition_of(table: str, rows: pa.Table) -> list[str]:
        spec = PARTITIONS.get(table)
        if not spec:
            return [""] * rows.num_rows
        pylist = rows.to_pylist()
        return ["/".join(f"{k}={f(r)}" for k, f in spec) for r in pylist]

    def upsert(self, changes: dict[str, tuple[pa.Table, tuple[str, ...]]], tag: str = "run") -> dict[str, int]:
        """Add ``{table: (rows, key)}`` as one commit; returns live rows per changed table.

        Only files holding a superseded key are rewritten; everything else is
        appended. Nothing is visible until the snapshot is replaced.
        """
        snap = self.snapshot()
        tables = {t: list(fs) for t, fs in snap.tables.items()}
        dropped: list[str] = []
        counts: dict[str, int] = {}
        for table, (new, key) in changes.items():
            live = tables.get(table)
            if live is None:  # first publication in this layout: adopt the single-file table
                live = []
                legacy = f"{table}.parquet"
                if self._is_file(legacy):
                    old = self._read(legacy).select(new.schema.names).cast(new.schema)
                    new = self._union(old, new, key)
                    dropped.append(legacy)
            new_keys = _keys(new, key)
            kept: list[str] = []
            for rel in live:
                hit = pc.is_in(_keys(self._read(rel, list(key)), key), value_set=new_keys)
                if not pc.any(hit).as_py():
                    kept.append(rel)
                    continue
                rest = self._read(rel).filter(pc.invert(hit))
                dropped.append(rel)
                if rest.num_rows:
                    kept.append(self._write(table, _partition_dir(table, rel), rest, tag))
            by_part: dict[str, list[int]] = defaultdict(list)
            for i, part in enumerate(self._partition_of(table, new)):
                by_part[part].append(i)
            for part, idx in sorted(by_part.items()):
                kept.append(self._write(table, part, new.take(pa.array(idx, pa.int64())), tag))
            kept = self._compacted(table, kept, dropped)
            tables[table] = sorted(kept)
            counts[table] = sum(pq.ParquetFile(self._path(f), filesystem=self.fs).metadata.num_rows for f in kept)
        self._commit(Snapshot(snap.number + 1, tables))
        self._delete(dropped)
        return counts

    def _compacted(self, table: str, files: list[str], dropped: list[str]) -> list[str]:
        """Merge partitions that reached ``compact_after`` files, within the same commit."""
        by_part: dict[str, list[str]] = defaultdict(list)
        for rel in files:
            by_part[_partition_dir(table, rel)].append(rel)
        out: list[str] = []
        for part, rels in sorted(by_part.items()):
            if len(rels) < self.compact_after:
                out.extend(rels)
                continue
            merged = pa.concat_tables([self._read(r) for r in rels], promote_options="default")
            out.append(self._write(table, part, merged, "compact"))
            dropped.extend(rels)
        return out

    @staticmethod
    def _union(old: pa.Table, new: pa.Table, key: tuple[str, ...]) -> pa.Table:
        keep = pc.invert(pc.is_in(_keys(old, key), value_set=_keys(new, key)))
        return pa.concat_tables([old.filter(keep), new])

    def _commit(self, snap: Snapshot) -> None:
        body = json.dumps(snap.to_json(), indent=1, sort_keys=True).encode("utf-8")

        def write(where: str) -> None:
            with self.fs.open_output_stream(where) as out:
                out.write(body)

        self._put(SNAPSHOT, write)

    def compact(self, min_files: int = 4, tables: Iterable[str] | None = None) -> dict[str, int]:
        """Merge each partition holding ``min_files`` or more files into one file.

        Idempotent: a compacted partition has one file and is left alone.
        Returns the number of files removed per table.
        """
        snap = self.snapshot()
        new_tables = {t: list(fs) for t, fs in snap.tables.items()}
        dropped: list[str] = []
        removed: dict[str, int] = {}
        for table in tables or list(snap.tables):
            before = len(dropped)
            saved, self.compact_after = self.compact_after, min_files
            try:
                new_tables[table] = sorted(self._compacted(table, snap.tables.get(table, []), dropped))
            finally:
                self.compact_after = saved
            if len(dropped) > before:
                removed[table] = len(snap.tables[table]) - len(new_tables[table])
        if dropped:
            self._commit(Snapshot(snap.number + 1, new_tables))
            self._delete(dropped)
        return removed

    def collect(self) -> int:
        """Delete Parquet files no snapshot lists (left by a crash before commit)."""
        snap = self.snapshot()
        live = {self._path(f) for fs in snap.tables.values() for f in fs}
        gone = 0
        for table in snap.tables:
            selector = pafs.FileSelector(self._path(table), allow_not_found=True, recursive=True)
            for info in self.fs.get_file_info(selector):
                if info.type != pafs.FileType.File:
                    continue
                stale_tmp = info.base_name.startswith(".") and info.base_name.endswith(".tmp")
                if (info.path.endswith(".parquet") and info.path not in live) or stale_tmp:
                    self.fs.delete_file(info.path)
                    gone += 1
        return gone


def read_table(parquet_dir: Path, table: str, schema: pa.Schema | None = None) -> pa.Table:
    """A published table of one partner, whatever its layout."""
    return PartnerTables(parquet_dir).read(table, schema)


def table_files(parquet_dir: Path, table: str) -> list[Path]:
    return PartnerTables(parquet_dir).files(table)
