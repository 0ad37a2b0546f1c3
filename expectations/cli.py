"""Command line for the publication gate.

``python -m expectations <staging dir> --partner-id X --region co --run-id R``
validates the ``<table>.parquet`` files of a staging folder, prints the
failures (or ``--json`` the whole result) and exits 0 when the run may be
published, 1 when it must not. ``register`` lets ``sta`` mount the same
command as ``sta gate`` (see ``sta.commands``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", type=Path, help="staging folder holding <table>.parquet files")
    parser.add_argument("--partner-id", required=True)
    parser.add_argument("--region", required=True)
    parser.add_argument("--run-id", default="manual")
    parser.add_argument(
        "--published-dir",
        type=Path,
        help="the partner's published Parquet folder (rows may refer to studies published earlier)",
    )
    parser.add_argument(
        "--max-age", type=int, help="upper bound of age_at_study (default: 90 in us, else 120)"
    )
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")


def run(args: argparse.Namespace) -> int:
    from expectations.gate import validate_parquet_dir

    result = validate_parquet_dir(
        args.path, args.partner_id, args.region, args.run_id, published_dir=args.published_dir, max_age=args.max_age
    )
    if args.json:
        print(result.to_json())
    else:
        stats = result.statistics
        rows = ", ".join(f"{t} {s['rows']}" for t, s in stats["tables"].items())
        verdict = "PASS" if result.success else f"FAIL ({len(result.failures)} failures)"
        print(f"gate {verdict}: partner {result.partner_id} run {result.run_id}; rows: {rows}")
        print(
            f"{stats['successful_expectations']}/{stats['evaluated_expectations']} expectations "
            f"met in {stats['seconds']} s (+{stats['gx_import_seconds']} s GX import)"
        )
        for line in result.failures:
            print(f"  - {line}")
    return 0 if result.success else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gate", help="validate a staging folder's tables before publication (Great Expectations)"
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m expectations", description=__doc__.split("\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
