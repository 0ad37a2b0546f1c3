"""The concept vocabulary (include/labelling/concepts.yaml) and its matcher.

A concept is one id whatever the language ("Neumonía", "pneumonia" and
"pneumonia" are all ``pneumonia``); each has display labels in es/pt/en, a
group (status, nature, finding, inflammatory, congenital, score) and
synonyms. Synonyms of every language are matched in every report: a
Portuguese report quoting an English term is still labelled, and a wrong
language guess costs nothing here.

``match_keyword`` is what search uses so that a keyword naming a concept in
any language ("nodulo", "nódulo", "nodule") finds the concept's labels.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from labelling.config import LANGUAGES, LabellingConfigError, data_dir, load_yaml, require
from labelling.text import Document, PhraseIndex, fold, fold_phrase

GROUPS = ("status", "nature", "finding", "inflammatory", "congenital", "score")
# Concepts whose positive mention makes a study abnormal.
FINDING_GROUPS = ("finding", "inflammatory", "congenital")
_SEP = r"[\s\-/]+"


@dataclass(frozen=True)
class Synonym:
    term: str  # as written in the YAML
    pattern: re.Pattern[str]
    implies: tuple[str, ...] = ()
    plain: str | None = None  # folded words when the synonym is not a regex (for keyword matching)


@dataclass
class Concept:
    id: str
    group: str
    label: dict[str, str]
    synonyms: list[Synonym] = field(default_factory=list)
    chest_terms: list[Synonym] = field(default_factory=list)


@dataclass(frozen=True)
class Mention:
    """One place in the report where a concept is named."""

    concept: str
    start: int  # offsets in the report text
    end: int
    implies: tuple[str, ...] = ()


def synonym_pattern(term: str, where: str) -> tuple[re.Pattern[str], str | None]:
    """Regular expression of one synonym (see the header of concepts.yaml)."""
    if term.startswith("re:"):
        try:
            return re.compile(term[3:]), None
        except re.error as exc:
            raise LabellingConfigError(f"{where}: bad regular expression {term[3:]!r}: {exc}") from None
    words = fold(term).split()
    if not words:
        raise LabellingConfigError(f"{where}: empty synonym")
    parts = []
    for i, w in enumerate(words):
        if w.endswith("*"):
            parts.append(re.escape(w[:-1]) + r"\w*")
        elif i == len(words) - 1:
            parts.append(re.escape(w) + r"(?:s|es)?")
        else:
            parts.append(re.escape(w))
    return re.compile(r"\b" + _SEP.join(parts) + r"\b"), (None if "*" in term else fold_phrase(term))


def _synonyms(raw: object, where: str) -> list[Synonym]:
    out: list[Synonym] = []
    if raw is None:
        return out
    if not isinstance(raw, dict):
        raise LabellingConfigError(f"{where}: expected a mapping of language -> list")
    for lang, terms in raw.items():
        if lang not in (*LANGUAGES, "any"):
            raise LabellingConfigError(f"{where}.{lang}: unknown language (es, pt, en or any)")
        if not isinstance(terms, list):
            raise LabellingConfigError(f"{where}.{lang}: expected a list")
        for i, t in enumerate(terms):
            implies: tuple[str, ...] = ()
            if isinstance(t, dict):
                implies = tuple(t.get("implies") or ())
                t = t.get("term")
            if not isinstance(t, str):
                raise LabellingConfigError(f"{where}.{lang}[{i}]: expected a string or {{term, implies}}")
            pattern, plain = synonym_pattern(t, f"{where}.{lang}[{i}]")
            out.append(Synonym(t, pattern, implies, plain))
    return out


@dataclass
class Vocabulary:
    version: str
    concepts: dict[str, Concept]
    scores: dict[str, dict]
    path: Path
    ignore: list[str] = field(default_factory=list)  # phrases that contain a concept word but name no finding
    _plain: PhraseIndex | None = None  # plain synonyms, one pass over the words (labelling.text.PhraseIndex)
    _plain_chest: PhraseIndex | None = None

    def _indexes(self) -> tuple[PhraseIndex, PhraseIndex]:
        if self._plain is None:
            plain, chest = PhraseIndex(), PhraseIndex()
            for c in self.concepts.values():
                for idx, syns in ((plain, c.synonyms), (chest, c.chest_terms)):
                    for s in syns:
                        if not s.term.startswith("re:"):
                            idx.add(fold(s.term).split(), (c.id, s.implies), plural_last=True)
            for phrase in self.ignore:
                for idx in (plain, chest):
                    idx.add(fold(phrase).split(), (None, ()), plural_last=True)
            plain.finish()
            chest.finish()
            self._plain, self._plain_chest = plain, chest
        return self._plain, self._plain_chest

    @classmethod
    def load(cls, path: Path | None = None) -> "Vocabulary":
        path = path or data_dir() / "concepts.yaml"
        data = load_yaml(path)
        where = str(path)
        version = str(require(data, "version", (str, int), where))
        raw = require(data, "concepts", dict, where)
        concepts: dict[str, Concept] = {}
        for cid, spec in raw.items():
            w = f"{where}: concepts.{cid}"
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(cid)):
                raise LabellingConfigError(f"{w}: a concept id is lower-case letters, digits and _")
            group = require(spec, "group", str, w)
            if group not in GROUPS:
                raise LabellingConfigError(f"{w}.group: {group!r} is not one of {', '.join(GROUPS)}")
            label = require(spec, "label", dict, w)
            missing = [lang for lang in LANGUAGES if not label.get(lang)]
            if missing:
                raise LabellingConfigError(f"{w}.label: missing {', '.join(missing)}")
            concepts[cid] = Concept(cid, group, {k: str(v) for k, v in label.items()},
                                    _synonyms(spec.get("synonyms"), f"{w}.synonyms"),
                                    _synonyms(spec.get("chest_terms"), f"{w}.chest_terms"))
        scores = data.get("scores") or {}
        for name, spec in scores.items():
            w = f"{where}: scores.{name}"
            try:
                spec["_re"] = re.compile(require(spec, "pattern", str, w))
            except re.error as exc:
                raise LabellingConfigError(f"{w}.pattern: {exc}") from None
            for cat, implied in (spec.get("implies") or {}).items():
                for cid in implied:
                    if cid not in concepts:
                        raise LabellingConfigError(f"{w}.implies.{cat}: unknown concept {cid!r}")
        for c in concepts.values():
            for s in c.synonyms:
                for cid in s.implies:
                    if cid not in concepts:
                        raise LabellingConfigError(f"{where}: concepts.{c.id}: {s.term!r} implies unknown {cid!r}")
        ignore = data.get("ignore") or []
        if not isinstance(ignore, list) or not all(isinstance(p, str) for p in ignore):
            raise LabellingConfigError(f"{where}: ignore: expected a list of phrases")
        return cls(version, concepts, scores, path, [fold_phrase(p) for p in ignore])

    # -- matching ---------------------------------------------------------
    def mentions(self, doc: Document, chest: bool = False) -> list[Mention]:
        """Every concept mention, overlaps resolved leftmost-longest.

        ``chest``: the study is a chest study, so bare "derrame"/"effusion"
        name a pleural effusion.
        """
        found: list[tuple[int, int, str, tuple[str, ...]]] = []
        plain, chest_idx = self._indexes()
        for idx in (plain, chest_idx) if chest else (plain,):
            for start, end, (cid, implies) in idx.find(doc):
                found.append((start, end, cid, implies))
        for c in self.concepts.values():
            syns = c.synonyms + (c.chest_terms if chest else [])
            for s in syns:
                if not s.term.startswith("re:"):
                    continue
                for m in s.pattern.finditer(doc.folded):
                    if m.end() == m.start():
                        continue
                    if "m" in s.pattern.groupindex and m.group("m") is not None:
                        # The mention proper; the rest of the match is context.
                        found.append((m.start("m"), m.end("m"), c.id, s.implies))
                    else:
                        found.append((m.start(), m.end(), c.id, s.implies))
        # Leftmost, then longest; at equal span a finding beats a status word ("tear" of the
        # abnormality lexicon vs "tear of the ... ligament").
        found.sort(key=lambda f: (f[0], -(f[1] - f[0]), f[2] is not None and self.concepts[f[2]].group == "status"))
        out: list[Mention] = []
        last_end = -1
        for start, end, cid, implies in found:
            if start < last_end:
                continue
            last_end = end
            if cid is not None:  # None: an ignored phrase, matched only to hide its words
                out.append(Mention(cid, start, end, implies))
        return out

    def ids(self) -> list[str]:
        """Every concept id the labeller can emit, scores included."""
        out = list(self.concepts)
        for name, spec in self.scores.items():
            lo, hi = (0, 6) if name == "birads" else (1, 5)
            out.extend(f"{name}_{n}" for n in range(lo, hi + 1))
        return out

    def label_text(self, concept: str) -> dict[str, str]:
        """Display name of a concept in es/pt/en (score labels carry their category)."""
        if concept in self.concepts:
            return dict(self.concepts[concept].label)
        name, _, n = concept.rpartition("_")
        spec = self.scores.get(name)
        if spec:
            return {lang: tmpl.format(n=n) for lang, tmpl in spec["label"].items()}
        return {lang: concept for lang in LANGUAGES}

    def group(self, concept: str) -> str:
        return self.concepts[concept].group if concept in self.concepts else "score"

    def match_keyword(self, keyword: str) -> list[str]:
        """Concept ids a search keyword names, in any language.

        The keyword is folded (accents, case) and matched whole against every
        synonym, the concept ids and the display labels; a keyword of five or
        more letters that starts a plain synonym also matches ("fractur",
        "nodul"), and a one-letter typo in a long word is forgiven
        ("neumonai"). Scores match as "birads 4", "BI-RADS 4", "tirads 3".
        """
        k = fold_phrase(keyword)
        if not k:
            return []
        hits: list[str] = []
        for name, spec in self.scores.items():
            m = spec["_re"].fullmatch(k) or spec["_re"].fullmatch(k.replace(" ", "-"))
            if m:
                n = next(g for g in m.groups() if g)
                hits.append(f"{name}_{n}")
        if hits:
            return hits
        exact, near = [], []
        for c in self.concepts.values():
            names = {fold_phrase(c.id), *(fold_phrase(v) for v in c.label.values())}
            if k in names or any(s.pattern.fullmatch(k) for s in c.synonyms + c.chest_terms):
                exact.append(c.id)
                continue
            stems = [s.term.rstrip("*") for s in c.synonyms if s.term.endswith("*") and " " not in s.term]
            plains = [p for p in [s.plain for s in c.synonyms if s.plain] + [n for n in names if n] + stems
                      if " " not in p or " " in k]
            if len(k) >= 5 and any(p.startswith(k) for p in plains):
                near.append(c.id)
            elif len(k) >= 7 and any(_one_edit(k, p) for p in plains if abs(len(p) - len(k)) <= 1):
                near.append(c.id)
        return exact or near


def _one_edit(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` differ by at most one substitution, insertion or deletion."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(a, b, score_cutoff=1) <= 1


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    """The vocabulary of include/labelling/concepts.yaml, loaded once per process."""
    return Vocabulary.load()


def match_keyword(keyword: str) -> list[str]:
    """Concept ids named by a search keyword in es/pt/en (see ``Vocabulary.match_keyword``)."""
    return vocabulary().match_keyword(keyword)


def concept_ids() -> list[str]:
    return vocabulary().ids()
