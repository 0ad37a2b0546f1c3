"""``sta export --customer C --studies FILE --format json|dicom --out DIR``:
the export builder of the ``export`` DAG, run here without Airflow.

FILE is a JSON list of study UIDs or one UID a line. Only studies of the
customer's regions are exported (the others are listed as not available in
the manifest); every exported study is metered and the run audited, as
through the API.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sta.commands._delivery import add_common, customer, open_db, root


def _read_uids(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8").strip()
    if text.startswith("["):
        data = json.loads(text)
        if isinstance(data, list) and all(isinstance(x, dict) for x in data):
            return [x["study_uid"] for x in data]
        return data
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def run(args: argparse.Namespace) -> int:
    from delivery.accounts import PLANS
    from delivery.catalog import clean_uids, discover_stores
    from delivery.exports import build_package

    db = open_db(args)
    c = customer(db, args.customer)
    uids = clean_uids(_read_uids(Path(args.studies)), int(PLANS[c.plan]["max_export_studies"]))
    started = time.perf_counter()
    progress = None if args.quiet else (lambda f: print(f"\r{f * 100:5.1f} %", end="", file=sys.stderr, flush=True))
    result = build_package(discover_stores(root(args)), c.regions, uids, args.format, Path(args.out),
                           as_zip=args.zip, parquet=args.parquet, progress=progress,
                           meta={"customer": c.name, "order_id": None})
    if progress:
        print(file=sys.stderr)
    ref = f"cli:{time.strftime('%Y%m%dT%H%M%S')}"
    db.record_delivery(c, "export", [(r.region, r.partner_id) for r in result.exported], ref=ref)
    db.audit(customer=c, endpoint="cli:sta export", status=200, result_count=len(result.exported),
             filters={"format": args.format, "studies": len(uids)}, regions=c.regions,
             duration_ms=(time.perf_counter() - started) * 1000)
    print(json.dumps({"package": str(result.package), "format": args.format, "requested": result.requested,
                      "exported": len(result.exported), "not_available": len(result.not_available),
                      "files": result.files, "bytes": result.bytes, "partners": result.partners}, indent=2))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="build a customer's export package here (same builder as the export DAG)")
    p.add_argument("--customer", required=True, help="customer name")
    p.add_argument("--studies", required=True, help="JSON list of study UIDs, or one UID a line")
    p.add_argument("--format", required=True, choices=["json", "dicom"])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--zip", action="store_true", help="write OUT/package.zip instead of a folder")
    p.add_argument("--parquet", action="store_true", help="also the package's tables as Parquet")
    p.add_argument("--quiet", action="store_true")
    add_common(p)
    p.set_defaults(func=run)
