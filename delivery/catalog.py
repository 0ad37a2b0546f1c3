"""The consolidated stores as the delivery side reads them: which studies a
customer may receive, and where their files are.

A region's store is ``<data>/<region>/store/consolidated.duckdb`` and its
partners' files are under ``<data>/<region>/partners/<partner_id>/`` (the
paths in ``instances.path`` and ``series.thumbnail`` are relative to that
root). Stores are attached READ_ONLY to an in-memory DuckDB, as the query
service does, so the builder can run beside a service in one process.

Entitlement: a customer receives only studies of its regions; a study asked
for that is not in them is "not available", the same answer whether it
exists in another region or nowhere.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb

from foundation.paths import PartnerRoot
from transforms.consolidate import store_path

_REGION_RE = re.compile(r"^[a-z]{2,8}$")
UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def discover_stores(data_root: Path) -> dict[str, Path]:
    """Every region's store under ``data_root`` (layout: ``transforms.consolidate.store_path``)."""
    regions = [p.name for p in sorted(Path(data_root).iterdir()) if p.is_dir() and _REGION_RE.match(p.name)] \
        if Path(data_root).is_dir() else []
    return {r: store_path(r, data_root) for r in regions if store_path(r, data_root).is_file()}


def entitled(stores: dict[str, Path], regions: list[str] | None) -> dict[str, Path]:
    """The stores of ``regions`` (None: every region)."""
    return {r: p for r, p in stores.items() if regions is None or r in regions}


def customer_area(data_root: Path, customer_id: int) -> Path:
    """Everything built for one customer (exports, SQL workspace)."""
    return Path(data_root) / "customers" / f"c{int(customer_id):06d}"


def partner_root(store: Path, partner_id: str) -> Path:
    """The partner's enclave (``foundation.paths.PartnerRoot``) of a region's store."""
    store = Path(store)
    return PartnerRoot(store.parent.parent.parent, store.parent.parent.name, partner_id).path


def inside(root: Path, relative: str) -> Path | None:
    """``root / relative`` if it stays inside ``root`` and is a file."""
    root = root.resolve()
    path = (root / relative).resolve()
    return path if root in path.parents and path.is_file() else None


@dataclass(frozen=True)
class StudyRef:
    region: str
    partner_id: str
    study_uid: str


def clean_uids(study_uids: list[str], limit: int) -> list[str]:
    """De-duplicated, validated study UIDs (order kept)."""
    if not isinstance(study_uids, list) or not study_uids:
        raise ValueError("study_uids must be a non-empty list")
    out: list[str] = []
    seen: set[str] = set()
    for u in study_uids:
        if not isinstance(u, str) or len(u) > 64 or not UID_RE.match(u):
            raise ValueError("every study uid must be a DICOM UID (digits and dots, at most 64 characters)")
        if u not in seen:
            seen.add(u)
            out.append(u)
    if len(out) > limit:
        raise ValueError(f"at most {limit:,} studies per export on this plan")
    return out


@contextmanager
def attached(stores: dict[str, Path]) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with each store attached READ_ONLY as ``st_<region>``."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        for region, path in stores.items():
            if not _REGION_RE.match(region):
                raise ValueError(f"bad region {region!r}")
            con.execute(f"ATTACH '{str(path).replace(chr(39), chr(39) * 2)}' AS st_{region} (READ_ONLY)")
        yield con
    finally:
        con.close()


def temp_list(con: duckdb.DuckDBPyConnection, name: str, columns: dict[str, list]) -> None:
    """A temp table ``name`` of equal-length lists plus ``pos`` (their order),
    passed as list parameters (no pandas/arrow round trip)."""
    cols = list(columns)
    first = cols[0]
    selects = ", ".join(f"unnest(${i + 2}) AS {c}" for i, c in enumerate(cols))
    con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT (generate_subscripts($1, 1) - 1)::INTEGER AS pos, "
                f"{selects}", [columns[first], *[columns[c] for c in cols]])


def resolve(con: duckdb.DuckDBPyConnection, regions: list[str], study_uids: list[str]) -> list[StudyRef]:
    """The studies of ``study_uids`` found in ``regions`` (attached), in the
    order asked."""
    if not regions or not study_uids:
        return []
    temp_list(con, "wanted", {"study_uid": study_uids})
    union = " UNION ALL ".join(
        f"SELECT w.pos, '{r}' AS region, s.partner_id, s.study_uid FROM wanted w "
        f"JOIN st_{r}.studies s USING (study_uid)" for r in regions)
    rows = con.execute(f"SELECT region, partner_id, study_uid FROM ({union}) ORDER BY pos, region").fetchall()
    seen: set[str] = set()
    out = []
    for region, partner, uid in rows:
        if uid not in seen:  # a UID is one study; first region wins if a copy exists elsewhere
            seen.add(uid)
            out.append(StudyRef(region, partner, uid))
    return out
