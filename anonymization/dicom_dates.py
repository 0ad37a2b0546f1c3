"""Shifting DICOM dates and times by a patient's offset (PS3.15 E.3.6 option 113107).

A Date and its Time attribute (StudyDate/StudyTime, ...) are shifted together
as one datetime so that intervals between events survive to the second.
Anything that does not parse is reported as ``None`` so the caller removes it:
a date we cannot shift is a date we cannot publish.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

_DA = re.compile(r"^(\d{4})(\d{2})?(\d{2})?$")
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,6})?([+-]\d{4})?$")


def parse_da(value: str) -> date | None:
    v = value.strip().replace("-", "").replace(".", "") if len(value.strip()) == 10 else value.strip()
    m = _DA.match(v)
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError:
        return None


def parse_tm(value: str) -> time | None:
    m = _TM.match(value.strip().replace(":", ""))
    if not m:
        return None
    try:
        frac = m.group(4)
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        return time(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), micro)
    except ValueError:
        return None


def shift_date(d: date, offset: timedelta) -> date:
    """A calendar date moved by a patient's offset (whole days): the one rule for DICOM and reports."""
    return d + timedelta(days=offset.days)


def shift_da(value: str, offset: timedelta) -> str | None:
    d = parse_da(value)
    if d is None:
        return None
    return shift_date(d, offset).strftime("%Y%m%d")


def shift_tm(value: str, offset: timedelta) -> str | None:
    t = parse_tm(value)
    if t is None:
        return None
    shifted = (datetime.combine(date(2000, 1, 1), t) + timedelta(seconds=offset.seconds)).time()
    return _fmt_time(shifted, value)


def shift_da_tm(da: str, tm: str, offset: timedelta) -> tuple[str, str] | None:
    """A Date and its Time: the date by the offset's days, the time by its seconds (mod 24 h).

    The time never carries into the date, so the date moves exactly as the same
    date written alone (in another element or in a report) does.
    """
    d, t = parse_da(da), parse_tm(tm)
    if d is None or t is None:
        return None
    shifted = shift_tm(tm, offset)
    return shift_date(d, offset).strftime("%Y%m%d"), shifted if shifted is not None else tm


def shift_dt(value: str, offset: timedelta) -> str | None:
    m = _DT.match(value.strip())
    if not m:
        return None
    try:
        y, mo, d, h, mi, s = (int(m.group(i) or (1 if i in (2, 3) else 0)) for i in range(1, 7))
        frac = m.group(7) or ""
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        moved = shift_date(date(y, mo, d), offset)  # days on the date, seconds on the time (no carry)
        clock = (datetime.combine(date(2000, 1, 1), time(h, mi, s, micro)) + timedelta(seconds=offset.seconds)).time()
        dt = datetime.combine(moved, clock)
    except ValueError:
        return None
    out = dt.strftime("%Y%m%d%H%M%S")
    if frac:
        out += "." + f"{dt.microsecond:06d}"[: len(frac) - 1]
    return out + (m.group(8) or "")


def _fmt_time(t: time, like: str) -> str:
    out = t.strftime("%H%M%S")
    if "." in like:
        digits = len(like.split(".", 1)[1].strip())
        out += "." + f"{t.microsecond:06d}"[:digits]
    return out


def age_years(birth: date, at: date) -> int:
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def parse_age(value: str) -> int | None:
    """DICOM AS ('045Y', '006M', '010W', '003D') in whole years."""
    m = re.match(r"^(\d{3})([DWMY])$", value.strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}[unit]
