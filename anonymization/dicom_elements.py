"""A DICOM header as a light element tree: read once, decoded once, written as bytes.

Why not edit a pydicom ``Dataset``: every attribute access converts a raw
element, every assignment re-validates, and the writer re-encodes values that
did not change. For a 40 KB CT that overhead is most of the de-identifier's
time. Here pydicom only parses the header into raw elements
(``dcmread(stop_before_pixels=True)``); each element then becomes a
:class:`Node` holding its original value bytes and, for text, its decoded
values (PS3.5 6.1 character sets, via pydicom's own decoders for non-ASCII).
Elements the rules keep are written back byte for byte; only changed ones are
encoded again. Output is Little Endian, Explicit or Implicit VR like the input
(PS3.5 7.1), sequences and items with undefined length (PS3.5 7.5).

Reading validates every element it does not decode as text (binary numbers:
whole multiples of their size, DS/IS: numbers), so a malformed element
quarantines the file as the full conversion would.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any

from pydicom.charset import convert_encodings, encode_string
from pydicom.datadict import dictionary_VR, keyword_for_tag, private_dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.values import convert_value

# Value representations that carry text (decoded) and numbers written as text.
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"})
SINGLE_VALUED_TEXT = frozenset({"LT", "ST", "UT", "UR"})  # backslash is text, not a separator (PS3.5 6.4)
NUMBER_STRINGS = frozenset({"DS", "IS"})
# Binary numbers: struct format and size of one value (PS3.5 Table 6.2-1).
BINARY_NUMBERS = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q", "AT": "I"}
_SIZES = {vr: struct.calcsize("<" + f) for vr, f in BINARY_NUMBERS.items()}
# Explicit VR with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2).
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
KNOWN_VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)
_NUL_PADDED = frozenset({"UI", "OB", "UN", "OW", "OD", "OF", "OL", "OV"})

_ITEM = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
_ITEM_END = struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
_SEQ_END = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
_SHORT = struct.Struct("<HH2sH").pack
_LONG = struct.Struct("<HH2sHI").pack
_IMPLICIT = struct.Struct("<HHI").pack

DEFAULT_ENCODINGS = ("iso8859",)


class BadElement(ValueError):
    """An element whose value cannot be what its VR says (the caller quarantines)."""

    def __init__(self, tag: int, why: str) -> None:
        super().__init__(f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {why}")
        self.tag = tag


class Node:
    """One element: tag, VR, original (or new) value bytes, decoded values, or items."""

    __slots__ = ("tag", "vr", "wvr", "raw", "values", "items", "private", "undefined")

    def __init__(
        self,
        tag: int,
        vr: str,
        raw: bytes | None,
        values: list[str] | None = None,
        items: list[list["Node"]] | None = None,
        wvr: str | None = None,
    ) -> None:
        self.tag = tag
        self.vr = vr  # resolved VR: what the rules see
        self.wvr = wvr or vr  # VR written in Explicit VR output (the file's own for untouched elements)
        self.raw = raw
        self.values = values  # decoded text values; None for binary and sequences
        self.items = items
        self.private = bool((tag >> 16) & 1)
        self.undefined = False  # encapsulated fragments (PS3.5 A.4) read with undefined length

    def text(self) -> str:
        return "\\".join(self.values or ())

    def __repr__(self) -> str:  # never prints values: they may be PHI
        return f"Node({self.tag:08X} {self.vr})"


# -- looking things up once per process ------------------------------------------------
_KEYWORDS: dict[int, str] = {}
_PUBLIC_VR: dict[int, str] = {}


def keyword(tag: int) -> str:
    kw = _KEYWORDS.get(tag)
    if kw is None:
        kw = "" if (tag >> 16) & 1 else (keyword_for_tag(tag) or "")
        _KEYWORDS[tag] = kw
    return kw


def _public_vr(tag: int) -> str:
    vr = _PUBLIC_VR.get(tag)
    if vr is None:
        if tag & 0xFFFF == 0:
            vr = "UL"  # group length (PS3.5 7.2)
        else:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "UN"
        vr = vr.split(" or ")[0]  # "US or SS", "OB or OW": ambiguity never concerns text
        _PUBLIC_VR[tag] = vr
    return vr


def resolve_vr(tag: int, file_vr: str | None, creators: dict[int, str]) -> str:
    """The VR the rules act on: the file's own, else (Implicit VR, or UN) the dictionary's."""
    if file_vr and file_vr != "UN":
        return file_vr
    if (tag >> 16) & 1:
        el = tag & 0xFFFF
        if 0x10 <= el <= 0xFF:
            return "LO"  # private creator (PS3.5 7.8.1)
        if file_vr == "UN":
            return "UN"
        creator = creators.get((tag & 0xFFFF0000) | (el >> 8))
        if creator:
            try:
                return private_dictionary_VR(tag, creator).split(" or ")[0]
            except KeyError:
                pass
        return "UN"
    return _public_vr(tag)


def encodings_of(value: Any) -> tuple[str, ...]:
    """Python codecs for a SpecificCharacterSet value (PS3.3 C.12.1.1.2)."""
    if value is None or value == "" or value == []:
        return DEFAULT_ENCODINGS
    try:
        return tuple(convert_encodings(value))
    except Exception:  # noqa: BLE001 - unknown terms: pydicom's default, residual scan still runs
        return DEFAULT_ENCODINGS


# -- reading -------------------------------------------------------------------------------
def _decode(tag: int, vr: str, raw: bytes, encodings: tuple[str, ...], implicit: bool = False) -> list[str]:
    if raw.isascii() and b"\x1b" not in raw:  # ISO 2022 (e.g. IR 87 Japanese) text is 7-bit with ESC
        text = raw.decode("ascii")
    else:  # pydicom's decoders: ISO 2022 escapes, multi-byte sets, PN component groups
        elem = RawDataElement(BaseTag(tag), vr, len(raw), raw, 0, implicit, True)
        value = convert_value(vr, elem, list(encodings))
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
            text = "\\".join("" if v is None else str(v) for v in value)
        else:
            text = "" if value is None else str(value)
    if vr in SINGLE_VALUED_TEXT:
        return [text.rstrip(" \x00")]
    return [v.strip(" \x00") for v in text.split("\\")]


# Binary control characters: all but TAB, LF, FF, CR (RIS comments carry line breaks even in LO,
# e.g. ReasonForStudy in deid-data's ultrasounds) and ESC (ISO 2022 code extensions).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


def _check_binary(tag: int, vr: str, raw: bytes) -> None:
    size = _SIZES.get(vr)
    if size and len(raw) % size:
        raise BadElement(tag, f"{vr} value of {len(raw)} bytes")


def _check_number_strings(tag: int, values: list[str]) -> None:
    for v in values:
        if v:
            try:
                float(v)
            except ValueError:
                raise BadElement(tag, "not a number") from None


def read_nodes(
    ds: Dataset, encodings: tuple[str, ...] | None = None, *, private_creators: bool = True
) -> list[Node]:
    """The elements of ``ds`` (and of every item, at any depth) as nodes, in tag order."""
    store: dict[int, Any] = ds._dict  # raw elements: reading them does not convert them
    cs = store.get(0x00080005)
    if cs is not None:
        value = cs.value if not isinstance(cs, RawDataElement) else (cs.value or b"").decode("ascii", "replace")
        if isinstance(value, str):
            value = [v.strip() for v in value.split("\\")]
        encodings = encodings_of(list(value) if not isinstance(value, str) else value)
    elif encodings is None:
        encodings = DEFAULT_ENCODINGS
    creators: dict[int, str] = {}
    nodes: list[Node] = []
    for tag in sorted(store):
        elem = store[tag]
        tag = int(tag)
        is_raw = type(elem) is RawDataElement
        file_vr = elem.VR
        if file_vr is not None and file_vr not in KNOWN_VRS:
            raise BadElement(tag, "value representation that DICOM does not define")
        vr = resolve_vr(tag, file_vr, creators)
        if vr == "SQ" or (not is_raw and elem.VR == "SQ"):
            seq = ds[tag].value if is_raw else elem.value
            items = [read_nodes(item, encodings) for item in (seq or [])]
            nodes.append(Node(tag, "SQ", None, None, items))
            continue
        if is_raw:
            raw = elem.value if elem.value is not None else b""
            if isinstance(raw, str):  # deferred / odd readers: never expected, never trusted
                raise BadElement(tag, "value not read")
            node = make_node(tag, vr, file_vr, raw, encodings, bool(elem.is_implicit_VR))
            if elem.length == 0xFFFFFFFF:  # encapsulated data nested in an item: kept as it was framed
                node.undefined = True
            if node.private and 0x10 <= (tag & 0xFFFF) <= 0xFF and node.values:
                creators[tag] = node.values[0].strip()
            nodes.append(node)
            continue
        else:  # converted by pydicom already (SpecificCharacterSet, or read by a caller): encode back
            value = elem.value
            seq = isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"
            items = list(value) if seq else ([] if value is None or value == "" else [value])
            if vr in TEXT_VRS or vr in NUMBER_STRINGS or vr == "UI":
                values = [str(v) for v in items] or [""]
                raw = encode_text(values, vr, encodings)
            elif vr in BINARY_NUMBERS and vr != "AT":
                values = None
                raw = struct.pack(f"<{len(items)}{BINARY_NUMBERS[vr]}", *items)
            elif isinstance(value, bytes):
                values, raw = None, value
            else:
                raise BadElement(tag, "converted element of an unexpected kind")
        if (tag >> 16) & 1 and 0x10 <= (tag & 0xFFFF) <= 0xFF and values:
            creators[tag] = values[0].strip()
        nodes.append(Node(tag, vr, raw, values, None, file_vr or vr))
    return nodes


def make_node(tag: int, vr: str, file_vr: str | None, raw: bytes, encodings: tuple[str, ...], implicit: bool) -> Node:
    """One element from its value bytes: text decoded, numbers and binary validated.

    A private element whose VR does not fit its bytes (common in Implicit VR
    files, where the VR comes from a private dictionary) is not fatal: it is
    read as UN, so its text still joins the PHI to look for, and the rules
    remove it (UN is never safe-listed).
    """
    try:
        return _make_node(tag, vr, file_vr, raw, encodings, implicit)
    except BadElement:
        if not (tag >> 16) & 1 or vr == "UN":
            raise
        return Node(tag, "UN", raw, [raw.decode("latin-1").strip(" \x00")], None, "UN")


def _make_node(tag: int, vr: str, file_vr: str | None, raw: bytes, encodings: tuple[str, ...], implicit: bool) -> Node:
    if vr in TEXT_VRS or vr in NUMBER_STRINGS or vr == "UI":
        values: list[str] | None = _decode(tag, vr, raw, encodings, implicit)
        if vr in NUMBER_STRINGS:
            _check_number_strings(tag, values)  # type: ignore[arg-type]
        elif vr not in SINGLE_VALUED_TEXT and _CONTROL.search("".join(values)):  # type: ignore[arg-type]
            # Short strings hold no control characters (PS3.5 6.1.3, 6.2): binary here means the
            # element swallowed its neighbours (a wrong length), which can hide anything.
            raise BadElement(tag, "control characters in a short text value")
    elif vr == "UN" and (tag >> 16) & 1:
        values = [raw.decode("latin-1").strip(" \x00")]  # private text hides here
    else:
        _check_binary(tag, vr, raw)
        values = None
    # UN for a public attribute (an intermediate system did not know it): written with its real VR
    return Node(tag, vr, raw, values, None, vr if file_vr in (None, "UN") else file_vr)


def creator_map(nodes: list[Node]) -> dict[int, str]:
    """(group << 16 | block) -> private creator, for the elements of one dataset."""
    return {n.tag: (n.values or [""])[0].strip() for n in nodes if n.private and 0x10 <= (n.tag & 0xFFFF) <= 0xFF}


def number_text(node: Node) -> str:
    """Binary numbers as text (for the residual scan of every value)."""
    fmt = BINARY_NUMBERS.get(node.vr)
    raw = node.raw or b""
    if not fmt or not raw:
        return ""
    count = len(raw) // _SIZES[node.vr]
    return "\\".join(str(v) for v in struct.unpack(f"<{count}{fmt}", raw[: count * _SIZES[node.vr]]))


def walk(nodes: list[Node], path: tuple[int, ...] = ()) -> Iterator[tuple[tuple[int, ...], Node]]:
    for n in nodes:
        yield path + (n.tag,), n
        if n.items:
            for i, item in enumerate(n.items):
                yield from walk(item, path + (n.tag, -1 - i))


def path_name(path: tuple[int, ...]) -> str:
    out = ""
    for t in path:
        if t < 0:
            out += f"[{-1 - t}]."
        else:
            out += keyword(t) or f"({t >> 16:04X},{t & 0xFFFF:04X})"
    return out


# -- writing -------------------------------------------------------------------------------
def encode_text(values: list[str], vr: str, encodings: tuple[str, ...]) -> bytes:
    text = "\\".join(values)
    if text.isascii():
        return text.encode("ascii")
    return encode_string(text, list(encodings))


def text_node(tag: int, vr: str, values: list[str], encodings: tuple[str, ...] = DEFAULT_ENCODINGS) -> Node:
    return Node(tag, vr, encode_text(values, vr, encodings), list(values))


def write_nodes(nodes: list[Node], implicit: bool, out: list[bytes]) -> None:
    """Append the encoding of ``nodes`` (sorted by tag) to ``out``."""
    for n in sorted(nodes, key=_tag_of):
        g, e = n.tag >> 16, n.tag & 0xFFFF
        if n.items is not None:
            out.append(_IMPLICIT(g, e, 0xFFFFFFFF) if implicit else _LONG(g, e, b"SQ", 0, 0xFFFFFFFF))
            for item in n.items:
                out.append(_ITEM)
                write_nodes(item, implicit, out)
                out.append(_ITEM_END)
            out.append(_SEQ_END)
            continue
        raw = n.raw or b""
        if n.undefined:  # fragments as read, between an undefined length and the delimiter
            out.append(_IMPLICIT(g, e, 0xFFFFFFFF) if implicit else _LONG(g, e, n.wvr.encode("ascii"), 0, 0xFFFFFFFF))
            out.append(raw)
            out.append(_SEQ_END)
            continue
        if len(raw) & 1:  # odd lengths are not DICOM (PS3.5 7.1.1): pad as the VR says
            raw += b"\x00" if n.wvr in _NUL_PADDED else b" "
        if implicit:
            out.append(_IMPLICIT(g, e, len(raw)))
        elif n.wvr in LONG_VRS:
            out.append(_LONG(g, e, n.wvr.encode("ascii"), 0, len(raw)))
        else:
            if len(raw) > 0xFFFF:
                raise BadElement(n.tag, f"{n.wvr} value of {len(raw)} bytes does not fit Explicit VR")
            out.append(_SHORT(g, e, n.wvr.encode("ascii"), len(raw)))
        out.append(raw)


def _tag_of(n: Node) -> int:
    return n.tag


def _uid_bytes(uid: str) -> bytes:
    b = uid.encode("ascii")
    return b + b"\x00" if len(b) & 1 else b


def file_meta(sop_class: str, sop_instance: str, transfer_syntax: str, impl_uid: str, impl_name: str) -> bytes:
    """Preamble, prefix and a File Meta Information group built from scratch (PS3.10 7.1)."""
    elems = [
        (0x0001, "OB", b"\x00\x01"),
        (0x0002, "UI", _uid_bytes(sop_class)),
        (0x0003, "UI", _uid_bytes(sop_instance)),
        (0x0010, "UI", _uid_bytes(transfer_syntax)),
        (0x0012, "UI", _uid_bytes(impl_uid)),
        (0x0013, "SH", impl_name.encode("ascii") + (b" " if len(impl_name) & 1 else b"")),
    ]
    body = bytearray()
    for el, vr, raw in elems:
        if vr == "OB":
            body += _LONG(0x0002, el, b"OB", 0, len(raw)) + raw
        else:
            body += _SHORT(0x0002, el, vr.encode("ascii"), len(raw)) + raw
    return b"\x00" * 128 + b"DICM" + _SHORT(0x0002, 0x0000, b"UL", 4) + struct.pack("<I", len(body)) + bytes(body)


