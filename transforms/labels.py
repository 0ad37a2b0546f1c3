"""Labels from scrubbed report text, by rules kept as data (include/labels.yaml).

A first labeller: transparent rules for the findings customers filter on
(BI-RADS, nodules, pneumonia, fractures, normal studies). A model per
modality/region can replace it; the table records model and version.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from anonymization.phi_scan import normalise

RULES = Path(__file__).resolve().parent.parent / "include" / "labels.yaml"


@lru_cache(maxsize=1)
def _rules() -> tuple[str, str, list[tuple[str, str | None, re.Pattern[str]]]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    rules = [(r["label"], r.get("value"), re.compile(r["pattern"])) for r in data["rules"]]
    return data["model"], str(data["version"]), rules


def label_text(study_uid: str, partner_id: str, text: str) -> list[dict[str, Any]]:
    model, version, rules = _rules()
    folded = normalise(text).lower()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for label, value, pattern in rules:
        m = pattern.search(folded)
        if not m:
            continue
        val = m.groupdict().get("value") or value or "yes"
        out[(label, val)] = {
            "study_uid": study_uid, "partner_id": partner_id, "label": label, "value": val,
            "confidence": 1.0, "model": model, "model_version": version,
        }
    return list(out.values())
