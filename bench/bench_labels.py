"""Report labeller: quality and speed, beside the labeller it replaced: ``.venv/bin/python bench/bench_labels.py``.

On the hand-written report set (tests/data/labels: 170 reports es/pt/en in
dev and test splits, plus 36 holdout reports written after the tuning):

- **ours**: labelling/ as shipped (rules; the status model when its card enables it);
- **ours + status model forced on**: what the learned model would change;
- **baseline**: the previous labeller (6 regular expressions over the folded
  text, no negation, confidence 1.0; include/labels.yaml before issue 13),
  its labels mapped to today's concept ids.

Printed: micro precision/recall/F1 of positive labels and assertion accuracy
per split, then reports per second (median of 5 passes over the set).
"""

from __future__ import annotations

import re
import statistics
import sys
import time
import unicodedata
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from labelling.evaluate import evaluate, load_reports  # noqa: E402
from labelling.labeller import Labeller  # noqa: E402

# The previous labeller's rules (include/labels.yaml, model "report-rules" v1), verbatim.
OLD_RULES = [
    ("birads", None, r"bi\s?rads\s*(?:categoria\s*|category\s*)?(?P<value>[0-6])"),
    ("finding", "pulmonary_nodule", r"nodulo pulmonar|pulmonary nodule|nodulos pulmonares"),
    ("finding", "pneumonia", r"neumonia|pneumonia"),
    ("finding", "fracture", r"fractura|fratura|fracture"),
    ("finding", "tumor", r"tumor|masa|massa|mass\b|neoplas"),
    ("normal", "yes", r"\bnorma(?:l|les|is)\b|sin hallazgos|sem alteracoes|no acute|sin alteraciones"),
]
OLD_TO_CONCEPT = {"pulmonary_nodule": "nodule", "pneumonia": "pneumonia", "fracture": "fracture", "tumor": "mass",
                  "yes": "normal"}


def _old_fold(text: str) -> str:
    """The old labeller's normalisation: accents dropped, punctuation folded to spaces, lower case."""
    text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", text).strip().lower()


class OldLabeller:
    """The 6-regex labeller, answering like labelling.Labeller (every label positive)."""

    compiled = [(name, value, re.compile(p)) for name, value, p in OLD_RULES]

    def label(self, text: str, language: str | None = None):  # noqa: ANN201
        folded = _old_fold(text)
        labels = []
        for name, value, pattern in self.compiled:
            m = pattern.search(folded)
            if not m:
                continue
            concept = f"birads_{m.group('value')}" if name == "birads" else OLD_TO_CONCEPT[value]
            labels.append(type("L", (), {"concept": concept, "certainty": "positive"})())
        return type("R", (), {"labels": labels})()


def speed(labeller, reports, passes: int = 5) -> float:
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for r in reports:
            labeller.label(r.text, r.language)
        times.append(time.perf_counter() - t0)
    return len(reports) / statistics.median(times)


def main() -> int:
    from labelling.model import load_status_model

    reports = load_reports()
    model = load_status_model()
    contenders = {
        "ours (as shipped)": Labeller(),
        "ours + status model forced on": Labeller(status_model=model, use_model=True) if model else None,
        "baseline: previous 6-regex labeller": OldLabeller(),
    }
    print(f"hand-written reports: {len(reports)} (dev {sum(r.split == 'dev' for r in reports)}, "
          f"test {sum(r.split == 'test' for r in reports)}, holdout {sum(r.split == 'holdout' for r in reports)})")
    print(f"status model: {model.name} {model.version}, enabled={model.enabled}" if model else "status model: not trained")
    print(f"{'labeller':38} {'split':5} {'P':>6} {'R':>6} {'F1':>6} {'assert':>7} {'pairs':>6}")
    for name, lab in contenders.items():
        if lab is None:
            continue
        for split in ("dev", "test", "holdout"):
            s = evaluate([r for r in reports if r.split == split], lab)
            p, rc, f = s.micro()
            print(f"{name:38} {split:5} {p:6.3f} {rc:6.3f} {f:6.3f} {s.assertion_accuracy:7.3f} {s.assert_total:6d}")
    print()
    for name, lab in contenders.items():
        if lab is not None:
            print(f"{name:38} {speed(lab, reports):9.0f} reports/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
