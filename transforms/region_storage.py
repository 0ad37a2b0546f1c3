"""Residency: each region's published data lives in that region's storage, and nowhere else.

A region's storage root is the local data root or object storage
(``s3://bucket/prefix``, through pyarrow's S3 filesystem, so any S3 API:
AWS, MinIO, moto in tests), declared in ``include/regions.yaml`` and
overridable per deployment with ``STA_STORAGE_<REGION>``. Credentials come
from the region's own Airflow Connection (``sta_storage_<region>``); a worker
is given only its region's connection (``sta deploy compose``), and every
write is checked against the region's root first, so a bug cannot move a
partner's data to another country: :class:`ResidencyError`.

Publication stays local and atomic (``pipeline.publish``); :func:`replicate`
then copies what the commit added to the region's object storage, snapshot
last, so readers there see the old or the new state, never a mix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import pyarrow.fs as pafs
import yaml

from foundation.paths import INCLUDE_DIR
from transforms.parquet_store import SNAPSHOT, PartnerTables
from transforms.sources.base import ConnectionInfo, env_connection_resolver

REGIONS_FILE = INCLUDE_DIR / "regions.yaml"


class ResidencyError(PermissionError):
    """A write outside the region's own storage root was refused."""


@dataclass(frozen=True)
class RegionStorage:
    region: str
    uri: str            # "local" or "s3://bucket/prefix"
    conn_id: str

    @property
    def remote(self) -> bool:
        return self.uri != "local"

    @property
    def root(self) -> str:
        """``bucket/prefix/<region>`` on the object store."""
        parsed = urlparse(self.uri)
        return "/".join(p for p in (parsed.netloc, parsed.path.strip("/"), self.region) if p)

    def filesystem(self, resolve: Callable[[str], ConnectionInfo] = env_connection_resolver) -> pafs.FileSystem:
        if not self.remote:
            return pafs.LocalFileSystem()
        scheme = urlparse(self.uri).scheme
        if scheme != "s3":
            raise ValueError(f"region {self.region}: storage scheme {scheme!r} is not supported (use s3://)")
        conn = resolve(self.conn_id)
        extra = conn.extra or {}
        endpoint = extra.get("endpoint_url") or (f"http://{conn.host}:{conn.port}" if conn.host else None)
        kwargs = {"access_key": conn.login, "secret_key": conn.password,
                  "region": extra.get("region_name", "us-east-1")}
        if endpoint:
            parsed = urlparse(endpoint)
            kwargs.update(endpoint_override=parsed.netloc or parsed.path, scheme=parsed.scheme or "https")
        return pafs.S3FileSystem(**kwargs)

    def partner_path(self, partner_id: str, *parts: str) -> str:
        return "/".join([self.root, "partners", partner_id, *parts])

    def check(self, target: str) -> str:
        """``target`` if it is inside this region's root; otherwise refuse."""
        norm = os.path.normpath(target.replace("s3://", "")).lstrip("/")
        root = os.path.normpath(self.root)
        if norm != root and not norm.startswith(root + "/"):
            raise ResidencyError(f"refused: {target!r} is outside region {self.region!r}'s storage {self.root!r}")
        return norm


def load_regions(path: Path = REGIONS_FILE) -> dict[str, RegionStorage]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    out = {}
    for region, spec in (data.get("regions") or {}).items():
        if not isinstance(spec, dict) or "connection" not in spec:
            raise ValueError(f"{path}: region {region!r} needs a mapping with 'storage' and 'connection'")
        uri = os.environ.get(f"STA_STORAGE_{region.upper()}") or str(spec.get("storage", "local"))
        if uri != "local" and not uri.startswith("s3://"):
            raise ValueError(f"{path}: region {region!r}: storage must be 'local' or s3://bucket[/prefix], got {uri!r}")
        out[region] = RegionStorage(region, uri, str(spec["connection"]))
    return out


def region_storage(region: str) -> RegionStorage:
    regions = load_regions()
    if region not in regions:
        raise ValueError(f"region {region!r} is not declared in {REGIONS_FILE}")
    return regions[region]


def replicate(local_root: Path, storage: RegionStorage, partner_id: str,
              resolve: Callable[[str], ConnectionInfo] = env_connection_resolver) -> dict[str, int]:
    """Copy a partner's published files (tables, DICOM, thumbnails) to its region's object storage.

    Files are copied when missing or of another size; the table snapshot is
    written last (the commit there), then files it no longer lists are removed.
    """
    if not storage.remote:
        return {"copied": 0, "removed": 0}
    fs = storage.filesystem(resolve)
    copied = 0
    local_fs = pafs.LocalFileSystem()
    for sub in ("dicom", "thumbnails", "parquet"):
        src = Path(local_root) / sub
        if not src.is_dir():
            continue
        dest_base = storage.check(storage.partner_path(partner_id, sub))
        existing = {i.path: i.size for i in fs.get_file_info(pafs.FileSelector(dest_base, allow_not_found=True,
                                                                              recursive=True))}
        for path in sorted(src.rglob("*")):
            if not path.is_file() or path.name == SNAPSHOT or path.name.endswith(".tmp"):
                continue
            dest = storage.check(f"{dest_base}/{path.relative_to(src).as_posix()}")
            if existing.get(dest) == path.stat().st_size:
                continue
            pafs.copy_files(str(path), dest, source_filesystem=local_fs, destination_filesystem=fs)
            copied += 1
    removed = 0
    snapshot = Path(local_root) / "parquet" / SNAPSHOT
    if snapshot.is_file():
        dest = storage.check(storage.partner_path(partner_id, "parquet", SNAPSHOT))
        with fs.open_output_stream(dest) as out:
            out.write(snapshot.read_bytes())
        removed = PartnerTables(storage.partner_path(partner_id, "parquet"), fs=fs).collect()
    return {"copied": copied, "removed": removed}


def remote_tables(storage: RegionStorage, partner_id: str,
                  resolve: Callable[[str], ConnectionInfo] = env_connection_resolver) -> PartnerTables:
    """A partner's published tables in its region's object storage (for linking and exports)."""
    return PartnerTables(storage.check(storage.partner_path(partner_id, "parquet")), fs=storage.filesystem(resolve))
