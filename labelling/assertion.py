"""Assertion status of each mention by cue scope (NegEx/ConText rules).

A cue reaches the mentions of its own clause (a clause ends at . ; : ! ? or
a new statement line), forward for preceding cues ("no", "sin",
"sugestivo de", "antecedente de", "madre"), backward for following cues
("descartado", "cannot be excluded", "tratada"), within a few words
(`scope:` in cues.yaml) and never across a terminator ("pero", "but"); "con"/"com"/"with" end a
negation or a hedge ("no hipertenso, con fiebre") but not a family or
history cue ("madre con cáncer de mama").
Pseudo negations ("sin cambios", "no change") are matched only so that
their words do not count as cues.

Of the cues reaching a mention the nearest decides; at equal distance
family > historical > uncertain > negative. A hypothetical cue ("may obscure
small masses", "en caso de") makes the mention no statement at all. One exception: a negation that
also reaches the uncertainty cue makes the mention negative ("sin hallazgos
sospechosos de malignidad" rules malignancy out; it does not hedge it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labelling.cues import Cue, Cues
from labelling.text import Document

PRIORITY = {"hypothetical": 0, "family": 1, "historical": 2, "uncertain": 3, "negative": 4}


@dataclass(frozen=True)
class Assertion:
    certainty: str  # positive, negative, uncertain, historical, family
    cue: Cue | None  # the deciding cue (None: positive by default)
    distance: int  # words between cue and mention (-1 without cue)


def _words_between(doc: Document, a: int, b: int) -> int:
    """Number of words fully between offsets a and b."""
    if b <= a:
        return 0
    return max(0, doc.word_index(b) - doc.word_index(a))


# "Derrame pleural: no." / "Pneumothorax: none" / "Fracturas: ausentes": a field and its value.
_FIELD_VALUE = re.compile(
    r"\s*:\s*(?:(?P<neg>no|none|ninguno|ninguna|nenhum|nenhuma|nao|negativo|negativa|negative|absent|ausente|"
    r"ausentes|nil)|(?P<pos>si|sim|yes|presente|present|positivo|positiva|positive))\b")


def assert_mention(doc: Document, start: int, end: int, cue_list: list[Cue], cues: Cues) -> Assertion:
    field = _FIELD_VALUE.match(doc.folded, end)
    if field:
        return Assertion("negative" if field.group("neg") else "positive", None, 0)
    cs, ce = doc.clause_span(start)
    if cs > 0 and doc.text[cs - 1] == ":":
        # "No evidence of: pneumothorax, effusion": a cue that ends its clause at a colon reaches the list after it.
        ps, _pe = doc.clause_span(cs - 1)
        lead = [c for c in cue_list if c.start >= ps and c.end <= cs - 1 and c.forward]
        if lead and not doc.folded[lead[-1].end:cs - 1].strip():
            cs = ps
    scope = cues.scope
    inside = [c for c in cue_list if c.start >= cs and c.end <= ce]
    stops = [c for c in inside if c.kind == "stop"]
    weak = [c for c in inside if c.kind == "weakstop"]
    # ", compatible con" / ", sugestiva de": after a comma, a new statement; a negation before it stops there.
    fresh = [c for c in inside if (c.kind == "intro" or c.certainty == "uncertain")
             and doc.folded[max(cs, c.start - 3):c.start].rstrip().endswith(",")]
    candidates: list[tuple[int, int, Cue]] = []
    for c in inside:
        if c.kind in ("stop", "pseudo", "weakstop", "intro") or (c.start < end and c.end > start):
            continue
        cert = c.certainty
        blockers = stops + weak if cert in ("negative", "uncertain") else stops
        if cert == "negative":
            blockers = blockers + [f for f in fresh if f is not c]
        if c.end <= start and c.forward:
            if any(c.end <= s.start and s.end <= start for s in blockers):
                continue
            d = _words_between(doc, c.end, start)
            window = {"family": scope.get("family_window", 14),
                      "historical": scope.get("historical_preceding_window", 6),
                      "hypothetical": scope.get("hypothetical_window", 4)}.get(
                cert, scope.get("preceding_window", 12))
            if d <= window:
                candidates.append((d, PRIORITY[cert], c))
        elif c.start >= end and c.backward:
            if any(end <= s.start and s.end <= c.start for s in blockers):
                continue
            d = _words_between(doc, end, c.start)
            if d <= scope.get("following_window", 6):
                candidates.append((d, PRIORITY[cert], c))
    if not candidates:
        return Assertion("positive", None, -1)
    candidates.sort(key=lambda t: (t[0], t[1]))
    d, _p, best = candidates[0]
    if best.certainty == "uncertain" and best.forward:
        for _d, _pp, c in candidates:
            if c.certainty == "negative" and c.forward and c.end <= best.start:
                return Assertion("negative", c, _d)
    return Assertion(best.certainty, best, d)
