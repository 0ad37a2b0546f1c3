"""Evaluation of the labeller on the hand-written report set (tests/data/labels).

Per concept: precision, recall and F1 of *positive* labels (a label counts
when concept and certainty "positive" agree); micro-F1 over all positive
labels; assertion accuracy: of the (report, concept) pairs both the gold
set and the labeller name, the share with the same certainty. Figures are
given for the dev and test splits separately (tune on dev only), and for the
holdout set written after the tuning was done (never tuned on).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labelling.config import PROJECT_ROOT

EVAL_DIR = PROJECT_ROOT / "tests" / "data" / "labels"


@dataclass
class Report:
    id: str
    language: str
    split: str
    text: str
    expect: dict[str, str]


def load_reports(directory: Path = EVAL_DIR) -> list[Report]:
    out: list[Report] = []
    for path in sorted(directory.glob("*.yaml")):
        for i, e in enumerate(yaml.safe_load(path.read_text(encoding="utf-8")) or []):
            split = e.get("split") or ("dev" if i % 2 == 0 else "test")
            out.append(Report(e["id"], e.get("language") or path.stem, split, e["text"], dict(e.get("expect") or {})))
    return out


@dataclass
class Scores:
    n_reports: int = 0
    tp: Counter = field(default_factory=Counter)
    fp: Counter = field(default_factory=Counter)
    fn: Counter = field(default_factory=Counter)
    assert_total: int = 0
    assert_ok: int = 0
    by_certainty: Counter = field(default_factory=Counter)  # predicted certainty -> correct
    by_certainty_n: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def micro(self) -> tuple[float, float, float]:
        tp, fp, fn = sum(self.tp.values()), sum(self.fp.values()), sum(self.fn.values())
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    def per_label(self) -> dict[str, tuple[float, float, float, int]]:
        out = {}
        for c in sorted(set(self.tp) | set(self.fp) | set(self.fn)):
            tp, fp, fn = self.tp[c], self.fp[c], self.fn[c]
            p = tp / (tp + fp) if tp + fp else 1.0
            r = tp / (tp + fn) if tp + fn else 1.0
            out[c] = (p, r, 2 * p * r / (p + r) if p + r else 0.0, tp + fn)
        return out

    @property
    def assertion_accuracy(self) -> float:
        return self.assert_ok / self.assert_total if self.assert_total else 1.0

    def as_dict(self) -> dict[str, Any]:
        p, r, f = self.micro()
        return {
            "reports": self.n_reports, "micro_precision": round(p, 4), "micro_recall": round(r, 4),
            "micro_f1": round(f, 4), "assertion_accuracy": round(self.assertion_accuracy, 4),
            "assertion_pairs": self.assert_total,
            "precision_by_certainty": {k: round(self.by_certainty[k] / n, 4) for k, n in self.by_certainty_n.items()},
            "per_label": {c: {"precision": round(v[0], 4), "recall": round(v[1], 4), "f1": round(v[2], 4),
                              "support": v[3]} for c, v in self.per_label().items()},
        }


def evaluate(reports: list[Report], labeller: Any = None) -> Scores:
    from labelling.labeller import default_labeller

    labeller = labeller or default_labeller()
    s = Scores()
    for rep in reports:
        s.n_reports += 1
        got = {lab.concept: lab.certainty for lab in labeller.label(rep.text, rep.language).labels}
        gold_pos = {c for c, v in rep.expect.items() if v == "positive"}
        pred_pos = {c for c, v in got.items() if v == "positive"}
        for c in gold_pos & pred_pos:
            s.tp[c] += 1
        for c in pred_pos - gold_pos:
            s.fp[c] += 1
            s.errors.append(f"{rep.id}: FP {c} (gold {rep.expect.get(c, '-')})")
        for c in gold_pos - pred_pos:
            s.fn[c] += 1
            s.errors.append(f"{rep.id}: FN {c} (got {got.get(c, '-')})")
        for c in set(rep.expect) & set(got):
            s.assert_total += 1
            ok = rep.expect[c] == got[c]
            s.assert_ok += ok
            s.by_certainty_n[got[c]] += 1
            s.by_certainty[got[c]] += ok
            if not ok:
                s.errors.append(f"{rep.id}: {c} gold {rep.expect[c]} got {got[c]}")
        for c in set(rep.expect) - set(got):
            if rep.expect[c] != "positive":
                s.errors.append(f"{rep.id}: missed {c} ({rep.expect[c]})")
        for c in set(got) - set(rep.expect):
            if got[c] != "positive":
                s.errors.append(f"{rep.id}: extra {c} ({got[c]})")
    return s


SPLITS = ("dev", "test", "holdout")


def by_split(labeller: Any = None, directory: Path = EVAL_DIR) -> dict[str, Scores]:
    """Scores per split: dev (tuned on), test (reported), holdout (written after tuning, reported)."""
    reports = load_reports(directory)
    present = [s for s in SPLITS if any(r.split == s for r in reports)]
    return {split: evaluate([r for r in reports if r.split == split], labeller) for split in present}
