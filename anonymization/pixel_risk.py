"""The one pixel-risk rule: may this file's pixels carry burned-in text?

PS3.15 E.3.1 (Clean Pixel Data Option, 113101) asks for burned-in text to be
removed, but decoding and OCR-checking every pixel is what makes
de-identification slow, so the decision is made from the header alone, by
data: the profile's ``pixel_risk:`` section (``include/profiles/*.yaml``,
schema :class:`foundation.profiles.PixelRisk`). :func:`pixels_at_risk` is the
only function that evaluates it; ``sta deid``, the partner DAG (both through
the de-identifier), the benchmark and the tests all call it.

Besides the rule, a sampled **audit**: a deterministic share
(``audit_rate``) of the files the rule calls safe is OCR-checked anyway. A
hit quarantines that file and :func:`raise_class` marks its class (modality,
manufacturer, model, SOP class) at risk for the rest of the process, so the
rule learns from what it missed instead of missing it again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

#: Classes raised to at-risk by an audit hit in this process: (modality, manufacturer, model, sop class).
_RAISED: set[tuple[str, str, str, str]] = set()


@dataclass(frozen=True)
class RiskDecision:
    """The rule's answer; truthy when the pixels must be OCR-cleaned.

    ``reason`` names the flag that decided (``modality:US``, ``sop_class``,
    ``image_type:SCREEN SAVE``...): header codes only, never a value that
    identifies anyone, so it may be logged.
    """

    at_risk: bool
    reason: str
    audit: bool = False

    def __bool__(self) -> bool:
        return self.at_risk


def _text(header: Any, keyword: str) -> str:
    value = header.get(keyword, None)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _values(header: Any, keyword: str) -> list[str]:
    return [v.strip().upper() for v in _text(header, keyword).split("\\") if v.strip()]


def _has_pixels(header: Any) -> bool:
    try:
        return any(kw in header for kw in PIXEL_KEYWORDS)
    except TypeError:
        return False


def _rule(profile: Any) -> Any:
    """The ``pixel_risk`` section of a Profile, or a bare section/mapping (tests, old callers)."""
    for attr in ("pixel_risk", "pixel_policy"):
        if hasattr(profile, attr):
            return getattr(profile, attr)
    if profile is None:
        from foundation.profiles import load_profile

        return load_profile("base").pixel_risk
    if isinstance(profile, Mapping):
        from foundation.profiles import PixelRisk, load_profile

        base = load_profile("base").pixel_risk.model_dump()
        return PixelRisk.model_validate({**base, **profile, "modalities": {**base["modalities"], **(profile.get("modalities") or {})}})
    return profile


def _sop_match(uid: str, patterns: Iterable[str]) -> bool:
    for p in patterns:
        p = p.strip()
        if p.endswith(".*"):
            if uid.startswith(p[:-1]):
                return True
        elif uid == p:
            return True
    return False


def class_key(header: Any) -> tuple[str, str, str, str]:
    """What an audit hit raises to at-risk: this device's images of this kind."""
    return (
        _text(header, "Modality").strip().upper(),
        _text(header, "Manufacturer").strip().upper(),
        _text(header, "ManufacturerModelName").strip().upper(),
        _text(header, "SOPClassUID").strip(),
    )


def raise_class(header: Any) -> None:
    """An audit found text the rule missed: files of this class are at risk from now on (this process)."""
    _RAISED.add(class_key(header))


def raised_classes() -> set[tuple[str, str, str, str]]:
    return set(_RAISED)


def _sampled(header: Any, rate: float) -> bool:
    """Deterministic sampling by SOP Instance UID: a re-run audits the same files."""
    if rate <= 0:
        return False
    if rate >= 1:
        return True
    uid = _text(header, "SOPInstanceUID").strip().encode("ascii", "replace")
    h = int.from_bytes(hashlib.blake2b(uid, digest_size=8).digest(), "big")
    return h / 2**64 < rate


def pixels_at_risk(header: Any, profile: Any = None, *, has_pixels: bool | None = None) -> RiskDecision:
    """Whether ``header``'s pixels may carry burned-in text, by the profile's ``pixel_risk`` rule.

    ``header``: anything with ``get(keyword, default)`` and ``keyword in
    header`` (a pydicom Dataset, the de-identifier's header view).
    ``profile``: a :class:`~foundation.profiles.Profile` (its
    ``options.clean_pixel_data`` off means nothing is at risk), its
    ``pixel_risk`` section, or a mapping overriding the base profile's
    section; None: the base profile. ``has_pixels``: whether the file has a
    pixel data element (a reader that stops before the pixels knows it);
    None: asked of ``header``.
    """
    if has_pixels is None:
        has_pixels = _has_pixels(header)
    if not has_pixels:
        return RiskDecision(False, "no_pixels")
    options = getattr(profile, "options", None)
    if options is not None and not getattr(options, "clean_pixel_data", True):
        return RiskDecision(False, "clean_pixel_data_off")
    rule = _rule(profile)
    modality = _text(header, "Modality").strip().upper()
    mode = rule.mode(modality)

    # Hard flags: count whatever the modality's mode.
    burned = _values(header, "BurnedInAnnotation")
    wanted = {v.upper() for v in rule.burned_in_annotation}
    if any(v in wanted for v in burned):
        return RiskDecision(True, "burned_in_annotation")
    if _sop_match(_text(header, "SOPClassUID").strip(), rule.sop_classes):
        return RiskDecision(True, "sop_class")
    if class_key(header) in _RAISED:
        return RiskDecision(True, "audit_class")
    if mode == "always":
        return RiskDecision(True, f"modality:{modality or 'none'}")
    if mode == "flagged":
        image_type = set(_values(header, "ImageType"))
        for v in rule.image_type:
            if v.upper() in image_type:
                return RiskDecision(True, f"image_type:{v.upper()}")
        conversion = set(_values(header, "ConversionType"))
        for v in rule.conversion_type:
            if v.upper() in conversion:
                return RiskDecision(True, f"conversion_type:{v.upper()}")
        description = _text(header, "SeriesDescription").upper()
        for v in rule.series_description:
            if v.upper() in description:
                return RiskDecision(True, "series_description")
    return RiskDecision(False, f"modality:{modality or 'none'}:{mode}", audit=_sampled(header, rule.audit_rate))
