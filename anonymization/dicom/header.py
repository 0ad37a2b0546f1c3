"""One header model, whichever reader produced it.

Both readers (the hand-written fast reader and pydicom's) turn a file's
dataset, up to the pixel data, into a list of :class:`Node` (see
``dicom_elements``) plus how it is encoded. Everything after reading (the
composite-object checks, the pixel-risk rule, identity, Annex E actions,
writing, verification) works on this model only, so every check exists once.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from pydicom.datadict import tag_for_keyword

from anonymization.dicom.errors import Quarantine
from anonymization.dicom_elements import BINARY_NUMBERS, Node

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData
_PIXEL_KEYWORDS = frozenset({"PixelData", "FloatPixelData", "DoubleFloatPixelData"})


@dataclass
class Header:
    """A dataset before its pixel data, and how the file encodes it."""

    nodes: list[Node]
    end: int  # offset of the pixel data element (or of the end of what was read)
    implicit: bool
    transfer_syntax: str  # the encoding the dataset is in (as read, whatever the meta claimed)
    media_class: str  # MediaStorageSOPClassUID of the file meta
    pixels: bool  # a pixel data element follows ``end``
    reader: str  # "fast" | "pydicom"
    streamable: bool = True  # False: deflated or big endian, decoded whole and re-encoded

    def view(self) -> "HeaderView":
        return HeaderView(self.nodes, self.pixels)


def check_composite(header: Header) -> None:
    """PS3.10 files we publish are composite objects: refuse the rest (once, for both readers)."""
    if not header.nodes:
        raise Quarantine("not_dicom", "no data elements")
    tags = {n.tag for n in header.nodes}
    if header.media_class == DICOMDIR_SOP_CLASS or 0x00041220 in tags:
        raise Quarantine("dicomdir", "a DICOMDIR (media directory) holds paths and names, not images")
    if 0x00080018 not in tags or 0x00080016 not in tags:
        raise Quarantine("not_dicom", "no SOP Class/Instance UID: not a composite object")


class HeaderView:
    """``get(keyword, default)`` and ``keyword in view`` over one dataset's nodes.

    Answers like a pydicom Dataset for what rules read (the pixel-risk rule,
    identity): single text values as ``str``, multi-valued text as
    ``list[str]``, sequences as lists of views, binary numbers as ``int`` or
    ``list[int]``. ``"PixelData" in view`` is True when a pixel data element
    follows the header, although no reader loads it.
    """

    __slots__ = ("_by_tag", "_pixels")

    def __init__(self, nodes: list[Node], pixels: bool = False) -> None:
        self._by_tag = {n.tag: n for n in nodes}
        self._pixels = pixels

    def node(self, kw: str) -> Node | None:
        tag = tag_for_keyword(kw)
        return self._by_tag.get(tag) if tag is not None else None

    def get(self, kw: str, default: Any = None) -> Any:
        n = self.node(kw)
        if n is None:
            return default
        if n.items is not None:
            return [HeaderView(item) for item in n.items]
        if n.values is not None:
            return n.values[0] if len(n.values) == 1 else list(n.values)
        fmt = BINARY_NUMBERS.get(n.vr)
        if fmt and n.raw and n.vr != "AT":
            size = struct.calcsize("<" + fmt)
            count = len(n.raw) // size
            nums = list(struct.unpack(f"<{count}{fmt}", n.raw[: count * size]))
            return nums[0] if count == 1 else nums
        return default

    def text(self, kw: str) -> str:
        """A value as one string (multi-valued joined with backslashes), '' when absent."""
        n = self.node(kw)
        return n.text() if n is not None and n.values is not None else ""

    def __getattr__(self, kw: str) -> Any:  # ds.Modality style, for rules written against pydicom
        if kw.startswith("_"):
            raise AttributeError(kw)
        value = self.get(kw, _MISSING)
        if value is _MISSING:
            raise AttributeError(kw)
        return value

    def __contains__(self, kw: object) -> bool:
        if kw in _PIXEL_KEYWORDS and self._pixels:
            return True
        tag = tag_for_keyword(kw) if isinstance(kw, str) else kw
        return tag in self._by_tag


_MISSING = object()
