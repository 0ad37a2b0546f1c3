"""Display names for the page: partners, and label concepts.

Partner display names for the page ("Clínica de los Andes (Bogotá)"
rather than ``clinica_andes_co``): from each partner's YAML ``name``; a
partner without a YAML here (another region's service, a synthetic store)
gets its id made readable."""

from __future__ import annotations

import logging
from functools import lru_cache

log = logging.getLogger(__name__)
_REGION_PREFIXES = ("co_", "br_", "ar_", "ec_", "cl_", "us_", "mx_", "pe_")


@lru_cache(maxsize=1)
def _configured() -> dict[str, str]:
    try:
        from foundation.partners import load_partners_checked

        partners, _errors = load_partners_checked()
        return {p.id: p.name for p in partners if getattr(p, "name", None)}
    except Exception:  # noqa: BLE001 - names are cosmetic; ids still work
        log.warning("partner names unavailable; showing partner ids", exc_info=True)
        return {}


def display_name(partner_id: str) -> str:
    name = _configured().get(partner_id)
    if name:
        return name
    pid = partner_id
    for p in _REGION_PREFIXES:
        if pid.startswith(p):
            pid = pid[len(p):]
            break
    if pid.endswith(tuple("_" + p.rstrip("_") for p in _REGION_PREFIXES)):
        pid = pid.rsplit("_", 1)[0]
    return " ".join(w.capitalize() for w in pid.split("_") if w) or partner_id


def display_names(partner_ids: list[str]) -> dict[str, str]:
    return {p: display_name(p) for p in partner_ids}


@lru_cache(maxsize=1)
def label_vocabulary() -> dict:
    """``{"concepts": {id: {"group", "label": {es, pt, en}}}}`` from the
    labeller's vocabulary (include/labelling/concepts.yaml); scores such as
    BI-RADS are named by the page ("BI-RADS 4")."""
    try:
        from labelling.concepts import vocabulary

        vocab = vocabulary()
        return {"concepts": {c.id: {"group": c.group, "label": dict(c.label)} for c in vocab.concepts.values()}}
    except Exception:  # noqa: BLE001 - names are cosmetic; concept ids still work
        log.warning("label vocabulary unavailable; showing concept ids", exc_info=True)
        return {"concepts": {}}
