"""A file's own identifying values, and the one rule that finds them in any written form.

The de-identifier collects every identifying value it saw in the input (names
in all their spellings, IDs, addresses, dates) into a :class:`PhiSet`. The
same set answers two questions with the same rule (:meth:`PhiSet.find`):

* the cleaner: which spans of a kept text value must go (descriptions, code
  meanings, SR text, comments, safe-listed private values);
* the verifier: does anything identifying survive in the output (fail closed).

Forms matched (issue 10.1): case, accents, punctuation and separators ignored;
IDs by their digits alone (``CC 52.318.907`` for ``52318907``, a CPF with or
without dots); dates in numeric and written forms in es/pt/en (``3 de julio de
1958``, ``3 Jul 1958``, ``03/07/58``) through the report scrubber's date
recogniser; name parts of any length, in any character set (CJK and other
scripts written without spaces are matched as substrings), transliterated
with anyascii. Context narrows the rule where DICOM itself writes words and
numbers: coded strings and device fields are searched only for values that
are not DICOM vocabulary, numbers only for whole identifiers.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache

from anyascii import anyascii

from anonymization.dicom_dates import parse_da

# Words that are not identities even when a value field holds them.
_STOPWORDS = frozenset(
    {"NONE", "UNKNOWN", "ANONYMOUS", "ANON", "REMOVED", "NULL", "TEST", "HOSPITAL", "CLINICA",
     "CLINIC", "MEDICAL", "CENTER", "CENTRO", "DOCTOR", "RADIOLOGIA", "RADIOLOGY", "DEPARTMENT"}
)
# Name particles: parts of a name, never searched alone.
_PARTICLES = frozenset({"DE", "DEL", "LA", "LAS", "LOS", "DA", "DAS", "DO", "DOS", "Y", "E", "VAN", "VON", "DER",
                        "DI", "DU", "LE", "EL", "MC", "MAC", "ST", "JR", "SR", "II", "III", "IV", "MR", "MRS",
                        "MS", "DR", "DRA", "SRA", "PROF"})
MIN_LEN = 4
NAME_KINDS = frozenset({"patient_name", "person_name"})
MIN_ID_DIGITS = 5  # digits-only form of an identifier (shorter ones collide with measurements)

_NON_WORD = re.compile(r"[\W_]+")
_WORD = re.compile(r"[^\W_]+")
_DIGIT_RUN = re.compile(r"\d+(?:[ .,\-/]{1,2}\d+)*")  # thousands commas too: 1,098,765,432
# Scripts written without spaces between words: names are substrings there.
_UNSPACED = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\u0e00-\u0e7f\uf900-\ufaff]")

Hit = tuple[str, int, int]  # (kind, start, end) in the searched text


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


def _fold_word(word: str) -> str:
    if word.isascii():
        return word.upper()  # a \w+ run of ASCII has nothing to fold but case
    return normalise(word).replace(" ", "")


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
    out.discard("")
    return out


@lru_cache(maxsize=1)
def dicom_vocabulary() -> frozenset[str]:
    """Words DICOM itself writes: attribute names, UID names, SR concept meanings (upper case).

    A value such as ``ORIGINAL`` in ImageType or ``HEAD`` in a code meaning is
    the standard's word, not a person's, even when someone is called that:
    coded strings and device fields are searched only for values outside
    this vocabulary. Read from ``dicom/vocabulary.txt`` (generated from
    pydicom's dictionaries by ``scripts/gen_dicom_vocabulary.py``); built from
    pydicom directly when that file is missing.
    """
    from pathlib import Path

    generated = Path(__file__).resolve().parent / "dicom" / "vocabulary.txt"
    if generated.exists():
        lines = generated.read_text(encoding="utf-8").splitlines()
        return frozenset(w for w in lines if w and not w.startswith("#"))
    from pydicom._uid_dict import UID_dictionary
    from pydicom.datadict import DicomDictionary

    words: set[str] = set()
    for v in DicomDictionary.values():
        words.update(_WORD.findall(v[2].upper()))
    for v in UID_dictionary.values():
        words.update(_WORD.findall(str(v[0]).upper()))
    try:
        from pydicom.sr._concepts_dict import concepts
    except ImportError:  # pragma: no cover - older pydicom
        concepts = {}
    for schemes in concepts.values():
        for codes in schemes.values():
            for meaning, _cids in codes.values():
                words.update(_WORD.findall(str(meaning).upper()))
    return frozenset(w for w in words if not w.isdigit())


@dataclass
class PhiSet:
    """The identifying values of one input, in the forms :meth:`find` matches."""

    values: set[str] = field(default_factory=set)
    raw: set[str] = field(default_factory=set)  # as written, for reports and byte search
    # Institution and station names: identifying, but vendors' test files often
    # name the vendor as the institution; they are not searched in device fields.
    weak: set[str] = field(default_factory=set)
    kinds: dict[str, str] = field(default_factory=dict)  # normalised term -> kind of value
    digits: dict[str, str] = field(default_factory=dict)  # digits-only identifier -> kind
    dates: dict[date, str] = field(default_factory=dict)  # calendar dates -> kind
    unspaced: dict[str, str] = field(default_factory=dict)  # CJK/Thai names (substring search) -> kind
    # Matchers and patterns built from the sets, dropped whenever a value is added.
    _cache: dict[tuple[str, bool, int], object] = field(default_factory=dict, repr=False, compare=False)

    # -- collecting --------------------------------------------------------------------------
    def _term(self, term: str, kind: str, *, weak: bool = False) -> None:
        if not term:
            return
        (self.weak if weak else self.values).add(term)
        self.kinds.setdefault(term, kind)

    def add_text(self, value: str, *, weak: bool = False, kind: str = "identifier") -> None:
        value = str(value).strip()
        if not value:
            return
        self._cache.clear()
        self.raw.add(value)
        self._term(normalise(value), kind, weak=weak)
        digits = re.sub(r"\D", "", value)
        if not weak and len(digits) >= MIN_ID_DIGITS and len(digits) >= len(re.sub(r"\W", "", value)) - 3:
            self.digits.setdefault(digits, kind)  # an ID written with other separators or a prefix
            if digits.startswith("0") and len(digits.lstrip("0")) >= 6:
                self.digits.setdefault(digits.lstrip("0"), kind)  # PatientID 0052318907, text 52-318-907
        self._add_unspaced(value, kind)

    def add_name(self, pn: str, kind: str = "person_name") -> None:
        pn = str(pn).strip()
        if not pn:
            return
        self._cache.clear()
        self.raw.add(pn)
        variants = name_variants(pn)
        if not pn.isascii():  # transliterated: Müller/MULLER, Иванов/IVANOV, 山田/SHANTIAN
            variants |= name_variants(anyascii(pn))
        for v in variants:
            if v in _PARTICLES or (len(v) == 1 and v.isascii()):
                continue
            self._term(v, kind)
        for group in pn.split("="):
            comps = [c.strip() for c in group.split("^") if c.strip()]
            for comp in comps:
                self._add_unspaced(comp, kind)
            if len(comps) >= 2:  # CJK names are written unspaced and often one character each: 王^伟 -> 王伟
                self._add_unspaced(comps[0] + comps[1], kind)
                self._add_unspaced(comps[1] + comps[0], kind)

    def add_date(self, value: str, kind: str = "date") -> None:
        value = value.strip()
        if not value:
            return
        self._cache.clear()
        self.raw.add(value)
        for v in date_variants(value):
            self._term(v, kind)
        d = parse_da(value)
        if d is not None:
            self.dates.setdefault(d, kind)

    def add_time(self, value: str) -> None:
        digits = re.sub(r"[^0-9]", "", value.split(".")[0])
        if len(digits) == 6:
            self._cache.clear()
            self._term(digits, "time")

    def _add_unspaced(self, value: str, kind: str) -> None:
        for run in re.findall(r"[^\W\d_]+", value):
            if _UNSPACED.search(run) and len(run) >= 2:
                self.unspaced.setdefault(run, kind)

    # -- matching ----------------------------------------------------------------------------
    def searchable(self, include_weak: bool = True, min_digits: int = MIN_LEN, min_len: int = MIN_LEN) -> list[str]:
        pool = self.values | self.weak if include_weak else self.values
        return sorted(
            v
            for v in pool
            if len(v.replace(" ", "")) >= min_len
            and v not in _STOPWORDS
            and (not v.replace(" ", "").isdigit() or len(v.replace(" ", "")) >= min_digits)
        )

    def matcher(self, include_weak: bool = True, min_digits: int = MIN_LEN, min_len: int = MIN_LEN) -> TermMatcher | None:
        """The searchable values as a :class:`TermMatcher` (memoised until the set changes)."""
        key = ("m", include_weak, min_digits * 100 + min_len)
        if key not in self._cache:
            terms = self.searchable(include_weak, min_digits, min_len)
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

    def _word_terms(self, context: str) -> tuple[dict[tuple[str, ...], str], list[int], frozenset[str]]:
        """Terms as word tuples for positional matching, narrowed by context, with their lengths
        and every word they contain (a text none of whose words is one cannot match): memoised."""
        key = ("w", False, {"text": 0, "coded": 1, "device": 2}.get(context, 0))
        cached = self._cache.get(key)
        if cached is not None:
            return cached  # type: ignore[return-value]
        vocab = dicom_vocabulary() if context in ("coded", "device") else frozenset()
        out: dict[tuple[str, ...], str] = {}
        pool = self.values if context == "device" else self.values | self.weak
        for term in pool:
            if term in _STOPWORDS or term in _PARTICLES:
                continue
            words = tuple(term.split(" "))
            flat = "".join(words)
            kind = self.kinds.get(term, "identifier")
            if len(flat) < MIN_LEN and (flat.isdigit() or kind not in NAME_KINDS):
                continue  # short numbers (measurements, counts) and short codes; short NAMES are searched
            if context != "text" and (len(flat) < MIN_LEN or (len(words) == 1 and flat in vocab)):
                continue  # DICOM's own words and short name parts in coded/device values
            out[words] = kind
        result = (out, sorted({len(t) for t in out}), frozenset(w for t in out for w in t))
        self._cache[key] = result  # type: ignore[assignment]
        return result

    def find(self, text: str, context: str = "text", language: str | None = None) -> list[Hit]:
        """Spans of ``text`` holding one of this file's identifying values, in any form.

        ``context``: ``"text"`` (descriptions, comments, code meanings, private
        text: every form), ``"coded"`` (CS values: not DICOM's own words, no
        short name parts), ``"device"`` (manufacturer/model/software: strong
        values only), ``"number"`` (DS/IS/binary numbers: whole identifiers only).
        """
        if not text:
            return []
        memo_key = ("f", context, text)
        memo = self._cache.get(memo_key)  # the verifier asks again about what the cleaner kept
        if memo is not None:
            return list(memo)  # type: ignore[arg-type]
        hits = self._find(text, context, language)
        if len(self._cache) < 4096:
            self._cache[memo_key] = tuple(hits)  # type: ignore[assignment]
        return hits

    def _find(self, text: str, context: str, language: str | None) -> list[Hit]:
        hits: list[Hit] = []
        if context == "number":
            digits = re.sub(r"\D", "", text)
            for part in re.split(r"\\", text):
                d = re.sub(r"\D", "", part.split(".")[0])
                if len(d) >= 6 and d in self.digits:
                    hits.append((self.digits[d], 0, len(text)))
            return hits if digits else []
        terms, lengths, vocabulary = self._word_terms(context)
        if terms:
            words = [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]
            folded = [_fold_word(w) for w, _s, _e in words]
            if vocabulary.isdisjoint(folded):
                folded = []  # no word of any term: nothing to align
            for i in range(len(folded)):
                for n in lengths:
                    if i + n > len(folded):
                        break
                    kind = terms.get(tuple(folded[i : i + n]))
                    if kind is not None:
                        hits.append((kind, words[i][1], words[i + n - 1][2]))
        if self.digits:
            for m in _DIGIT_RUN.finditer(text):
                run = m.group()
                flat = re.sub(r"\D", "", run)
                if len(flat) < MIN_ID_DIGITS:
                    continue
                for digits, kind in self.digits.items():
                    if digits in flat and (len(digits) >= 6 or flat == digits):
                        hits.append((kind, m.start(), m.end()))
                        break
        if self.unspaced and context != "device":
            for name, kind in self.unspaced.items():
                start = text.find(name)
                while start >= 0:
                    hits.append((kind, start, start + len(name)))
                    start = text.find(name, start + 1)
        if self.dates and context == "text" and any(c.isdigit() for c in text):
            from anonymization.recognizers.dates import find_dates

            for lang in ((language,) if language else ("es", "pt", "en")):
                for dm in find_dates(text, lang):
                    if dm.date is not None and dm.date in self.dates and not dm.partial:
                        hits.append((self.dates[dm.date], dm.start, dm.end))
        return hits

    def found(self, text: str, context: str = "text") -> list[str]:
        """Kinds of value found in ``text`` (the verifier's question)."""
        return sorted({k for k, _s, _e in self.find(text, context)})


DEVICE_FIELDS = frozenset({"Manufacturer", "ManufacturerModelName", "SoftwareVersions"})


def remove_spans(text: str, hits: list[Hit]) -> str:
    """``text`` without the hit spans, spaces collapsed (what a cleaned descriptor keeps)."""
    if not hits:
        return text
    out, pos = [], 0
    for _k, s, e in sorted(hits, key=lambda h: (h[1], -h[2])):
        if s < pos:
            s = pos
        if e <= s:
            continue
        out.append(text[pos:s])
        pos = e
    out.append(text[pos:])
    return re.sub(r"\s{2,}", " ", "".join(out)).strip(" ,;:-")


def scan_texts(phi: PhiSet, texts: Iterable[tuple[str, str]]) -> list[str]:
    """Return the locations (never the values) whose text contains an original value.

    Each text is searched on its own (a name split across two attributes is
    not a hit); device fields (Retain Device Identity) only for strong values.
    """
    hits = []
    for where, text in texts:
        context = "device" if where.rsplit(".", 1)[-1] in DEVICE_FIELDS else "text"
        if phi.find(text, context):
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
