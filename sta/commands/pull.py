"""``sta pull --partner ID``: run a partner's pull step alone.

Same code as the DAG's pull task (:func:`transforms.pull.pull_partner`);
credentials come from ``AIRFLOW_CONN_<CONN_ID>`` variables, so it runs
without a scheduler. Prints the pull report as JSON. The files stay in
landing (the next DAG run, or ``sta pull`` again, reports them as
``carried_over`` until a successful run cleans them up). Exit status: 0 all
good, 1 some files failed (or the listing was incomplete), 2 the source
could not be used at all (missing connection, bad config).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "pull",
        help="fetch a partner's new/changed files into its landing area",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--partner", required=True, help="partner id (include/partners/<id>.yaml)")
    p.add_argument("--run-id", default=None, help="run id recorded in the sync state (default: manual__<utc time>)")
    p.add_argument("--retries", type=int, default=3, help="retries per file after a dropped connection")
    # The same options as the DAG's Trigger form (transforms.pull.PullOptions).
    p.add_argument("--full", action="store_true", help="fetch every file again, even unchanged ones")
    p.add_argument("--subfolder", default=None, help="only files under this folder of the source")
    p.add_argument("--since", default=None, help="only files modified at or after this ISO date/time")
    p.add_argument("--dry-run", action="store_true", help="list and decide only: fetch nothing, change no state")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation.partners import get_partner
    from transforms.pull import PullOptions, pull_partner
    from transforms.sources.base import SourceError

    partner = get_partner(args.partner)
    root = partner.root()
    run_id = args.run_id or "manual__" + datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    try:
        options = PullOptions(full=args.full, subfolder=args.subfolder, since=args.since, dry_run=args.dry_run)
        report = pull_partner(partner, root, run_id, retries=args.retries, options=options)
    except SourceError as exc:
        print(json.dumps({"partner_id": partner.id, "run_id": run_id, "ok": False, "error": str(exc)}))
        print(f"sta pull: error: {exc}", file=sys.stderr)
        return 2
    out = report.to_dict()
    print(json.dumps(out, indent=2, default=str))
    return 0 if report.ok else 1
