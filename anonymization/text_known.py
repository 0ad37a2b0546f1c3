"""Find the values the pipeline already knows (from the DICOM headers) in text.

The strongest evidence of PHI in a report is the patient's own data: the
pipeline knows the name, IDs, birth date, address, phone, physicians and
institution of the linked study, and passes them as ``known_phi``. Each kind
of value is matched in every spelling a report may use:

* person names (DICOM PN "PEREZ GOMEZ^JOSE LUIS" or plain "José Pérez"): each
  name part as a whole word, ignoring case and accents, in any order, so
  "Sr. Pérez", "JOSE LUIS PEREZ" and "Pérez Gómez, José" are all found;
* identifiers and phones: the digits with any separators between them
  ("1020345678" finds "1.020.345.678" and "10203456-78");
* dates (YYYYMMDD): compared as dates against every date in the text, so
  "12/05/1980" and "12 de mayo de 1980" match "19800512";
* other text (addresses, institutions): the whole phrase, ignoring case,
  accents and punctuation/spacing differences.

The same matcher checks the scrubbed text afterwards: anything still found
is a *residual* and the caller quarantines the report.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Sequence

from anonymization.recognizers.dates import find_dates

# Name parts too common to be matched alone (particles, titles, suffixes).
_NAME_STOP = {
    "de", "del", "la", "las", "los", "el", "da", "das", "do", "dos", "di", "van", "von", "der", "y", "e", "of",
    "dr", "dra", "sr", "sra", "mr", "mrs", "ms", "jr", "sr.", "ii", "iii", "md", "phd", "san", "santa",
}
_ORG_WORDS = re.compile(
    r"^(hospital|hosp|cl[ií]nica|clinic|centro|sanatorio|fundaci[oó]n|funda[cç][aã]o|instituto|santa casa|medical|health|ips|ese|laboratorio|laborat[oó]rio|policl[ií]nic)",
    re.IGNORECASE,
)


_FOLDED: dict[str, str] = {}


def _fold_char(ch: str) -> str:
    base = unicodedata.normalize("NFKD", ch)
    base = "".join(c for c in base if not unicodedata.combining(c)) or ch
    return (base[0].lower() or ch)[0]


def fold(s: str) -> str:
    """Lower-case without accents (same length as ``s``: one character for one)."""
    table = _FOLDED
    try:
        return "".join([table[ch] for ch in s])
    except KeyError:
        for ch in set(s):
            if ch not in table:
                table[ch] = _fold_char(ch)
        return "".join([table[ch] for ch in s])


@dataclass(frozen=True)
class KnownValue:
    kind: str  # PERSON | ID | DATE | TEXT
    value: str
    patterns: tuple[re.Pattern, ...] = ()
    date: dt.date | None = None


def _is_pn(v: str) -> bool:
    return "^" in v


def _looks_like_name(v: str) -> bool:
    words = v.replace(",", " ").split()
    return 1 <= len(words) <= 6 and all(re.fullmatch(r"[^\W\d_][^\W\d_'’.\-]*", w) for w in words) and not _ORG_WORDS.match(v)


def _name_parts(v: str) -> list[str]:
    parts = [p.strip(".") for p in re.split(r"[\s^,\-]+", fold(v)) if p]
    return [p for p in parts if len(p) >= 2 and p not in _NAME_STOP]


def _name_patterns(v: str) -> tuple[re.Pattern, ...]:
    parts = [p for p in re.split(r"[\s^,]+", fold(v)) if p]
    pats = []
    for p in parts:
        p = p.strip(".")
        if len(p) < 2 or p in _NAME_STOP:
            continue
        # Hyphenated surnames: each half on its own too.
        for q in {p, *p.split("-")}:
            if len(q) >= 2 and q not in _NAME_STOP:
                pats.append(re.compile(rf"(?<![^\W_]){re.escape(q)}(?![^\W_])"))
    return tuple(pats)


def _digits_pattern(v: str) -> re.Pattern:
    chars = [c for c in fold(v) if c.isalnum()]
    body = r"[\s.,\-/]?".join(re.escape(c) for c in chars)  # 1,098,765,432 too
    return re.compile(rf"(?<![0-9a-z]){body}(?![0-9a-z])")


def _phrase_pattern(v: str) -> re.Pattern:
    words = [w for w in re.split(r"[\W_]+", fold(v)) if w]
    body = r"[\W_]{1,4}".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![^\W_]){body}(?![^\W_])")


def _parse_dicom_date(v: str) -> dt.date | None:
    m = re.fullmatch(r"\s*(\d{4})-?(\d{2})-?(\d{2})\s*", v)
    if not m:
        return None
    try:
        return dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def classify(values: Iterable[str | tuple[str, str]]) -> list[KnownValue]:
    """Turn raw known values into typed matchers (kind guessed from the shape).

    A value may also be given as ``(kind, value)`` with kind PERSON, ID, DATE
    or TEXT when the caller knows it (e.g. a physician's name that looks like
    a phrase).
    """
    out: list[KnownValue] = []
    seen: set[tuple[str, str]] = set()
    for item in values:
        kind: str | None
        if isinstance(item, tuple):
            kind, v = item[0].upper(), str(item[1])
        else:
            kind, v = None, str(item)
        v = v.strip()
        if not v or (kind or "", v) in seen:
            continue
        seen.add((kind or "", v))
        date = _parse_dicom_date(v)
        if kind == "DATE" or kind is None and date is not None:
            if date is not None:
                out.append(KnownValue("DATE", v, (), date))
            continue
        alnum = [c for c in v if c.isalnum()]
        digits = sum(c.isdigit() for c in alnum)
        if kind == "ID" or kind is None and alnum and digits >= max(3, len(alnum) // 2):
            if len(alnum) >= 3:
                out.append(KnownValue("ID", v, (_digits_pattern(v),)))
            continue
        if kind == "PERSON" or kind is None and (_is_pn(v) or _looks_like_name(v)):
            pats = _name_patterns(v)
            if pats:
                out.append(KnownValue("PERSON", v, pats))
            continue
        if len(fold(v).strip()) >= 3:
            out.append(KnownValue("TEXT", v, (_phrase_pattern(v),)))
    return out


def find_known(text: str, known: Sequence[KnownValue], language: str = "es") -> list[tuple[str, int, int, float]]:
    """Spans of ``text`` holding any known value: (entity, start, end, score)."""
    if not known:
        return []
    folded = fold(text)
    spans: list[tuple[str, int, int, float]] = []
    dates = [k.date for k in known if k.kind == "DATE"]
    if dates:
        for dm in find_dates(text, language):
            if dm.date is not None and dm.date in dates:
                spans.append(("DATE", dm.start, dm.end, 1.0))
            # The same day month-first/day-first swapped is the same leak.
            elif dm.date is not None and dm.date.day <= 12:
                try:
                    swapped = dm.date.replace(month=dm.date.day, day=dm.date.month)
                except ValueError:
                    swapped = None
                if swapped in dates:
                    spans.append(("DATE", dm.start, dm.end, 1.0))
    entity_of = {"PERSON": "PERSON", "ID": "ID", "TEXT": "KNOWN"}
    for k in known:
        if k.kind == "DATE":
            continue
        for pat in k.patterns:
            for m in pat.finditer(folded):
                spans.append((entity_of[k.kind], m.start(), m.end(), 1.0))
    return spans


def residual(text: str, known: Sequence[KnownValue], language: str = "es") -> list[str]:
    """Known values still present in (scrubbed) ``text``; the caller quarantines."""
    left: list[str] = []
    folded = fold(text)
    for k in known:
        if k.kind == "DATE":
            if any(dm.date == k.date for dm in find_dates(text, language)):
                left.append(k.value)
        elif any(p.search(folded) for p in k.patterns):
            left.append(k.value)
        elif k.kind == "PERSON" and any(len(t) >= 5 and t in folded for t in _name_parts(k.value)):
            # Stricter than the scrubber: a name part glued into another word
            # ("JoséPérez", "perezgomez.dcm") is not scrubbed but still leaks.
            left.append(k.value)
    return left
