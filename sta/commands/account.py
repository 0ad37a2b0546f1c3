"""``sta account``: the operators' side of accounts.

- ``requests [--status S]``: plan requests (Pro to approve, Enterprise contacts);
- ``approve ID``: approve a Pro request and request a ``provision_workspace``
  run through Airflow's REST API (``STA_AIRFLOW_URL``…); ``--here`` builds
  the workspace in this process instead (same library code);
- ``reject ID``;
- ``signup --name N --email E --password P [--plan] [--regions]``: what the
  sign-up page does, for scripts.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from sta.commands._delivery import add_common, open_db, root


def run(args: argparse.Namespace) -> int:
    db = open_db(args)
    if args.action == "requests":
        print(json.dumps(db.plan_requests(status=args.status), ensure_ascii=False, indent=2))
        return 0
    if args.action == "signup":
        out = db.sign_up(args.name, args.email, args.password or getpass.getpass("password: "), args.plan,
                         args.regions.split(",") if args.regions else None)
        print(json.dumps({"customer": out["customer"].name, "api_key": out["key"], "request": out["request"]}))
        return 0
    if args.id is None:
        raise ValueError("give the request id")
    by = args.by or getpass.getuser()
    if args.action == "reject":
        db.decide_request(args.id, "rejected", by)
        print(f"request {args.id} rejected")
        return 0
    req = db.decide_request(args.id, "approved", by)
    if args.here:
        from delivery.fulfilment import provision

        info = provision(db, root(args), args.id)
        print(json.dumps(info, indent=2))
        return 0
    from sta.service.airflow_client import AirflowTrigger

    trigger = AirflowTrigger.from_env()
    if trigger is None:
        print(f"request {args.id} ({req['customer']}) approved; no STA_AIRFLOW_URL set, so start the run "
              f"yourself: airflow dags trigger provision_workspace -c '{{\"request_id\": {args.id}}}' "
              f"(or: sta account approve {args.id} --here)", file=sys.stderr)
        return 0
    run_id = trigger("provision_workspace", {"request_id": args.id})
    print(f"request {args.id} ({req['customer']}) approved; provisioning run {run_id}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("account", help="plan requests (approve Pro, Enterprise contacts), sign-ups")
    p.add_argument("action", choices=["requests", "approve", "reject", "signup"])
    p.add_argument("id", nargs="?", type=int, help="plan request id (approve, reject)")
    p.add_argument("--status", help="requests: only this status (requested, approved, provisioned, recorded…)")
    p.add_argument("--here", action="store_true", help="approve: build the workspace in this process")
    p.add_argument("--by", help="approve/reject: operator name (default: your user)")
    p.add_argument("--name")
    p.add_argument("--email")
    p.add_argument("--password")
    p.add_argument("--plan", default="standard", choices=["standard", "pro", "enterprise"])
    p.add_argument("--regions")
    add_common(p)
    p.set_defaults(func=run)
