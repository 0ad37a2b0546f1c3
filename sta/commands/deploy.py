"""``sta deploy compose``: the production docker-compose.yaml from the partner files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deploy", help="deployment files generated from the partner configuration")
    dsub = p.add_subparsers(dest="deploy_command", required=True, metavar="WHAT")
    c = dsub.add_parser("compose", help="write docker-compose.yaml (Postgres, Redis, Airflow, workers per partner)")
    c.add_argument("--out", type=Path, default=None, help="file to write (default: print to stdout)")
    c.set_defaults(func=_compose)


def _compose(args: argparse.Namespace) -> int:
    from deployment.compose import render
    from foundation.partners import load_partners

    text = render(load_partners())
    if args.out is None:
        sys.stdout.write(text)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}")
    return 0
