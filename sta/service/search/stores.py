"""The regions' stores, attached read-only, and their hot reload.

Federation across regions
    Each region has its own store (``<data>/<region>/store/consolidated.duckdb``)
    and a store never holds another region's rows. The service opens one
    in-memory DuckDB, ATTACHes every store READ_ONLY under ``st_<region>`` and
    searches each region the customer is entitled to, merging the answers, so
    rows are never copied between regions. A deployment with one service per
    region would replace the ATTACH by a fan-out over HTTP with the same merge.

Stores are replaced, never written in place
    ``transforms.consolidate`` writes a new file and renames it over the old
    one; ``StoreSet`` notices the new inode (checked at most once a second) and
    builds a new snapshot in the background, so searches never wait for a
    linking run and never see half of one.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import duckdb

from sta.service.search.index import RegionIndex, sql_str

log = logging.getLogger(__name__)

from transforms.consolidate import STORE_NAME  # noqa: E402 - the store layout's one definition
REGION_RE = re.compile(r"^[a-z]{2,8}$")


class ResultCache:
    """Recent per-region answers (total, facets, first rows) of one snapshot,
    keyed by the normalised filters and sort.

    Why: the same filters come back all the time (the opening page, paging
    through a result, a facet ticked and unticked, many customers' default
    searches); their facet counts cost ~10-40 ms of numpy per region at a
    million studies and are pure functions of the (immutable) snapshot, so an
    answer is reused until a linking run replaces the store (a new snapshot
    has a new, empty cache)."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._d: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> Any | None:
        with self._lock:
            v = self._d.get(key)
            if v is not None:
                self._d.move_to_end(key)
            return v

    def put(self, key: tuple, value: Any) -> None:
        with self._lock:
            self._d[key] = value
            self._d.move_to_end(key)
            while len(self._d) > self.size:
                self._d.popitem(last=False)


class Snapshot:
    """An attached set of stores and their in-memory indexes, immutable."""

    def __init__(self, stores: dict[str, Path], threads: int | None) -> None:
        self.cache = ResultCache()
        self.cards = ResultCache(20_000)  # card JSON by (region, row), ~1.5 kB each
        config: dict[str, Any] = {}
        if threads:
            config["threads"] = threads
        self.con = duckdb.connect(":memory:", config=config)
        self.con.execute("SET enable_progress_bar = false")
        self.indexes: dict[str, RegionIndex] = {}
        for region, p in stores.items():
            if p.exists():
                self.con.execute(f"ATTACH '{sql_str(str(p))}' AS st_{region} (READ_ONLY)")
                self.indexes[region] = RegionIndex(self.con, region)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()


class StoreSet:
    """The regions' stores attached read-only to one in-memory DuckDB, with
    their in-memory search indexes.

    ``stores`` maps region -> store file. ``snapshot()`` returns the current
    ``Snapshot``; when a store file was replaced by a linking run (checked at
    most once a second), a new snapshot is built in a background thread and
    swapped in when ready, so requests never wait for it and never see a mix.
    """

    def __init__(self, stores: dict[str, Path], threads: int | None = None,
                 data_root: Path | None = None) -> None:
        for region in stores:
            if not REGION_RE.match(region):
                raise ValueError(f"bad region name {region!r}")
        self.stores = {r: Path(p) for r, p in sorted(stores.items())}
        self.threads = threads
        self._data_root = data_root
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._stamp: tuple | None = None
        self._checked = 0.0
        self._reloading = False

    @classmethod
    def discover(cls, data_root: Path) -> "StoreSet":
        """Every ``<data_root>/<region>/store/consolidated.duckdb``, also those
        that appear later (the first linking run of a new region)."""
        return cls(cls._glob(Path(data_root)), data_root=Path(data_root))

    @staticmethod
    def _glob(data_root: Path) -> dict[str, Path]:
        return {p.parent.parent.name: p for p in sorted(data_root.glob(f"*/store/{STORE_NAME}"))
                if REGION_RE.match(p.parent.parent.name)}

    @classmethod
    def from_paths(cls, paths: list[Path]) -> "StoreSet":
        """Stores given by path; each store's region is read from its ``store_meta``."""
        stores: dict[str, Path] = {}
        for p in paths:
            p = Path(p)
            if not p.exists():
                raise FileNotFoundError(f"no store at {p}")
            con = duckdb.connect(str(p), read_only=True)
            try:
                row = con.execute("SELECT value FROM store_meta WHERE key = 'region'").fetchone()
            finally:
                con.close()
            if not row:
                raise ValueError(f"{p} has no region in store_meta: not a consolidated store")
            if row[0] in stores:
                raise ValueError(f"two stores for region {row[0]!r}: {stores[row[0]]} and {p}")
            stores[row[0]] = p
        return cls(stores)

    @property
    def data_root(self) -> Path | None:
        """The data root the stores were discovered under (None for stores given by path)."""
        return self._data_root

    @property
    def regions(self) -> list[str]:
        return list(self.stores)

    def partner_root(self, region: str, partner_id: str) -> Path:
        """The partner's enclave (``delivery.catalog.partner_root``): thumbnails are relative to it."""
        from delivery.catalog import partner_root

        return partner_root(self.stores[region], partner_id)

    def _current_stamp(self) -> tuple:
        if self._data_root is not None:
            self.stores = self._glob(self._data_root)
        out = []
        for region, p in self.stores.items():
            try:
                st = p.stat()
                out.append((region, st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append((region, None))
        return tuple(out)

    def _reload(self, stamp: tuple) -> None:
        try:
            snap = Snapshot(dict(self.stores), self.threads)
            with self._lock:
                self._snap, self._stamp = snap, stamp
            log.info("re-attached stores: %s", ", ".join(snap.indexes))
        except Exception:  # noqa: BLE001 - keep serving the previous snapshot
            log.exception("could not re-attach the stores; still serving the previous ones")
        finally:
            self._reloading = False

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self._lock:
            snap = self._snap
            check = snap is None or now - self._checked > 1.0
            if check:
                self._checked = now
        if not check:
            return snap
        stamp = self._current_stamp()
        if snap is None:
            with self._lock:
                if self._snap is None:
                    self._snap, self._stamp = Snapshot(dict(self.stores), self.threads), stamp
                return self._snap
        with self._lock:
            start = stamp != self._stamp and not self._reloading
            if start:
                self._reloading = True
        if start:
            # The old snapshot keeps serving (and stays alive while in use).
            threading.Thread(target=self._reload, args=(stamp,), daemon=True).start()
        return snap

    def wait_reloaded(self, timeout: float = 30.0) -> None:
        """Block until a store change seen now is attached (tests, CLI)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._checked = 0.0
        self.snapshot()
        while time.monotonic() < deadline:
            if not self._reloading and self._stamp == self._current_stamp():
                return
            time.sleep(0.05)
        raise TimeoutError("stores were not re-attached in time")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.snapshot().cursor()

    def available(self, regions: list[str] | None, snap: Snapshot | None = None) -> list[str]:
        """Regions both requested (None = all) and attached."""
        present = sorted((snap or self.snapshot()).indexes)
        if regions is None:
            return present
        return [r for r in present if r in set(regions)]

    def partners(self, regions: list[str]) -> list[str]:
        """Partner ids present in the stores of ``regions``."""
        snap = self.snapshot()
        return sorted({p for r in regions if r in snap.indexes for p in snap.indexes[r].values["partner"]})

    def source(self, regions: list[str], table: str = "search_studies") -> str:
        """SQL of the union of ``table`` over ``regions`` (already validated)."""
        if not regions:
            return f"(SELECT * FROM st_{next(iter(self.stores))}.{table} WHERE false)"
        parts = [f"SELECT * FROM st_{r}.{table}" for r in regions]
        return parts[0].replace("SELECT * FROM ", "") if len(parts) == 1 else "(" + " UNION ALL ".join(parts) + ")"
