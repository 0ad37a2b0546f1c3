"""Drug names as prescribers write or say them -> a catalogue drug, or a clear "don't know".

Generic names in es/pt/en, brand names, salts ("losartán potásico"),
strengths and forms in the name ("Amoxil 500 mg cápsulas") are all accepted.
A misspelling is corrected only when one drug is clearly the closest; when two
drugs are about as close (look-alike names such as hidroxizina/hidralazina) the
resolver refuses to guess and says which names were confused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from medication.catalogue import Catalogue, Drug
from medication.units import Strength, _fold, strength_in_name

# words that qualify a name without changing the drug
_NOISE = {
    "sodico", "sodica", "sodium", "sodio", "potasico", "potasica", "potassium", "potassio", "potassica",
    "clorhidrato", "cloridrato", "hydrochloride", "hcl", "maleato", "maleate", "besilato", "besylate",
    "calcico", "calcica", "calcium", "tabletas", "tableta", "tablets", "tablet", "comprimidos", "comprimido",
    "capsulas", "capsula", "capsules", "capsule", "jarabe", "xarope", "syrup", "suspension", "suspensao",
    "gotas", "drops", "solucion", "solucao", "solution", "oral", "inyectable", "injetavel", "injection",
    "de", "do", "da", "mg", "mcg", "ml", "ui", "iu", "retard", "xr", "er", "sr", "forte", "generico", "generic",
}
ACCEPT = 88.0   # a fuzzy match at least this close may be accepted ...
MARGIN = 6.0    # ... when the next different drug is at least this much further


def fold_name(text: str) -> str:
    """Accents, case, punctuation, salts and form words folded: the key names are compared on."""
    t = _fold(text)
    t = re.sub(r"[^a-z0-9 ]+", " ", t)
    words = [w for w in t.split() if w not in _NOISE and not re.fullmatch(r"[0-9.,]+", w)]
    return " ".join(words)


@dataclass
class Resolution:
    drug: Drug | None
    key: str                    # catalogue id, or "x:<folded name>" for drugs outside the catalogue
    matched: str = ""           # the catalogue name that matched
    score: float = 100.0
    how: str = "exact"          # exact | fuzzy | ambiguous | unknown | empty
    candidates: list[tuple[str, float]] = field(default_factory=list)
    strength: Strength | None = None

    @property
    def known(self) -> bool:
        return self.drug is not None


class Resolver:
    def __init__(self, catalogue: Catalogue):
        self.catalogue = catalogue
        self._names: dict[str, str] = {}
        for drug in catalogue.drugs.values():
            for n in (*drug.names, *drug.brands, drug.id.replace("_", " ")):
                key = fold_name(n)
                if key:
                    self._names.setdefault(key, drug.id)
        self._choices = list(self._names)
        self._memo: dict[str, Resolution] = {}

    def resolve(self, text: str | None) -> Resolution:
        """Memoised per text: a history names the same drugs thousands of times."""
        key = str(text or "")
        hit = self._memo.get(key)
        if hit is None:
            hit = self._resolve(text)
            if len(self._memo) < 100_000:
                self._memo[key] = hit
        return hit

    def _resolve(self, text: str | None) -> Resolution:
        if not text or not str(text).strip():
            return Resolution(None, "", how="empty", score=0.0)
        strength, rest = strength_in_name(str(text))
        key = fold_name(rest)
        if not key:
            return Resolution(None, "", how="empty", score=0.0, strength=strength)
        if key in self._names:
            return Resolution(self.catalogue.drugs[self._names[key]], self._names[key], key, 100.0, "exact",
                              strength=strength)
        # first word alone ("Amoxil Duo" -> not in list; "amoxicilina trihidrato" -> amoxicilina)
        first = key.split()[0]
        if first in self._names and len(first) >= 5:
            return Resolution(self.catalogue.drugs[self._names[first]], self._names[first], first, 99.0, "exact",
                              strength=strength)
        hits = process.extract(key, self._choices, scorer=fuzz.WRatio, limit=12)
        best_by_drug: dict[str, tuple[str, float]] = {}
        for name, score, _ in hits:
            did = self._names[name]
            # plain ratio keeps short names honest (WRatio rewards partial overlaps)
            s = min(score, fuzz.ratio(key, name) + 8)
            if did not in best_by_drug or s > best_by_drug[did][1]:
                best_by_drug[did] = (name, s)
        ranked = sorted(best_by_drug.items(), key=lambda kv: -kv[1][1])
        cands = [(did, round(s, 1)) for did, (_, s) in ranked[:3]]
        if not ranked or ranked[0][1][1] < 75:
            return Resolution(None, "x:" + key, how="unknown", score=ranked[0][1][1] if ranked else 0.0,
                              candidates=cands, strength=strength)
        top_id, (top_name, top) = ranked[0]
        second = ranked[1][1][1] if len(ranked) > 1 else 0.0
        if top >= ACCEPT and top - second >= MARGIN:
            return Resolution(self.catalogue.drugs[top_id], top_id, top_name, top, "fuzzy", cands, strength)
        return Resolution(None, "x:" + key, top_name, top, "ambiguous" if top - second < MARGIN else "unknown",
                          cands, strength)
