"""At-risk pixels cleaned frame by frame, straight from the input file (issue 10.2, 10.6).

A multi-gigabyte ultrasound cine must not be decoded whole: the element is
read one frame at a time (native frames by offset, encapsulated frames by
their fragments), each frame goes through the same
:class:`~anonymization.ocr_redact.FrameCleaner` (every distinct frame
OCR-checked, identical frames decided once by hash), and the output element
is written to an anonymous spool file. Memory stays at a few frames plus a
constant, whatever the file's size.

Encodings are kept where possible: native frames stay native; encapsulated
frames keep their bytes (COM/APPn text stripped, :mod:`encapsulated`) unless
redacted; a redacted JPEG Baseline frame is re-encoded as JPEG Baseline; any
other encoding with a redacted frame is written native (Explicit VR Little
Endian) and :attr:`PixelOutput.updates` says which header values change.
BurnedInAnnotation becomes NO only when every frame was checked clean.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from anonymization.encapsulated import _int, frame_fragments, read_frame, strip_frame, write_encapsulated
from anonymization.ocr_redact import FrameCleaner, PixelCleanError, PixelCleanResult, black_value, display_rgb

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
NATIVE = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1"}


@dataclass(frozen=True)
class PixelSettings:
    """Per worker: the partner's languages (the first picks the OCR model), where spools go."""

    languages: tuple[str, ...] = ("es", "pt", "en")
    spool_dir: str | None = None
    margin: int = 3
    jpeg_quality: int = 95


@dataclass
class PixelOutput:
    """The cleaned pixel element, spooled; header values to set before writing the header."""

    spool: BinaryIO
    length: int
    transfer_syntax: str
    updates: dict[str, str] = field(default_factory=dict)
    removals: list[str] = field(default_factory=list)
    result: PixelCleanResult | None = None

    @property
    def modified(self) -> bool:
        return bool(self.result and self.result.modified)

    def write(self, dst: BinaryIO) -> int:
        self.spool.seek(0)
        shutil.copyfileobj(self.spool, dst, 1 << 20)
        return self.length

    def close(self) -> None:
        self.spool.close()


class _Layout:
    """What the header says about the pixels (no value that identifies anyone)."""

    def __init__(self, view: Any, ts: str) -> None:
        self.rows, self.cols = _int(view, "Rows"), _int(view, "Columns")
        self.spp = _int(view, "SamplesPerPixel", 1) or 1
        self.bits = _int(view, "BitsAllocated")
        self.stored = _int(view, "BitsStored") or self.bits
        self.signed = _int(view, "PixelRepresentation") == 1
        self.planar = _int(view, "PlanarConfiguration")
        self.frames = _int(view, "NumberOfFrames", 1) or 1
        photometric = view.get("PhotometricInterpretation", None) or "MONOCHROME2"
        self.photometric = str(photometric[0] if isinstance(photometric, (list, tuple)) else photometric).strip().upper()
        self.ts = ts
        if not (self.rows and self.cols and self.bits):
            raise PixelCleanError("unreadable_pixel_data", "Rows, Columns or BitsAllocated missing")
        from anonymization.ocr_redact import MAX_FRAME_PIXELS

        if self.rows * self.cols > MAX_FRAME_PIXELS:  # refused before a frame is read
            raise PixelCleanError("image_too_large", f"frame of {self.rows}x{self.cols} pixels")
        if self.bits not in (8, 16, 32):
            raise PixelCleanError("unsupported_pixel_data", f"BitsAllocated {self.bits}")
        # Native YBR_FULL_422 (PS3.3 C.7.6.3.1.2): Y1 Y2 Cb Cr per pair of pixels, 2 bytes a pixel.
        self.subsampled = self.ts in NATIVE and self.photometric == "YBR_FULL_422"
        if self.photometric == "PALETTE COLOR" or (self.subsampled and (self.bits != 8 or self.cols % 2)):
            raise PixelCleanError("unsupported_pixel_data", f"{self.photometric} pixels")

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(f"<{'i' if self.signed else 'u'}{self.bits // 8}")

    @property
    def frame_bytes(self) -> int:
        if self.subsampled:
            return self.rows * self.cols * 2
        return self.rows * self.cols * self.spp * (self.bits // 8)

    def native_frame(self, data: bytes) -> np.ndarray:
        if self.subsampled:  # to full YBR: each pair's Cb/Cr repeated on both pixels
            q = np.frombuffer(data, np.uint8).reshape(self.rows, self.cols // 2, 4)
            out = np.empty((self.rows, self.cols, 3), np.uint8)
            out[..., 0] = q[..., :2].reshape(self.rows, self.cols)
            out[..., 1] = np.repeat(q[..., 2], 2, axis=1)
            out[..., 2] = np.repeat(q[..., 3], 2, axis=1)
            return out
        a = np.frombuffer(data, self.dtype).copy()
        if self.spp == 1:
            return a.reshape(self.rows, self.cols)
        if self.planar == 1:
            return a.reshape(self.spp, self.rows, self.cols).transpose(1, 2, 0).copy()
        return a.reshape(self.rows, self.cols, self.spp)

    def native_bytes(self, a: np.ndarray) -> bytes:
        if self.subsampled:  # back to pairs: Cb/Cr averaged over each pair (exact when untouched)
            pairs = a.reshape(self.rows, self.cols // 2, 2, 3).astype(np.uint16)
            q = np.empty((self.rows, self.cols // 2, 4), np.uint8)
            q[..., :2] = a[..., 0].reshape(self.rows, self.cols // 2, 2)
            q[..., 2] = (pairs[..., 0, 1] + pairs[..., 1, 1] + 1) // 2
            q[..., 3] = (pairs[..., 0, 2] + pairs[..., 1, 2] + 1) // 2
            return q.tobytes()
        if self.spp > 1 and self.planar == 1:
            a = a.transpose(2, 0, 1)
        return np.ascontiguousarray(a).astype(self.dtype, copy=False).tobytes()


def _decode_encoded(layout: _Layout, frame: bytes) -> np.ndarray:
    """One encapsulated frame decoded by pydicom's decoders (pylibjpeg / Pillow handlers)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = layout.ts
    ds.Rows, ds.Columns, ds.SamplesPerPixel = layout.rows, layout.cols, layout.spp
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = layout.bits, layout.stored, layout.stored - 1
    ds.PixelRepresentation = 1 if layout.signed else 0
    ds.PhotometricInterpretation = layout.photometric
    if layout.spp > 1:
        ds.PlanarConfiguration = layout.planar
    ds.NumberOfFrames = 1
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    try:
        return np.array(ds.pixel_array, copy=True)
    except Exception as exc:  # noqa: BLE001 - no handler, corrupt stream
        raise PixelCleanError("unreadable_pixel_data", f"cannot decode a frame: {type(exc).__name__}") from exc


def _analysis(layout: _Layout, arr: np.ndarray, decoded: bool) -> tuple[np.ndarray, str]:
    """The frame as displayed (for OCR) and its photometric; pydicom decodes YBR to RGB already."""
    photometric = layout.photometric
    if decoded and photometric.startswith("YBR") and layout.spp == 3:
        return arr, "RGB"
    return display_rgb(arr, photometric)


def _element_head(tag: int, explicit: bool, vr: str, length: int) -> bytes:
    import struct

    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if explicit:
        return head + vr.encode() + b"\x00\x00" + struct.pack("<I", length)
    return head + struct.pack("<I", length)


def _jpeg_baseline(arr: np.ndarray, photometric: str, quality: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    if arr.ndim == 2:
        Image.fromarray(arr.astype(np.uint8), "L").save(buf, format="JPEG", quality=quality)
    else:
        sub = 2 if photometric.endswith("420") else 1 if photometric.endswith("422") else 0
        Image.fromarray(arr.astype(np.uint8), "RGB").save(buf, format="JPEG", quality=quality, subsampling=sub)
    return buf.getvalue()


def _black(layout: _Layout, analysis_photometric: str, arr: np.ndarray, decoded: bool) -> Any:
    if not decoded and layout.photometric.startswith("YBR"):
        return (0, 128, 128)
    return black_value(analysis_photometric, arr.dtype, layout.stored)


def _frames(src: BinaryIO, span: Any, layout: _Layout):
    """(index, array to clean, analysis photometric, decoded?, original encoded bytes or None), one at a time."""
    if not span.encapsulated:
        value = span.offset + span.header_len
        if span.length - span.header_len < layout.frame_bytes * layout.frames:
            raise PixelCleanError("unreadable_pixel_data", "native pixel data shorter than its frames")
        for i in range(layout.frames):
            src.seek(value + i * layout.frame_bytes)
            data = src.read(layout.frame_bytes)
            yield i, layout.native_frame(data), False, None
        return
    for i, frags in enumerate(frame_fragments(src, span, layout.frames)):
        encoded = strip_frame(read_frame(src, frags))
        yield i, _decode_encoded(layout, encoded), True, encoded


def clean_pixel_element(
    src: BinaryIO,
    span: Any,
    view: Any,
    known_phi: list[str],
    settings: PixelSettings,
    transfer_syntax: str,
) -> PixelOutput:
    """Clean every frame of the pixel element at ``span``; the new element is spooled.

    Raises :class:`~anonymization.ocr_redact.PixelCleanError` (reason:
    ``unreadable_pixel_data``, ``unsupported_pixel_data``,
    ``burned_in_text_residual``).
    """
    layout = _Layout(view, transfer_syntax)
    explicit = span.header_len == 12
    cleaner: FrameCleaner | None = None
    spool = tempfile.TemporaryFile(dir=settings.spool_dir)
    try:
        encoded_frames: list[int] = []  # lengths, for the offset table
        to_native = False
        native_photometric = layout.photometric
        dtype = None
        body = tempfile.TemporaryFile(dir=settings.spool_dir) if span.encapsulated else spool
        if not span.encapsulated:
            n = layout.frame_bytes * layout.frames
            spool.write(_element_head(span.tag, explicit, "OB" if layout.bits == 8 else "OW", n + (n & 1)))
        for i, arr, decoded, encoded in _frames(src, span, layout):
            shown, photometric = _analysis(layout, arr, decoded)
            if cleaner is None:
                cleaner = FrameCleaner(known_phi, settings.languages, margin=settings.margin,
                                       black=_black(layout, photometric, arr, decoded))
            if shown is arr:
                changed = cleaner.clean(arr, photometric, i)
            else:
                changed = cleaner.clean(shown, photometric, i)
                if changed:  # the same boxes on the stored (YBR) values
                    ops = cleaner.last_ops
                    FrameCleaner._apply_ops(arr, ops, cleaner.margin, (0, 128, 128))
            if not span.encapsulated:
                spool.write(layout.native_bytes(arr))
                continue
            if changed and layout.ts != JPEG_BASELINE:
                to_native = True
                native_photometric = photometric
                dtype = arr.dtype
                break
            data = _jpeg_baseline(arr, layout.photometric, settings.jpeg_quality) if changed else encoded
            assert data is not None
            body.write(data)
            encoded_frames.append(len(data))
        if not span.encapsulated:
            if (layout.frame_bytes * layout.frames) & 1:
                spool.write(b"\x00")
        elif not to_native:
            # one fragment per frame, offset table rebuilt
            body.seek(0)

            def chunks():
                for ln in encoded_frames:
                    yield body.read(ln)

            write_encapsulated(spool, span.tag, explicit, chunks(), encoded_frames)
            body.close()
        else:
            # A redacted frame in an encoding we cannot write: the whole element becomes native.
            body.close()
            spool.seek(0)
            spool.truncate()
            assert cleaner is not None and dtype is not None
            samples = 3 if native_photometric == "RGB" else layout.spp
            frame_len = layout.rows * layout.cols * samples * dtype.itemsize
            n = frame_len * layout.frames
            spool.write(_element_head(span.tag, True, "OB" if dtype.itemsize == 1 else "OW", n + (n & 1)))
            for i, arr, decoded, _ in _frames(src, span, layout):
                shown, photometric = _analysis(layout, arr, decoded)
                cleaner.clean(arr, photometric, i)  # decided already (frame hash): no OCR again
                spool.write(np.ascontiguousarray(arr).tobytes())
            if n & 1:
                spool.write(b"\x00")
        assert cleaner is not None
        result = cleaner.result()
        updates = {"BurnedInAnnotation": "NO"}
        removals: list[str] = []
        ts = transfer_syntax
        if to_native:
            ts = EXPLICIT_VR_LE
            updates.update({"PhotometricInterpretation": native_photometric, "BitsAllocated": str(dtype.itemsize * 8)})  # type: ignore[union-attr]
            if native_photometric == "RGB":
                updates["PlanarConfiguration"] = "0"
                updates["SamplesPerPixel"] = "3"
            removals += ["ExtendedOffsetTable", "ExtendedOffsetTableLengths"]
        elif span.encapsulated:
            removals += ["ExtendedOffsetTable", "ExtendedOffsetTableLengths"]
        if result.modified and transfer_syntax == JPEG_BASELINE:
            updates["LossyImageCompression"] = "01"
        length = spool.tell()
        return PixelOutput(spool, length, ts, updates, removals, result)
    except BaseException:
        spool.close()
        raise


def audit_pixel_element(
    src: BinaryIO, span: Any, view: Any, known_phi: list[str], settings: PixelSettings, transfer_syntax: str
) -> PixelCleanResult:
    """The sampled audit of pixels the rule called safe: every distinct frame read, nothing written.

    A hit raises ``burned_in_text_audit`` and raises the file's class to at-risk
    (:func:`anonymization.pixel_risk.raise_class`).
    """
    from anonymization.pixel_risk import raise_class

    layout = _Layout(view, transfer_syntax)
    cleaner: FrameCleaner | None = None
    try:
        for i, arr, decoded, _ in _frames(src, span, layout):
            shown, photometric = _analysis(layout, arr, decoded)
            if cleaner is None:
                cleaner = FrameCleaner(known_phi, settings.languages, margin=settings.margin)
            cleaner.clean(shown, photometric, i, audit=True)
    except PixelCleanError as exc:
        if exc.reason == "burned_in_text_audit":
            raise_class(view)
        raise
    assert cleaner is not None
    return cleaner.result()
