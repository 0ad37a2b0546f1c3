"""Pro SQL workspaces: a DuckDB file per customer, and the guarded runner.

Build (``build_workspace``, run by the ``provision_workspace`` DAG or ``sta
workspace build``): the customer's entitled data — the published tables of
the stores of its regions — copied into ``<customer area>/workspace.duckdb``
(file paths of the de-identified DICOM are left out; the tables are the
Parquet schemas otherwise). Written to a temporary name, then renamed, so a
query never sees half a build.

Query (``run_query``): every query gets a fresh in-memory DuckDB with the
workspace attached READ_ONLY (``ws``, the default catalog) and an empty
in-memory ``scratch`` database, then

- ``enable_external_access = false`` (no file, no network: ``read_csv``,
  ``read_parquet``, ``glob``, ``COPY … TO``, ``ATTACH``, ``INSTALL``/``LOAD``
  all fail), no extension auto-install/auto-load;
- memory, thread and spill limits, and ``lock_configuration = true`` so no
  ``SET``/``PRAGMA``/``RESET`` can change them;
- statement types allow-listed: SELECT, EXPLAIN, and CREATE/INSERT/DROP,
  which can only succeed in ``scratch`` or ``temp`` (the workspace is
  read-only); ATTACH, DETACH, COPY, EXPORT, INSTALL, LOAD, SET, PRAGMA,
  CALL, USE are refused before anything runs;
- a wall-clock limit (``con.interrupt()`` from a timer), a row limit and a
  byte limit on the result.

Several statements may be sent at once; the result is the last one's
(scratch tables live for that request only).

The API and the CLI call ``run_isolated``: the same, in a child process with
its address space and CPU time capped and killed at the wall-clock limit
(DuckDB's memory limit does not cover every allocation a query can make).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from delivery.catalog import attached, entitled

WORKSPACE_NAME = "workspace.duckdb"
TABLES = {
    "patients": "*",
    "studies": "*",
    "series": "* EXCLUDE (thumbnail)",
    "instances": "* EXCLUDE (path)",
    "reports": "*",
    "labels": "*",
}
ALLOWED = {"SELECT", "EXPLAIN", "CREATE", "INSERT", "DROP"}


@dataclass(frozen=True)
class Limits:
    memory: str = "512MB"
    threads: int = 1
    seconds: float = 10.0
    max_rows: int = 10_000
    max_bytes: int = 8_000_000
    max_sql_chars: int = 20_000
    process_memory_mb: int = 3072  # address-space cap of the query's process (run_isolated)


class QueryRefused(Exception):
    """A statement refused by policy (clear message, status 400/403)."""


class QueryFailed(Exception):
    """A statement that ran and failed (bad SQL, a limit hit)."""


def build_workspace(stores: dict[str, Path], regions: list[str] | None, out: Path) -> dict[str, Any]:
    """Build the workspace file of a customer entitled to ``regions``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.{os.getpid()}.{threading.get_ident()}.part")  # builders never share a file
    tmp.unlink(missing_ok=True)
    allowed = entitled(stores, regions)
    counts: dict[str, int] = {}
    with attached(allowed) as con:
        con.execute(f"ATTACH '{str(tmp).replace(chr(39), chr(39) * 2)}' AS ws")
        for table, cols in TABLES.items():
            if allowed:
                union = " UNION ALL BY NAME ".join(f"SELECT {cols} FROM st_{r}.{table}" for r in sorted(allowed))
                con.execute(f"CREATE TABLE ws.{table} AS {union}")
            else:
                con.execute(f"CREATE TABLE ws.{table} AS SELECT {cols} FROM (SELECT 1) WHERE false")
            counts[table] = int(con.execute(f"SELECT count(*) FROM ws.{table}").fetchone()[0])
        con.execute("CREATE TABLE ws.workspace_info (key VARCHAR, value VARCHAR)")
        con.execute("INSERT INTO ws.workspace_info VALUES ('regions', ?), ('built_at', strftime(now(), '%Y-%m-%dT%H:%M:%SZ'))",
                    [",".join(sorted(allowed))])
        con.execute("DETACH ws")
    os.replace(tmp, out)
    return {"workspace": str(out), "regions": sorted(allowed), "tables": counts}


def check_statements(con: duckdb.DuckDBPyConnection, sql: str, limits: Limits) -> int:
    """Refuse what the policy forbids before running anything; the number of statements."""
    if not sql or not sql.strip():
        raise QueryRefused("empty query")
    if len(sql) > limits.max_sql_chars:
        raise QueryRefused(f"query longer than {limits.max_sql_chars:,} characters")
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryFailed(f"SQL error: {str(exc).splitlines()[0]}") from exc
    if not statements:
        raise QueryRefused("empty query")
    if len(statements) > 20:
        raise QueryRefused("at most 20 statements per request")
    for st in statements:
        kind = st.type.name
        if kind not in ALLOWED:
            raise QueryRefused(
                f"{kind} statements are not allowed in a workspace: only SELECT and EXPLAIN, and "
                "CREATE/INSERT/DROP in the scratch schema (e.g. CREATE TABLE scratch.t AS SELECT …)")
    return len(statements)


def _open(workspace: Path, limits: Limits) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config={
        "threads": limits.threads,
        "memory_limit": limits.memory,
        "max_temp_directory_size": "0B",
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    })
    con.execute(f"ATTACH '{str(workspace).replace(chr(39), chr(39) * 2)}' AS ws (READ_ONLY)")
    con.execute("ATTACH ':memory:' AS scratch")
    con.execute("USE ws")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def run_query(workspace: Path, sql: str, limits: Limits = Limits()) -> dict[str, Any]:
    """Run ``sql`` on a workspace: ``{"columns", "rows", "row_count",
    "truncated", "elapsed_ms", "studies"}``; ``studies`` lists (region,
    partner_id) of each distinct study in a ``study_uid`` column of the
    result, for metering."""
    workspace = Path(workspace)
    if not workspace.is_file():
        raise QueryRefused("this customer has no SQL workspace yet")
    started = time.perf_counter()
    con = _open(workspace, limits)
    timer = threading.Timer(limits.seconds, con.interrupt)
    try:
        check_statements(con, sql, limits)
        timer.start()
        try:
            cur = con.execute(sql)
            columns = [d[0] for d in cur.description] if cur.description else []
            rows = cur.fetchmany(limits.max_rows + 1) if columns else []
        except duckdb.InterruptException as exc:
            raise QueryFailed(f"query stopped after the {limits.seconds:g} s limit") from exc
        except duckdb.OutOfMemoryException as exc:
            raise QueryFailed(f"query needs more than the {limits.memory} memory limit") from exc
        except duckdb.PermissionException as exc:
            raise QueryRefused("file and network access is disabled in workspaces "
                               f"({str(exc).splitlines()[0].removeprefix('Permission Error: ')})") from exc
        except duckdb.Error as exc:
            msg = str(exc).splitlines()[0]
            if "read-only" in msg or "read only" in msg:
                msg = ("the workspace is read-only: create tables in the scratch schema "
                       "(CREATE TABLE scratch.name AS …)")
            raise QueryFailed(f"SQL error: {msg}") from exc
        finally:
            timer.cancel()
        truncated = len(rows) > limits.max_rows
        rows = rows[: limits.max_rows]
        out_rows = [[_jsonable(v) for v in r] for r in rows]
        size = len(json.dumps(out_rows, default=str))
        if size > limits.max_bytes:
            raise QueryFailed(f"result larger than {limits.max_bytes / 1e6:g} MB: aggregate, select fewer "
                              "columns or add LIMIT")
        studies: list[tuple[str, str]] = []
        lower = [c.lower() for c in columns]
        if "study_uid" in lower and rows:
            i = lower.index("study_uid")
            uids = sorted({r[i] for r in rows if isinstance(r[i], str)})
            if uids:
                studies = [tuple(x) for x in con.execute(
                    "SELECT DISTINCT region, partner_id, study_uid FROM ws.studies WHERE study_uid IN "
                    "(SELECT unnest(?::VARCHAR[]))", [uids]).fetchall()]
        return {"columns": columns, "rows": out_rows, "row_count": len(out_rows), "truncated": truncated,
                "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
                "studies": [(r, p) for r, p, _u in studies]}
    finally:
        con.close()


def _jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    return str(v)


def run_isolated(workspace: Path, sql: str, limits: Limits = Limits()) -> dict[str, Any]:
    """``run_query`` in a child process (``delivery.sql_worker``) with its
    address space and CPU time capped and a wall-clock kill, so a query that
    escapes DuckDB's own memory accounting fails alone."""
    import resource
    import subprocess
    import sys
    from dataclasses import asdict

    def cap() -> None:  # runs in the child before exec
        mem = limits.process_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(limits.seconds * limits.threads) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))

    payload = json.dumps({"workspace": str(workspace), "sql": sql, "limits": asdict(limits)})
    try:
        proc = subprocess.run([sys.executable, "-m", "delivery.sql_worker"], input=payload, capture_output=True,
                              text=True, timeout=limits.seconds + 15, preexec_fn=cap,
                              env={**os.environ, "OMP_THREAD_LIMIT": "1"})
    except subprocess.TimeoutExpired as exc:
        raise QueryFailed(f"query stopped after the {limits.seconds:g} s limit") from exc
    if proc.returncode != 0 or not proc.stdout.strip():
        raise QueryFailed("query stopped: it needs more memory or time than the workspace allows")
    out = json.loads(proc.stdout)
    if out.get("error") == "refused":
        raise QueryRefused(out["message"])
    if out.get("error"):
        raise QueryFailed(out["message"])
    out["studies"] = [tuple(x) for x in out.get("studies", [])]
    return out
