"""Folded text with the original offsets, words and clauses.

Every matcher of the labeller (concepts, cues, sections, scores) runs on the
*folded* text: lower case, accents removed, one character for one character,
so a match's offsets are the offsets in the report as written (the evidence
spans of the labels table point into the scrubbed report, not a copy).
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

_WORD = re.compile(r"\w+")
# A clause ends at . ! ? ; : or a line break that starts a new statement. A
# dot or comma between digits ("0.58", "2,1 cm") is a decimal, not an end.
_CLAUSE_END = re.compile(r"(?<!\d)[.](?!\d)|[!?;:]|\.(?=\s)|\n(?=\s*(?:[-*•]|\d+[.)]\s|[A-ZÁÉÍÓÚÂÊÔÃÕÇÑ]))|\n\s*\n")


@lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch.isascii():
        return ch.lower()
    base = unicodedata.normalize("NFD", ch)[0].lower()
    return base if len(base) == 1 else ch.lower()[:1] or " "


def fold(text: str) -> str:
    """Lower-case, accent-free copy of ``text`` with the same length.

    "Neumonía" and "NEUMONIA" both read "neumonia"; "ç" reads "c". Characters
    whose decomposition is not a single letter keep their place (length is
    what makes the offsets of a match valid in the original).
    """
    if text.isascii():
        return text.lower()
    out = "".join(_fold_char(c) for c in text)
    assert len(out) == len(text)
    return out


def fold_phrase(phrase: str) -> str:
    """A vocabulary phrase as the matchers see it: folded, single-spaced."""
    return " ".join(_WORD.findall(fold(phrase).replace("_", " "))) if phrase else ""


@dataclass
class Document:
    """A report prepared once for all matchers."""

    text: str
    folded: str
    word_starts: list[int]
    word_ends: list[int]
    clause_ends: list[int]  # offsets where a clause ends (sorted)

    @classmethod
    def of(cls, text: str) -> "Document":
        folded = fold(text)
        starts, ends = [], []
        for m in _WORD.finditer(folded):
            starts.append(m.start())
            ends.append(m.end())
        clause_ends = [m.start() for m in _CLAUSE_END.finditer(text)]
        return cls(text, folded, starts, ends, clause_ends)

    def word_index(self, offset: int) -> int:
        """Index of the word at or after ``offset``."""
        return bisect.bisect_left(self.word_ends, offset + 1)

    def clause_of(self, offset: int) -> int:
        """Number of the clause holding ``offset`` (0-based)."""
        return bisect.bisect_right(self.clause_ends, offset - 1) if offset else 0

    def clause_span(self, offset: int) -> tuple[int, int]:
        i = self.clause_of(offset)
        start = self.clause_ends[i - 1] + 1 if i > 0 else 0
        end = self.clause_ends[i] if i < len(self.clause_ends) else len(self.text)
        return start, end

    def sentence_of(self, offset: int) -> tuple[int, int]:
        """The sentence around ``offset`` (ends at . ! ? or a new line), for family cues."""
        start = max(self.text.rfind(".", 0, offset), self.text.rfind("\n", 0, offset)) + 1
        ends = [i for i in (self.text.find(". ", offset), self.text.find("\n", offset)) if i >= 0]
        return start, (min(ends) if ends else len(self.text))


_GAP = re.compile(r"[\s\-/]+")


class PhraseIndex:
    """Leftmost-longest search of many word phrases in one pass over a report's words.

    One big regular expression of hundreds of alternatives is tried at every
    character; this looks each word up in a dict of the phrases starting with
    it (measured ~10x faster on the evaluation set). A phrase word is matched
    exactly, with an optional plural "s"/"es" (``plural``), or as a prefix
    (a word written with a trailing "*"). Words must be separated only by
    spaces, hyphens or slashes, as in the regular expressions they replace.
    """

    def __init__(self) -> None:
        self._by_word: dict[str, list[tuple[tuple[tuple[str, str], ...], object]]] = {}
        self._by_prefix: list[tuple[str, tuple[tuple[str, str], ...], object]] = []

    def add(self, words: list[str], payload: object, plural_last: bool = False) -> None:
        spec = []
        for i, w in enumerate(words):
            if w.endswith("*"):
                spec.append((w[:-1], "prefix"))
            elif plural_last and i == len(words) - 1:
                spec.append((w, "plural"))
            else:
                spec.append((w, "exact"))
        spec_t = tuple(spec)
        first, how = spec_t[0]
        if how == "prefix":
            self._by_prefix.append((first, spec_t, payload))
        else:
            self._by_word.setdefault(first, []).append((spec_t, payload))

    def finish(self) -> None:
        for lst in self._by_word.values():
            lst.sort(key=lambda t: -len(t[0]))
        self._by_prefix.sort(key=lambda t: -len(t[1]))

    @staticmethod
    def _word_ok(word: str, stem: str, how: str) -> bool:
        if how == "exact":
            return word == stem
        if how == "plural":
            return word == stem or word == stem + "s" or word == stem + "es"
        return word.startswith(stem)

    def find(self, doc: Document) -> list[tuple[int, int, object]]:
        """(start, end, payload) of every phrase, leftmost-longest, not overlapping."""
        text, starts, ends = doc.folded, doc.word_starts, doc.word_ends
        words = [text[s:e] for s, e in zip(starts, ends)]
        n = len(words)
        out: list[tuple[int, int, object]] = []
        i = 0
        while i < n:
            w = words[i]
            cands = list(self._by_word.get(w, ()))
            if w.endswith("s"):
                cands += self._by_word.get(w[:-1], ())
                if w.endswith("es"):
                    cands += self._by_word.get(w[:-2], ())
            cands += [(spec, payload) for stem, spec, payload in self._by_prefix if w.startswith(stem)]
            best: tuple[int, object] | None = None
            for spec, payload in cands:
                m = len(spec)
                if i + m > n or (best is not None and m <= best[0]):
                    continue
                if not self._word_ok(w, *spec[0]):
                    continue
                ok = True
                for j in range(1, m):
                    if not self._word_ok(words[i + j], *spec[j]) or not _GAP.fullmatch(text[ends[i + j - 1]:starts[i + j]]):
                        ok = False
                        break
                if ok:
                    best = (m, payload)
            if best is None:
                i += 1
                continue
            m, payload = best
            out.append((starts[i], ends[i + m - 1], payload))
            i += m
        return out
