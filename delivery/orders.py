"""Export orders: what a customer asked for and where its package stands.

An order's life: ``queued`` (recorded, its Airflow run requested) →
``running`` (the builder reports ``progress`` 0..1) → ``ready`` (package and
manifest written, email sent) or ``failed`` (``error`` says why, in words
without identifying data). The order id is random (not guessable), and every
read of an order checks its owner.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from delivery.database import Database, now_iso

FORMATS = ("json", "dicom")
STATUSES = ("queued", "running", "ready", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS export_orders (
    id TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    customer TEXT NOT NULL,
    format TEXT NOT NULL,
    parquet INTEGER NOT NULL DEFAULT 0,
    study_uids TEXT NOT NULL,   -- JSON list as ordered
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    n_studies INTEGER,          -- studies exported (entitled and found)
    bytes INTEGER,
    package TEXT,               -- path of the package folder
    error TEXT,
    run_id TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    emailed_at TEXT
);
CREATE INDEX IF NOT EXISTS export_orders_customer ON export_orders(customer_id, created_at);
CREATE TABLE IF NOT EXISTS used_links (
    nonce TEXT PRIMARY KEY,     -- a download link's nonce, once it served a download
    order_id TEXT NOT NULL,
    used_at TEXT NOT NULL
);
"""


class OrdersMixin(Database):
    """Export orders on the service database."""

    def create_order(self, customer: Any, study_uids: list[str], fmt: str, parquet: bool = False) -> str:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        order_id = "exp_" + secrets.token_urlsafe(12)
        with self.tx() as con:
            con.execute(
                "INSERT INTO export_orders (id, customer_id, customer, format, parquet, study_uids, status, "
                "progress, created_at) VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?)",
                [order_id, customer.id, customer.name, fmt, int(parquet), json.dumps(study_uids), now_iso()],
            )
        return order_id

    def order(self, order_id: str) -> dict[str, Any] | None:
        row = self.fetch_one("SELECT * FROM export_orders WHERE id = ?", [order_id])
        if row is not None:
            row["study_uids"] = json.loads(row["study_uids"])
            row["parquet"] = bool(row["parquet"])
        return row

    def orders_of(self, customer_id: int, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.fetch("SELECT id, format, status, progress, n_studies, bytes, created_at, finished_at "
                          "FROM export_orders WHERE customer_id = ? ORDER BY created_at DESC LIMIT ?",
                          [customer_id, limit])
        return rows

    def use_link(self, nonce: str, order_id: str) -> bool:
        """Mark a link used; False when it was used before (links work once)."""
        import sqlite3

        try:
            with self.tx() as con:
                con.execute("INSERT INTO used_links VALUES (?, ?, ?)", [nonce, order_id, now_iso()])
        except sqlite3.IntegrityError:
            return False
        return True

    def update_order(self, order_id: str, **fields: Any) -> None:
        allowed = {"status", "progress", "n_studies", "bytes", "package", "error", "run_id",
                   "started_at", "finished_at", "emailed_at"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"unknown order fields {sorted(bad)}")
        if "status" in fields and fields["status"] not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}")
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.tx() as con:
            con.execute(f"UPDATE export_orders SET {sets} WHERE id = ?", [*fields.values(), order_id])
