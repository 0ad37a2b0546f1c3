"""``sta rx``: medication-order checks (issue 17).

    sta rx load-history FILE.jsonl     load past orders (tokenized on arrival) into the order store
    sta rx train                       train the population model (a Random Cut Forest per drug)
    sta rx check FILE.jsonl --json     one output line per order: order_id, verdict, checks
    sta rx parse "amoxicilina quinientos miligramos cada ocho horas"   a dictated order's fields

Sample data: ``python -m synth.medication OUT --patients N --seed S``.
The store is ``--store DIR``, else ``$STA_RX_STORE``, else ``<data root>/rx``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("rx", help="medication-order checks: load history, train, check orders")
    rx = p.add_subparsers(dest="rx_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--store", type=Path, default=None, help="order store directory (default: <data root>/rx)")

    q = rx.add_parser("load-history", help="load past orders from JSONL")
    q.add_argument("file", type=Path)
    common(q)
    q.set_defaults(func=load_history)
    q = rx.add_parser("train", help="train the population model from the loaded history")
    common(q)
    q.set_defaults(func=train)
    q = rx.add_parser("check", help="check orders from JSONL")
    q.add_argument("file", type=Path)
    q.add_argument("--json", action="store_true", help="one JSON line per order (the interface)")
    q.add_argument("--no-record", action="store_true", help="do not write the decisions to the store")
    common(q)
    q.set_defaults(func=check)
    q = rx.add_parser("parse", help="parse a dictated order (es/pt)")
    q.add_argument("text")
    q.add_argument("--lang", choices=["es", "pt"], default=None)
    q.set_defaults(func=parse)


def _checker(args: argparse.Namespace, load_model: bool = True):  # noqa: ANN202
    from medication.engine import Checker
    from medication.store import OrderStore

    return Checker(OrderStore(args.store), load_model=load_model)


def _lines(path: Path):  # noqa: ANN202
    """JSON objects from a JSONL file; a broken line yields (line number, error) instead of stopping."""
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
                yield i, obj, None
            except ValueError as exc:
                yield i, None, f"line {i}: {str(exc)[:80]}"


def load_history(args: argparse.Namespace) -> int:
    checker = _checker(args, load_model=False)
    good = [obj for _, obj, err in _lines(args.file) if obj is not None]
    broken = [err for _, obj, err in _lines(args.file) if err]
    counts = checker.load_history(good)
    counts["unreadable"] = len(broken)
    counts.update(checker.store.history_counts())
    counts["store"] = str(checker.store.path)
    print(json.dumps(counts))
    for err in broken[:10]:
        print(f"sta rx load-history: skipped {err}", file=sys.stderr)
    return 0


def train(args: argparse.Namespace) -> int:
    checker = _checker(args, load_model=False)
    t0 = time.perf_counter()
    model = checker.train()
    forests = sum(1 for g in model.groups.values() if g.points)
    print(json.dumps({"model_version": model.version, "drugs": len(model.groups), "forests": forests,
                      "seconds": round(time.perf_counter() - t0, 2)}))
    return 0


def check(args: argparse.Namespace) -> int:
    checker = _checker(args)
    if checker.model is None:
        print("sta rx check: no population model yet (run `sta rx train`); population checks are skipped",
              file=sys.stderr)
    rows = []
    counts: dict[str, int] = {}
    out = sys.stdout
    for i, obj, err in _lines(args.file):
        if obj is None:
            line = {"order_id": None, "verdict": "rejected",
                    "checks": [{"name": "validation", "result": "fail", "score": None, "reason": err}]}
        else:
            d = checker.check(obj)
            rows.append(d.row())
            line = d.as_dict()
        counts[line["verdict"]] = counts.get(line["verdict"], 0) + 1
        if args.json:
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
        else:
            why = "; ".join(f"{c['name']}: {c['reason']}" for c in line["checks"] if c["result"] in ("anomaly", "fail"))
            out.write(f"{line['order_id']}\t{line['verdict']}\t{why}\n")
    if not args.no_record:
        checker.store.add_decisions(rows)
    print(json.dumps({"checked": sum(counts.values()), **counts}), file=sys.stderr)
    return 0


def parse(args: argparse.Namespace) -> int:
    from medication.catalogue import default_catalogue
    from medication.resolve import Resolver
    from medication.spoken import parse_spoken

    p = parse_spoken(args.text, args.lang)
    res = Resolver(default_catalogue()).resolve(p.drug)
    print(json.dumps({**p.fields(), "language": p.language, "missing": p.missing,
                      "resolved_drug": res.key or None, "resolution": res.how,
                      "candidates": res.candidates}, ensure_ascii=False))
    return 0
