"""Assertion cues per language: negspacy's clinical termsets plus the project's lists.

negspacy 1.1.0 ships NegEx's lists for English (``en_clinical``) and Spanish
(``es_clinical``): pseudo negations, preceding and following negations and
scope terminators. They are loaded from the installed package (so an update
of the termsets reaches the labeller) and corrected by
include/labelling/cues.yaml, which also adds the ConText categories the
termsets lack (uncertain, historical, family) and the Portuguese lists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from labelling.config import LANGUAGES, LabellingConfigError, data_dir, load_yaml
from labelling.text import Document, PhraseIndex, fold_phrase

NEGSPACY_KEYS = ("pseudo_negations", "preceding_negations", "following_negations", "termination")
# Cue kinds: what a cue does to the mentions in its scope.
KIND_OF = {
    "pseudo_negations": "pseudo",
    "preceding_negations": "negative>",
    "following_negations": "<negative",
    "termination": "stop",
    "uncertain_preceding": "uncertain>",
    "uncertain_following": "<uncertain",
    "historical_preceding": "historical>",
    "historical_following": "<historical",
    "family": "family>",
    "family_following": "<family",
    "hypothetical": "hypothetical>",
    "weak_termination": "weakstop",
    "positive_introducers": "intro",
}
# Explicit lists of the project beat negspacy's when one phrase is in both.
_OWN = ("uncertain_preceding", "uncertain_following", "historical_preceding", "historical_following", "family",
        "family_following", "hypothetical", "weak_termination", "positive_introducers")


@dataclass(frozen=True)
class Cue:
    phrase: str
    kind: str  # e.g. "negative>" (scopes forward), "<uncertain" (scopes backward), "stop", "pseudo"
    start: int
    end: int

    @property
    def certainty(self) -> str:
        return self.kind.strip("<>")

    @property
    def forward(self) -> bool:
        return self.kind.endswith(">")

    @property
    def backward(self) -> bool:
        return self.kind.startswith("<")


@dataclass
class CueSet:
    language: str
    lists: dict[str, list[str]]  # category -> folded phrases
    index: PhraseIndex
    kind: dict[str, str]  # folded phrase -> kind
    source: str

    def find(self, doc: Document) -> list[Cue]:
        """Cues in the report, leftmost-longest, non-overlapping."""
        return [Cue(doc.folded[s:e], kind, s, e) for s, e, kind in self.index.find(doc)]


def _squash(s: str) -> str:
    """A phrase or a matched text as its words ("s/p", "s p" and "S-P" are one key)."""
    return " ".join(re.findall(r"[^\W_]+", s))


def _negspacy(termset: str) -> dict[str, list[str]]:
    from negspacy.termsets import termset as load

    name = termset.split(":", 1)[1]
    return {k: list(v) for k, v in load(name).get_patterns().items()}


def _strings(raw: object, where: str) -> list[str]:
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise LabellingConfigError(f"{where}: expected a list of strings (quote yes/no/on/off)")
    return raw


def build(language: str, spec: dict, where: str) -> CueSet:
    lists: dict[str, list[str]] = {k: [] for k in KIND_OF}
    base = spec.get("base")
    source = "project lists"
    if base:
        if not str(base).startswith("negspacy:"):
            raise LabellingConfigError(f"{where}.base: expected 'negspacy:<termset>' or null")
        try:
            loaded = _negspacy(base)
        except (ImportError, KeyError) as exc:
            raise LabellingConfigError(f"{where}.base: cannot load {base}: {exc}") from None
        for k in NEGSPACY_KEYS:
            lists[k] = [fold_phrase(p) for p in loaded.get(k, [])]
        source = f"{base} (negspacy 1.1.0) + project lists"
    for k, phrases in (spec.get("remove") or {}).items():
        if k not in NEGSPACY_KEYS:
            raise LabellingConfigError(f"{where}.remove.{k}: not a negspacy list ({', '.join(NEGSPACY_KEYS)})")
        drop = {fold_phrase(p) for p in _strings(phrases, f"{where}.remove.{k}")}
        lists[k] = [p for p in lists[k] if p not in drop]
    for k, phrases in (spec.get("add") or {}).items():
        if k not in NEGSPACY_KEYS:
            raise LabellingConfigError(f"{where}.add.{k}: not a negspacy list ({', '.join(NEGSPACY_KEYS)})")
        lists[k] += [fold_phrase(p) for p in _strings(phrases, f"{where}.add.{k}")]
    for k in _OWN:
        lists[k] += [fold_phrase(p) for p in _strings(spec.get(k) or [], f"{where}.{k}")]
    # A phrase's meaning: the project's own categories first, then pseudo
    # negation, then negspacy's negations and terminators. A phrase listed as
    # both preceding and following scopes both ways ("<uncertain>").
    cats: dict[str, list[str]] = {}
    for k in (*_OWN, "pseudo_negations", "preceding_negations", "following_negations", "termination"):
        for p in lists[k]:
            if p:
                cats.setdefault(_squash(p), []).append(k)
    kind: dict[str, str] = {}
    for key, ks in cats.items():
        first = KIND_OF[ks[0]]
        same = {KIND_OF[k] for k in ks if KIND_OF[k].strip("<>") == first.strip("<>")}
        if len(same) > 1:
            first = "<" + first.strip("<>") + ">"
        kind[key] = first
    index = PhraseIndex()
    for phrase, k in kind.items():
        index.add(phrase.split(), k)
    index.finish()
    return CueSet(language, lists, index, kind, source)


@dataclass
class Cues:
    version: str
    by_language: dict[str, CueSet]
    scope: dict[str, int]
    markers: dict[str, set[str]]

    @classmethod
    def load(cls, path: Path | None = None) -> "Cues":
        path = path or data_dir() / "cues.yaml"
        data = load_yaml(path)
        where = str(path)
        if not isinstance(data, dict):
            raise LabellingConfigError(f"{where}: expected a mapping")
        by_language = {}
        markers = {}
        for lang in LANGUAGES:
            if lang not in data:
                raise LabellingConfigError(f"{where}: missing language '{lang}'")
            by_language[lang] = build(lang, data[lang], f"{where}: {lang}")
            markers[lang] = {fold_phrase(w) for w in _strings(data[lang].get("markers") or [], f"{where}: {lang}.markers")}
        scope = {k: int(v) for k, v in (data.get("scope") or {}).items()}
        return cls(str(data.get("version", "1")), by_language, scope, markers)


@lru_cache(maxsize=1)
def cues() -> Cues:
    return Cues.load()
