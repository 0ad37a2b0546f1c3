"""BI-RADS (ACR, 0-6) and ACR TI-RADS (TR1-TR5) categories stated in a report.

Exact by nature, so rules: the patterns and what each category implies
(BI-RADS 2 benign, 4-5 suspicious of malignancy...) are in the `scores:`
part of include/labelling/concepts.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass

from labelling.concepts import Vocabulary
from labelling.text import Document


@dataclass(frozen=True)
class ScoreMention:
    concept: str  # e.g. birads_4
    start: int
    end: int
    implies: tuple[tuple[str, str], ...]  # (concept, certainty)


def find_scores(doc: Document, vocab: Vocabulary) -> list[ScoreMention]:
    out: list[ScoreMention] = []
    for name, spec in vocab.scores.items():
        for m in spec["_re"].finditer(doc.folded):
            n = next((g for g in m.groups() if g), None)
            if n is None:
                continue
            implied = tuple((cid, cert) for cid, cert in ((spec.get("implies") or {}).get(n) or {}).items())
            out.append(ScoreMention(f"{name}_{n}", m.start(), m.end(), implied))
    return out
