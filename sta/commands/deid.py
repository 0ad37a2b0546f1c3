"""``sta deid INPUT_DIR OUTPUT_DIR [--profile NAME] [--quarantine DIR] [--workers N]``."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deid", help="de-identify a folder of DICOM files (PS3.15 Annex E)")
    p.add_argument("input_dir", type=Path)
    p.add_argument("output_dir", type=Path)
    p.add_argument("--profile", default="latam", help="de-identification profile (include/profiles)")
    p.add_argument("--quarantine", type=Path, default=None, help="where refused files go (default OUTPUT_DIR/../quarantine)")
    p.add_argument("--workers", type=int, default=1, help=f"processes (this machine: {os.cpu_count()})")
    p.add_argument("--partner", default="local", help="partner id used for token fallbacks")
    p.add_argument("--issuer", action="append", default=[], metavar="ISSUER=CC-TYPE",
                   help="IssuerOfPatientID that holds a national document, e.g. RNEC=CO-CC")
    p.add_argument("--no-pixel-cleaning", action="store_true", help="quarantine at-risk pixels instead of OCR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anonymization.batch import DeidSettings, deidentify_tree
    from anonymization.keys import MissingKeyError
    from foundation.profiles import load_profile

    if not args.input_dir.is_dir():
        raise FileNotFoundError(f"input folder {args.input_dir} does not exist")
    load_profile(args.profile, where="--profile")
    issuers = dict(i.split("=", 1) for i in args.issuer)
    quarantine = args.quarantine or args.output_dir.parent / (args.output_dir.name + "-quarantine")
    # The summary reports counts, not checksums: skip the SHA-256 pass over every output.
    settings = DeidSettings(args.profile, {}, args.partner, issuers, not args.no_pixel_cleaning, checksum=False)
    try:
        summary = deidentify_tree(args.input_dir, args.output_dir, quarantine, settings, workers=max(1, args.workers))
    except MissingKeyError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    summary["output"] = str(args.output_dir)
    summary["quarantine"] = str(quarantine)
    print(json.dumps(summary, indent=2))
    return 0
