"""What happens to one attribute: PS3.15 E.1.1 actions resolved for a profile.

The table itself (``annex_e_table``) is generated from the standard. This
module only decides, for a tag in a dataset, which single action applies once
the profile's options are taken into account (PS3.15 E.3: an option's K or C
replaces the Basic Profile action) and how the standard's combined codes
(X/Z, X/D, Z/D, X/Z/D, X/Z/U*) are narrowed. We always pick the most
protective member that still leaves the file readable: X where the standard
allows removal, U for references so that they stay consistent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pydicom.datadict import keyword_for_tag

from anonymization.annex_e_table import ATTRIBUTES, MASKED
from anonymization.dicom_elements import TEXT_VRS
from anonymization.profiles import Profile

# Actions after narrowing.
KEEP, REMOVE, EMPTY, DUMMY, CLEAN, UID = "K", "X", "Z", "D", "C", "U"

_NARROW = {"X/Z": REMOVE, "X/D": REMOVE, "X/Z/D": REMOVE, "Z/D": EMPTY, "X/Z/U*": UID}

DATE_VRS = frozenset({"DA", "DT", "TM"})


@dataclass(frozen=True)
class Rule:
    action: str
    listed: bool  # in Table E.1-1 (else: an attribute the standard does not list)


def table_entry(tag: int) -> tuple[str, str, dict[str, str]] | None:
    entry = ATTRIBUTES.get(tag)
    if entry is not None:
        return entry
    for mask, value, name, action, options in MASKED:
        if tag & mask == value:
            return (name, action, options)
    return None


class RuleBook:
    """Resolves actions for one profile; cached per tag because files repeat tags."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self._options = set(profile.options.enabled())
        self._keep = set(profile.keep)
        self._remove = set(profile.remove)
        self.rule = lru_cache(maxsize=4096)(self._rule)  # type: ignore[method-assign]

    def _rule(self, tag: int, vr: str) -> Rule:
        keyword = keyword_for_tag(tag)
        if keyword in self._remove:
            return Rule(REMOVE, True)
        entry = table_entry(tag)
        if entry is None:
            if vr == "SQ":
                return Rule(CLEAN, False)  # recurse: its items follow the same rules
            if vr == "UN":
                return Rule(REMOVE, False)  # unknown encoding may hide text
            if vr == "UI":
                return Rule(UID, False)  # remapped unless a registered (class) UID
            if vr in TEXT_VRS:
                return Rule(KEEP if keyword in self._keep else REMOVE, False)
            return Rule(KEEP, False)  # numbers, binary: geometry, pixel description
        _name, basic, options = entry
        action = _NARROW.get(basic, basic)
        for option, opt_action in options.items():
            if option in self._options:
                action = opt_action
                if opt_action == KEEP:
                    break
        # Attributes added to the standard after the option columns we have:
        # under the Modified Dates option their dates are shifted, not dropped.
        if not options and vr in DATE_VRS and basic in ("D", "Z/D") and "retain_longitudinal_modified_dates" in self._options:
            action = CLEAN
        return Rule(action, True)
