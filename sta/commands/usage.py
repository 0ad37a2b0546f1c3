"""``sta usage --month YYYY-MM [--json]``: per-partner usage (the basis of
the data-partnership payments) and per-customer consumption, from the
deliveries ledger (every result page, thumbnail, export and SQL query
records which partners' studies went to which customer)."""

from __future__ import annotations

import argparse
import json

from sta.commands._delivery import add_common, open_db


def run(args: argparse.Namespace) -> int:
    out = open_db(args).usage(args.month)
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    print(f"Uso de datos {out['month']}: {out['studies_delivered']:,} estudios entregados, "
          f"{out['sql_queries']:,} consultas SQL")
    print("\nPor proveedor (partner):")
    for p in out["partners"]:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(p["by_kind"].items()))
        print(f"  {p['partner_id']:<28} {p['region'] or '':<4} {p['studies']:>10,}  {p['share'] * 100:5.1f} %  ({kinds})")
    print("\nPor cliente:")
    for c in out["customers"]:
        kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(c["by_kind"].items()))
        print(f"  {c['customer']:<28} {c['studies']:>10,}  ({kinds})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("usage", help="monthly data usage per partner and consumption per customer")
    p.add_argument("--month", required=True, help="YYYY-MM")
    p.add_argument("--json", action="store_true")
    add_common(p)
    p.set_defaults(func=run)
