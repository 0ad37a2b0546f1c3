"""The audit log and the deliveries ledger.

``audit``: one row per request (API or CLI), refused ones included (401, 403,
404, 422): who, what endpoint, the filters as applied, the regions searched,
how many results, status, duration.

``deliveries``: which partner's studies were delivered to which customer,
one row per (request, partner, kind) with the number of studies. Kinds:
``search`` (a result page), ``detail``, ``timeline``, ``thumbnail``,
``export``, ``sql``. This is the basis of the partners' payments (seed
"Servicios", Data Partnership: "un pago acuerdo al nivel de uso de los
datos") and of ``sta usage --month``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any, Iterable

from delivery.database import Database, now_iso

KINDS = ("search", "detail", "timeline", "thumbnail", "export", "sql")

SCHEMA = """
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
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts TEXT NOT NULL,
    month TEXT NOT NULL,        -- YYYY-MM of ts, for the monthly report
    customer_id INTEGER NOT NULL,
    customer TEXT NOT NULL,
    kind TEXT NOT NULL,
    ref TEXT,                   -- the order id, query hash, series uid ...
    region TEXT,
    partner_id TEXT NOT NULL,
    studies INTEGER NOT NULL    -- studies of this partner delivered by this request
);
CREATE INDEX IF NOT EXISTS deliveries_month ON deliveries(month, partner_id);
"""


class MeteringMixin(Database):
    """Audit and deliveries on the service database."""

    def audit(
        self,
        *,
        customer: Any | None,
        endpoint: str,
        status: int,
        filters: dict[str, Any] | None = None,
        regions: list[str] | None = None,
        result_count: int | None = None,
        duration_ms: float | None = None,
        client: str | None = None,
        key_prefix: str | None = None,
    ) -> None:
        with self.tx() as con:
            con.execute(
                "INSERT INTO audit (ts, customer_id, customer, key_prefix, endpoint, filters, regions, "
                "result_count, status, duration_ms, client) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    now_iso(),
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
        out = []
        for d in self.fetch(sql, params):
            d["filters"] = json.loads(d["filters"]) if d["filters"] else None
            d["regions"] = json.loads(d["regions"]) if d["regions"] else None
            out.append(d)
        return out

    def record_delivery(self, customer: Any, kind: str, studies: Iterable[tuple[str | None, str]],
                        ref: str | None = None) -> dict[str, int]:
        """Meter delivered studies: ``studies`` is (region, partner_id) per
        delivered study. Returns studies per partner as recorded."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        per = Counter((region, partner) for region, partner in studies if partner)
        if not per:
            return {}
        ts = now_iso()
        with self.tx() as con:
            con.executemany(
                "INSERT INTO deliveries (ts, month, customer_id, customer, kind, ref, region, partner_id, studies) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[ts, ts[:7], customer.id, customer.name, kind, ref, region, partner, n]
                 for (region, partner), n in sorted(per.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))],
            )
        out: Counter = Counter()
        for (_r, partner), n in per.items():
            out[partner] += n
        return dict(out)

    def usage(self, month: str) -> dict[str, Any]:
        """Per-partner usage and per-customer consumption of ``month`` (YYYY-MM)."""
        if len(month) != 7 or month[4] != "-" or not (month[:4] + month[5:]).isdigit() \
                or not 1 <= int(month[5:]) <= 12:
            raise ValueError(f"month must be YYYY-MM (got {month!r})")
        rows = self.fetch(
            "SELECT partner_id, region, customer, kind, sum(studies) AS studies, count(*) AS deliveries "
            "FROM deliveries WHERE month = ? GROUP BY partner_id, region, customer, kind "
            "ORDER BY partner_id, customer, kind", [month])
        partners: dict[str, dict[str, Any]] = {}
        customers: dict[str, dict[str, Any]] = {}
        for r in rows:
            p = partners.setdefault(r["partner_id"], {"partner_id": r["partner_id"], "region": r["region"],
                                                      "studies": 0, "by_kind": {}, "customers": {}})
            p["studies"] += r["studies"]
            p["by_kind"][r["kind"]] = p["by_kind"].get(r["kind"], 0) + r["studies"]
            p["customers"][r["customer"]] = p["customers"].get(r["customer"], 0) + r["studies"]
            c = customers.setdefault(r["customer"], {"customer": r["customer"], "studies": 0, "by_kind": {},
                                                     "partners": {}, "deliveries": 0})
            c["studies"] += r["studies"]
            c["deliveries"] += r["deliveries"]
            c["by_kind"][r["kind"]] = c["by_kind"].get(r["kind"], 0) + r["studies"]
            c["partners"][r["partner_id"]] = c["partners"].get(r["partner_id"], 0) + r["studies"]
        total = sum(p["studies"] for p in partners.values())
        for p in partners.values():
            p["share"] = round(p["studies"] / total, 6) if total else 0.0
        sql_queries = self.fetch_one(
            "SELECT count(*) AS n FROM audit WHERE endpoint IN ('/api/sql', 'cli:sta sql') AND status = 200 "
            "AND substr(ts, 1, 7) = ?", [month])["n"]
        return {"month": month, "studies_delivered": total, "sql_queries": sql_queries,
                "partners": sorted(partners.values(), key=lambda p: (-p["studies"], p["partner_id"])),
                "customers": sorted(customers.values(), key=lambda c: (-c["studies"], c["customer"]))}
