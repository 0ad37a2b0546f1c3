"""Writing a de-identified file: new file meta, the header bytes, the pixel element copied.

The header is serialised by ``dicom_elements.write_nodes``; the pixel data
element is copied byte for byte from the input, by the kernel
(``copy_file_range``) for large files, so a 1 GB cine costs a few MB of
memory and its pixels are provably unchanged. Only the pixel data element is
copied: bytes after it (trailing padding, garbage, anything a modality
appended) never reach the output. Output goes to a temporary name and is
renamed only when complete.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset
from pydicom.uid import UID

from anonymization.dicom.errors import Quarantine
from anonymization.dicom.header import PIXEL_TAGS

CHUNK = 1 << 20
#: ``pixel_filter(src_fp, span, dst_fp) -> bytes written | None`` (None: nothing to change,
#: copy verbatim). Provided by the pixel module for encapsulated data (DEID_INTERFACES.md).
PixelFilter = Callable[[BinaryIO, "PixelSpan", BinaryIO], "int | None"]


@dataclass(frozen=True)
class PixelSpan:
    """Where the pixel data element lies in the input."""

    offset: int
    length: int  # bytes of the whole element (header + value [+ items and delimiter])
    header_len: int  # 8 (implicit) or 12 (explicit) bytes before the value
    encapsulated: bool  # undefined length: items of fragments (PS3.5 A.4)
    tag: int


def pixel_span(fp: BinaryIO, offset: int, size: int, implicit: bool) -> PixelSpan | None:
    if offset >= size:
        return None
    fp.seek(offset)
    head = fp.read(12)
    if len(head) < 8:
        raise Quarantine("truncated", "pixel data element header cut")
    group, elem = struct.unpack("<HH", head[:4])
    tag = group << 16 | elem
    if tag not in PIXEL_TAGS:
        return None
    if implicit:
        (length,) = struct.unpack("<I", head[4:8])
        header = 8
    else:
        if len(head) < 12:
            raise Quarantine("truncated", "pixel data element header cut")
        (length,) = struct.unpack("<I", head[8:12])
        header = 12
    if length != 0xFFFFFFFF:
        if offset + header + length > size:
            raise Quarantine("truncated", "pixel data shorter than its declared length")
        return PixelSpan(offset, header + length, header, False, tag)
    # Encapsulated (PS3.5 A.4): items until the sequence delimiter.
    pos = offset + header
    while True:
        fp.seek(pos)
        item = fp.read(8)
        if len(item) < 8:
            raise Quarantine("truncated", "encapsulated pixel data without sequence delimiter")
        g, e, ln = struct.unpack("<HHI", item)
        if (g, e) == (0xFFFE, 0xE0DD):
            return PixelSpan(offset, pos + 8 - offset, header, True, tag)
        if (g, e) != (0xFFFE, 0xE000) or ln == 0xFFFFFFFF:
            raise Quarantine("unreadable_pixel_data", "malformed encapsulated item")
        pos += 8 + ln
        if pos > size:
            raise Quarantine("truncated", "encapsulated fragment runs past end of file")



def write_file(
    out: Path, header_bytes: bytes, src: BinaryIO, span: PixelSpan | None, *, checksum: bool,
    pixel_filter: PixelFilter | None = None,
    check: Callable[[Path, "PixelSpan | None"], None] | None = None,
    pixel_source: Callable[[BinaryIO], int] | None = None,
) -> tuple[int, str, bool, Path]:
    """Write header + pixel element to ``out`` atomically; returns (bytes written, sha256 or '',
    whether the pixel filter rewrote the pixel element, the path written: see :func:`_place`).

    ``pixel_filter`` may rewrite the pixel element (JPEG markers, trailing bytes);
    ``check(written_path, pixel_span_in_output)`` runs on the complete file before it
    takes its name (the final scan of every byte); raising there leaves nothing behind.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256(header_bytes) if checksum else None
    written = len(header_bytes)
    filtered = None
    try:
        with tmp.open("wb") as out_fp:
            out_fp.write(header_bytes)
            if pixel_source is not None:  # a cleaned pixel element (spooled by the pixel module)
                out_fp.flush()
                start = out_fp.tell()
                written += pixel_source(out_fp)
                filtered = written
                if digest is not None:
                    out_fp.flush()
                    with tmp.open("rb") as back:
                        back.seek(start)
                        while chunk := back.read(CHUNK):
                            digest.update(chunk)
                if span is not None:
                    span = PixelSpan(span.offset, written - len(header_bytes), span.header_len, span.encapsulated,
                                     span.tag)
            elif span is not None:
                out_fp.flush()
                if pixel_filter is not None:
                    start = out_fp.tell()
                    try:
                        filtered = pixel_filter(src, span, out_fp)
                    except Quarantine:
                        raise
                    except Exception as exc:  # noqa: BLE001
                        raise Quarantine(str(getattr(exc, "reason", "") or "unreadable_pixel_data"),
                                         f"pixel filter: {type(exc).__name__}") from exc
                    if filtered is None:
                        out_fp.seek(start)
                        out_fp.truncate()
                    elif digest is not None:
                        out_fp.flush()
                        with tmp.open("rb") as back:
                            back.seek(start)
                            while chunk := back.read(CHUNK):
                                digest.update(chunk)
                if filtered is None:
                    written += _copy_span(src, out_fp, span, digest)
                else:
                    written += filtered
        if check is not None:
            out_span = None
            if span is not None:
                out_span = PixelSpan(len(header_bytes), written - len(header_bytes), span.header_len,
                                     span.encapsulated, span.tag)
            check(tmp, out_span)
        out = _place(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return written, (digest.hexdigest() if digest is not None else ""), filtered is not None, out


def _place(tmp: Path, out: Path) -> Path:
    """Give the written file its name; returns the name it got.

    The same bytes under the same name replace each other (a re-run). Different bytes for a name
    already taken (two inputs with one SOP Instance UID: the same image in two encodings, a
    modality that reuses UIDs) get ``<sop>.2.dcm``, ``<sop>.3.dcm``...: never overwritten, never lost.
    """
    if not out.exists() or _same_file_content(tmp, out):
        os.replace(tmp, out)
        return out
    stem = out.name[: -len(".dcm")] if out.name.endswith(".dcm") else out.name
    for n in range(2, 10_000):
        candidate = out.with_name(f"{stem}.{n}.dcm")
        if candidate.exists() and _same_file_content(tmp, candidate):
            os.replace(tmp, candidate)
            return candidate
        try:
            os.link(tmp, candidate)  # atomic: fails if another worker took the name meanwhile
        except FileExistsError:
            continue
        tmp.unlink()
        return candidate
    raise Quarantine("write_error", "too many files with one SOP Instance UID")


def _same_file_content(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with a.open("rb") as fa, b.open("rb") as fb:
        while True:
            x, y = fa.read(CHUNK), fb.read(CHUNK)
            if x != y:
                return False
            if not x:
                return True


_KERNEL_COPY_MIN = 4 << 20  # below this a thread costs more than it saves: a plain loop


def _copy_span(src: BinaryIO, dst: BinaryIO, span: PixelSpan, digest: "hashlib._Hash | None") -> int:
    """Copy the pixel element verbatim, hashing it on the way; memory stays at a few chunks.

    On real files the kernel copies (``copy_file_range``, no bytes through
    Python) in one thread while this thread reads the same range from the page
    cache and hashes it: both release the GIL, so the copy costs about what the
    SHA-256 costs. Elsewhere (in-memory buffers) a plain chunked loop.
    """
    try:
        in_fd, out_fd = src.fileno(), dst.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        in_fd = out_fd = -1
    if in_fd >= 0 and hasattr(os, "copy_file_range") and span.length >= _KERNEL_COPY_MIN:
        error: list[BaseException] = []

        def kernel_copy() -> None:
            try:
                pos, end, out_pos = span.offset, span.offset + span.length, os.lseek(out_fd, 0, os.SEEK_CUR)
                while pos < end:
                    n = os.copy_file_range(in_fd, out_fd, min(end - pos, 1 << 30), pos, out_pos)
                    if n == 0:
                        raise Quarantine("truncated", "pixel data ended while copying")
                    pos += n
                    out_pos += n
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                error.append(exc)

        if digest is None:  # nothing to hash: the kernel copies, this thread waits for it
            kernel_copy()
            if error:
                if isinstance(error[0], OSError):
                    dst.seek(0, os.SEEK_END)
                    return _copy_loop(src, dst, span, None)
                raise error[0]
            os.lseek(out_fd, 0, os.SEEK_END)
            return span.length
        worker = threading.Thread(target=kernel_copy, name="pixel-copy")
        worker.start()
        pos, end = span.offset, span.offset + span.length
        try:
            while digest is not None and pos < end:
                chunk = os.pread(in_fd, min(CHUNK * 4, end - pos), pos)
                if not chunk:
                    raise Quarantine("truncated", "pixel data ended while hashing")
                digest.update(chunk)
                pos += len(chunk)
        finally:
            worker.join()
        if error:
            if isinstance(error[0], OSError):  # e.g. a file system without copy_file_range: copy by hand
                dst.seek(0, os.SEEK_END)
                return _copy_loop(src, dst, span, None)
            raise error[0]
        os.lseek(out_fd, 0, os.SEEK_END)
        return span.length
    return _copy_loop(src, dst, span, digest)


def _copy_loop(src: BinaryIO, dst: BinaryIO, span: PixelSpan, digest: "hashlib._Hash | None") -> int:
    src.seek(span.offset)
    remaining = span.length
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise Quarantine("truncated", "pixel data ended while copying")
        dst.write(chunk)
        if digest is not None:
            digest.update(chunk)
        remaining -= len(chunk)
    return span.length



def to_little_endian(ds: Dataset) -> tuple[bool, bool]:
    """Deflated and Big Endian datasets become Explicit VR Little Endian before the header path.

    Returns the (implicit, little endian) encoding to write the dataset with.
    """
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    implicit, little = getattr(ds, "original_encoding", (None, None))
    big = little is False or ts == "1.2.840.10008.1.2.2"
    if big and "PixelData" in ds:
        # Native pixels swapped word by word (PS3.5 7.3: OW is 16-bit words, larger samples by their size).
        import numpy as np

        bits = int(ds.get("BitsAllocated", 16) or 16)
        width = bits // 8 if bits in (16, 32, 64) else (2 if ds["PixelData"].VR == "OW" else 1)
        if width > 1:
            ds.PixelData = np.frombuffer(ds.PixelData, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    if big or ts == "1.2.840.10008.1.2.1.99":
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.1")
        implicit = False
    elif "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2" if implicit in (True, None) else "1.2.840.10008.1.2.1")
    if "MediaStorageSOPClassUID" not in ds.file_meta and "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in ds.file_meta and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ts = str(ds.file_meta.TransferSyntaxUID)
    return (ts == "1.2.840.10008.1.2"), True


