"""The search filters: what a customer may ask, validated once, and their
normalised form that each region's index is asked (``ParsedFilters``).

List filters match any of their values (OR); different filters combine with
AND. Labels: ``birads:2`` matches that value, ``birads`` any value of the
label; several values of one label are OR-ed, different labels AND-ed. Ages
are inclusive.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

SORTS = {
    "date_desc": "study_date DESC NULLS LAST, study_uid",
    "date_asc": "study_date ASC NULLS LAST, study_uid",
    "age_desc": "age DESC NULLS LAST, study_uid",
    "age_asc": "age ASC NULLS LAST, study_uid",
}
MAX_PAGE_SIZE = 100
MAX_WINDOW = 10_000  # deepest result reachable by paging (page * page_size)

# Facets, one per filter. "modality" is the study's primary modality
# (foundation.schema.STUDIES.modality); "age" counts by decade ("40-49").
# "label": positive report labels (concept ids, include/labelling/concepts.yaml);
# "label_certainty": every label as "concept:certainty"; "characteristic":
# characterization as "field:value"; "slice_thickness": studies per 0.5 mm.
FACETS = ["modality", "body_region", "sex", "age", "manufacturer", "country", "partner", "label",
          "label_certainty", "characteristic", "slice_thickness"]


@dataclass
class StudyFilters:
    """The search filters of the API, the CLI and the page (all optional)."""

    q: str | None = None
    modality: list[str] = field(default_factory=list)
    body_region: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    sex: list[str] = field(default_factory=list)
    age_min: int | None = None
    age_max: int | None = None
    manufacturer: list[str] = field(default_factory=list)
    country: list[str] = field(default_factory=list)
    partner: list[str] = field(default_factory=list)
    label_certainty: list[str] = field(default_factory=list)  # "pneumonia:negative"
    characteristic: list[str] = field(default_factory=list)  # "contrast:with"
    thickness_min: float | None = None  # slice thickness, mm, inclusive
    thickness_max: float | None = None
    date_from: str | None = None  # ISO date, inclusive (shifted study date)
    date_to: str | None = None
    sort: str = "date_desc"
    page: int = 1
    page_size: int = 10

    def validate(self) -> "StudyFilters":
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {sorted(SORTS)}")
        if self.page < 1:
            raise ValueError("page must be >= 1")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        for name in ("age_min", "age_max"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 150:
                raise ValueError(f"{name} must be between 0 and 150")
        for name in ("thickness_min", "thickness_max"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 100:
                raise ValueError(f"{name} must be between 0 and 100 (mm)")
        for name in ("date_from", "date_to"):
            v = getattr(self, name)
            if v is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
                raise ValueError(f"{name} must be a date YYYY-MM-DD")
        return self

    def applied(self) -> dict[str, Any]:
        """The filters that are set, for the audit log and the response."""
        return {k: v for k, v in asdict(self).items() if v not in (None, [], "")}


def keywords(q: str | None) -> list[str]:
    """Split a keyword string into words (letters and digits, any script)."""
    if not q:
        return []
    return [w for w in re.split(r"[\W_]+", q) if w][:10]


class ParsedFilters:
    """The filters normalised once: what each region's index is asked."""

    def __init__(self, f: StudyFilters) -> None:
        def clean(values: list[str], case: str | None = None) -> list[str]:
            out = []
            for v in values:
                v = (v or "").strip()
                if v:
                    out.append(v.upper() if case == "upper" else v.lower() if case == "lower" else v)
            return sorted(set(out))

        self.categorical: dict[str, list[str]] = {}
        for facet, values, case in (
            ("modality", f.modality, "upper"), ("body_region", f.body_region, "lower"),
            ("sex", f.sex, "upper"), ("manufacturer", f.manufacturer, None),
            ("country", f.country, "lower"), ("partner", f.partner, None),
        ):
            vals = clean(values, case)
            if vals:
                self.categorical[facet] = vals
        self.age: tuple[int, int] | None = None
        if f.age_min is not None or f.age_max is not None:
            self.age = (f.age_min if f.age_min is not None else 0,
                        f.age_max if f.age_max is not None else 10_000)
        self.dates: tuple[str | None, str | None] | None = None
        if f.date_from or f.date_to:
            self.dates = (f.date_from, f.date_to)
        self.thickness: tuple[float, float] | None = None
        if f.thickness_min is not None or f.thickness_max is not None:
            self.thickness = (f.thickness_min if f.thickness_min is not None else 0.0,
                              f.thickness_max if f.thickness_max is not None else 1e9)
        # Labels: values of one family (birads_2, birads_3; "birads" = any of
        # them) are OR-ed, different families AND-ed.
        self.label_groups = group_values(f.label, label_family)
        # "concept:certainty" and "field:value": OR within a concept/field, AND across.
        self.certainty_groups = group_values(f.label_certainty, lambda v: v.partition(":")[0])
        self.characteristic_groups = group_values(f.characteristic, lambda v: v.partition(":")[0])
        self.words = keywords(f.q)
        self.keyword_plan = keyword_plan(f.q, self.words)

    def key(self) -> tuple:
        """A hashable form of everything that decides a result set (not its page)."""
        def groups(g: dict[str, set[str]]) -> tuple:
            return tuple(sorted((k, tuple(sorted(v))) for k, v in g.items()))

        return (tuple(sorted((k, tuple(v)) for k, v in self.categorical.items())), self.age, self.dates,
                self.thickness, groups(self.label_groups), groups(self.certainty_groups),
                groups(self.characteristic_groups), tuple(w.lower() for w in self.words))


def keyword_plan(q: str | None, words: list[str]) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """What each keyword means: ``[(concept ids, words)]``, all terms AND-ed.

    A keyword naming a concept in es/pt/en (``nodulo``, ``nodule``,
    ``derrame pleural``, ``BI-RADS 4``; accents and spelling variants
    ignored, ``labelling.match_keyword``) matches the concept's *positive*
    labels in any language (a "sin nódulos" report is not a nodule study);
    other keywords match words. The whole query is tried as one phrase first.
    """
    from labelling import match_keyword

    if not words:
        return []
    if len(words) > 1:
        whole = tuple(match_keyword(q or ""))
        if whole:
            return [(whole, tuple(words))]
    return [(tuple(match_keyword(w)), (w,)) for w in words]


_FAMILY_RE = re.compile(r"_\d+$")


def label_family(concept: str) -> str:
    """``birads_4`` -> ``birads``; other concepts are their own family."""
    return _FAMILY_RE.sub("", concept)


def group_values(values: list[str], key) -> dict[str, set[str]]:  # noqa: ANN001
    groups: dict[str, set[str]] = {}
    for raw in values:
        v = (raw or "").strip().lower()
        if v:
            groups.setdefault(key(v), set()).add(v)
    return groups
