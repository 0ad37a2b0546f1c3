"""``sta label`` and ``sta eval-labels``: the report labeller from the command line.

``sta label PATH... [--lang es|pt|en] --json`` labels report text files (a
folder: its ``*.txt``, ``*.md`` and suffix-less files, recursively, in name order) and prints one
JSON object per file, one per line::

    {"file": "...", "language": "es", "labels": [{"concept": "pneumonia",
     "certainty": "positive", "confidence": 0.95, "source": "rule",
     "model": "sta-report-rules", "model_version": "3.2",
     "evidence": [{"start": 120, "end": 128, "text": "neumonía", "section": "impression"}]}]}

Concept ids are those of include/labelling/concepts.yaml (``sta label
--concepts`` lists them). A PDF or image report is read the way the
pipeline reads it (text layer or OCR). A file that cannot be read gives
``{"file": ..., "error": ..., "labels": []}`` and exit status 3; the other
files are still labelled.

``sta eval-labels`` prints per-label precision/recall/F1 of positive labels,
micro-F1 and assertion accuracy on the hand-written report set, dev and
test splits separately; ``--train`` retrains the status model first.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LANG_CHOICES = ["es", "pt", "en"]
TEXT_SUFFIXES = {".txt", ".text"}
FOLDER_SUFFIXES = TEXT_SUFFIXES | {".md", ""}  # what a folder contributes (no suffix: a plain report file)


def register(subparsers) -> None:  # noqa: ANN001
    p = subparsers.add_parser("label", help="label report text files (es/pt/en): concepts with certainty")
    p.add_argument("paths", nargs="*", type=Path,
                   help="report files (text, PDF or image) or folders (their *.txt, *.md and suffix-less files, recursively)")
    p.add_argument("--lang", choices=LANG_CHOICES, default=None, help="language of every report (else detected)")
    p.add_argument("--json", action="store_true", help="one JSON object per file, one per line")
    p.add_argument("--no-evidence", action="store_true", help="leave the evidence spans out of the JSON")
    p.add_argument("--concepts", action="store_true", help="list the concept ids and their labels, then exit")
    p.set_defaults(func=cmd_label)

    e = subparsers.add_parser("eval-labels", help="precision/recall/F1 of the labeller on the hand-written set")
    e.add_argument("--split", choices=["dev", "test", "holdout", "all"], default="all")
    e.add_argument("--json", action="store_true")
    e.add_argument("--errors", action="store_true", help="also list every disagreement (dev only unless --split)")
    e.add_argument("--train", action="store_true", help="retrain the status model (python -m labelling.train) first")
    e.add_argument("--data", type=Path, default=None, help="folder of es/pt/en.yaml report sets (default tests/data/labels)")
    e.set_defaults(func=cmd_eval)


def _files(paths: list[Path]) -> list[tuple[Path, str | None]]:
    """(file, error) in argument order; folders expand to their report files (FOLDER_SUFFIXES)."""
    out: list[tuple[Path, str | None]] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in FOLDER_SUFFIXES
                           and not any(part.startswith(".") for part in f.relative_to(p).parts))
            out.extend((f, None) for f in found)
        elif p.is_file():
            out.append((p, None))
        else:
            out.append((p, "not_found"))
    return out


def read_report(path: Path, lang: str | None) -> tuple[str, str | None]:
    """Text of a report file and the language its reader detected (None for plain text)."""
    from transforms.text_extract import ExtractionError, decode_text, extract_text

    if path.suffix.lower() in TEXT_SUFFIXES:
        return decode_text(path.read_bytes()), None
    try:
        ex = extract_text(path, lang_hint=lang)
    except ExtractionError as exc:
        raise ValueError(exc.reason_code) from None
    return ex.text, ex.language


def cmd_label(args: argparse.Namespace) -> int:
    from labelling.labeller import label_report

    if args.concepts:
        from labelling.concepts import vocabulary

        v = vocabulary()
        for cid in v.ids():
            lab = v.label_text(cid)
            print(f"{cid}\t{v.group(cid)}\t{lab['es']} | {lab['pt']} | {lab['en']}")
        return 0
    if not args.paths:
        print("sta label: error: give report files or folders (or --concepts)", file=sys.stderr)
        return 2
    status = 0
    for path, error in _files(args.paths):
        if error is None:
            try:
                text, _detected = read_report(path, args.lang)
            except (OSError, ValueError) as exc:
                error = str(exc) or type(exc).__name__
        if error is not None:
            status = 3
            if args.json:
                print(json.dumps({"file": str(path), "error": error, "labels": []}, ensure_ascii=False), flush=True)
            else:
                print(f"{path}: error: {error}", file=sys.stderr)
            continue
        # The labeller's own language detection (its vocabularies) is more accurate on report text
        # than the OCR stage's guess, which only picked the Tesseract pack.
        result = label_report(text, args.lang)
        if args.json:
            _emit(json.dumps({"file": str(path), "language": result.language,
                              "labels": [lab.as_json(evidence=not args.no_evidence) for lab in result.labels]},
                             ensure_ascii=False))
        else:
            print(f"{path} [{result.language}]")
            for lab in result.labels:
                ev = "; ".join(f"{e.start}-{e.end} {e.text!r}" for e in lab.evidence[:3])
                print(f"  {lab.concept:20} {lab.certainty:10} {lab.confidence:.2f} {lab.source:5} {ev}")
    return status


def _emit(line: str) -> None:
    """One JSON line, flushed (a reader sees each file as it is labelled); a closed pipe ends quietly."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        sys.stderr.close()
        raise SystemExit(0) from None


def cmd_eval(args: argparse.Namespace) -> int:
    from labelling.evaluate import EVAL_DIR, by_split

    if args.train:
        from labelling.train import train

        card = train(write=True)
        print(f"status model {card['name']} {card['version']}: enabled={card['enabled']} "
              f"(cross-validated on dev: {card['cross_validation_on_dev']})", file=sys.stderr)
        from labelling.labeller import default_labeller
        from labelling.model import load_status_model

        load_status_model.cache_clear()
        default_labeller.cache_clear()
    results = by_split(directory=args.data or EVAL_DIR)
    splits = list(results) if args.split == "all" else [args.split]
    if args.json:
        print(json.dumps({s: results[s].as_dict() for s in splits}, indent=2, ensure_ascii=False))
        return 0
    for s in splits:
        r = results[s]
        p, rc, f = r.micro()
        print(f"== {s} split: {r.n_reports} reports")
        print(f"{'label':22} {'P':>6} {'R':>6} {'F1':>6} {'n':>4}")
        for c, (pp, rr, ff, n) in r.per_label().items():
            print(f"{c:22} {pp:6.3f} {rr:6.3f} {ff:6.3f} {n:4d}")
        print(f"{'micro (positive)':22} {p:6.3f} {rc:6.3f} {f:6.3f}")
        print(f"assertion accuracy: {r.assertion_accuracy:.4f} on {r.assert_total} (report, concept) pairs both name")
        if args.errors and (s == "dev" or args.split == s):
            for line in r.errors:
                print(f"  {line}")
        print()
    return 0
