"""Profiles are configuration (:mod:`foundation.profiles`); here, choosing one per file.

A partner names its jurisdiction's profile (or gets its country's default);
the profile's ``per_file`` rules pick a modality/region variant for each file
from its header (mammography, ultrasound ...). :class:`ProfileSet` resolves
the whole set once per worker (each with the partner's overrides) and
:meth:`ProfileSet.choose` is the per-file decision; the chosen name is
recorded in every result row and manifest line.
"""

from __future__ import annotations

from typing import Any

from foundation.profiles import *  # noqa: F401,F403
from foundation.profiles import (  # noqa: F401 - names used by anonymization modules
    OPTION_CODES,
    PROFILES_DIR,
    Options,
    PixelMode,
    PixelPolicy,
    Profile,
    ProfileError,
    SafePrivate,
    available_profiles,
    load_profile,
    profiles_dir,
)


class ProfileSet:
    """A base profile and the per-file variants its rules can choose."""

    def __init__(self, base: Profile, variants: dict[str, Profile] | None = None) -> None:
        self.base = base
        self.variants = variants or {}

    @classmethod
    def single(cls, profile: Profile) -> "ProfileSet":
        """A set that always answers ``profile`` (callers that pass one Profile)."""
        return cls(profile.model_copy(update={"per_file": []}))

    @classmethod
    def load(cls, name: str, overrides: dict[str, Any] | None = None, where: str = "profile") -> "ProfileSet":
        base = load_profile(name, overrides, where=where)
        variants: dict[str, Profile] = {}
        for rule in base.per_file:
            if rule.profile not in variants:
                variant = load_profile(rule.profile, overrides, where=f"{where}: per_file")
                if variant.jurisdiction != base.jurisdiction:
                    raise ProfileError(f"{where}: per_file profile {rule.profile!r} is {variant.jurisdiction!r}, "
                                       f"not {base.jurisdiction!r} like {name!r}")
                variants[rule.profile] = variant
        return cls(base, variants)

    def choose(self, header: Any) -> Profile:
        """The profile for one file: the first ``per_file`` rule its header matches, else the base."""
        for rule in self.base.per_file:
            if rule.matches(header):
                return self.variants[rule.profile]
        return self.base

    def names(self) -> list[str]:
        return [self.base.name, *self.variants]
