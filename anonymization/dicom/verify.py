"""Verification: nothing of the input's identity survives in what is about to be written.

Two scans, both with the rule the cleaner used (``actions.identifying_spans``
over ``phi_scan.PhiSet``), so a value the cleaner kept is a value the
verifier accepts and the verifier's hits are real residuals:

1. every decoded output value at any depth, each searched in its context
   (free text, codes, device fields, numbers);
2. the written header bytes: binary elements for the strong values, and the
   whole header for names encoded in the file's own character sets.

Values the de-identifier writes itself (token, method attributes, remapped
UIDs, shifted dates, the age) are not original values and are not searched:
the method code meanings ("Clean Pixel Data Option") are not a patient called
"Data". A hit raises ``Quarantine("residual_phi", "(gggg,eeee) kind")``: the
element and the kind of value, never the value.
"""

from __future__ import annotations

from pydicom.charset import encode_string

from anonymization.dicom.actions import FREE_TEXT_VRS, OWN_TAGS, context_of, identifying_spans
from anonymization.dicom.errors import Quarantine
from anonymization.dicom.header import PIXEL_TAGS
from anonymization.dicom_elements import BINARY_NUMBERS, Node, keyword, number_text, walk
from anonymization.phi_scan import PhiSet, scan_bytes

_SKIP_VRS = frozenset({"UI", "DA", "DT", "TM", "AS"})  # remapped or shifted by the de-identifier
_BINARY = frozenset({"OB", "OW", "OD", "OF", "OL", "OV", "UN"})


def tag_name(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def residuals(phi: PhiSet, nodes: list[Node]) -> list[tuple[int, str]]:
    """(tag, kind) of every output value holding an identifying value of the input."""
    found: list[tuple[int, str]] = []
    for path, n in walk(nodes):
        if path[0] in OWN_TAGS or n.items is not None or n.tag in PIXEL_TAGS:
            continue
        if n.values is not None:
            if n.vr in _SKIP_VRS:
                continue
            context = "text" if n.private else context_of(keyword(n.tag), n.vr)
            texts = [n.values[0]] if n.vr in FREE_TEXT_VRS else n.values
            for text in texts:
                for kind, _s, _e in identifying_spans(phi, text, context, recognisers=n.vr != "PN"):
                    found.append((n.tag, kind))
        elif n.vr in BINARY_NUMBERS and n.vr != "AT":
            for kind, _s, _e in phi.find(number_text(n), "number"):
                found.append((n.tag, kind))
    return found


def binary_nodes(nodes: list[Node]) -> list[Node]:
    """Binary elements (OB, UN ...) outside the pixel data: searched as bytes."""
    return [n for path, n in walk(nodes)
            if n.vr in _BINARY and n.tag not in PIXEL_TAGS and path[0] not in OWN_TAGS and n.raw]


def _kind_in_bytes(phi: PhiSet, data: bytes, encodings: tuple[str, ...]) -> str | None:
    """The kind of the first strong value found in ``data`` (8+ digit numbers, names of 4+ letters)."""
    if not scan_bytes(phi, data, encodings):
        return None
    for term in phi.searchable(include_weak=False, min_digits=8):
        if scan_bytes(_single(phi, term), data, encodings):
            return phi.kinds.get(term, "identifier")
    return "identifier"


def _single(phi: PhiSet, term: str) -> PhiSet:
    one = PhiSet()
    one.values.add(term)
    return one


def check_values(phi: PhiSet, nodes: list[Node]) -> None:
    hits = residuals(phi, nodes)
    if hits:
        names = list(dict.fromkeys(f"{tag_name(t)} {k}" for t, k in hits))
        raise Quarantine("residual_phi", ", ".join(names[:3]))


def check_bytes(phi: PhiSet, nodes: list[Node], header_bytes: bytes, encodings: tuple[str, ...]) -> None:
    for n in binary_nodes(nodes):
        kind = _kind_in_bytes(phi, n.raw or b"", python_encodings(encodings))
        if kind is not None:
            raise Quarantine("residual_phi", f"{tag_name(n.tag)} {kind}")
    if raw_hit(phi, header_bytes, encodings):
        raise Quarantine("residual_phi", "header bytes person_name")


def python_encodings(encodings: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(["latin-1", "utf-8", *encodings]))


def raw_hit(phi: PhiSet, data: bytes, encodings: tuple[str, ...]) -> bool:
    """Original values encoded in the file's own character set (e.g. ISO 2022 names)."""
    for value in phi.raw:
        if len(value) < 4 and not any(ord(c) > 127 for c in value):
            continue
        for part in {value, *value.replace("=", "^").split("^")}:
            part = part.strip()
            if len(part) < 2 or (part.isascii() and len(part) < 4):
                continue
            try:
                encoded = encode_string(part, list(encodings))
            except Exception:  # noqa: BLE001
                continue
            if encoded and not encoded.isascii() and encoded in data:
                return True
    return False
