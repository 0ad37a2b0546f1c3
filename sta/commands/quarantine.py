"""``sta quarantine``: work the files the pipeline refused.

  sta quarantine list [--partner ID] [--run RUN] [--stage STAGE] [--reason CODE] [--json]
  sta quarantine show --partner ID LANDING_ID [--json]
  sta quarantine reprocess --partner ID (LANDING_ID ... | --reason CODE | --run RUN)
  sta quarantine release --partner ID LANDING_ID --reviewer NAME --decision process|discard [--note TEXT]
  sta quarantine purge [--partner ID] [--older-than DAYS] [--dry-run]
  sta quarantine seal [--partner ID]

Files are named by landing id, never by the partner's path; ``show`` prints
the reason and a de-identified preview, never a raw value. ``reprocess`` and
``release --decision process`` put the original back in landing: the next run
of ``ingest_<partner>`` takes it. ``purge`` deletes what is older than the
partner's ``quarantine_retention_days`` (default 30) and writes a report.
Same library as the Airflow view: :mod:`transforms.quarantine_admin`.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("quarantine", help="list, inspect, reprocess, release or purge quarantined files",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = sub.add_parser("list", help="quarantined files by partner, run, stage and reason")
    ls.add_argument("--partner", action="append", help="partner id (repeatable; default: all)")
    ls.add_argument("--run", help="run id (its folder name)")
    ls.add_argument("--stage", help="stage that refused the file (classify, deidentify, reports, ...)")
    ls.add_argument("--reason", help="reason code (e.g. truncated, residual_phi)")
    ls.add_argument("--json", action="store_true", help="machine-readable output")
    ls.set_defaults(func=_list)

    sh = sub.add_parser("show", help="one file's reason and a de-identified preview")
    sh.add_argument("--partner", required=True)
    sh.add_argument("landing_id")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=_show)

    rp = sub.add_parser("reprocess", help="back to landing for the next run (after a profile fix)")
    rp.add_argument("--partner", required=True)
    rp.add_argument("landing_ids", nargs="*")
    rp.add_argument("--reason", help="every item with this reason code")
    rp.add_argument("--run", help="every item of this run")
    rp.set_defaults(func=_reprocess)

    rl = sub.add_parser("release", help="record a reviewer's decision on one file")
    rl.add_argument("--partner", required=True)
    rl.add_argument("landing_id")
    rl.add_argument("--reviewer", required=True, help="who decided")
    rl.add_argument("--decision", required=True, choices=["process", "discard"],
                    help="process: a false alarm, back to landing; discard: destroy the original")
    rl.add_argument("--note", default="", help="why (no patient data here)")
    rl.set_defaults(func=_release)

    pg = sub.add_parser("purge", help="delete what is older than the retention; write a report")
    pg.add_argument("--partner", action="append", help="partner id (repeatable; default: all)")
    pg.add_argument("--older-than", type=float, default=None, metavar="DAYS",
                    help="override the partner's quarantine_retention_days")
    pg.add_argument("--dry-run", action="store_true", help="report what would go, delete nothing")
    pg.set_defaults(func=_purge)

    se = sub.add_parser("seal", help="encrypt originals not sealed yet (runs do this at cleanup)")
    se.add_argument("--partner", action="append")
    se.set_defaults(func=_seal)


def _partners(ids: list[str] | None):  # noqa: ANN202
    from foundation.partners import get_partner, load_partners_checked

    if ids:
        return [get_partner(i) for i in ids]
    good, errors = load_partners_checked()
    for msg in errors.values():
        print(f"sta quarantine: skipped a partner file: {msg}", file=sys.stderr)
    return good


def _list(args: argparse.Namespace) -> int:
    from transforms.quarantine_admin import list_items, summary

    items = list_items(_partners(args.partner), run=args.run, stage=args.stage, reason=args.reason)
    if args.json:
        print(json.dumps({"items": [i.to_dict() for i in items], "summary": summary(items)}, indent=1))
        return 0
    if not items:
        print("quarantine is empty" + (" for this filter" if (args.run or args.stage or args.reason) else ""))
        return 0
    print(f"{'partner':<24} {'run':<36} {'landing id':<27} {'stage':<12} {'reason':<24} {'original':<8} at")
    for i in items:
        print(f"{i.partner_id:<24} {i.run[:36]:<36} {i.landing_id:<27} {i.stage:<12} {i.reason:<24} "
              f"{i.original:<8} {i.at}")
    s = summary(items)
    print(f"\n{s['items']} files; by reason: " + ", ".join(f"{k}={v}" for k, v in sorted(s["by_reason"].items())))
    return 0


def _show(args: argparse.Namespace) -> int:
    from foundation.partners import get_partner
    from transforms.quarantine_admin import show

    info = show(get_partner(args.partner), args.landing_id)
    if args.json:
        print(json.dumps(info, indent=1))
        return 0
    pv = info.pop("preview")
    for k in ("landing_id", "partner_id", "run", "stage", "reason", "description", "detail", "at", "original", "size"):
        print(f"{k:>12}: {info.get(k)}")
    print(f"{'preview':>12}: {pv.get('kind')} ({pv.get('size', '?')} bytes)")
    for k, v in (pv.get("attributes") or {}).items():
        print(f"{'':>14}{k}: {v}")
    if pv.get("note"):
        print(f"{'':>14}({pv['note']})")
    if pv.get("text"):
        print("\n" + pv["text"])
    return 0


def _reprocess(args: argparse.Namespace) -> int:
    from foundation.partners import get_partner
    from transforms.quarantine_admin import reprocess

    out = reprocess(get_partner(args.partner), ids=args.landing_ids or None, reason=args.reason, run=args.run)
    print(json.dumps(out, indent=1))
    return 1 if out["failed"] else 0


def _release(args: argparse.Namespace) -> int:
    from foundation.partners import get_partner
    from transforms.quarantine_admin import release

    out = release(get_partner(args.partner), args.landing_id, reviewer=args.reviewer, decision=args.decision,
                  note=args.note)
    print(json.dumps(out, indent=1))
    return 0


def _purge(args: argparse.Namespace) -> int:
    from transforms.quarantine_admin import purge

    reports = [purge(p, older_than_days=args.older_than, dry_run=args.dry_run) for p in _partners(args.partner)]
    print(json.dumps(reports, indent=1))
    return 0


def _seal(args: argparse.Namespace) -> int:
    from transforms.quarantine_admin import seal

    print(json.dumps({p.id: seal(p) for p in _partners(args.partner)}, indent=1))
    return 0
