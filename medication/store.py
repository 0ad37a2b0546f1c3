"""The order store: one DuckDB file with the history, the orders, every
decision with its reasons, and the population models' versions.

History and decisions are keyed by patient token only. Patient e-mail
addresses (needed to notify the patient) are kept in a separate file,
``contacts.duckdb``, read only by the notification step.

Connections are short-lived (open, work, close) so that the CLI, the DAG's
tasks and the service can take turns on the file; DuckDB allows one writing
process at a time and a busy file is retried for a few seconds.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import duckdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    order_id VARCHAR PRIMARY KEY, patient_token VARCHAR, age DOUBLE, sex VARCHAR, weight_kg DOUBLE,
    diagnosis VARCHAR, dx_group VARCHAR, drug_key VARCHAR, drug_text VARCHAR, atc VARCHAR,
    dose DOUBLE, unit VARCHAR, frequency_per_day DOUBLE, duration_days DOUBLE,
    daily_dose DOUBLE, dose_unit VARCHAR, order_date DATE, prescriber_id VARCHAR, permanent BOOLEAN,
    valid BOOLEAN, reason VARCHAR, origin VARCHAR, loaded_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS orders (
    order_id VARCHAR PRIMARY KEY, patient_token VARCHAR, status VARCHAR, verdict VARCHAR,
    drug_key VARCHAR, dx_group VARCHAR, daily_dose DOUBLE, dose_unit VARCHAR, order_date DATE,
    prescriber_id VARCHAR, age DOUBLE, sex VARCHAR, weight_kg DOUBLE, model_version VARCHAR,
    order_json JSON, created_at TIMESTAMP, updated_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS decisions (
    order_id VARCHAR, decided_at TIMESTAMP, stage VARCHAR, verdict VARCHAR, checks JSON,
    model_version VARCHAR, drug_key VARCHAR, dx_group VARCHAR, daily_dose DOUBLE, dose_unit VARCHAR,
    order_date DATE, prescriber_id VARCHAR, age DOUBLE, sex VARCHAR, weight_kg DOUBLE);
CREATE TABLE IF NOT EXISTS events (order_id VARCHAR, event_at TIMESTAMP, event VARCHAR, detail JSON);
CREATE TABLE IF NOT EXISTS models (version VARCHAR PRIMARY KEY, trained_at TIMESTAMP, n_orders INTEGER,
    n_groups INTEGER, path VARCHAR);
"""

HISTORY_COLUMNS = ["order_id", "patient_token", "age", "sex", "weight_kg", "diagnosis", "dx_group", "drug_key",
                   "drug_text", "atc", "dose", "unit", "frequency_per_day", "duration_days", "daily_dose",
                   "dose_unit", "order_date", "prescriber_id", "permanent", "valid", "reason", "origin",
                   "loaded_at"]


def default_store_dir() -> Path:
    """``$STA_RX_STORE`` or ``<data root>/rx``."""
    from foundation.paths import data_root

    env = os.environ.get("STA_RX_STORE")
    if env:
        return Path(env).resolve()
    return data_root() / "rx"


def now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class OrderStore:
    def __init__(self, directory: Path | str | None = None):
        self.dir = Path(directory) if directory else default_store_dir()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "orders.duckdb"
        self.contacts_path = self.dir / "contacts.duckdb"
        self.models_dir = self.dir / "models"
        with self.connect() as con:
            con.execute(SCHEMA)

    @contextmanager
    def connect(self, read_only: bool = False, path: Path | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        target = path or self.path
        deadline = time.monotonic() + 30
        while True:
            try:
                con = duckdb.connect(str(target), read_only=read_only and target.exists())
                break
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            yield con
        finally:
            con.close()

    # -- history ---------------------------------------------------------------------------------
    def add_history(self, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        import pandas as pd

        df = pd.DataFrame([{c: r.get(c) for c in HISTORY_COLUMNS} for r in rows], columns=HISTORY_COLUMNS)
        df = df.drop_duplicates("order_id", keep="last")
        with self.connect() as con:
            con.register("incoming", df)
            con.execute("DELETE FROM history WHERE order_id IN (SELECT order_id FROM incoming)")
            con.execute(f"INSERT INTO history SELECT {', '.join(HISTORY_COLUMNS)} FROM incoming")
        return len(df)

    def history_frame(self, valid_only: bool = True):  # noqa: ANN201 - pandas DataFrame
        with self.connect(read_only=True) as con:
            q = "SELECT * FROM history" + (" WHERE valid" if valid_only else "")
            return con.execute(q).df()

    def prior_orders(self, token: str, drug_key: str, unit: str) -> list[tuple]:
        """One patient's valid orders of one drug in one unit: (date, daily dose, permanent, order_id)."""
        with self.connect(read_only=True) as con:
            return con.execute("SELECT order_date, daily_dose, permanent, order_id FROM history WHERE valid AND "
                               "patient_token = ? AND drug_key = ? AND dose_unit = ?", [token, drug_key, unit]).fetchall()

    def drug_keys(self) -> set[str]:
        with self.connect(read_only=True) as con:
            return {r[0] for r in con.execute("SELECT DISTINCT drug_key FROM history WHERE valid").fetchall()}

    def history_counts(self) -> dict[str, int]:
        with self.connect(read_only=True) as con:
            total, valid = con.execute("SELECT count(*), count(*) FILTER (WHERE valid) FROM history").fetchone()
        return {"history": int(total), "valid": int(valid)}

    # -- orders and decisions --------------------------------------------------------------------
    def upsert_order(self, order_id: str, **fields: Any) -> None:
        fields = {k: (json.dumps(v, default=str) if k == "order_json" and not isinstance(v, str) else v)
                  for k, v in fields.items()}
        with self.connect() as con:
            exists = con.execute("SELECT 1 FROM orders WHERE order_id = ?", [order_id]).fetchone()
            if exists:
                if fields:
                    sets = ", ".join(f"{k} = ?" for k in fields)
                    con.execute(f"UPDATE orders SET {sets}, updated_at = ? WHERE order_id = ?",
                                [*fields.values(), now(), order_id])
            else:
                cols = ["order_id", *fields, "created_at", "updated_at"]
                con.execute(f"INSERT INTO orders ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [order_id, *fields.values(), now(), now()])

    def get_order(self, order_id: str) -> dict[str, Any] | None:
        with self.connect(read_only=True) as con:
            cur = con.execute("SELECT * FROM orders WHERE order_id = ?", [order_id])
            row = cur.fetchone()
            if row is None:
                return None
            rec = dict(zip([d[0] for d in cur.description], row))
        if isinstance(rec.get("order_json"), str):
            rec["order_json"] = json.loads(rec["order_json"])
        return rec

    def add_decisions(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        cols = ["order_id", "decided_at", "stage", "verdict", "checks", "model_version", "drug_key", "dx_group",
                "daily_dose", "dose_unit", "order_date", "prescriber_id", "age", "sex", "weight_kg"]
        import pandas as pd

        df = pd.DataFrame([{c: (json.dumps(r.get(c)) if c == "checks" else r.get(c)) for c in cols} for r in rows],
                          columns=cols)
        df["decided_at"] = df["decided_at"].fillna(now())
        with self.connect() as con:
            con.register("incoming", df)
            con.execute(f"INSERT INTO decisions SELECT {', '.join(cols)} FROM incoming")

    def event(self, order_id: str, event: str, detail: dict[str, Any] | None = None) -> None:
        with self.connect() as con:
            con.execute("INSERT INTO events VALUES (?, ?, ?, ?)",
                        [order_id, now(), event, json.dumps(detail or {}, default=str)])

    def order_record(self, order_id: str) -> dict[str, Any]:
        """The order with every decision and event, in order: what the record shows."""
        rec = self.get_order(order_id) or {"order_id": order_id}
        with self.connect(read_only=True) as con:
            decs = con.execute("SELECT decided_at, stage, verdict, checks, model_version FROM decisions "
                               "WHERE order_id = ? ORDER BY decided_at", [order_id]).fetchall()
            evs = con.execute("SELECT event_at, event, detail FROM events WHERE order_id = ? ORDER BY event_at",
                              [order_id]).fetchall()
        rec["decisions"] = [{"at": str(a), "stage": s, "verdict": v, "checks": json.loads(c), "model_version": m}
                            for a, s, v, c, m in decs]
        rec["events"] = [{"at": str(a), "event": e, "detail": json.loads(d)} for a, e, d in evs]
        return rec

    # -- models ----------------------------------------------------------------------------------
    def register_model(self, version: str, n_orders: int, n_groups: int, path: Path) -> None:
        with self.connect() as con:
            con.execute("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?, ?)",
                        [version, now(), n_orders, n_groups, str(path)])

    def latest_model(self) -> tuple[str, Path] | None:
        with self.connect(read_only=True) as con:
            row = con.execute("SELECT version, path FROM models ORDER BY trained_at DESC LIMIT 1").fetchone()
        return (row[0], Path(row[1])) if row else None

    # -- contacts (identity zone, separate file) -------------------------------------------------
    def set_contact(self, token: str, email: str) -> None:
        with self.connect(path=self.contacts_path) as con:
            con.execute("CREATE TABLE IF NOT EXISTS contacts (patient_token VARCHAR PRIMARY KEY, email VARCHAR)")
            con.execute("INSERT OR REPLACE INTO contacts VALUES (?, ?)", [token, email])

    def contact(self, token: str) -> str | None:
        if not self.contacts_path.exists():
            return None
        with self.connect(path=self.contacts_path) as con:
            con.execute("CREATE TABLE IF NOT EXISTS contacts (patient_token VARCHAR PRIMARY KEY, email VARCHAR)")
            row = con.execute("SELECT email FROM contacts WHERE patient_token = ?", [token]).fetchone()
        return row[0] if row else None
