"""De-identification profiles: YAML files in ``include/profiles``.

A profile names the PS3.15 Annex E options it applies (CID 7050 codes are
recorded in each output file), the attributes kept or removed beyond the
table, the pixel policy per modality, and jurisdiction rules such as the US
age cap. Profiles extend each other (``extends``) and a partner may override
fields; every combination is validated when loaded, so an unknown profile or a
misspelt option fails the DAG factory, not a task at 3 a.m.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when built with it: 10x faster
from foundation.paths import PROFILES_DIR

# PS3.16 CID 7050 "De-identification Method": option -> (code value, meaning)
OPTION_CODES: dict[str, tuple[str, str]] = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel_data": ("113101", "Clean Pixel Data Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_longitudinal_full_dates": ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    "retain_longitudinal_modified_dates": ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}

PixelMode = Literal["always", "flagged", "never"]


class ProfileError(ValueError):
    """An unknown or invalid profile; the message names it and where it was asked for."""


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retain_longitudinal_modified_dates: bool = True
    retain_patient_characteristics: bool = True
    retain_device_identity: bool = True
    clean_descriptors: bool = True
    clean_graphics: bool = True
    clean_pixel_data: bool = True
    retain_safe_private: bool = False
    clean_structured_content: bool = False
    retain_institution_identity: bool = False
    # Never offered: full dates and original UIDs would defeat the promise.

    def enabled(self) -> list[str]:
        return [k for k, v in self.model_dump().items() if v]


class SafePrivate(BaseModel):
    """A private element known to carry no identity, e.g. a GE acquisition parameter."""

    model_config = ConfigDict(extra="forbid")
    creator: str
    elements: list[int] = Field(description="element offsets within the block (0x00-0xFF)")


class PixelRisk(BaseModel):
    """The ``pixel_risk:`` section: which files may carry burned-in text (PS3.15 E.3.1).

    Data only; :func:`anonymization.pixel_risk.pixels_at_risk` is the one
    function that evaluates it (for ``sta deid``, the DAG and the tests).
    Per modality: ``always`` (every file with pixels), ``flagged`` (when one
    of the header flags below matches), ``never`` (only the hard flags:
    ``burned_in_annotation`` and ``sop_classes``). ``audit_rate`` is the share
    of files called safe whose pixels are OCR-audited anyway.
    """

    model_config = ConfigDict(extra="forbid")
    default: PixelMode = "flagged"
    modalities: dict[str, PixelMode] = Field(default_factory=dict)
    sop_classes: list[str] = Field(default_factory=list, description="exact UIDs, or 'prefix.*' for a family")
    burned_in_annotation: list[str] = Field(default_factory=lambda: ["YES"])
    image_type: list[str] = Field(default_factory=list, description="any ImageType value in this list")
    conversion_type: list[str] = Field(default_factory=list)
    series_description: list[str] = Field(default_factory=list, description="case-insensitive substrings")
    audit_rate: float = Field(default=0.0, ge=0.0, le=1.0)

    def mode(self, modality: str | None) -> PixelMode:
        return {k.upper(): v for k, v in self.modalities.items()}.get((modality or "").upper(), self.default)


PixelPolicy = PixelRisk  # the section's former name (still accepted as ``pixel_policy:``)


class PerFileRule(BaseModel):
    """``when`` (header keyword -> accepted values, upper case; BodyPartExamined also matches the
    body region) then ``profile``: data, so a new modality/region override is a new YAML line."""

    model_config = ConfigDict(extra="forbid")
    when: dict[str, list[str]]
    profile: str

    def matches(self, header: Any) -> bool:
        for kw, wanted in self.when.items():
            value = header.get(kw, None)
            values = value if isinstance(value, (list, tuple)) else [value]
            got = {str(v).strip().upper() for v in values if v not in (None, "")}
            if not got & {w.upper() for w in wanted}:
                return False
        return True


class Profile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    extends: str | None = None
    options: Options = Field(default_factory=Options)
    keep: list[str] = Field(default_factory=list)
    remove: list[str] = Field(default_factory=list)
    safe_private: list[SafePrivate] = Field(default_factory=list)
    pixel_risk: PixelRisk = Field(default_factory=PixelRisk)
    age_cap: int | None = Field(default=None, ge=1, le=130)
    date_shift_range_days: tuple[int, int] = (-3650, -366)
    # (deid-core) How dates leave: "shift" (one offset per patient token, PS3.15 option 113107,
    # an expert-determination choice under HIPAA) or "year" (HIPAA Safe Harbor: the year alone).
    date_mode: Literal["shift", "year"] = "shift"
    # Free text (LT/ST/UT: comments, SR text) the rules keep: scrubbed with surrogates, or removed.
    free_text: Literal["scrub", "remove"] = "scrub"
    # The jurisdiction whose law the profile implements ("latam", "us"): partners of a country
    # may only use profiles of their jurisdiction (checked when the partner file is loaded).
    jurisdiction: str = "latam"
    # Per-file overrides (issue 16.3), first match wins: a file whose header matches ``when``
    # is de-identified with ``profile`` (e.g. mammography, ultrasound) instead of this one.
    per_file: list["PerFileRule"] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_date_range(self) -> "Profile":
        """Date offsets come from one deployment-wide range (anonymization.keys), so that a patient
        seen by two partners has one offset: a profile cannot change it (deid-core)."""
        if tuple(self.date_shift_range_days) != (-3650, -366):
            raise ValueError("date_shift_range_days is deployment-wide (-3650, -366) and cannot be changed per profile")
        return self

    @model_validator(mode="before")
    @classmethod
    def _former_pixel_policy(cls, data: Any) -> Any:
        """Partner overrides written as ``pixel_policy:`` (the former name) still apply."""
        if isinstance(data, dict) and "pixel_policy" in data:
            data = dict(data)
            old = data.pop("pixel_policy") or {}
            data["pixel_risk"] = _deep_merge(data.get("pixel_risk") or {}, old)
        return data

    @property
    def pixel_policy(self) -> PixelRisk:
        return self.pixel_risk

    def method_codes(self) -> list[tuple[str, str]]:
        names = ["basic"] + [o for o in self.options.enabled() if o in OPTION_CODES]
        return [OPTION_CODES[n] for n in names]


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def profiles_dir() -> Path:
    return Path(os.environ.get("STA_PROFILES_DIR") or PROFILES_DIR)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in profiles_dir().glob("*.yaml"))


def _raw(name: str, where: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    if name in seen:
        raise ProfileError(f"{where}: profile {name!r} extends itself ({' -> '.join(seen + (name,))})")
    path = profiles_dir() / f"{name}.yaml"
    if not path.exists():
        raise ProfileError(
            f"{where}: unknown de-identification profile {name!r}; known: {', '.join(available_profiles())}"
        )
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader) or {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile must be a mapping")
    if data.get("name", name) != name:
        raise ProfileError(f"{path}: name {data.get('name')!r} must match the file name {name!r}")
    parent = data.get("extends")
    if parent:
        base = _raw(parent, str(path), seen + (name,))
        merged = _deep_merge(base, data)
        # lists accumulate along the chain: a child adds keeps and removals
        for key in ("keep", "remove"):
            merged[key] = list(dict.fromkeys(base.get(key, []) + data.get(key, [])))
        return merged
    return data


@lru_cache(maxsize=64)
def _load_cached(name: str, overrides_yaml: str, where: str) -> Profile:
    data = _raw(name, where)
    overrides = yaml.safe_load(overrides_yaml) or {}
    if overrides:
        data = _deep_merge(data, overrides)
        data["name"] = name
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ProfileError(f"{where}: invalid profile {name!r}: {details}") from exc


def load_profile(name: str, overrides: dict[str, Any] | None = None, where: str = "profile") -> Profile:
    """Resolve ``name`` (and its ``extends`` chain) plus partner overrides."""
    return _load_cached(name, yaml.safe_dump(overrides or {}, sort_keys=True), where)


# (deid-core) The profile a partner gets when its file names none, by country (ISO 3166 alpha-2).
DEFAULT_PROFILE_BY_COUNTRY = {"us": "us_hipaa"}
DEFAULT_PROFILE = "latam"


def default_profile(country: str) -> str:
    return DEFAULT_PROFILE_BY_COUNTRY.get(country, DEFAULT_PROFILE)


def check_jurisdiction(country: str, profile: Profile, where: str, overrides: dict[str, Any] | None = None) -> None:
    """A US partner's files follow HIPAA (issue 10.7): its profile, and every per-file override the
    profile can choose, must be a US one (``jurisdiction: us``); raises :class:`ProfileError`."""
    if country != "us":
        return
    names = [profile.name] + [rule.profile for rule in profile.per_file]
    for name in names:
        p = profile if name == profile.name else load_profile(name, overrides, where=where)
        if p.jurisdiction != "us":
            raise ProfileError(
                f"{where}: profile: a partner whose country is 'us' must use a US (HIPAA) profile; "
                f"{name!r} is a {p.jurisdiction!r} profile (use us_hipaa, or us_hipaa_expert for date shifting)"
            )
