"""Customers, plans, regions, API keys, sessions, sign-up and plan requests.

Plans (seed "Desarrolladores de IA", step 1):
- Standard: self-service sign-up, immediate access (an API key at once).
- Pro: requested at sign-up (or later); the customer searches on Standard at
  once, an operator approves the request (``sta account approve``) and the
  approval becomes a ``provision_workspace`` Airflow run that builds the
  customer's SQL workspace and switches the plan to Pro.
- Enterprise: a contact request recorded for the account team (Standard
  access meanwhile).

Regions a customer may see are part of the account (``regions``: a list, or
None for every region).

Secrets are stored hashed: API keys and session tokens are random 256-bit
tokens shown once, stored as SHA-256 (a slow hash buys nothing at that
entropy and would cost every request); passwords, which people choose, with
scrypt and a per-user salt. Sessions expire (``SESSION_HOURS``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from delivery.database import Database, now_iso

# What a plan changes in the service.
PLANS: dict[str, dict[str, Any]] = {
    "standard": {"max_page_size": 50, "sql": False, "max_export_studies": 10_000},
    "pro": {"max_page_size": 100, "sql": True, "max_export_studies": 100_000},
    "enterprise": {"max_page_size": 100, "sql": True, "max_export_studies": 1_000_000},
}
KEY_PREFIX = "sta_"
SESSION_PREFIX = "sess_"
SESSION_HOURS = 12
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}\.[^@\s]{2,}$")
_REGION_RE = re.compile(r"^[a-z]{2,8}$")

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
CREATE TABLE IF NOT EXISTS logins (
    customer_id INTEGER PRIMARY KEY REFERENCES customers(id),
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL -- scrypt$salt$hash
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS plan_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    plan TEXT NOT NULL CHECK (plan IN ('pro', 'enterprise')),
    status TEXT NOT NULL,       -- requested, approved, provisioned, failed, rejected, recorded
    message TEXT,
    created_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    workspace TEXT              -- the workspace file once provisioned
);
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

    @property
    def may_use_sql(self) -> bool:
        return bool(PLANS[self.plan]["sql"])


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        _algo, salt, _digest = stored.split("$")
        return hmac.compare_digest(hash_password(password, bytes.fromhex(salt)), stored)
    except ValueError:
        return False


def clean_regions(regions: list[str] | None) -> list[str] | None:
    if regions is None:
        return None
    out = sorted({r.strip().lower() for r in regions if r and r.strip()})
    bad = [r for r in out if not _REGION_RE.match(r)]
    if bad:
        raise ValueError(f"bad region code(s): {', '.join(bad)}")
    return out


class AccountsMixin(Database):
    """Accounts on the service database."""

    # ------------------------------------------------------------ customers
    def _upsert_customer(self, con: Any, name: str, plan: str, regions: list[str] | None) -> int:
        con.execute(
            "INSERT INTO customers (name, plan, regions, created_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET plan = excluded.plan, regions = excluded.regions",
            [name, plan, json.dumps(regions) if regions is not None else None, now_iso()],
        )
        return con.execute("SELECT id FROM customers WHERE name = ?", [name]).fetchone()[0]

    def _new_key(self, con: Any, customer_id: int) -> str:
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        con.execute(
            "INSERT INTO api_keys (key_hash, key_prefix, customer_id, created_at) VALUES (?, ?, ?, ?)",
            [hash_token(key), key[:12], customer_id, now_iso()],
        )
        return key

    def create_key(self, customer: str, plan: str, regions: list[str] | None = None) -> tuple[str, Customer]:
        """A new key for ``customer`` (created, or updated to ``plan``/``regions``).

        Returns the key (shown once) and the customer.
        """
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {sorted(PLANS)}")
        if not customer or not customer.strip():
            raise ValueError("customer name is empty")
        regions = clean_regions(regions)
        with self.tx() as con:
            cid = self._upsert_customer(con, customer.strip(), plan, regions)
            key = self._new_key(con, cid)
        return key, Customer(cid, customer.strip(), plan, regions, key[:12])

    def customer(self, name_or_id: str | int) -> Customer | None:
        col = "id" if isinstance(name_or_id, int) else "name"
        row = self.fetch_one(f"SELECT id, name, plan, regions FROM customers WHERE {col} = ?", [name_or_id])
        if row is None:
            return None
        return Customer(row["id"], row["name"], row["plan"],
                        json.loads(row["regions"]) if row["regions"] is not None else None, "")

    def set_plan(self, customer_id: int, plan: str) -> None:
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {sorted(PLANS)}")
        with self.tx() as con:
            con.execute("UPDATE customers SET plan = ? WHERE id = ?", [plan, customer_id])

    # ------------------------------------------------------------ sign-up
    def sign_up(self, name: str, email: str, password: str, plan: str = "standard",
                regions: list[str] | None = None, message: str | None = None) -> dict[str, Any]:
        """Create an account with Standard access at once; Pro and Enterprise
        become a plan request. Returns ``{"key", "customer", "request"}``."""
        name = (name or "").strip()
        email = (email or "").strip().lower()
        if not 2 <= len(name) <= 120:
            raise ValueError("name must have 2 to 120 characters")
        if not _EMAIL_RE.match(email):
            raise ValueError("email is not a valid address")
        if len(password or "") < 10:
            raise ValueError("password must have at least 10 characters")
        if plan not in PLANS:
            raise ValueError(f"plan must be one of {sorted(PLANS)}")
        regions = clean_regions(regions)
        if regions == []:
            raise ValueError("choose at least one region")
        with self.tx() as con:
            if con.execute("SELECT 1 FROM customers WHERE name = ?", [name]).fetchone():
                raise ValueError("an account with this name exists")
            if con.execute("SELECT 1 FROM logins WHERE email = ?", [email]).fetchone():
                raise ValueError("an account with this email exists")
            cid = self._upsert_customer(con, name, "standard", regions)
            con.execute("INSERT INTO logins VALUES (?, ?, ?)", [cid, email, hash_password(password)])
            key = self._new_key(con, cid)
            request = None
            if plan != "standard":
                cur = con.execute(
                    "INSERT INTO plan_requests (customer_id, plan, status, message, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    [cid, plan, "requested" if plan == "pro" else "recorded", (message or "")[:2000], now_iso()],
                )
                request = cur.lastrowid
        return {"key": key, "customer": Customer(cid, name, "standard", regions, key[:12]), "request": request}

    def email_of(self, customer_id: int) -> str | None:
        row = self.fetch_one("SELECT email FROM logins WHERE customer_id = ?", [customer_id])
        return row["email"] if row else None

    # ------------------------------------------------------------ plan requests
    def request_plan(self, customer_id: int, plan: str, message: str | None = None) -> int:
        if plan not in ("pro", "enterprise"):
            raise ValueError("plan must be pro or enterprise")
        with self.tx() as con:
            cur = con.execute(
                "INSERT INTO plan_requests (customer_id, plan, status, message, created_at) VALUES (?, ?, ?, ?, ?)",
                [customer_id, plan, "requested" if plan == "pro" else "recorded", (message or "")[:2000], now_iso()],
            )
            return int(cur.lastrowid)

    def plan_requests(self, status: str | None = None, customer_id: int | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT r.*, c.name AS customer FROM plan_requests r JOIN customers c ON c.id = r.customer_id "
               "WHERE 1=1")
        params: list[Any] = []
        if status:
            sql += " AND r.status = ?"
            params.append(status)
        if customer_id is not None:
            sql += " AND r.customer_id = ?"
            params.append(customer_id)
        return self.fetch(sql + " ORDER BY r.id", params)

    def plan_request(self, request_id: int) -> dict[str, Any] | None:
        rows = [r for r in self.plan_requests() if r["id"] == request_id]
        return rows[0] if rows else None

    def decide_request(self, request_id: int, status: str, by: str) -> dict[str, Any]:
        """Approve or reject a Pro request (operators only: the CLI)."""
        if status not in ("approved", "rejected"):
            raise ValueError("status must be approved or rejected")
        req = self.plan_request(request_id)
        if req is None:
            raise ValueError(f"no plan request {request_id}")
        if req["plan"] != "pro" or req["status"] not in ("requested", "failed"):
            raise ValueError(f"request {request_id} is {req['plan']}/{req['status']}: nothing to decide")
        with self.tx() as con:
            con.execute("UPDATE plan_requests SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?",
                        [status, now_iso(), by, request_id])
        return {**req, "status": status}

    def finish_provisioning(self, request_id: int, workspace: str | None, ok: bool = True) -> None:
        """Record the provisioning outcome; on success the customer is Pro."""
        req = self.plan_request(request_id)
        if req is None:
            raise ValueError(f"no plan request {request_id}")
        with self.tx() as con:
            con.execute("UPDATE plan_requests SET status = ?, workspace = ? WHERE id = ?",
                        ["provisioned" if ok else "failed", workspace, request_id])
            if ok:
                con.execute("UPDATE customers SET plan = 'pro' WHERE id = ? AND plan = 'standard'",
                            [req["customer_id"]])

    # ------------------------------------------------------------ sessions
    def log_in(self, email: str, password: str) -> tuple[str, str] | None:
        """A session token for email + password (None when wrong): (token, expires_at)."""
        row = self.fetch_one("SELECT customer_id, password_hash FROM logins WHERE email = ?",
                             [(email or "").strip().lower()])
        if row is None or not check_password(password or "", row["password_hash"]):
            return None
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        expires = (datetime.now(timezone.utc) + timedelta(hours=SESSION_HOURS)).isoformat(timespec="seconds")
        with self.tx() as con:
            con.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)",
                        [hash_token(token), row["customer_id"], now_iso(), expires])
            con.execute("DELETE FROM sessions WHERE expires_at < ?", [now_iso()])
        return token, expires

    def log_out(self, token: str) -> None:
        with self.tx() as con:
            con.execute("DELETE FROM sessions WHERE token_hash = ?", [hash_token(token)])

    # ------------------------------------------------------------ authentication
    def authenticate(self, key: str | None) -> Customer | None:
        """The customer of an API key or a live session token, else None."""
        if not key or len(key) > 200:
            return None
        if key.startswith(KEY_PREFIX):
            sql = ("SELECT c.id, c.name, c.plan, c.regions, k.key_prefix FROM api_keys k "
                   "JOIN customers c ON c.id = k.customer_id WHERE k.key_hash = ? AND k.revoked_at IS NULL")
            params: list[Any] = [hash_token(key)]
        elif key.startswith(SESSION_PREFIX):
            sql = ("SELECT c.id, c.name, c.plan, c.regions, substr(?, 1, 12) AS key_prefix FROM sessions s "
                   "JOIN customers c ON c.id = s.customer_id WHERE s.token_hash = ? AND s.expires_at > ?")
            params = [key, hash_token(key), datetime.now(timezone.utc).isoformat(timespec="seconds")]
        else:
            return None
        row = self.fetch_one(sql, params)
        if row is None:
            return None
        regions = json.loads(row["regions"]) if row["regions"] is not None else None
        return Customer(row["id"], row["name"], row["plan"], regions, row["key_prefix"])

    def revoke(self, key_prefix: str) -> int:
        with self.tx() as con:
            cur = con.execute("UPDATE api_keys SET revoked_at = ? WHERE key_prefix = ? AND revoked_at IS NULL",
                              [now_iso(), key_prefix])
            return cur.rowcount

    def list_keys(self) -> list[dict[str, Any]]:
        return self.fetch(
            "SELECT c.name AS customer, c.plan, c.regions, k.key_prefix, k.created_at, k.revoked_at "
            "FROM api_keys k JOIN customers c ON c.id = k.customer_id ORDER BY k.created_at")
