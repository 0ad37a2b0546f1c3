"""The export package builder: the same code for the ``export`` DAG and for
``sta export`` (no Airflow).

A package holds, for the studies the customer may receive (its regions;
others are listed as not available):

- ``studies.jsonl``: one JSON object per study (JSON Lines, so any size
  streams): metadata, selected DICOM tags, the scrubbed report(s), labels
  (concept, certainty, evidence) and characterization (field, value, source,
  confidence) as the store has them, and the series;
- ``dicom/<study>/<series>/<sop>.dcm`` (format ``dicom``): the de-identified
  files as published, each checked against the SHA-256 the pipeline
  recorded while it is copied;
- ``tables/*.parquet`` (option ``parquet``): the studies, series, reports and
  labels rows of the package;
- ``manifest.json`` and ``SHA256SUMS`` (``sha256sum -c`` format): every file
  with its size and SHA-256.

Bounded memory: studies are read in batches, files copied in 1 MiB chunks
with the digest computed on the way (no second read), and a package is
written either into a folder or straight into a ZIP (stored for DICOM, whose
pixels rarely deflate; deflated for JSON), renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

import duckdb

from delivery.cards import dicom_tags
from delivery.catalog import StudyRef, attached, entitled, inside, partner_root, resolve, temp_list

CHUNK = 1 << 20
BATCH_STUDIES = 2000  # per query round: each round scans the tables once (~10k rows ~0.1 s)
FORMATS = ("json", "dicom")


class IntegrityError(Exception):
    """A published file no longer matches the checksum the pipeline recorded."""


class _Hashing:
    """A writable stream that counts and hashes what passes through."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.size, self.sha = raw, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)


class Sink:
    """Where a package's files go; records each file's size and SHA-256."""

    def __init__(self) -> None:
        self.files: list[dict[str, Any]] = []

    @contextmanager
    def open(self, name: str, compress: bool = True) -> Iterator[_Hashing]:
        with self._raw(name, compress) as raw:
            h = _Hashing(raw)
            yield h
        self.files.append({"name": name, "size": h.size, "sha256": h.sha.hexdigest()})

    def _raw(self, name: str, compress: bool):  # noqa: ANN202
        raise NotImplementedError

    def close(self) -> None:
        pass


class DirSink(Sink):
    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _raw(self, name: str, compress: bool) -> Iterator[BinaryIO]:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            yield f


class ZipSink(Sink):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.zf = zipfile.ZipFile(path, "w", allowZip64=True)

    @contextmanager
    def _raw(self, name: str, compress: bool) -> Iterator[BinaryIO]:
        info = zipfile.ZipInfo(name, date_time=datetime.now(timezone.utc).timetuple()[:6])
        info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
        with self.zf.open(info, "w", force_zip64=True) as f:
            yield f

    def close(self) -> None:
        self.zf.close()


@dataclass
class ExportResult:
    """What a build delivered: the metering and the order's figures come from here."""

    package: Path
    requested: int
    exported: list[StudyRef] = field(default_factory=list)
    not_available: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0

    @property
    def partners(self) -> dict[str, int]:
        return dict(Counter(r.partner_id for r in self.exported))


def build_package(
    stores: dict[str, Path],
    regions: list[str] | None,
    study_uids: list[str],
    fmt: str,
    out: Path,
    *,
    as_zip: bool = False,
    parquet: bool = False,
    meta: dict[str, Any] | None = None,
    progress: Callable[[float], None] | None = None,
) -> ExportResult:
    """Build the package of ``study_uids`` (already validated) from the
    customer's ``regions`` into ``out`` (a folder, or ``out/package.zip``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    allowed = entitled(stores, regions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    target = out / "package.zip"
    partial = out / "package.zip.part"
    sink: Sink = ZipSink(partial) if as_zip else DirSink(out)
    result = ExportResult(package=target if as_zip else out, requested=len(study_uids))
    try:
        with attached(allowed) as con:
            refs = resolve(con, sorted(allowed), study_uids)
            result.exported = refs
            found = {r.study_uid for r in refs}
            result.not_available = [u for u in study_uids if u not in found]
            # Metadata first, then the files (a ZIP takes one open entry at a time).
            share = 0.95 if fmt == "json" else 0.1
            done = 0
            with sink.open("studies.jsonl") as jf:
                for region, batch in _batches(refs):
                    _temp_batch(con, batch)
                    for record in _study_records(con, region):
                        jf.write(json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n")
                    done += len(batch)
                    if progress:
                        progress(share * done / max(1, len(refs)))
            if fmt == "dicom":
                done = 0
                for region, batch in _batches(refs):
                    _temp_batch(con, batch)
                    _copy_dicom(con, region, allowed[region], sink)
                    done += len(batch)
                    if progress:
                        progress(share + (0.95 - share) * done / max(1, len(refs)))
            if parquet:
                _write_parquet(con, refs, sink)
        manifest = {
            **(meta or {}),
            "format": fmt,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "requested": result.requested,
            "exported": len(result.exported),
            "not_available": result.not_available,
            "partners": result.partners,
            "regions": sorted({r.region for r in result.exported}),
            "files": sink.files,
            "total_bytes": sum(f["size"] for f in sink.files),
        }
        sums = "".join(f"{f['sha256']}  {f['name']}\n" for f in sink.files)
        listed = list(sink.files)
        with sink.open("SHA256SUMS") as f:
            f.write(sums.encode())
        with sink.open("manifest.json") as f:
            f.write(json.dumps(manifest, ensure_ascii=False, indent=2).encode())
        result.files = len(listed)
        result.bytes = manifest["total_bytes"]
        sink.close()
        if as_zip:
            os.replace(partial, target)
            # The manifest also beside the archive, to check a download without unpacking.
            (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
    except BaseException:
        sink.close()
        partial.unlink(missing_ok=True)
        raise
    if progress:
        progress(1.0)
    return result


def _batches(refs: list[StudyRef]) -> Iterator[tuple[str, list[StudyRef]]]:
    by_region: dict[str, list[StudyRef]] = {}
    for r in refs:
        by_region.setdefault(r.region, []).append(r)
    for region, items in sorted(by_region.items()):
        for i in range(0, len(items), BATCH_STUDIES):
            yield region, items[i:i + BATCH_STUDIES]


def _temp_batch(con: duckdb.DuckDBPyConnection, batch: list[StudyRef]) -> None:
    temp_list(con, "batch", {"study_uid": [r.study_uid for r in batch], "partner_id": [r.partner_id for r in batch]})


def _dicts(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _study_records(con: duckdb.DuckDBPyConnection, region: str) -> Iterator[dict[str, Any]]:
    st = f"st_{region}"
    cards = {r["study_uid"]: json.loads(r["card"]) for r in _dicts(con.execute(
        f"SELECT s.study_uid, s.card FROM {st}.search_studies s JOIN batch b USING (study_uid, partner_id)"))}
    labels: dict[str, list] = {}
    for r in _dicts(con.execute(
            f"SELECT l.* EXCLUDE (partner_id) FROM {st}.labels l JOIN batch b USING (study_uid, partner_id) "
            "ORDER BY l.study_uid, l.concept, l.certainty")):
        labels.setdefault(r.pop("study_uid"), []).append(r)
    series: dict[str, list] = {}
    for r in _dicts(con.execute(
            f"SELECT s.study_uid, s.series_uid, s.modality, s.body_part, s.series_number, s.series_description, "
            f"s.n_instances FROM {st}.series s JOIN batch b USING (study_uid, partner_id) "
            "ORDER BY s.study_uid, s.series_number, s.series_uid")):
        series.setdefault(r.pop("study_uid"), []).append(r)
    reports: dict[str, list] = {}
    for r in _dicts(con.execute(
            f"SELECT r.study_uid, r.report_id, r.language, r.source_format, r.text_scrubbed AS text "
            f"FROM {st}.reports r JOIN batch b USING (study_uid, partner_id) ORDER BY r.study_uid, r.report_id")):
        reports.setdefault(r.pop("study_uid"), []).append(r)
    characteristics: dict[str, list] = {}
    try:
        for r in _dicts(con.execute(
                f"SELECT c.* EXCLUDE (partner_id) FROM {st}.characteristics c JOIN batch b USING (study_uid, partner_id) "
                "ORDER BY c.study_uid, c.field, c.value")):
            characteristics.setdefault(r.pop("study_uid"), []).append(r)
    except duckdb.CatalogException:
        pass  # a store from before characterization (layout < 5)
    order = [u for (u,) in con.execute("SELECT study_uid FROM batch ORDER BY pos").fetchall()]
    for uid in order:
        c = cards.get(uid)
        if c is None:
            continue
        yield {
            "study_uid": uid,
            "patient_token": c["patient_token"],
            "region": c["region"],
            "partner_id": c["partner_id"],
            "country": c["country"],
            "modality": c["modality"],
            "modalities": c.get("modalities") or [],
            "body_region": c["body_region"],
            "study_date": c["study_date"],
            "study_description": c.get("study_description"),
            "age": c["age"],
            "sex": c["sex"],
            "manufacturer": c.get("manufacturer"),
            "manufacturer_model": c.get("manufacturer_model"),
            "dicom_tags": dicom_tags(c),
            "reports": reports.get(uid, []),
            "labels": labels.get(uid, []),
            "characteristics": characteristics.get(uid, []),
            "series": series.get(uid, []),
        }


def _copy_dicom(con: duckdb.DuckDBPyConnection, region: str, store: Path, sink: Sink) -> None:
    cur = con.execute(
        f"SELECT i.study_uid, i.series_uid, i.sop_uid, i.partner_id, i.path, i.sha256 FROM st_{region}.instances i "
        "JOIN batch b USING (study_uid, partner_id) ORDER BY b.pos, i.series_uid, i.sop_uid")
    while True:
        rows = cur.fetchmany(1000)
        if not rows:
            break
        for study, series, sop, partner, rel, sha in rows:
            src = inside(partner_root(store, partner), rel or "")
            if src is None:
                raise IntegrityError(f"a published file of study {study} is missing from its partner's root")
            name = f"dicom/{study}/{series}/{sop}.dcm"
            with open(src, "rb") as f, sink.open(name, compress=False) as w:
                shutil.copyfileobj(f, w, CHUNK)
            if sha and sink.files[-1]["sha256"] != sha:
                raise IntegrityError(f"a published file of study {study} does not match its recorded checksum")


def _write_parquet(con: duckdb.DuckDBPyConnection, refs: list[StudyRef], sink: Sink) -> None:
    """tables/<name>.parquet of the package's rows (written to a temp file,
    then streamed into the sink)."""
    regions = sorted({r.region for r in refs})
    _temp_all(con, refs)
    for table in ("studies", "series", "reports", "labels", "characteristics"):
        if not regions:
            break
        union = " UNION ALL BY NAME ".join(
            f"SELECT t.* FROM st_{r}.{table} t JOIN export_all a USING (study_uid, partner_id)" for r in regions)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{table}.parquet"
            con.execute(f"COPY ({union}) TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
            with open(path, "rb") as f, sink.open(f"tables/{table}.parquet", compress=False) as w:
                shutil.copyfileobj(f, w, CHUNK)


def _temp_all(con: duckdb.DuckDBPyConnection, refs: list[StudyRef]) -> None:
    temp_list(con, "export_all", {"study_uid": [r.study_uid for r in refs], "partner_id": [r.partner_id for r in refs]})


def read_manifest(package: Path) -> dict[str, Any]:
    """The manifest of a package folder or ZIP."""
    package = Path(package)
    if package.suffix == ".zip":
        with zipfile.ZipFile(package) as zf, zf.open("manifest.json") as f:
            return json.load(io.TextIOWrapper(f, encoding="utf-8"))
    return json.loads((package / "manifest.json").read_text(encoding="utf-8"))
