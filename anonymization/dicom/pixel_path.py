"""The pixel side of one file: stream-cleaned, audited, decoded whole, or scanned as bytes.

The de-identifier decides (``pixel_risk.pixels_at_risk``, the one rule) and this
module runs the pixel module's functions (deid-pixels; DEID_INTERFACES.md):

* :func:`stream_cleaned`: at-risk pixels cleaned frame by frame straight from
  the file (``pixel_stream.clean_pixel_element``), with the header values the
  cleaning changed; memory stays at a few frames (issue 10.6);
* :func:`audit`: the sampled OCR audit of files the rule calls safe;
* :func:`in_memory`: big endian or deflated files (and at-risk pixels when no
  streaming cleaner is installed), decoded whole, re-encoded little endian and
  read again, so they take the same header path as every other file;
* :func:`pixel_check`: the final scan of written encapsulated pixel bytes.

The pixel module is imported on first use: files without at-risk pixels never
load numpy or the OCR stack.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import pydicom

from anonymization.dicom import verify
from anonymization.dicom.actions import Actions
from anonymization.dicom.errors import Quarantine
from anonymization.dicom.header import Header
from anonymization.dicom.readers import read_pydicom
from anonymization.dicom.writer import pixel_span, to_little_endian
from anonymization.dicom_elements import BINARY_NUMBERS, Node, text_node
from anonymization.phi_scan import PhiSet

if TYPE_CHECKING:
    from anonymization.dicom.deidentifier import DeidResult, Deidentifier


def _why(exc: Exception) -> str:
    """The true reason for a quarantine detail: a PixelCleanError's message is PHI-free by
    construction ("BitsAllocated 32", "PALETTE COLOR pixels"); anything else gives its type only."""
    message = getattr(exc, "message", None)
    return f"{type(exc).__name__}: {message}" if isinstance(message, str) and message else type(exc).__name__


def pixel_module(languages: tuple[str, ...]) -> tuple[Any, Any]:
    from anonymization import pixel_stream

    settings = pixel_stream.PixelSettings(languages=languages)
    return pixel_stream, settings


def audit(deid: "Deidentifier", header: Header, fp: BinaryIO, size: int, act: Actions) -> None:
    """The sampled OCR audit of pixels the rule called safe (pixel module; a hit quarantines)."""
    module, settings = pixel_module(deid.languages)
    span = pixel_span(fp, header.end, size, header.implicit)
    if span is None:
        return
    ident = deid.identify(header.nodes, act.profile)
    try:
        module.audit_pixel_element(fp, span, header.view(), sorted(ident.phi.raw), settings, header.transfer_syntax)
    except Exception as exc:  # noqa: BLE001 - PixelCleanError carries the reason
        raise Quarantine(str(getattr(exc, "reason", "") or "burned_in_text_audit"),
                         f"pixel audit: {_why(exc)}") from exc


def stream_cleaned(deid: "Deidentifier", header: Header, fp: BinaryIO, size: int, dst_dir: Path,
                   relpath: str | None, act: Actions) -> "DeidResult":
    """At-risk pixels cleaned frame by frame from the file (memory ~ a few frames, issue 10.6)."""
    module, settings = pixel_module(deid.languages)
    span = pixel_span(fp, header.end, size, header.implicit)
    if span is None:
        raise Quarantine("unreadable_pixel_data", "no pixel data element where the header ends")
    ident = deid.identify(header.nodes, act.profile)
    try:
        cleaned = module.clean_pixel_element(fp, span, header.view(), sorted(ident.phi.raw), settings,
                                             header.transfer_syntax)
    except Exception as exc:  # noqa: BLE001 - PixelCleanError carries the reason
        raise Quarantine(str(getattr(exc, "reason", "") or "burned_in_text"),
                         f"pixels could not be cleared: {_why(exc)}") from exc
    try:
        nodes = updated(header.nodes, cleaned.updates, cleaned.removals)
        header = Header(nodes, header.end, header.implicit, cleaned.transfer_syntax or header.transfer_syntax,
                        header.media_class, header.pixels, header.reader, header.streamable)
        return deid._write(header, fp, size, dst_dir, relpath, act, pixels_modified=cleaned.modified,
                           pixel_source=cleaned.write, span=span)
    finally:
        cleaned.close()


def pixel_check(scan: Callable[..., bool] | None, phi: PhiSet) -> Callable[[Path, Any], None] | None:
    """The final scan of the written pixel bytes for the input's strong values (issue 10.3)."""
    if scan is None:
        return None
    # 6+ characters: shorter terms occur by chance in hundreds of MB of native pixels
    terms = [t for t in phi.searchable(include_weak=False, min_digits=8) if len(t.replace(" ", "")) >= 6]

    def check(path: Path, span: Any) -> None:
        # Encapsulated data is where text hides between the samples (JPEG COM/APPn segments,
        # junk after EOI): every byte of it is searched. Native samples are pixel values, checked
        # by the pixel-risk rule and OCR; bytes past their declared length are dropped by the filter.
        if span is not None and span.encapsulated and terms and scan(path, span, terms):
            raise Quarantine("residual_phi", f"{verify.tag_name(span.tag)} pixel_bytes")

    return check


def in_memory(deid: "Deidentifier", src: Path, header: Header, dst_dir: Path, relpath: str | None, act: Actions,
              *, clean_pixels: bool) -> "DeidResult":
    """Decoded whole: pixels to clean, or an encoding that cannot be streamed (deflate, big endian).

    The (cleaned) dataset is re-encoded as Little Endian in memory and then
    goes through the same header path as every other file: one set of rules.
    """
    try:
        ds = pydicom.dcmread(src, force=True)
    except Exception as exc:  # noqa: BLE001
        raise Quarantine("unreadable_pixel_data", type(exc).__name__) from exc
    modified = False
    if clean_pixels:
        if deid.pixel_cleaner is None:
            raise Quarantine("burned_in_text", "pixels at risk of burned-in text and no pixel cleaner is configured")
        ident = deid.identify(header.nodes, act.profile)
        try:
            deid.pixel_cleaner(ds, sorted(ident.phi.raw))
        except Quarantine:
            raise
        except Exception as exc:  # noqa: BLE001
            reason = getattr(exc, "reason", None) or "burned_in_text"
            raise Quarantine(str(reason), f"pixels could not be cleared: {_why(exc)}") from exc
        modified = True
    buf = io.BytesIO()
    try:
        implicit, little = to_little_endian(ds)
        fit_lengths(ds, implicit)
        pydicom.dcmwrite(buf, ds, enforce_file_format=True, implicit_vr=implicit, little_endian=little)
    except Quarantine:
        raise
    except Exception as exc:  # noqa: BLE001
        raise Quarantine("write_error", f"re-encoding: {type(exc).__name__}") from exc
    size = buf.tell()
    buf.seek(0)
    again = read_pydicom(buf, size)
    return deid._write(again, buf, size, dst_dir, relpath, act, pixels_modified=modified)


def stream_available() -> bool | None:
    """Whether the pixel module's frame-by-frame cleaner is installed (imported on first use: it
    brings numpy and the OCR stack, which files without at-risk pixels never need)."""
    from importlib.util import find_spec

    return True if find_spec("anonymization.pixel_stream") is not None else None


def updated(nodes: list[Node], updates: dict[str, str], removals: list[str]) -> list[Node]:
    """Header values the pixel module changed (BurnedInAnnotation, PhotometricInterpretation ...)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    by_tag = {n.tag: n for n in nodes}
    for kw in removals or []:
        tag = tag_for_keyword(kw)
        if tag is not None:
            by_tag.pop(int(tag), None)
    for kw, value in (updates or {}).items():
        tag = tag_for_keyword(kw)
        if tag is None or kw == "TransferSyntaxUID":
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr in BINARY_NUMBERS:
            fmt = BINARY_NUMBERS[vr]
            by_tag[int(tag)] = Node(int(tag), vr, struct.pack("<" + fmt, int(value)))
        else:
            by_tag[int(tag)] = text_node(int(tag), vr, str(value).split("\\"))
    return sorted(by_tag.values(), key=lambda n: n.tag)


def scan_fn() -> Callable[..., bool] | None:
    """The pixel module's byte scan (DEID_INTERFACES.md 4), imported on first use."""
    from importlib.util import find_spec

    if find_spec("anonymization.encapsulated") is None:
        return None

    def scan_pixel_bytes(path: Path, span: Any, terms: list[str]) -> bool:
        from anonymization.encapsulated import scan_pixel_bytes as real

        return bool(real(path, span, terms))

    return scan_pixel_bytes


def fit_lengths(ds: Any, implicit: bool) -> None:
    """Values longer than their VR allows in Explicit VR (e.g. a >64 KB US/SS written as a short VR,
    or a text value too long for its 2-byte length): re-declared with the VR's long form (OW/UT)
    so the re-encoding does not fail on the file's own odd lengths (issue 10.4)."""
    if implicit:
        return  # 4-byte lengths for every VR
    for elem in ds.iterall():
        if elem.VR in ("US", "SS", "US or SS") and isinstance(elem.value, (bytes, bytearray)) and len(elem.value) > 0xFFFF:
            elem.VR = "OW"
        elif elem.VR in ("LO", "SH", "ST", "LT", "CS", "DS", "IS", "PN", "AE", "AS", "DA", "TM", "DT") and \
                isinstance(elem.value, str) and len(elem.value.encode("utf-8", "ignore")) > 0xFFFE:
            elem.VR = "UT"
