"""Dates in Spanish, Portuguese and English report text, and their shifting.

Dates are the PHI that must be *changed*, not deleted: research on imaging
needs the interval between a study and its report, so every date of a
patient moves by the same offset (the one used for the DICOM headers, PS3.15
E.3.6 "Retain Longitudinal Temporal Information with Modified Dates"). A
shifted date is written back in the style it was found in ("5 de abril de
2022" stays long-form Spanish, "05/04/22" stays two-digit-year numeric), so
that downstream readers and NLP see natural text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable

MONTHS: dict[str, list[list[str]]] = {
    # index 0..11: [full names..., abbreviations...]
    "es": [
        ["enero", "ene"], ["febrero", "feb"], ["marzo", "mar"], ["abril", "abr"], ["mayo", "may"],
        ["junio", "jun"], ["julio", "jul"], ["agosto", "ago"], ["septiembre", "setiembre", "sep", "sept", "set"],
        ["octubre", "oct"], ["noviembre", "nov"], ["diciembre", "dic"],
    ],
    "pt": [
        ["janeiro", "jan"], ["fevereiro", "fev"], ["março", "marco", "mar"], ["abril", "abr"], ["maio", "mai"],
        ["junho", "jun"], ["julho", "jul"], ["agosto", "ago"], ["setembro", "set"],
        ["outubro", "out"], ["novembro", "nov"], ["dezembro", "dez"],
    ],
    "en": [
        ["january", "jan"], ["february", "feb"], ["march", "mar"], ["april", "apr"], ["may"],
        ["june", "jun"], ["july", "jul"], ["august", "aug"], ["september", "sep", "sept"],
        ["october", "oct"], ["november", "nov"], ["december", "dec"],
    ],
}

# name -> (language, month number, is_full_name); first language wins for
# shared spellings, which only matters for how a shifted month is spelled.
_MONTH_LOOKUP: dict[str, tuple[str, int, bool]] = {}
for _lang in ("es", "pt", "en"):
    for _i, _names in enumerate(MONTHS[_lang]):
        for _j, _n in enumerate(_names):
            _MONTH_LOOKUP.setdefault(_n, (_lang, _i + 1, len(_n) > 4 or _j == 0))

# Per language: name -> (month number, is_full_name). A shifted month is
# spelled in the report's language whenever the word is one of its month
# names ("abril" in a Portuguese report stays Portuguese).
_LANG_LOOKUP: dict[str, dict[str, tuple[int, bool]]] = {
    lang: {n: (i + 1, len(n) > 4 or j == 0) for i, names in enumerate(MONTHS[lang]) for j, n in enumerate(names)} for lang in MONTHS
}

_MONTH_ALT = "|".join(sorted(_MONTH_LOOKUP, key=len, reverse=True))
_M = rf"(?P<m>{_MONTH_ALT})"

# Textual forms. Word boundaries use lookarounds on letters so "mayor" is
# not "may" + "or".
_TEXT_PATTERNS = [
    # 5 de abril de 2022 / 5 abril 2022 / 05-abr-2022 / 1º de maio de 2020 / 5 April 2022
    re.compile(
        rf"(?<![\w])(?P<d>[0-3]?\d)(?:º|°|o|(?P<sfx>st|nd|rd|th))?(?:\s+de\s+|\s+of\s+|\s+|[-/.]){_M}(?![^\W\d_])\.?"
        rf"(?:(?:\s+del?\s+|\s*,\s*|\s+|[-/.])(?P<y>(?:1[89]|20)\d\d|\d\d(?![\d:])))?(?!\w)",
        re.IGNORECASE,
    ),
    # April 5, 2022 / Apr. 5th 2022 / abril 5 de 2022
    re.compile(
        rf"(?<![\w]){_M}(?![^\W\d_])\.?\s+(?P<d>[0-3]?\d)(?P<sfx>st|nd|rd|th)?(?:\s*,\s*|\s+de\s+|\s+)(?P<y>(?:1[89]|20)\d\d)(?!\w)",
        re.IGNORECASE,
    ),
    # abril de 2022 / April 2022 / mar/2021 / septiembre del año 2000
    re.compile(rf"(?<![\w]){_M}(?![^\W\d_])\.?(?:\s+del?\s+(?:año\s+|ano\s+)?|\s+|/|-)(?P<y>(?:1[89]|20)\d\d)(?!\w)", re.IGNORECASE),
    # 03JUL1958 / 03Jul1958: the compact form RIS and DICOM viewers print
    re.compile(rf"(?<![\w])(?P<d>[0-3]\d){_M}(?P<y>(?:1[89]|20)\d\d)(?!\w)", re.IGNORECASE),
    # diciembre-03 / sep-04 / mar/21: month and a two-digit year
    re.compile(rf"(?<![\w]){_M}(?![^\W\d_])\.?(?:-|/)(?P<y>\d\d)(?![\w/-]|\.\d)", re.IGNORECASE),
]
# A full month name alone ("en octubre", "mes de abril"): a date element
# finer than the year (HIPAA). Spanish/Portuguese full names only, and
# English ones capitalised, except the ambiguous "May"/"March".
_MONTH_ALONE = re.compile(
    r"(?<![\w])(?P<m>enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre|"
    r"janeiro|fevereiro|março|maio|junho|julho|setembro|outubro|novembro|dezembro|"
    r"January|February|April|June|July|August|September|October|November|December)(?![\w])",
    re.IGNORECASE,
)
_RIO_DE = re.compile(r"\br[ií]o\s+de\s+$", re.IGNORECASE)
_ISO = re.compile(r"(?<![\w/.-])(?P<y>(?:1[89]|20)\d\d)(?P<s>[-/.])(?P<m>[01]?\d)(?P=s)(?P<d>[0-3]?\d)(?![\w/]|\.\d)")
_DMY = re.compile(r"(?<![\w/.-])(?P<a>[0-3]?\d)(?P<s>[-/.])(?P<b>[0-3]?\d)(?P=s)(?P<y>(?:1[89]|20)\d\d|\d\d)(?![\w/]|[.-]\d)")
_COMPACT = re.compile(r"(?<![\w.-])(?P<y>(?:19|20)\d\d)(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])(?![\w.-])")


@dataclass(frozen=True)
class DateMatch:
    start: int
    end: int
    date: dt.date | None  # None: looks like a date but is not one (31/02/2020)
    render: Callable[[dt.date], str] | None  # re-render a date in the found style
    partial: bool = False  # month+year or day+month only


def _year4(y: str) -> int:
    n = int(y)
    if len(y) == 2:
        # Two-digit years in reports: births last century, studies this one.
        return 2000 + n if n <= (dt.date.today().year % 100) + 1 else 1900 + n
    return n


def _month_word(orig: str, month: int, language: str | None = None) -> str:
    lang, _, full = _MONTH_LOOKUP[orig.lower()]
    if language in _LANG_LOOKUP and orig.lower() in _LANG_LOOKUP[language]:
        lang, full = language, _LANG_LOOKUP[language][orig.lower()][1]
    names = MONTHS[lang][month - 1]
    if full:
        word = names[0]
    else:
        abbrevs = [n for n in names if len(n) <= 4]
        word = abbrevs[0] if abbrevs else names[0][:3]
    if orig.isupper():
        return word.upper()
    if orig[:1].isupper():
        return word.capitalize()
    return word


def _pad(orig: str, n: int) -> str:
    return f"{n:02d}" if len(orig) == 2 else str(n)


def _ordinal(day: int, written: str) -> str:
    """The English ordinal suffix of ``day`` in the case it was written ("rd", "TH")."""
    sfx = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return sfx.upper() if written.isupper() else sfx


def _render_groups(m: re.Match, parts: dict[str, Callable[[dt.date], str]]) -> Callable[[dt.date], str]:
    """A renderer that rewrites only the named groups of a match."""
    text = m.group(0)
    base = m.start()
    spans = sorted(
        ((m.start(g) - base, m.end(g) - base, f) for g, f in parts.items() if m.group(g) is not None),
        key=lambda s: s[0],
    )

    def render(d: dt.date) -> str:
        out, pos = [], 0
        for s, e, f in spans:
            out.append(text[pos:s])
            out.append(f(d))
            pos = e
        out.append(text[pos:])
        return "".join(out)

    return render


def _safe_date(y: int, m: int, d: int) -> dt.date | None:
    try:
        return dt.date(y, m, d)
    except ValueError:
        return None


def find_dates(text: str, language: str = "es") -> list[DateMatch]:
    """Every date-like span of ``text`` (non-overlapping, longest first)."""
    found: list[DateMatch] = []
    taken: list[tuple[int, int]] = []

    def free(s: int, e: int) -> bool:
        return all(e <= ts or s >= te for ts, te in taken)

    def add(dm: DateMatch) -> None:
        found.append(dm)
        taken.append((dm.start, dm.end))

    for pat in _TEXT_PATTERNS:
        for m in pat.finditer(text):
            if not free(m.start(), m.end()):
                continue
            mword = m.group("m")
            month = (_LANG_LOOKUP.get(language, {}).get(mword.lower()) or _MONTH_LOOKUP[mword.lower()][1:])[0]
            gd = m.groupdict()
            dstr, ystr = gd.get("d"), gd.get("y")
            # "may" / "mar" / "set" alone next to a number are too ambiguous
            # in English/Portuguese prose unless a year or a long form is there.
            if ystr is None and len(mword) <= 3:
                continue
            if dstr is None and ystr is None:
                continue
            year = _year4(ystr) if ystr else 2000
            day = int(dstr) if dstr else 15
            date = _safe_date(year, month, day)
            parts: dict[str, Callable[[dt.date], str]] = {"m": lambda d, o=mword: _month_word(o, d.month, language)}
            if dstr:
                parts["d"] = lambda d, o=dstr: _pad(o, d.day)
            if gd.get("sfx"):  # "3rd" shifted to the 4th, not "4rd"
                parts["sfx"] = lambda d, o=gd["sfx"]: _ordinal(d.day, o)
            if ystr:
                parts["y"] = lambda d, o=ystr: f"{d.year % 100:02d}" if len(o) == 2 else f"{d.year}"
            add(DateMatch(m.start(), m.end(), date, _render_groups(m, parts), partial=not (dstr and ystr)))

    for m in _MONTH_ALONE.finditer(text):
        if not free(m.start(), m.end()):
            continue
        mword = m.group("m")
        if mword.lower() in _LANG_LOOKUP["en"] and mword.lower() not in _LANG_LOOKUP["es"] and mword.lower() not in _LANG_LOOKUP["pt"] and not mword[0].isupper():
            continue
        if _RIO_DE.search(text, 0, m.start()):
            continue  # "Rio de Janeiro" is a city, not January
        month = (_LANG_LOOKUP.get(language, {}).get(mword.lower()) or _MONTH_LOOKUP[mword.lower()][1:])[0]
        render = _render_groups(m, {"m": lambda d, o=mword: _month_word(o, d.month, language)})
        add(DateMatch(m.start(), m.end(), dt.date(2000, month, 15), render, partial=True))

    for m in _ISO.finditer(text):
        if not free(m.start(), m.end()):
            continue
        ys, ms, ds = m.group("y"), m.group("m"), m.group("d")
        date = _safe_date(int(ys), int(ms), int(ds))
        parts = {
            "y": lambda d: f"{d.year}",
            "m": lambda d, o=ms: _pad(o, d.month),
            "d": lambda d, o=ds: _pad(o, d.day),
        }
        add(DateMatch(m.start(), m.end(), date, _render_groups(m, parts)))

    for m in _DMY.finditer(text):
        if not free(m.start(), m.end()):
            continue
        a, b, ys = m.group("a"), m.group("b"), m.group("y")
        if m.group("s") == "." and len(ys) == 2 and len(a) == 1:
            continue  # "3.5.10" is a version or a measurement, not a date
        ai, bi = int(a), int(b)
        # Month-first only for English when the day-first reading is impossible
        # or the US reading is the only valid one.
        us_first = language == "en"
        order = ("m", "d") if us_first else ("d", "m")
        if us_first and ai > 12:
            order = ("d", "m")
        if not us_first and bi > 12 and ai <= 12:
            order = ("m", "d")
        day, month = (ai, bi) if order == ("d", "m") else (bi, ai)
        date = _safe_date(_year4(ys), month, day)
        ga, gb = ("d", "m") if order == ("d", "m") else ("m", "d")
        parts = {
            "a": (lambda d, o=a, g=ga: _pad(o, d.day if g == "d" else d.month)),
            "b": (lambda d, o=b, g=gb: _pad(o, d.day if g == "d" else d.month)),
            "y": (lambda d, o=ys: f"{d.year % 100:02d}" if len(o) == 2 else f"{d.year}"),
        }
        add(DateMatch(m.start(), m.end(), date, _render_groups(m, parts)))

    for m in _COMPACT.finditer(text):
        if not free(m.start(), m.end()):
            continue
        date = _safe_date(int(m.group("y")), int(m.group("m")), int(m.group("d")))
        if date is None:
            continue
        add(DateMatch(m.start(), m.end(), date, lambda d: d.strftime("%Y%m%d")))

    found.sort(key=lambda x: x.start)
    return found


def shift_date(d: dt.date, offset: dt.timedelta | int) -> dt.date | None:
    """``d`` moved by a patient's offset with the DICOM date-shift function.

    One function for every date of a patient, whichever file it is in: the
    report's dates move exactly as the DICOM DA values of the same patient
    (:func:`anonymization.dicom_dates.shift_date`), so a report's reference to
    a prior study matches that study's shifted header date.
    """
    from anonymization.dicom_dates import shift_date as dicom_shift_date

    off = offset if isinstance(offset, dt.timedelta) else dt.timedelta(days=int(offset))
    try:
        return dicom_shift_date(d, off)
    except (OverflowError, ValueError):
        return None


def shift_render(dm: DateMatch, offset: dt.timedelta | int) -> str | None:
    """The date moved by ``offset`` (a timedelta or whole days) in its original style, or None if unparseable."""
    if dm.date is None or dm.render is None:
        return None
    moved = shift_date(dm.date, offset)
    if moved is None:
        return None
    try:
        return dm.render(moved)
    except (OverflowError, ValueError):
        return None


def parse_date(text: str, language: str = "es") -> dt.date | None:
    """The first full date in ``text`` (helper for header fields)."""
    for dm in find_dates(text, language):
        if dm.date is not None and not dm.partial:
            return dm.date
    return None


# Clock times ("08:35", "14h20", "8:35:10 a.m."): with the date they pin an
# exam to a moment; a report keeps its clinical meaning without them.
TIME_RE = re.compile(
    r"(?<![\w:.,/])(?:[01]?\d|2[0-3])(?::|h(?=\d))[0-5]\d(?::[0-5]\d)?(?:\s?(?:[ap]\.?\s?m\.?|hs?|hrs?)(?![\w]))?(?![\w:]|[.,]\d)",
    re.IGNORECASE,
)


def find_times(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in TIME_RE.finditer(text)]
