"""The service database: one SQLite file in WAL mode shared by the query
service, the CLI and the DAGs (``<data>/service/service.sqlite`` or
``$STA_SERVICE_DB``).

Why SQLite: ``sta apikey create``, a sign-up and an export DAG task write
while the service runs (a DuckDB file would be locked by the running
service), and audit writes from many request threads are short
transactions. Each area (accounts, metering, orders) declares its own tables
in its module; ``Database`` creates them all.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator


def default_db_path(data_root: Path) -> Path:
    """``$STA_SERVICE_DB`` or ``<data_root>/service/service.sqlite``."""
    env = os.environ.get("STA_SERVICE_DB")
    return Path(env) if env else Path(data_root) / "service" / "service.sqlite"


def now_iso() -> str:
    """UTC now, ISO 8601 with milliseconds (the timestamp of every record)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class Database:
    """Thread-safe access to the service database (one connection, one lock).

    Subclasses list their DDL in ``SCHEMAS``; every table is created on open.
    """

    SCHEMAS: tuple[str, ...] = ()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._con = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._con.row_factory = sqlite3.Row
        with self._lock:
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute("PRAGMA busy_timeout=30000")
            for ddl in self.SCHEMAS:
                self._con.executescript(ddl)
            self._con.commit()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock (commit on success, rollback on error)."""
        with self._lock, self._con:
            yield self._con

    def fetch(self, sql: str, params: list[Any] | tuple = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._con.execute(sql, params).fetchall()]

    def fetch_one(self, sql: str, params: list[Any] | tuple = ()) -> dict[str, Any] | None:
        rows = self.fetch(sql, params)
        return rows[0] if rows else None
