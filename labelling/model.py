"""The learned study-status model: normal vs abnormal when the rules find no finding.

The rules are exact about the findings they know: a positive "fractura" is a
positive fracture. What they cannot know is an abnormality outside the
vocabulary ("hiperinsuflación", "gliose", "esplenomegalia"): a report whose
only statements are such findings would otherwise come out "normal" (or
unlabelled). For those reports only -- no finding positive or uncertain by
the rules -- a logistic-regression model over the report's words decides
normal vs abnormal. The rule outputs are part of its input: every concept
mention is replaced by a token of its group and certainty
("<finding:negative>"), so the model learns from the wording around them.

Trained by ``python -m labelling.train`` (sklearn) on the dev split of the
hand-written report set; stored as plain JSON (vocabulary, idf, weights), so
loading needs no pickle and no scikit-learn, and the file is reviewable.
Its held-out evaluation and whether it beat the rules are recorded beside it
(``status-model.card.json``); ``enabled`` is false when it did not.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from labelling.config import PACKAGE_DIR

MODEL_PATH = PACKAGE_DIR / "models" / "status-model.json"
CARD_PATH = PACKAGE_DIR / "models" / "status-model.card.json"
_WORD = re.compile(r"[a-z]{3,}")


def features(folded: str, mentions: list[tuple[int, int, str]], skip: list[tuple[int, int]] = ()) -> list[str]:
    """Tokens of a report for the model.

    ``folded``: the folded text; ``mentions``: (start, end, tag) of every
    concept mention, replaced by its tag; ``skip``: spans left out (the
    request section, which states the question, not the answer).
    """
    pieces: list[str] = []
    pos = 0
    spans = sorted([(s, e, t) for s, e, t in mentions] + [(s, e, "") for s, e in skip])
    for s, e, tag in spans:
        if s < pos:
            continue
        pieces.append(folded[pos:s])
        if tag:
            pieces.append(f" {tag} ")
        pos = e
    pieces.append(folded[pos:])
    out: list[str] = []
    for chunk in pieces:
        if chunk.startswith(" <") and chunk.endswith("> "):
            out.append(chunk.strip())
        else:
            out.extend(_WORD.findall(chunk))
    bigrams = [f"{a} {b}" for a, b in zip(out, out[1:])]
    return out + bigrams


@dataclass
class StatusModel:
    name: str
    version: str
    vocabulary: dict[str, int]
    idf: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    enabled: bool

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> "StatusModel":
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["name"], data["version"], data["vocabulary"], data["idf"], data["coef"],
                   data["intercept"], data["threshold"], bool(data.get("enabled", False)))

    def p_abnormal(self, tokens: list[str]) -> float:
        """Probability that the report describes an abnormal study (TF-IDF, sublinear tf, l2)."""
        counts: dict[int, int] = {}
        for t in tokens:
            i = self.vocabulary.get(t)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        if not counts:
            return 1 / (1 + math.exp(-self.intercept))
        w = {i: (1 + math.log(c)) * self.idf[i] for i, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in w.values())) or 1.0
        z = self.intercept + sum(self.coef[i] * v / norm for i, v in w.items())
        return 1 / (1 + math.exp(-z))

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "vocabulary": self.vocabulary, "idf": self.idf,
                "coef": self.coef, "intercept": self.intercept, "threshold": self.threshold,
                "enabled": self.enabled}


@lru_cache(maxsize=1)
def load_status_model() -> StatusModel | None:
    """The trained model, or None when it was never trained (the rules then decide alone)."""
    if not MODEL_PATH.exists():
        return None
    return StatusModel.load()
