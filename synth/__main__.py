"""``python -m synth OUT --patients N --seed S`` and ``python -m synth OUT --studies N --metadata-only``.

Sample data for the demo, tests and benchmarks; not part of the product
(``sta`` has no generator command).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m synth",
                                description="generate sample partner data (DICOM, reports, truth.json)")
    p.add_argument("out", type=Path)
    p.add_argument("--patients", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-faults", action="store_true", help="omit the planted bad files")
    p.add_argument("--studies", type=int, default=None, help="with --metadata-only: studies in the store")
    p.add_argument("--metadata-only", action="store_true",
                   help="write a consolidated store of generated studies without pixel data")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.metadata_only:
        from synth.store import generate_store

        path = generate_store(args.out, args.studies or 1000, seed=args.seed)
        print(json.dumps({"store": str(path), "studies": args.studies or 1000}))
        return 0
    from synth.generator import generate

    progress = None if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    summary = generate(args.out, args.patients, args.seed, faults=not args.no_faults, progress=progress)
    print(json.dumps(summary, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
