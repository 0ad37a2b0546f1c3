"""``sta report`` and ``sta scrub-text``: report text extraction and PHI scrubbing.

``sta report FILE`` extracts the text of one report (text layer or OCR),
scrubs it and prints JSON; ``sta scrub-text IN_DIR OUT_DIR`` scrubs every
``.txt`` of a folder, building the scrubber (and any NER model) once.
A file that cannot be read gives a JSON ``error`` with its reason code
(the quarantine reason the pipeline would record) and exit status 3.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

LANG_CHOICES = ["es", "pt", "en"]


def register(subparsers) -> None:
    p = subparsers.add_parser("report", help="extract (OCR if needed) and scrub one report; prints JSON")
    p.add_argument("file", type=Path)
    p.add_argument("--lang", choices=LANG_CHOICES, default=None, help="report language (else detected)")
    p.add_argument("--shift-days", type=int, default=0, help="date offset; 0 masks dates as [FECHA]")
    p.add_argument("--known", action="append", default=[], help="a known PHI value (repeatable)")
    p.add_argument("--raw", action="store_true", help="also print the unscrubbed text (debugging only)")
    p.set_defaults(func=cmd_report)

    s = subparsers.add_parser("scrub-text", help="scrub every .txt of IN_DIR into OUT_DIR (same names)")
    s.add_argument("in_dir", type=Path)
    s.add_argument("out_dir", type=Path)
    s.add_argument("--lang", choices=LANG_CHOICES, default=None, help="language of all files (else detected per file)")
    s.add_argument("--shift-days", type=int, default=0, help="date offset; 0 masks dates")
    s.add_argument("--profile", default=None, help="de-identification profile whose text policy applies (include/text_policy.yaml)")
    s.add_argument("--no-ner", action="store_true", help="patterns only (no NER model)")
    s.set_defaults(func=cmd_scrub_text)

    e = subparsers.add_parser("eval-text", help="per-type recall/precision and kept words of the scrubber on a MEDDOCAN (brat) folder")
    e.add_argument("gold", type=Path, nargs="?", default=None, help="brat folder with .txt/.ann (default ../shared/data/meddocan/dev)")
    e.add_argument("--scrubbed", type=Path, default=None, help="score files already scrubbed (e.g. by sta scrub-text) instead")
    e.add_argument("--no-ner", action="store_true")
    e.add_argument("--limit", type=int, default=None)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval_text)


def cmd_report(args: argparse.Namespace) -> int:
    from anonymization.text_phi import TextScrubber, link_keys
    from transforms.text_extract import ExtractionError, extract_text

    if not args.file.exists():
        raise FileNotFoundError(f"{args.file} does not exist")
    try:
        ex = extract_text(args.file, lang_hint=args.lang)
    except ExtractionError as exc:
        print(json.dumps({"file": str(args.file), "error": exc.reason_code, "message": exc.message}, ensure_ascii=False))
        return 3
    language = args.lang or ex.language
    result = TextScrubber(languages=[language]).scrub(ex.text, language, known_phi=args.known, date_shift_days=args.shift_days)
    out = {
        "file": str(args.file),
        "language": language,
        "source_format": ex.source_format,
        "pages": ex.pages,
        "ocr_pages": ex.ocr_pages,
        "text": result.text,
        "phi_counts": result.counts,
        "residual": len(result.residual),
        "link_keys_found": sorted(k for k, v in link_keys(ex.text, language).items() if v),
    }
    if args.raw:
        out["raw_text"] = ex.text
    print(json.dumps(out, ensure_ascii=False, indent=2))
    return 0


def cmd_scrub_text(args: argparse.Namespace) -> int:
    from anonymization.text_phi import TextScrubber
    from transforms.text_extract import ExtractionError, decode_text, detect_language

    if not args.in_dir.is_dir():
        raise FileNotFoundError(f"{args.in_dir} is not a directory")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    scrubber = TextScrubber([args.lang] if args.lang else None, use_ner=not args.no_ner)  # models load once for the whole folder
    done, failed = 0, []
    t0 = time.perf_counter()
    for src in sorted(args.in_dir.rglob("*.txt")):
        rel = src.relative_to(args.in_dir)
        try:
            text = decode_text(src.read_bytes())
        except ExtractionError as exc:
            failed.append({"file": str(rel), "error": exc.reason_code, "message": exc.message})
            print(f"sta scrub-text: {rel}: {exc.reason_code}: {exc.message}", file=sys.stderr)
            continue
        language = args.lang or detect_language(text)
        result = scrubber.scrub(text, language, date_shift_days=args.shift_days, profile=args.profile)
        dst = args.out_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(result.text, encoding="utf-8")
        done += 1
    elapsed = time.perf_counter() - t0
    print(json.dumps({"scrubbed": done, "failed": failed, "seconds": round(elapsed, 3)}, ensure_ascii=False))
    return 0 if not failed else 3


def cmd_eval_text(args: argparse.Namespace) -> int:
    from anonymization import text_eval

    argv = [str(args.gold)] if args.gold else []
    if args.scrubbed:
        argv += ["--scrubbed", str(args.scrubbed)]
    if args.no_ner:
        argv.append("--no-ner")
    if args.limit:
        argv += ["--limit", str(args.limit)]
    if args.json:
        argv.append("--json")
    return text_eval.main(argv)
