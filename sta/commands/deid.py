"""``sta deid IN OUT [--quarantine Q] [--manifest FILE.jsonl] [--profile NAME] [--workers N] [--reader fast|pydicom]``.

Outputs are named ``<study>/<series>/<sop>.dcm`` by their new UIDs, never by
input names (which often hold patients' names and IDs). The manifest has one
JSON line per input, ``{"input", "status", "output", "reason", "profile"}``
(status published|quarantined|rejected); it links input names to outputs, so
it belongs beside the raw data, not the output.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("deid", help="de-identify a folder of DICOM files (PS3.15 Annex E)")
    p.add_argument("input_dir", type=Path)
    p.add_argument("output_dir", type=Path)
    p.add_argument("--profile", default=None,
                   help="de-identification profile (include/profiles); default: by --country (us: us_hipaa, else latam)")
    p.add_argument("--country", default=None, help="partner country (ISO 3166 alpha-2): picks and checks the profile")
    p.add_argument("--quarantine", type=Path, default=None, help="where refused files go (default OUTPUT_DIR-quarantine)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="write one JSON line per input: input, status, output, reason (keep it beside the raw data)")
    p.add_argument("--workers", type=int, default=1, help=f"processes (this machine: {os.cpu_count()})")
    p.add_argument("--reader", choices=("fast", "pydicom"), default="fast",
                   help="header reader: fast (hand-written, pydicom for unusual files) or pydicom for every file")
    p.add_argument("--partner", default="local", help="partner id used for token fallbacks")
    p.add_argument("--issuer", action="append", default=[], metavar="ISSUER=CC-TYPE",
                   help="IssuerOfPatientID that holds a national document, e.g. RNEC=CO-CC")
    p.add_argument("--no-pixel-cleaning", action="store_true", help="quarantine at-risk pixels instead of OCR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from anonymization.batch import DeidSettings, deidentify_tree
    from anonymization.keys import MissingKeyError
    from anonymization.profiles import ProfileError, ProfileSet, check_jurisdiction, default_profile

    if not args.input_dir.is_dir():
        raise FileNotFoundError(f"input folder {args.input_dir} does not exist")
    profile = args.profile or default_profile(args.country or "")
    try:
        profiles = ProfileSet.load(profile, where="--profile")
        if args.country:
            check_jurisdiction(args.country, profiles.base, "--country/--profile")
    except ProfileError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    issuers = dict(i.split("=", 1) for i in args.issuer)
    quarantine = args.quarantine or args.output_dir.parent / (args.output_dir.name + "-quarantine")
    # The summary reports counts, not checksums: skip the SHA-256 pass over every output.
    settings = DeidSettings(profile, {}, args.partner, issuers, not args.no_pixel_cleaning, checksum=False,
                            reader=args.reader)
    try:
        summary = deidentify_tree(args.input_dir, args.output_dir, quarantine, settings,
                                  workers=max(1, args.workers), manifest=args.manifest)
    except MissingKeyError as exc:
        print(json.dumps({"error": str(exc)}))
        return 2
    summary["output"] = str(args.output_dir)
    summary["quarantine"] = str(quarantine)
    if args.manifest:
        summary["manifest"] = str(args.manifest)
    print(json.dumps(summary, indent=2))
    return 0
