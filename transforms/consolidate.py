"""Patient-token linking: merge a region's partner Parquet into its store.

Every partner DAG publishes ``<data>/<region>/partners/<id>/parquet/<table>.parquet``
(``foundation.schema``). This module loads all of a region's partners into
``<data>/<region>/store/consolidated.duckdb``. Linking itself needs no
matching step: patient tokens are keyed HMACs computed by the same key at
every partner, so the same person already carries the same token everywhere;
consolidating puts their rows side by side, and the store's ``search_studies``
(sorted by token) gives one patient's history across partners and years.

Guarantees, and how they are kept:

- Idempotent upserts, a partner replacing its own rows only: a partner's rows
  are deleted by ``partner_id`` and re-inserted from its Parquet in one
  transaction. A partner whose Parquet did not change since the last load
  (same files, sizes and mtimes: ``store_partners.fingerprint``) is skipped,
  so a run with nothing new re-publishes nothing and writes nothing.
- Region isolation: only ``<data>/<region>/partners/*`` is read, every row's
  ``partner_id`` must be the folder's partner, and every ``region`` column
  must be the store's region; otherwise that partner is refused (fail
  closed) and the run raises after loading the valid partners.
- Readers never see a half-written store and never block a writer: the new
  store is written to a copy and renamed over the old one (``os.replace``).
  The query service re-attaches when it sees the new file. A lock file
  serialises two linking runs of the same region.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import duckdb

from foundation.schema import TABLES
from transforms.parquet_store import PartnerTables
from transforms.store_schema import LAYOUT_VERSION, create_tables, rebuild_search

log = logging.getLogger(__name__)

STORE_DIR = "store"
STORE_NAME = "consolidated.duckdb"
_REGION_RE = re.compile(r"^[a-z]{2,8}$")
_PARTNER_RE = re.compile(r"^[a-z][a-z0-9_]{1,62}$")
# Tables whose rows carry a region column that must equal the store's.
_REGION_TABLES = ("patients", "studies")


class ConsolidationError(RuntimeError):
    """One or more partners were refused; the others were loaded."""


def store_path(region: str, data_root: Path) -> Path:
    """``<data_root>/<region>/store/consolidated.duckdb``."""
    return Path(data_root) / region / STORE_DIR / STORE_NAME


def partner_parquet_dirs(region: str, data_root: Path) -> dict[str, Path]:
    """Partners of the region that have published: ``{partner_id: parquet dir}``."""
    base = Path(data_root) / region / "partners"
    out = {}
    for d in sorted(base.glob("*/parquet")):
        if _PARTNER_RE.match(d.parent.name) and PartnerTables(d).has("studies"):
            out[d.parent.name] = d
    return out


def table_fingerprints(parquet_dir: Path) -> dict[str, str]:
    """A cheap identity of each published table: its live files (names, sizes).

    Publication appends new files and commits a new snapshot, so a table a run
    did not touch keeps its fingerprint and is not re-read: linking reads only
    what changed, which is what keeps a 325,000-file partner cheap to link.
    """
    tables = PartnerTables(parquet_dir)
    out = {}
    for name in sorted(TABLES):
        h = hashlib.sha256()
        for file_name, size, mtime in tables.sizes(name):
            h.update(f"{file_name}:{size}:{mtime};".encode())
        out[name] = h.hexdigest()[:24]
    return out


def fingerprint(parquet_dir: Path) -> str:
    return json.dumps(table_fingerprints(parquet_dir), sort_keys=True)


def _changed_tables(loaded: str | None, current: str) -> set[str]:
    """Tables whose files changed since the store loaded them (all, if unknown)."""
    try:
        before = json.loads(loaded) if loaded else {}
    except ValueError:  # a fingerprint of the first layout: reload everything
        before = {}
    now = json.loads(current)
    return {t for t in TABLES if not isinstance(before, dict) or before.get(t) != now.get(t)}


@contextmanager
def _region_lock(store: Path) -> Iterator[None]:
    store.parent.mkdir(parents=True, exist_ok=True)
    with open(store.parent / ".consolidate.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _loaded_fingerprints(store: Path) -> tuple[dict[str, str], bool]:
    """Fingerprints of the loaded partners, and whether the store's layout is
    current (an older layout is rebuilt even when no partner changed)."""
    if not store.exists():
        return {}, False
    con = duckdb.connect(str(store), read_only=True)
    try:
        fps = dict(con.execute("SELECT partner_id, fingerprint FROM store_partners").fetchall())
        row = con.execute("SELECT value FROM store_meta WHERE key = 'layout_version'").fetchone()
        return fps, bool(row and row[0] == LAYOUT_VERSION)
    except duckdb.CatalogException:
        return {}, False
    finally:
        con.close()


def _stage_partner(
    con: duckdb.DuckDBPyConnection, region: str, partner_id: str, parquet_dir: Path,
    only: set[str] | None = None,
) -> dict[str, int]:
    """Read and check one partner's tables into ``stage_<table>`` temp tables.

    Raises ValueError naming the problem if a table is unreadable, lacks a
    column, or holds a row of another partner or region.
    """
    counts = {}
    published = PartnerTables(parquet_dir)
    for table, schema in TABLES.items():
        if only is not None and table not in only:
            continue
        files = [str(f) for f in published.files(table)]
        cols = ", ".join(f'"{n}"' for n in schema.names)
        con.execute(f"DROP TABLE IF EXISTS stage_{table}")
        con.execute(f"CREATE TEMP TABLE stage_{table} AS SELECT * FROM {table} LIMIT 0")
        if not files:
            counts[table] = 0
            continue
        try:
            con.execute(
                f"INSERT INTO stage_{table} BY NAME SELECT {cols} FROM read_parquet(?, union_by_name = true)",
                [files],
            )
        except duckdb.Error as exc:
            raise ValueError(f"partner {partner_id}: table {table}: {exc}") from exc
        others = con.execute(
            f"SELECT DISTINCT partner_id FROM stage_{table} "
            "WHERE partner_id IS DISTINCT FROM ? LIMIT 3",
            [partner_id],
        ).fetchall()
        if others:
            raise ValueError(
                f"partner {partner_id}: table {table} holds rows of partner(s) "
                f"{[o[0] for o in others]}; a partner publishes only its own rows"
            )
        if table in _REGION_TABLES:
            bad = con.execute(
                f"SELECT DISTINCT region FROM stage_{table} WHERE region IS DISTINCT FROM ? LIMIT 3",
                [region],
            ).fetchall()
            if bad:
                raise PermissionError(
                    f"partner {partner_id}: table {table} holds rows of region(s) "
                    f"{[b[0] for b in bad]}; the {region!r} store takes only {region!r} rows"
                )
        counts[table] = con.execute(f"SELECT count(*) FROM stage_{table}").fetchone()[0]
    return counts


def consolidate_region(
    region: str, data_root: Path | str, partners: list[str] | None = None
) -> dict[str, Any]:
    """Load the region's published partners into its consolidated store.

    ``partners`` limits the run to those partner ids (default: every partner
    folder of the region with a ``parquet/studies.parquet``). Returns a summary:
    ``{"region", "store", "changed", "partners": {id: {"status", "rows"}},
    "totals": {table: rows}, "patients": n, "patients_multi_partner": n,
    "seconds"}``. Raises ``ConsolidationError`` (after loading the valid
    partners) if any partner was refused.
    """
    if not _REGION_RE.match(region):
        raise ValueError(f"bad region {region!r}")
    started = time.monotonic()
    data_root = Path(data_root)
    store = store_path(region, data_root)
    found = partner_parquet_dirs(region, data_root)
    if partners is not None:
        missing = sorted(set(partners) - set(found))
        if missing:
            raise FileNotFoundError(f"no published Parquet for partner(s) {missing} in region {region}")
        found = {p: d for p, d in found.items() if p in set(partners)}

    summary: dict[str, Any] = {"region": region, "store": str(store), "partners": {}}
    errors: list[str] = []
    with _region_lock(store):
        loaded, current = _loaded_fingerprints(store)
        todo = {p: d for p, d in found.items() if loaded.get(p) != fingerprint(d)}
        for p in found:
            if p not in todo:
                summary["partners"][p] = {"status": "unchanged"}
        if todo or not current:
            tmp = store.with_name(f".{store.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            if store.exists():
                shutil.copy2(store, tmp)
            con = duckdb.connect(str(tmp))
            try:
                con.execute("SET enable_progress_bar = false")
                create_tables(con, region)
                for pid, pdir in todo.items():
                    fp = fingerprint(pdir)
                    changed = _changed_tables(loaded.get(pid), fp) if current else set(TABLES)
                    try:
                        counts = _stage_partner(con, region, pid, pdir, changed)
                    except (ValueError, PermissionError) as exc:
                        errors.append(str(exc))
                        summary["partners"][pid] = {"status": "refused", "error": str(exc)}
                        log.error("refused partner %s: %s", pid, exc)
                        continue
                    con.execute("BEGIN TRANSACTION")
                    for table in changed:
                        con.execute(f"DELETE FROM {table} WHERE partner_id = ?", [pid])
                        con.execute(f"INSERT INTO {table} SELECT * FROM stage_{table}")
                        con.execute(f"DROP TABLE stage_{table}")
                    con.execute(
                        "INSERT OR REPLACE INTO store_partners VALUES (?, ?, now(), ?)",
                        [pid, fp, json.dumps(counts)],
                    )
                    con.execute("COMMIT")
                    summary["partners"][pid] = {"status": "loaded", "rows": counts, "tables": sorted(changed)}
                rebuild_search(con)
                con.execute("CHECKPOINT")
            except BaseException:
                con.close()
                tmp.unlink(missing_ok=True)
                raise
            con.close()
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, store)
        summary["changed"] = any(v["status"] == "loaded" for v in summary["partners"].values())
        con = duckdb.connect(str(store), read_only=True)
        try:
            summary["totals"] = {
                t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES
            }
            summary["patients"], summary["patients_multi_partner"] = con.execute(
                "SELECT count(*), count(*) FILTER (WHERE n > 1) FROM "
                "(SELECT patient_token, count(DISTINCT partner_id) AS n FROM studies GROUP BY 1)"
            ).fetchone()
        finally:
            con.close()
    summary["seconds"] = round(time.monotonic() - started, 3)
    if errors:
        raise ConsolidationError(f"region {region}: {len(errors)} partner(s) refused: " + "; ".join(errors))
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m transforms.consolidate REGION [--data-root D]``: prints the summary."""
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("region")
    ap.add_argument("--data-root", default=os.environ.get("STA_DATA_ROOT") or "data")
    ap.add_argument("--partner", action="append", dest="partners")
    args = ap.parse_args(argv)
    print(json.dumps(consolidate_region(args.region, Path(args.data_root), args.partners), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
