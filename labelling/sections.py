"""Report sections: findings, impression, indication... (headers in include/labelling/sections.yaml).

Radiology reports in the three languages share one shape (HALLAZGOS /
IMPRESIÓN / CONCLUSIÓN, ACHADOS / IMPRESSÃO / CONCLUSÃO, FINDINGS /
IMPRESSION); what a mention means depends on where it is: "descartar
neumonía" in the request is a question, in the conclusion an answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from labelling.config import LabellingConfigError, data_dir, load_yaml, require
from labelling.text import Document, fold_phrase

KINDS = ("findings", "impression", "indication", "history", "technique", "comparison", "recommendation")
# Sections that are a line, not a chapter: "COMPARISON: Yesterday." followed by
# findings without a header must not make the findings a comparison.
ONE_LINE = ("indication", "history", "technique", "comparison")


@dataclass(frozen=True)
class Section:
    kind: str  # one of KINDS, or "body" before the first header
    start: int
    end: int


@dataclass
class SectionSplitter:
    pattern: re.Pattern[str]
    kind_of: dict[str, str]

    @classmethod
    def load(cls) -> "SectionSplitter":
        path = data_dir() / "sections.yaml"
        data = load_yaml(path)
        raw = require(data, "sections", dict, str(path))
        kind_of: dict[str, str] = {}
        for kind, headers in raw.items():
            if kind not in KINDS:
                raise LabellingConfigError(f"{path}: sections.{kind}: unknown kind ({', '.join(KINDS)})")
            for h in headers:
                kind_of.setdefault(fold_phrase(str(h)), kind)
        alts = "|".join(r"\s+".join(map(re.escape, h.split())) for h in sorted(kind_of, key=len, reverse=True))
        # At a line start or after a sentence; then ":" (or "-") -- or nothing but the line end.
        pattern = re.compile(
            rf"(?:^|(?<=\n)|(?<=[.;]\s)|(?<=[.;]\s\s))[ \t]*(?:\d+[.)]\s*)?(?P<h>{alts})"
            rf"(?:[ \t]*[:\-][ \t]*|[ \t]*(?=\n|$))"
        )
        return cls(pattern, kind_of)

    def split(self, doc: Document) -> list[Section]:
        heads = []
        for m in self.pattern.finditer(doc.folded):
            h = " ".join(m.group("h").split())
            heads.append((m.start(), m.end(), self.kind_of[h]))
        out: list[Section] = []
        pos, kind = 0, "body"
        for start, end, k in [*heads, (len(doc.text), len(doc.text), "")]:
            if start > pos:
                line_end = doc.text.find("\n", pos) if kind in ONE_LINE else -1
                if 0 <= line_end < start and doc.text[line_end:start].strip():
                    out.append(Section(kind, pos, line_end))
                    out.append(Section("body", line_end, start))
                else:
                    out.append(Section(kind, pos, start))
            pos, kind = end, k
        return [s for s in out if s.end > s.start]


@lru_cache(maxsize=1)
def splitter() -> SectionSplitter:
    return SectionSplitter.load()


def section_at(sections: list[Section], offset: int) -> str:
    for s in sections:
        if s.start <= offset < s.end:
            return s.kind
    return "body"
