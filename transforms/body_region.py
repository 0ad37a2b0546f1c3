"""Body region of a study from what the modality wrote (rules in include/body_regions.yaml)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml

from anonymization.phi_scan import normalise

RULES = Path(__file__).resolve().parent.parent / "include" / "body_regions.yaml"


@lru_cache(maxsize=1)
def _rules() -> tuple[list[tuple[str, list[str]]], dict[str, str]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    regions = [(name, [normalise(k) for k in kws]) for name, kws in data["regions"].items()]
    return regions, data.get("modality_defaults", {})


def body_region(modality: str | None, *texts: str | None) -> str:
    regions, defaults = _rules()
    if modality and modality.upper() in defaults:
        return defaults[modality.upper()]
    for text in texts:
        if not text:
            continue
        norm = " " + normalise(text) + " "
        compact = norm.replace(" ", "")
        for name, keywords in regions:
            if any(k in norm or k.replace(" ", "") in compact for k in keywords):
                return name
    return "unknown"
