"""Residual-PHI scan: look for a file's own original identifiers in its output.

The de-identifier collects every identifying value it saw in the input (names
in all their spellings, IDs, addresses, dates in the formats people write
them) and searches the output for them, decoded and as raw bytes in the file's
character set. Any hit refuses publication: the rules may have a gap, the
scan is the second line that catches it (fail closed).
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from anonymization.dicom_dates import parse_da

# Words that are not identities even when a value field holds them.
_STOPWORDS = frozenset(
    {"NONE", "UNKNOWN", "ANONYMOUS", "ANON", "REMOVED", "NULL", "TEST", "HOSPITAL", "CLINICA",
     "CLINIC", "MEDICAL", "CENTER", "CENTRO", "DOCTOR", "RADIOLOGIA", "RADIOLOGY", "DEPARTMENT"}
)
MIN_LEN = 4


_NON_WORD = re.compile(r"[\W_]+")


def _strip_combining(text: str) -> str:
    """Drop combining marks (accents after NFKD), looking only at the characters the text uses."""
    marks = {ord(c): None for c in set(text) if not c.isascii() and unicodedata.combining(c)}
    return text.translate(marks) if marks else text


def normalise(value: str) -> str:
    """Case-, accent- and punctuation-insensitive form (keeps non-Latin letters).

    NFKD, combining marks dropped, upper case, every run of non-word characters
    (and underscores) folded to one space. ASCII text (most of a DICOM header)
    needs no decomposition, so it skips the Unicode work.
    """
    if value.isascii():
        return _NON_WORD.sub(" ", value.upper()).strip()
    stripped = _strip_combining(unicodedata.normalize("NFKD", value))
    return _NON_WORD.sub(" ", stripped.upper()).strip()


class TermMatcher:
    """Whole-word search for a set of normalised terms, without a regular expression.

    In normalised text words are separated by exactly one space, so a term
    (itself normalised: words joined by single spaces) occurs with word
    boundaries on both sides exactly when its words are a contiguous run of
    the text's words. Checking the runs against a set is the same test as
    the alternation regex ``(?<![^\\W_])(?:t1|t2|...)(?![^\\W_])`` but costs
    no compilation per file and is linear in the text.
    """

    __slots__ = ("terms", "lengths", "firsts")

    def __init__(self, terms: Iterable[str]) -> None:
        self.terms = frozenset(terms)
        self.lengths = sorted({t.count(" ") + 1 for t in self.terms} - {1})
        self.firsts = frozenset(t.split(" ", 1)[0] for t in self.terms if " " in t)

    def search_normalised(self, text: str) -> bool:
        if not text:
            return False
        words = text.split(" ")
        terms = self.terms
        if not terms.isdisjoint(words):
            return True  # a one-word term (or a word equal to a term)
        if not self.lengths or self.firsts.isdisjoint(words):
            return False
        firsts = self.firsts
        for i, w in enumerate(words):
            if w in firsts:
                for n in self.lengths:
                    if " ".join(words[i : i + n]) in terms:
                        return True
        return False

    def search(self, text: str) -> bool:
        return self.search_normalised(normalise(text))


def date_variants(value: str) -> set[str]:
    d = parse_da(value)
    if d is None:
        return set()
    y, m, dd = f"{d.year:04d}", f"{d.month:02d}", f"{d.day:02d}"
    return {y + m + dd, f"{y} {m} {dd}", f"{dd} {m} {y}", f"{m} {dd} {y}"}


def name_variants(pn: str) -> set[str]:
    """A PN value's whole forms and its components (PS3.5 6.2: ^ between components, = between groups)."""
    out: set[str] = set()
    for group in str(pn).split("="):
        comps = [c.strip() for c in group.split("^") if c.strip()]
        if not comps:
            continue
        out.add(normalise(" ".join(comps)))
        out.add(normalise(" ".join(comps[1:2] + comps[:1])))  # given family
        for c in comps:
            out.add(normalise(c))
            out.update(normalise(w) for w in re.split(r"[\s,]+", c))
            # every word of the component, whatever separates them (hyphen, apostrophe, a bad
            # byte); not for codes standing in for a name ("PANCREAS_0001"), whose words are not names
            if not any(ch.isdigit() for ch in c):
                out.update(normalise(c).split())
    return out


@dataclass
class PhiSet:
    """The identifying values of one input, in normalised form."""

    values: set[str] = field(default_factory=set)
    raw: set[str] = field(default_factory=set)  # as written, for reports and byte search
    # Institution and station names: identifying, but vendors' test files often
    # name the vendor as the institution; they are not searched in device fields.
    weak: set[str] = field(default_factory=set)
    # Matchers and patterns built from the sets, dropped whenever a value is added.
    _cache: dict[tuple[str, bool, int], object] = field(default_factory=dict, repr=False, compare=False)

    def add_text(self, value: str, *, weak: bool = False) -> None:
        value = str(value).strip()
        if not value:
            return
        self._cache.clear()
        self.raw.add(value)
        (self.weak if weak else self.values).add(normalise(value))

    def add_name(self, pn: str) -> None:
        if str(pn).strip():
            self._cache.clear()
            self.raw.add(str(pn).strip())
            self.values.update(name_variants(str(pn)))

    def add_date(self, value: str) -> None:
        if value.strip():
            self._cache.clear()
            self.raw.add(value.strip())
            self.values.update(date_variants(value))

    def add_time(self, value: str) -> None:
        digits = re.sub(r"[^0-9]", "", value.split(".")[0])
        if len(digits) == 6:
            self._cache.clear()
            self.values.add(digits)

    def searchable(self, include_weak: bool = True, min_digits: int = MIN_LEN) -> list[str]:
        pool = self.values | self.weak if include_weak else self.values
        return sorted(
            v
            for v in pool
            if len(v.replace(" ", "")) >= MIN_LEN
            and v not in _STOPWORDS
            and (not v.replace(" ", "").isdigit() or len(v.replace(" ", "")) >= min_digits)
        )

    def matcher(self, include_weak: bool = True, min_digits: int = MIN_LEN) -> TermMatcher | None:
        """The searchable values as a :class:`TermMatcher` (memoised until the set changes)."""
        key = ("m", include_weak, min_digits)
        if key not in self._cache:
            terms = self.searchable(include_weak, min_digits)
            self._cache[key] = TermMatcher(terms) if terms else None
        return self._cache[key]  # type: ignore[return-value]

    def pattern(self, include_weak: bool = True, min_digits: int = MIN_LEN) -> re.Pattern[str] | None:
        """The same search as a regular expression (for callers that need match positions)."""
        key = ("p", include_weak, min_digits)
        if key not in self._cache:
            terms = self.searchable(include_weak, min_digits)
            if not terms:
                self._cache[key] = None
            else:
                alternation = "|".join(
                    re.escape(t).replace(r"\ ", r"\s+") for t in sorted(terms, key=len, reverse=True)
                )
                self._cache[key] = re.compile(rf"(?<![^\W_])(?:{alternation})(?![^\W_])")
        return self._cache[key]  # type: ignore[return-value]


DEVICE_FIELDS = frozenset({"Manufacturer", "ManufacturerModelName", "SoftwareVersions"})


def scan_texts(phi: PhiSet, texts: Iterable[tuple[str, str]]) -> list[str]:
    """Return the locations (never the values) whose text contains an original value.

    Each text is searched on its own (a name split across two attributes is
    not a hit); device fields (Retain Device Identity) only for strong values.
    """
    strong, full = phi.matcher(include_weak=False), phi.matcher()
    hits = []
    for where, text in texts:
        matcher = strong if where.rsplit(".", 1)[-1] in DEVICE_FIELDS else full
        if matcher is not None and matcher.search(text):
            hits.append(where)
    return hits


def scan_bytes(phi: PhiSet, data: bytes, encodings: Iterable[str] = ("latin-1", "utf-8")) -> bool:
    """Search raw bytes (every element, whatever its VR) for the strong values.

    Short numbers (a 5-digit study id) occur inside UIDs and binary values by
    chance; they are searched in the decoded text values instead (scan_texts).
    """
    matcher = phi.matcher(include_weak=False, min_digits=8)
    if matcher is None:
        return False
    seen: set[str] = set()
    for enc in encodings:
        try:
            codec = codecs.lookup(enc).name
        except LookupError:
            continue
        if codec in seen:  # "latin-1" and "iso8859-1" are one decoding
            continue
        seen.add(codec)
        text = data.decode(codec, errors="ignore")
        if matcher.search(text):
            return True
    return False
