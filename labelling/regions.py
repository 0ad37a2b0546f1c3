"""Body region of a study, inferred with a confidence (rules in include/labelling/body_regions.yaml).

BodyPartExamined alone is not trusted: it is missing or inconsistent in many
real series (vendors' defaults, "EXTREMITY" for a knee, a chest CT saved as
"ABDOMEN", free text in Spanish or Portuguese). Every source that names a
region votes with its reliability; the region with the most weight wins.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache

from labelling.config import LabellingConfigError, data_dir, load_yaml, require
from labelling.text import fold

REGIONS = ("head_neck", "chest", "abdomen", "pelvis", "msk", "breast", "whole_body")


@dataclass(frozen=True)
class RegionGuess:
    region: str  # one of REGIONS or "unknown"
    confidence: float
    source: str  # the most reliable source that voted for the region ("none" when unknown)
    votes: tuple[tuple[str, str], ...] = ()  # (source, region) of every source that named one


@dataclass
class RegionRules:
    sources: dict[str, float]
    patterns: dict[str, re.Pattern[str]]
    modality_defaults: dict[str, str]

    @classmethod
    def load(cls) -> "RegionRules":
        path = data_dir() / "body_regions.yaml"
        data = load_yaml(path)
        where = str(path)
        sources = {k: float(v) for k, v in require(data, "sources", dict, where).items()}
        patterns = {}
        for region, words in require(data, "regions", dict, where).items():
            if region not in REGIONS:
                raise LabellingConfigError(f"{where}: regions.{region}: not one of {', '.join(REGIONS)}")
            alts = []
            for w in words:
                w = " ".join(fold(str(w)).upper().split())
                star = w.endswith("*")
                core = r"\s+".join(map(re.escape, w.rstrip("*").split()))
                alts.append(core + (r"\w*" if star else ""))
            patterns[region] = re.compile(r"(?<![A-Z0-9])(?:" + "|".join(alts) + r")(?![A-Z0-9])")
        defaults = {str(k).upper(): str(v) for k, v in (data.get("modality_defaults") or {}).items()}
        for m, r in defaults.items():
            if r not in REGIONS:
                raise LabellingConfigError(f"{where}: modality_defaults.{m}: {r!r} is not a region")
        return cls(sources, patterns, defaults)

    def regions_in(self, text: str | None) -> list[str]:
        """Regions named in a text (upper-cased, accent-free, underscores as spaces)."""
        if not text:
            return []
        norm = re.sub(r"[_\W]+", " ", fold(text).upper())
        return [r for r, p in self.patterns.items() if p.search(norm)]


@lru_cache(maxsize=1)
def rules() -> RegionRules:
    return RegionRules.load()


def infer_region(modality: str | None = None, body_part: str | None = None, protocol: str | None = None,
                 study_description: str | None = None, series_descriptions: list[str] | tuple[str, ...] = (),
                 report_text: str | None = None) -> RegionGuess:
    """The study's region from every source that names one, with a confidence in [0, 1]."""
    r = rules()
    votes: list[tuple[str, str]] = []
    if modality and modality.upper() in r.modality_defaults:
        votes.append(("modality", r.modality_defaults[modality.upper()]))

    def vote(source: str, text: str | None) -> None:
        found = r.regions_in(text)
        # A text naming several regions ("TC tórax-abdomen-pelvis") votes for each, at a share of its weight.
        for region in found:
            votes.append((source if len(found) == 1 else f"{source}/{len(found)}", region))

    vote("body_part", body_part)
    vote("protocol", protocol)
    vote("study_description", study_description)
    for d in dict.fromkeys(series_descriptions or ()):
        vote("series_description", d)
    if report_text:
        title = "\n".join(report_text.strip().splitlines()[:3])[:200]
        vote("report_title", title)
        vote("report", report_text[:3000])
    if not votes:
        return RegionGuess("unknown", 0.0, "none")
    weight: dict[str, float] = defaultdict(float)
    best_source: dict[str, tuple[float, str]] = {}
    for source, region in votes:
        base, _, share = source.partition("/")
        w = r.sources.get(base, 0.5) / (int(share) if share else 1)
        weight[region] += w
        if w > best_source.get(region, (0.0, ""))[0]:
            best_source[region] = (w, base)
    region = max(weight, key=lambda k: (weight[k], best_source[k][0]))
    total = sum(weight.values())
    conf = min(best_source[region][0] + 0.05 * (sum(1 for _s, g in votes if g == region) - 1), 0.99)
    conf *= weight[region] / total
    return RegionGuess(region, round(conf, 3), best_source[region][1], tuple(votes))
