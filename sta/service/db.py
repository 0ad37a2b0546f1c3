"""The service's own database: customers, API keys, plans, entitlements and
the audit log.

SQLite in WAL mode, beside the stores (``<data>/service/service.sqlite``, or
``$STA_SERVICE_DB``): ``sta apikey create`` can add a key while the service
runs (a DuckDB file would be locked by the running service), and audit
writes from many request threads are short transactions.

Keys are random 256-bit tokens shown once; only their SHA-256 is stored. A
slow password hash (bcrypt/scrypt) buys nothing for keys of that entropy and
would cost every request.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# What a plan changes in the search service. (Pro's dedicated SQL database
# and Enterprise's experts are outside this service.)
PLANS: dict[str, dict[str, Any]] = {
    "standard": {"max_page_size": 50},
    "pro": {"max_page_size": 100},
    "enterprise": {"max_page_size": 100},
}
KEY_PREFIX = "sta_"

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL CHECK (plan IN ('standard', 'pro', 'enterprise')),
    regions TEXT,               -- JSON list of region codes; NULL = every region
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    key_hash TEXT PRIMARY KEY,  -- sha256 hex of the key; the key itself is never stored
    key_prefix TEXT NOT NULL,   -- first characters, to tell keys apart in logs
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,           -- UTC ISO 8601
    customer_id INTEGER,        -- NULL for a refused request
    customer TEXT,
    key_prefix TEXT,
    endpoint TEXT NOT NULL,
    filters TEXT,               -- JSON of the filters as applied
    regions TEXT,               -- JSON list of the regions searched
    result_count INTEGER,
    status INTEGER NOT NULL,
    duration_ms REAL,
    client TEXT
);
CREATE INDEX IF NOT EXISTS audit_customer_ts ON audit(customer_id, ts);
"""


@dataclass(frozen=True)
class Customer:
    id: int
    name: str
    plan: str
    regions: list[str] | None  # None: every region
    key_prefix: str

    @property
    def max_page_size(self) -> int:
        return int(PLANS[self.plan]["max_page_size"])


def default_db_path(data_root: Path) -> Path:
    env = os.environ.get("STA_SERVICE_DB")
    return Path(env) if env else Path(data_root) / "service" / "service.sqlite"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class ServiceDB:
    """Thread-safe access to the service database (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._con = sqlite3.connect(str(self.path), check_same_thread=False, timeout=10)
        self._con.row_factory = sqlite3.Row
        with self._lock:
            self._con.execute("PRAGMA journal_mode=WAL")
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.executescript(SCHEMA)
            self._con.commit()

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def create_key(self, customer: str, plan: str, regions: list[str] | None = None) -> tuple[str, Customer]:
        """A new key for ``customer`` (created, or updated to ``plan``/``regions``).

        Returns the key (shown once) and the customer.
        """
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {sorted(PLANS)}")
        if not customer or not customer.strip():
            raise ValueError("customer name is empty")
        if regions is not None:
            regions = sorted({r.strip().lower() for r in regions if r.strip()})
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        now = _now()
        with self._lock, self._con:
            self._con.execute(
                "INSERT INTO customers (name, plan, regions, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET plan = excluded.plan, regions = excluded.regions",
                [customer.strip(), plan, json.dumps(regions) if regions is not None else None, now],
            )
            cid = self._con.execute("SELECT id FROM customers WHERE name = ?", [customer.strip()]).fetchone()[0]
            self._con.execute(
                "INSERT INTO api_keys (key_hash, key_prefix, customer_id, created_at) VALUES (?, ?, ?, ?)",
                [hash_key(key), key[:12], cid, now],
            )
        return key, Customer(cid, customer.strip(), plan, regions, key[:12])

    def authenticate(self, key: str | None) -> Customer | None:
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        with self._lock:
            row = self._con.execute(
                "SELECT c.id, c.name, c.plan, c.regions, k.key_prefix FROM api_keys k "
                "JOIN customers c ON c.id = k.customer_id WHERE k.key_hash = ? AND k.revoked_at IS NULL",
                [hash_key(key)],
            ).fetchone()
        if row is None:
            return None
        regions = json.loads(row["regions"]) if row["regions"] is not None else None
        return Customer(row["id"], row["name"], row["plan"], regions, row["key_prefix"])

    def revoke(self, key_prefix: str) -> int:
        with self._lock, self._con:
            cur = self._con.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_prefix = ? AND revoked_at IS NULL",
                [_now(), key_prefix],
            )
            return cur.rowcount

    def list_keys(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._con.execute(
                "SELECT c.name AS customer, c.plan, c.regions, k.key_prefix, k.created_at, k.revoked_at "
                "FROM api_keys k JOIN customers c ON c.id = k.customer_id ORDER BY k.created_at"
            ).fetchall()
        return [dict(r) for r in rows]

    def audit(
        self,
        *,
        customer: Customer | None,
        endpoint: str,
        status: int,
        filters: dict[str, Any] | None = None,
        regions: list[str] | None = None,
        result_count: int | None = None,
        duration_ms: float | None = None,
        client: str | None = None,
        key_prefix: str | None = None,
    ) -> None:
        with self._lock, self._con:
            self._con.execute(
                "INSERT INTO audit (ts, customer_id, customer, key_prefix, endpoint, filters, regions, "
                "result_count, status, duration_ms, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    _now(),
                    customer.id if customer else None,
                    customer.name if customer else None,
                    customer.key_prefix if customer else key_prefix,
                    endpoint,
                    json.dumps(filters, ensure_ascii=False, sort_keys=True, default=str) if filters is not None else None,
                    json.dumps(regions) if regions is not None else None,
                    result_count,
                    status,
                    round(duration_ms, 2) if duration_ms is not None else None,
                    client,
                ],
            )

    def audit_entries(self, customer: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT * FROM audit"
        params: list[Any] = []
        if customer:
            sql += " WHERE customer = ?"
            params.append(customer)
        sql += " ORDER BY id DESC LIMIT ?"
        params.append(limit)
        with self._lock:
            rows = self._con.execute(sql, params).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            d["filters"] = json.loads(d["filters"]) if d["filters"] else None
            d["regions"] = json.loads(d["regions"]) if d["regions"] else None
            out.append(d)
        return out
