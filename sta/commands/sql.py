"""``sta sql --customer C "SELECT …"``: a query on a Pro customer's
workspace, with the same guards, limits, audit and metering as ``POST
/api/sql``. Prints the rows as a JSON list of objects; a refused statement is
an error on stderr and exit status 2."""

from __future__ import annotations

import argparse
import json
import sys
import time

from sta.commands._delivery import add_common, customer, open_db, root


def run(args: argparse.Namespace) -> int:
    from delivery.fulfilment import ensure_workspace
    from delivery.workspaces import QueryFailed, QueryRefused, run_isolated

    db = open_db(args)
    c = customer(db, args.customer)
    started = time.perf_counter()

    def audit(status: int, count: int | None = None) -> None:
        db.audit(customer=c, endpoint="cli:sta sql", status=status, filters={"sql": args.sql[:4000]},
                 regions=c.regions, result_count=count, duration_ms=(time.perf_counter() - started) * 1000)

    if not c.may_use_sql:
        audit(403)
        print(f"sta sql: refused: {c.name} is on the {c.plan} plan; SQL workspaces are part of Pro",
              file=sys.stderr)
        return 2
    try:
        out = run_isolated(ensure_workspace(root(args), c), args.sql)
    except QueryRefused as exc:
        audit(403)
        print(f"sta sql: refused: {exc}", file=sys.stderr)
        return 2
    except QueryFailed as exc:
        audit(400)
        print(f"sta sql: error: {exc}", file=sys.stderr)
        return 1
    audit(200, out["row_count"])
    db.record_delivery(c, "sql", out["studies"])
    rows = [dict(zip(out["columns"], r)) for r in out["rows"]]
    print(json.dumps(rows, ensure_ascii=False, indent=None if args.compact else 2, default=str))
    if out["truncated"]:
        print(f"sta sql: only the first {out['row_count']:,} rows (add LIMIT or aggregate)", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sql", help="run SQL on a Pro customer's workspace (read-only, limited, audited)")
    p.add_argument("--customer", required=True, help="customer name")
    p.add_argument("sql", help="the query")
    p.add_argument("--compact", action="store_true", help="one-line JSON")
    add_common(p)
    p.set_defaults(func=run)
