"""Residual-PHI scan: look for a file's own original identifiers in its output.

The de-identifier collects every identifying value it saw in the input (names
in all their spellings, IDs, addresses, dates in the formats people write
them) and searches the output for them, decoded and as raw bytes in the file's
character set. Any hit refuses publication: the rules may have a gap, the
scan is the second line that catches it (fail closed).
"""

from __future__ import annotations

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


def normalise(value: str) -> str:
    """Case-, accent- and punctuation-insensitive form (keeps non-Latin letters)."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", stripped.upper()).strip()


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
    return out


@dataclass
class PhiSet:
    """The identifying values of one input, in normalised form."""

    values: set[str] = field(default_factory=set)
    raw: set[str] = field(default_factory=set)  # as written, for reports and byte search
    # Institution and station names: identifying, but vendors' test files often
    # name the vendor as the institution; they are not searched in device fields.
    weak: set[str] = field(default_factory=set)

    def add_text(self, value: str, *, weak: bool = False) -> None:
        value = str(value).strip()
        if not value:
            return
        self.raw.add(value)
        (self.weak if weak else self.values).add(normalise(value))

    def add_name(self, pn: str) -> None:
        if str(pn).strip():
            self.raw.add(str(pn).strip())
            self.values.update(name_variants(str(pn)))

    def add_date(self, value: str) -> None:
        if value.strip():
            self.raw.add(value.strip())
            self.values.update(date_variants(value))

    def add_time(self, value: str) -> None:
        digits = re.sub(r"[^0-9]", "", value.split(".")[0])
        if len(digits) == 6:
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

    def pattern(self, include_weak: bool = True, min_digits: int = MIN_LEN) -> re.Pattern[str] | None:
        terms = self.searchable(include_weak, min_digits)
        if not terms:
            return None
        alternation = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in sorted(terms, key=len, reverse=True))
        return re.compile(rf"(?<![^\W_])(?:{alternation})(?![^\W_])")


DEVICE_FIELDS = frozenset({"Manufacturer", "ManufacturerModelName", "SoftwareVersions"})


def scan_texts(phi: PhiSet, texts: Iterable[tuple[str, str]]) -> list[str]:
    """Return the locations (never the values) whose text contains an original value."""
    strong, full = phi.pattern(include_weak=False), phi.pattern()
    hits = []
    for where, text in texts:
        pattern = strong if where.rsplit(".", 1)[-1] in DEVICE_FIELDS else full
        if pattern is not None and pattern.search(normalise(text)):
            hits.append(where)
    return hits


def scan_bytes(phi: PhiSet, data: bytes, encodings: Iterable[str] = ("latin-1", "utf-8")) -> bool:
    """Search raw bytes (every element, whatever its VR) for the strong values.

    Short numbers (a 5-digit study id) occur inside UIDs and binary values by
    chance; they are searched in the decoded text values instead (scan_texts).
    """
    pattern = phi.pattern(include_weak=False, min_digits=8)
    if pattern is None:
        return False
    for enc in encodings:
        try:
            text = data.decode(enc, errors="ignore")
        except LookupError:
            continue
        if pattern.search(normalise(text)):
            return True
    return False
