"""``sta serve``, ``sta apikey`` and ``sta search``: the query service's CLI.

``sta search`` calls the same ``sta.service.search`` function as ``GET /api/studies``
and prints the same JSON with ``--json``. It reads the stores directly (an
operator's tool); with ``--api-key`` it searches only that customer's regions
and writes the search to the audit log like the API does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _stores(args: argparse.Namespace):  # noqa: ANN202 - StoreSet, imported lazily
    from foundation.paths import data_root
    from sta.service.search import StoreSet

    if args.store:
        return StoreSet.from_paths([Path(p) for p in args.store])
    return StoreSet.discover(Path(args.data_root) if args.data_root else data_root())


def _db(args: argparse.Namespace):  # noqa: ANN202
    from foundation.paths import data_root
    from sta.service.db import ServiceDB, default_db_path

    root = Path(args.data_root) if getattr(args, "data_root", None) else data_root()
    return ServiceDB(Path(args.db) if args.db else default_db_path(root))


def _add_store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", action="append", metavar="PATH",
                   help="a consolidated store file (repeatable); default: every "
                        "<data_root>/<region>/store/consolidated.duckdb")
    p.add_argument("--data-root", help="data root (default $STA_DATA_ROOT or ./data)")
    p.add_argument("--db", help="service database (default <data_root>/service/service.sqlite "
                                "or $STA_SERVICE_DB)")


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from sta.service import create_app

    stores = _stores(args)
    if not stores.stores:
        print("sta serve: warning: no consolidated store found yet; searches return nothing "
              "until a linking run writes one", file=sys.stderr)
    db = _db(args)
    print(f"STA search page: http://{args.host}:{args.port}/  (API docs: /docs; regions: "
          f"{', '.join(stores.regions) or 'none'}; keys: {db.path}; workers: {args.workers})", flush=True)
    if args.workers > 1:
        # Worker processes build their own stores and indexes from the environment.
        import os

        from foundation.paths import data_root

        os.environ["STA_SERVICE_DB"] = str(db.path)
        os.environ["STA_DATA_ROOT"] = str(Path(args.data_root).resolve() if args.data_root else data_root())
        if args.store:
            os.environ["STA_SERVE_STORES"] = os.pathsep.join(str(Path(p).resolve()) for p in args.store)
        db.close()
        uvicorn.run("sta.service.app:create_app_from_env", factory=True, host=args.host,
                    port=args.port, log_level=args.log_level, workers=args.workers,
                    access_log=args.log_level == "debug")
        return 0
    stores.snapshot()  # build the indexes before the first request
    uvicorn.run(create_app(stores, db), host=args.host, port=args.port, log_level=args.log_level,
                access_log=args.log_level == "debug")
    return 0


def cmd_apikey(args: argparse.Namespace) -> int:
    db = _db(args)
    if args.action == "create":
        if not args.customer:
            raise ValueError("--customer is required")
        regions = [r for r in args.regions.split(",")] if args.regions else None
        key, customer = db.create_key(args.customer, args.plan, regions)
        if args.json:
            print(json.dumps({"key": key, "customer": customer.name, "plan": customer.plan,
                              "regions": customer.regions}))
        else:
            print(key)
            print(f"customer {customer.name} plan {customer.plan} regions "
                  f"{','.join(customer.regions) if customer.regions else 'all'} "
                  f"(the key is shown only now)", file=sys.stderr)
    elif args.action == "list":
        print(json.dumps(db.list_keys(), indent=2))
    elif args.action == "audit":
        print(json.dumps(db.audit_entries(args.customer, args.limit), ensure_ascii=False, indent=2))
    elif args.action == "revoke":
        if not args.prefix:
            raise ValueError("--prefix is required")
        print(f"revoked {db.revoke(args.prefix)} key(s)")
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from sta.service import search as query

    stores = _stores(args)
    filters = query.StudyFilters(
        q=args.q, modality=args.modality, body_region=args.body_region, label=args.label,
        sex=args.sex, age_min=args.age_min, age_max=args.age_max,
        manufacturer=args.manufacturer, country=args.country, partner=args.partner,
        label_certainty=args.label_certainty, characteristic=args.characteristic,
        thickness_min=args.thickness_min, thickness_max=args.thickness_max,
        date_from=args.date_from, date_to=args.date_to, sort=args.sort, page=args.page, page_size=args.page_size,
    )
    regions = None
    db = customer = None
    if args.api_key:
        db = _db(args)
        customer = db.authenticate(args.api_key)
        if customer is None:
            print("sta search: error: invalid API key", file=sys.stderr)
            return 2
        regions = stores.available(customer.regions)
    if args.linked:
        out = query.linked_patients(stores, regions, args.page_size)
        if args.json:
            print(json.dumps(out, ensure_ascii=False, indent=2))
            return 0
        print(f"Pacientes vistos en más de un proveedor ({len(out)}):")
        for p in out:
            print(f"  {p['patient_token']}  {p['n_studies']} estudios  proveedores: "
                  f"{', '.join(p['partners'])}  regiones: {', '.join(p['regions'])}")
        return 0
    if args.patient:
        out = query.patient_timeline(stores, args.patient, regions)
        if out is None:
            print("sta search: no studies for this patient", file=sys.stderr)
            return 1
    else:
        out = query.search_studies(stores, filters, regions)
        if db is not None:
            db.audit(customer=customer, endpoint="cli:sta search", status=200,
                     filters=filters.applied(), regions=out["regions"], result_count=out["total"])
            db.record_delivery(customer, "search", [(r["region"], r["partner_id"]) for r in out["results"]])
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=2))
        return 0
    if args.patient:
        print(f"Paciente {out['patient_token']}: {out['n_studies']} estudios en "
              f"{', '.join(out['partners'])} ({', '.join(out['regions'])})")
        for s in out["studies"]:
            print(f"  {s['study_date']}  {s['modality']:<3} {s['partner_id']:<22} {s['study_uid']}")
        return 0
    first = (out["page"] - 1) * out["page_size"] + 1 if out["total"] else 0
    last = min(out["total"], out["page"] * out["page_size"])
    print(f"Mostrando {first} a {last} de {out['total']:,} resultados")
    for r in out["results"]:
        print(f"- {r['study_date']} {r['modality']:<3} {r['study_uid']}  paciente {r['patient_token']}  "
              f"{r['partner_id']} ({r['country']}) {r['sex'] or '?'} {r['age'] if r['age'] is not None else '?'} "
              f"años  {' '.join(r['labels'])}")
        if r["report_excerpt"]:
            print(f"    {r['report_excerpt']}")
    for name, counts in out["facets"].items():
        if counts:
            print(f"  {name}: " + ", ".join(f"{k} {v}" for k, v in list(counts.items())[:8]))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="run the query service and search page")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes (each holds its own in-memory indexes)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    _add_store_args(p)
    p.set_defaults(func=cmd_serve)

    p = subparsers.add_parser("apikey", help="create, list or revoke customer API keys; read the audit log")
    p.add_argument("action", choices=["create", "list", "revoke", "audit"])
    p.add_argument("--customer", help="customer name (create; filter for audit)")
    p.add_argument("--limit", type=int, default=50, help="audit entries to print (newest first)")
    p.add_argument("--plan", default="standard", choices=["standard", "pro", "enterprise"])
    p.add_argument("--regions", help="comma-separated regions the key may search (default: all)")
    p.add_argument("--prefix", help="key prefix to revoke (as shown by 'list')")
    p.add_argument("--json", action="store_true", help="print the new key as JSON")
    p.add_argument("--data-root", help="data root (default $STA_DATA_ROOT or ./data)")
    p.add_argument("--db", help="service database file")
    p.set_defaults(func=cmd_apikey)

    p = subparsers.add_parser("search", help="search studies (same query as GET /api/studies)")
    p.add_argument("--q", "-q", help="keywords over report text")
    p.add_argument("--modality", action="append", default=[])
    p.add_argument("--body-region", action="append", default=[])
    p.add_argument("--label", action="append", default=[], help="positive label, e.g. pneumonia, birads_2, birads")
    p.add_argument("--label-certainty", action="append", default=[], help="e.g. pneumonia:negative")
    p.add_argument("--characteristic", action="append", default=[], help="e.g. contrast:with")
    p.add_argument("--thickness-min", type=float)
    p.add_argument("--thickness-max", type=float)
    p.add_argument("--date-from", help="YYYY-MM-DD")
    p.add_argument("--date-to", help="YYYY-MM-DD")
    p.add_argument("--sex", action="append", default=[])
    p.add_argument("--age-min", type=int)
    p.add_argument("--age-max", type=int)
    p.add_argument("--manufacturer", action="append", default=[])
    p.add_argument("--country", action="append", default=[])
    p.add_argument("--partner", action="append", default=[])
    p.add_argument("--sort", default="date_desc")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--page-size", type=int, default=10)
    p.add_argument("--patient", metavar="TOKEN", help="print this patient's timeline instead")
    p.add_argument("--linked", action="store_true",
                   help="list patients seen at more than one partner (up to --page-size)")
    p.add_argument("--api-key", help="search as this customer (its regions; audited)")
    p.add_argument("--json", action="store_true", help="print exactly what the API returns")
    _add_store_args(p)
    p.set_defaults(func=cmd_search)
