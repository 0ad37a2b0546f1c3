"""Readers: a file's header into the one :class:`Header` model.

* :func:`read_fast` parses the common case by hand (preamble + DICM, Little
  Endian, an encoding that matches its transfer syntax, no undefined lengths
  outside sequences): no pydicom objects, about 10x faster per file.
* :func:`read_pydicom` lets pydicom parse everything else (no preamble, big
  endian, deflate, odd encodings, encapsulated values nested in items) with
  ``stop_before_pixels`` and converts its raw elements into the same nodes.

:func:`read_header` picks one by the ``reader`` setting ("fast": the fast
reader, and pydicom when it declines; "pydicom": always pydicom) and then runs
the composite-object checks once, whichever reader read the file. Both
readers give the same nodes for the same file (a differential test checks it
on every real-world file).
"""

from __future__ import annotations

import struct
import warnings
from typing import Any, BinaryIO, Literal

import pydicom
from pydicom.errors import InvalidDicomError

from anonymization.dicom.errors import Quarantine
from anonymization.dicom.header import PIXEL_TAGS, Header, check_composite
from anonymization.dicom_elements import (
    DEFAULT_ENCODINGS, KNOWN_VRS, LONG_VRS, BadElement, Node, encodings_of, make_node, read_nodes, resolve_vr,
)

ReaderName = Literal["fast", "pydicom"]
STREAMABLE_EXCLUDED = frozenset({"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"})  # deflate, big endian


def read_header(fp: BinaryIO, size: int, reader: ReaderName = "fast") -> Header:
    """The header of an open file, checked to be a composite object; raises :class:`Quarantine`."""
    if size == 0:
        raise Quarantine("empty_file", "zero bytes")
    header = None
    if reader == "fast":
        try:
            header = read_fast(fp, size)
        except Unsupported:
            header = None  # unusual file: pydicom reads it
        except BadElement as exc:
            raise Quarantine("unreadable_element", str(exc)) from exc
    if header is None:
        fp.seek(0)
        header = read_pydicom(fp, size)
    check_composite(header)
    return header


def read_pydicom(fp: BinaryIO, size: int) -> Header:
    """pydicom parses the header (``stop_before_pixels``); its raw elements become nodes."""
    forced = False  # read without the DICM prefix: garbage elements mean "not DICOM", not a damaged element
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except InvalidDicomError:
            forced = True
            # A dataset without preamble/meta (PS3.10 7.1 is often ignored by old
            # modalities): accepted only if it parses into a composite object.
            fp.seek(0)
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            except Exception as exc:  # noqa: BLE001
                raise Quarantine("not_dicom", f"no DICM prefix and unparseable: {type(exc).__name__}") from exc
        except (EOFError, struct.error) as exc:
            raise Quarantine("truncated", f"header ends early: {type(exc).__name__}") from exc
        except Exception as exc:  # noqa: BLE001
            raise Quarantine("unreadable_header", type(exc).__name__) from exc
    for w in caught:
        msg = str(w.message).lower()
        if "end of file" in msg or "eof" in msg or "truncat" in msg:
            raise Quarantine("truncated", "header ends before its declared length")
    end = fp.tell()
    if len(ds._dict) == 0:
        raise Quarantine("not_dicom", "no data elements")
    implicit, little = getattr(ds, "original_encoding", (True, True))
    implicit = implicit in (True, None)
    meta_ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    streamable = meta_ts not in STREAMABLE_EXCLUDED and little is not False
    ts = meta_ts
    if not ts or ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"):
        ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"  # as encoded, whatever the meta said
    elif implicit and streamable:
        raise Quarantine("unreadable_header", "Implicit VR dataset under a compressed transfer syntax")
    try:
        nodes = read_nodes(ds)
    except BadElement as exc:
        if forced and 0x00080016 not in ds._dict:  # a text file or PDF read as a dataset
            raise Quarantine("not_dicom", "no DICM prefix and no readable dataset") from exc
        raise Quarantine("unreadable_element", str(exc)) from exc
    except Quarantine:
        raise
    except Exception as exc:  # noqa: BLE001 - a sequence or value pydicom cannot parse
        if forced and 0x00080016 not in ds._dict:
            raise Quarantine("not_dicom", "no DICM prefix and no readable dataset") from exc
        raise Quarantine("unreadable_element", type(exc).__name__) from exc
    media_class = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
    pixels = streamable and _pixel_tag_at(fp, end, size)
    if not streamable:
        pixels = any(t in ds._dict for t in PIXEL_TAGS) or _pixel_tag_at(fp, end, size, big=little is False)
    return Header(nodes, end, implicit, ts, media_class, pixels, "pydicom", streamable)


def _pixel_tag_at(fp: BinaryIO, offset: int, size: int, big: bool = False) -> bool:
    if offset + 4 > size:
        return False
    fp.seek(offset)
    head = fp.read(4)
    if len(head) < 4:
        return False
    group, elem = struct.unpack(">HH" if big else "<HH", head)
    return (group << 16 | elem) in PIXEL_TAGS


class Unsupported(Exception):
    """The fast reader declines this file; the caller reads it with pydicom instead.

    Declining is never a verdict on the file: anything unusual (no DICM prefix,
    big endian or deflated data, a VR that is not one, an encoding that does not
    match its transfer syntax, undefined lengths outside sequences, a header cut
    short) goes to the pydicom path, which decides what the file is.
    """


IMPLICIT_LE, EXPLICIT_LE = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
_NOT_FAST_TS = frozenset({"1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99"})  # big endian, deflate
_ALL_VRS = frozenset(vr.encode("ascii") for vr in KNOWN_VRS)
_PIXEL_STOP = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_HHI = struct.Struct("<HHI").unpack_from
_HH2sH = struct.Struct("<HH2sH").unpack_from
_I = struct.Struct("<I").unpack_from


class _Reader:
    """The file's header bytes, read in growing chunks as the parser needs them."""

    def __init__(self, fp: Any, size: int) -> None:
        self.fp = fp
        self.size = size
        fp.seek(0)
        self.data = fp.read(min(size, 1 << 16))

    def need(self, end: int) -> bytes:
        if end > len(self.data):
            if end > self.size:
                raise Unsupported("header runs past the end of the file")
            self.data += self.fp.read(max(end - len(self.data), 1 << 16))
            if end > len(self.data):
                raise Unsupported("short read")
        return self.data


def read_fast(fp: Any, size: int) -> Header:
    """Parse preamble, file meta and dataset up to the pixel data (PS3.10 7.1, PS3.5 7)."""
    r = _Reader(fp, size)
    data = r.need(132)
    if data[128:132] != b"DICM":
        raise Unsupported("no DICM prefix")
    pos, ts, media_class = 132, "", ""
    while True:  # File Meta Information: always Explicit VR Little Endian
        data = r.need(pos + 8)
        group, el, vrb, length = _HH2sH(data, pos)
        if group != 0x0002:
            break
        if vrb not in _ALL_VRS:
            raise Unsupported("meta element without a VR")
        if vrb.decode() in LONG_VRS:
            data = r.need(pos + 12)
            (length,) = _I(data, pos + 8)
            pos += 12
        else:
            pos += 8
        data = r.need(pos + length)
        if el == 0x0010:
            ts = data[pos : pos + length].decode("ascii", "replace").strip(" \x00")
        elif el == 0x0002:
            media_class = data[pos : pos + length].decode("ascii", "replace").strip(" \x00")
        pos += length
        if pos >= size:
            break
    if not ts or ts in _NOT_FAST_TS:
        raise Unsupported("transfer syntax read by pydicom")
    implicit = ts == IMPLICIT_LE
    if pos + 6 <= size:  # the dataset's own encoding must be what the meta says (else pydicom sorts it out)
        looks_explicit = r.need(pos + 6)[pos + 4 : pos + 6] in _ALL_VRS
        if looks_explicit == implicit:
            raise Unsupported("dataset encoding differs from its transfer syntax")
    nodes, pos, pixels = _parse(r, pos, None, implicit, DEFAULT_ENCODINGS, True)
    return Header(nodes, pos, implicit, ts, media_class, pixels, "fast")


def _parse(
    r: _Reader, pos: int, end: int | None, implicit: bool, encodings: tuple[str, ...], top: bool
) -> tuple[list[Node], int, bool]:
    """Elements from ``pos`` to ``end`` (None: to the item delimiter, or at the top to the pixels/EOF)."""
    nodes: list[Node] = []
    creators: dict[int, str] = {}
    last = -1
    size = r.size
    while True:
        if end is not None and pos >= end:
            if pos != end:
                raise Unsupported("element runs past its item")
            return nodes, pos, False
        if top and pos >= size:
            return nodes, pos, False
        data = r.need(pos + 8)
        group, el = data[pos] | data[pos + 1] << 8, data[pos + 2] | data[pos + 3] << 8
        tag = group << 16 | el
        if tag == 0xFFFEE00D and end is None and not top:
            return nodes, pos + 8, False
        if top and tag in _PIXEL_STOP:
            return nodes, pos, True
        if group == 0xFFFE or tag <= last:
            raise Unsupported("delimiter out of place or elements out of order")
        last = tag
        if implicit:
            file_vr = None
            (length,) = _I(data, pos + 4)
            pos += 8
        else:
            vrb = data[pos + 4 : pos + 6]
            if vrb not in _ALL_VRS:
                raise Unsupported("not a VR")
            file_vr = vrb.decode("ascii")
            if file_vr in LONG_VRS:
                data = r.need(pos + 12)
                (length,) = _I(data, pos + 8)
                pos += 12
            else:
                length = data[pos + 6] | data[pos + 7] << 8
                pos += 8
        vr = resolve_vr(tag, file_vr, creators)
        if vr == "SQ" and file_vr in (None, "SQ"):
            items, pos = _items(r, pos, length, implicit, encodings)
            nodes.append(Node(tag, "SQ", None, None, items))
            continue
        if length == 0xFFFFFFFF or vr == "SQ":  # encapsulated values in items, UN sequences: pydicom's job
            raise Unsupported("undefined length outside a sequence")
        data = r.need(pos + length)
        raw = data[pos : pos + length]
        pos += length
        node = make_node(tag, vr, file_vr, raw, encodings, implicit)
        if tag == 0x00080005:
            encodings = encodings_of(node.values if node.values and len(node.values) > 1 else (node.values or [""])[0])
        elif node.private and 0x10 <= el <= 0xFF and node.values:
            creators[tag] = node.values[0].strip()
        nodes.append(node)


def _items(r: _Reader, pos: int, length: int, implicit: bool, encodings: tuple[str, ...]) -> tuple[list[list[Node]], int]:
    end = None if length == 0xFFFFFFFF else pos + length
    items: list[list[Node]] = []
    while True:
        if end is not None and pos >= end:
            if pos != end:
                raise Unsupported("item runs past its sequence")
            return items, pos
        data = r.need(pos + 8)
        group, el, ilen = _HHI(data, pos)
        pos += 8
        if (group, el) == (0xFFFE, 0xE0DD):
            if end is not None:
                raise Unsupported("sequence delimiter in a defined-length sequence")
            return items, pos
        if (group, el) != (0xFFFE, 0xE000):
            raise Unsupported("not an item")
        if ilen == 0xFFFFFFFF:
            nodes, pos, _ = _parse(r, pos, None, implicit, encodings, False)
        else:
            nodes, pos, _ = _parse(r, pos, pos + ilen, implicit, encodings, False)
        items.append(nodes)
