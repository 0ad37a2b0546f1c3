"""Every byte of the pixel data element: nothing is copied without being read.

Pixel data that needs no cleaning is still copied through this filter,
because identifying text hides in bytes no header rule reaches:

* **JPEG segments** (PS3.5 A.4, ISO/IEC 10918-1 B.2.4): a COM segment or an
  APPn segment (Exif, XMP, vendor blocks) inside an encapsulated frame can
  hold the patient's name and ID. Only what a decoder needs is kept: APP0
  (JFIF/JFXX), APP14 (Adobe colour transform), APP8 ``mrfx`` (JPEG-LS
  colour transform); every other APPn and every COM is dropped, and so is
  anything after the frame's EOI. JPEG 2000 codestreams lose their COM
  (FF64) marker segments.
* **Bytes past the declared pixel length**: native pixel data longer than
  Rows x Columns x Samples x Bits x Frames (plus the even-length pad) is cut
  to that length; fragments past the declared frames are dropped; the basic
  offset table is rebuilt for the frames written.

:func:`scan_pixel_bytes` is the final verification's reader of the written
pixel element (raw encapsulated bytes included), for the input's own
identifying values.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from anonymization.ocr_redact import PixelCleanError

ITEM, SEQ_DELIM = (0xFFFE, 0xE000), (0xFFFE, 0xE0DD)
CHUNK = 1 << 20
#: APPn segments a decoder needs: (marker, identifier prefix).
_KEEP_APP = ((0xE0, b"JFIF"), (0xE0, b"JFXX"), (0xEE, b"Adobe"), (0xE8, b"mrfx"))
_STANDALONE = set(range(0xD0, 0xD8)) | {0x01, 0xD8}


# ------------------------------------------------------------------ JPEG / J2K


def strip_jpeg(frame: bytes) -> bytes:
    """A JPEG (10918 / 14495 JPEG-LS) frame without COM/APPn text and without bytes after EOI.

    Raises :class:`PixelCleanError` ``unreadable_pixel_data`` when the marker
    structure is broken (a decoder would fail on it too).
    """
    if frame[:2] != b"\xff\xd8":
        raise PixelCleanError("unreadable_pixel_data", "JPEG frame without SOI")
    out = bytearray(b"\xff\xd8")
    pos, n = 2, len(frame)
    while pos < n:
        if frame[pos] != 0xFF:
            raise PixelCleanError("unreadable_pixel_data", "JPEG marker expected")
        marker = frame[pos + 1] if pos + 1 < n else 0
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xD9:  # EOI: the frame ends; anything after it is dropped
            out += b"\xff\xd9"
            return bytes(out)
        if marker in _STANDALONE:
            out += frame[pos : pos + 2]
            pos += 2
            continue
        if pos + 4 > n:
            raise PixelCleanError("unreadable_pixel_data", "JPEG segment cut")
        (length,) = struct.unpack(">H", frame[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > n:
            raise PixelCleanError("unreadable_pixel_data", "JPEG segment length past the frame")
        body = frame[pos + 4 : end]
        drop = marker == 0xFE or (0xE0 <= marker <= 0xEF and not any(marker == m and body.startswith(i) for m, i in _KEEP_APP))
        if not drop:
            out += frame[pos:end]
        pos = end
        if marker == 0xDA:  # SOS: entropy-coded data up to the next marker (not RSTn, not stuffed 00)
            scan = pos
            while True:
                k = frame.find(b"\xff", scan)
                if k < 0 or k + 1 >= n:
                    # no EOI: keep the data (a decoder tolerates a missing EOI), end the frame properly
                    out += frame[pos:n].rstrip(b"\x00") + b"\xff\xd9"
                    return bytes(out)
                nxt = frame[k + 1]
                # 0xFF then a byte < 0x80 is data: stuffed 00 (10918) or JPEG-LS bit stuffing (14495),
                # where every byte after 0xFF in a scan has its high bit clear; markers are >= 0x80.
                if nxt < 0x80 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    scan = k + 1 if nxt == 0xFF else k + 2
                    continue
                out += frame[pos:k]
                pos = k
                break
    out += b"\xff\xd9"
    return bytes(out)


def strip_j2k(frame: bytes) -> bytes:
    """A JPEG 2000 codestream without COM (FF64) marker segments in its main header."""
    if frame[:4] == b"\x00\x00\x00\x0c":  # JP2 file format box: codestream inside; leave boxes, strip nothing
        return frame
    if frame[:2] != b"\xff\x4f":
        raise PixelCleanError("unreadable_pixel_data", "JPEG 2000 frame without SOC")
    out = bytearray(b"\xff\x4f")
    pos, n = 2, len(frame)
    while pos + 4 <= n:
        marker = frame[pos : pos + 2]
        if marker == b"\xff\x90":  # SOT: the main header ends; tile data copied as is
            out += frame[pos:]
            return bytes(out)
        (length,) = struct.unpack(">H", frame[pos + 2 : pos + 4])
        end = pos + 2 + length
        if length < 2 or end > n:
            raise PixelCleanError("unreadable_pixel_data", "JPEG 2000 segment length past the frame")
        if marker != b"\xff\x64":
            out += frame[pos:end]
        pos = end
    raise PixelCleanError("unreadable_pixel_data", "JPEG 2000 codestream without tiles")


def strip_frame(frame: bytes) -> bytes:
    """Drop the text-bearing segments of one encoded frame (JPEG family or JPEG 2000); others as they are."""
    if frame[:2] == b"\xff\xd8":
        return strip_jpeg(frame)
    if frame[:2] == b"\xff\x4f":
        return strip_j2k(frame)
    return frame


# ------------------------------------------------------------------ fragments


def _read_exact(fp: BinaryIO, n: int) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise PixelCleanError("unreadable_pixel_data", "encapsulated pixel data ends early")
    return data


def read_items(fp: BinaryIO, span: Any) -> tuple[bytes, list[tuple[int, int]]]:
    """(basic offset table, [(offset, length)] of each fragment) of an encapsulated element."""
    pos = span.offset + span.header_len
    end = span.offset + span.length
    fp.seek(pos)
    items: list[tuple[int, int]] = []
    bot: bytes | None = None
    while pos + 8 <= end:
        g, e, ln = struct.unpack("<HHI", _read_exact(fp, 8))
        if (g, e) == SEQ_DELIM:
            break
        if (g, e) != ITEM or ln == 0xFFFFFFFF or pos + 8 + ln > end:
            raise PixelCleanError("unreadable_pixel_data", "malformed encapsulated item")
        if bot is None:
            bot = _read_exact(fp, ln)
        else:
            items.append((pos + 8, ln))
            fp.seek(ln, 1)
        pos += 8 + ln
    return bot or b"", items


def frame_fragments(fp: BinaryIO, span: Any, n_frames: int) -> list[list[tuple[int, int]]]:
    """Fragments of each frame (PS3.5 A.4): by the offset table, one per frame, or by SOI/SOC starts."""
    bot, items = read_items(fp, span)
    if not items:
        raise PixelCleanError("unreadable_pixel_data", "encapsulated pixel data without fragments")
    if n_frames <= 1:
        return [items]
    if len(items) == n_frames:
        return [[it] for it in items]
    if len(bot) >= 4 * n_frames and len(bot) % 4 == 0:
        offsets = list(struct.unpack(f"<{len(bot) // 4}I", bot))[:n_frames]
        first = items[0][0] - 8
        frames: list[list[tuple[int, int]]] = [[] for _ in offsets]
        for off, ln in items:
            rel = off - 8 - first
            k = max(i for i, o in enumerate(offsets) if o <= rel) if rel >= offsets[0] else 0
            frames[k].append((off, ln))
        if all(frames):
            return frames
    frames = []
    for off, ln in items:
        fp.seek(off)
        start = fp.read(2)
        if not frames or start in (b"\xff\xd8", b"\xff\x4f"):
            frames.append([])
        frames[-1].append((off, ln))
    if len(frames) < n_frames:
        raise PixelCleanError("unreadable_pixel_data", f"{len(frames)} encoded frame(s) for {n_frames} declared")
    return frames[:n_frames]  # fragments past the declared frames are never written


def read_frame(fp: BinaryIO, fragments: list[tuple[int, int]]) -> bytes:
    parts = []
    for off, ln in fragments:
        fp.seek(off)
        parts.append(_read_exact(fp, ln))
    return b"".join(parts)


def write_encapsulated(dst: BinaryIO, tag: int, explicit: bool, frames: Iterator[bytes] | list[bytes],
                       lengths: list[int] | None = None) -> int:
    """Write an encapsulated element: one fragment per frame, even lengths, offset table when it fits."""
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    head += (b"OB\x00\x00" if explicit else b"") + struct.pack("<I", 0xFFFFFFFF)
    written = dst.write(head)
    if lengths is not None:
        offsets, pos = [], 0
        for ln in lengths:
            offsets.append(pos)
            pos += 8 + ln + (ln & 1)
        bot = struct.pack(f"<{len(offsets)}I", *offsets) if pos < 1 << 32 else b""
    else:
        bot = b""
    written += dst.write(struct.pack("<HHI", *ITEM, len(bot)) + bot)
    for f in frames:
        pad = b"\x00" if len(f) & 1 else b""
        written += dst.write(struct.pack("<HHI", *ITEM, len(f) + len(pad)))
        written += dst.write(f)
        written += dst.write(pad)
    written += dst.write(struct.pack("<HHI", *SEQ_DELIM, 0))
    return written


# ------------------------------------------------------------------ the element


def _int(view: Any, kw: str, default: int = 0) -> int:
    v = view.get(kw, None)
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    try:
        return int(str(v).strip()) if v not in (None, "") else default
    except ValueError:
        return default


def native_length(view: Any) -> int | None:
    """Bytes of native pixel data the header declares (None when it can't say)."""
    rows, cols = _int(view, "Rows"), _int(view, "Columns")
    spp, bits = _int(view, "SamplesPerPixel", 1), _int(view, "BitsAllocated")
    frames = _int(view, "NumberOfFrames", 1) or 1
    if not (rows and cols and bits):
        return None
    if bits == 1:
        return -(-rows * cols * spp * frames // 8)
    photometric = str(view.get("PhotometricInterpretation", "") or "").strip().upper()
    if photometric in ("YBR_FULL_422", "YBR_PARTIAL_422") and spp == 3:
        return rows * cols * 2 * frames * (bits // 8)  # two chroma samples per pair of pixels
    return rows * cols * spp * frames * (bits // 8)


def filter_pixel_element(src_fp: BinaryIO, span: Any, view: Any, dst_fp: BinaryIO) -> int | None:
    """Write the pixel element without hidden bytes; None when it is already clean (copy it verbatim).

    ``span``: where the element lies (offset, length, header_len,
    encapsulated, tag); ``view``: the header (Rows, Columns...).
    """
    explicit = span.header_len == 12
    if not span.encapsulated:
        declared = span.length - span.header_len
        want = native_length(view)
        if span.tag != 0x7FE00010 or want is None:
            return None
        if declared < want:
            return None  # nothing hidden past the end; whether it decodes is the pixel module's question
        keep = want + (want & 1)
        if declared <= keep:
            return None
        src_fp.seek(span.offset)
        head = bytearray(_read_exact(src_fp, span.header_len))
        head[-4:] = struct.pack("<I", keep)
        written = dst_fp.write(bytes(head))
        remaining = want
        while remaining:
            chunk = _read_exact(src_fp, min(CHUNK, remaining))
            written += dst_fp.write(chunk)
            remaining -= len(chunk)
        if keep > want:
            written += dst_fp.write(b"\x00")
        return written
    n_frames = _int(view, "NumberOfFrames", 1) or 1
    groups = frame_fragments(src_fp, span, n_frames)
    # fragments past the declared frames, or frames in several fragments: rewritten one per frame
    changed = sum(len(g) for g in groups) != len(read_items(src_fp, span)[1]) or any(len(g) > 1 for g in groups)
    lengths: list[int] = []
    # First pass: decide and measure, one frame in memory at a time.
    for g in groups:
        raw = read_frame(src_fp, g)
        clean = strip_frame(raw)
        if clean != raw.rstrip(b"\x00") and clean != raw:
            changed = True
        lengths.append(len(clean))
        del raw, clean
    if not changed:
        return None

    def frames() -> Iterator[bytes]:
        for g in groups:
            yield strip_frame(read_frame(src_fp, g))

    return write_encapsulated(dst_fp, span.tag, explicit, frames(), lengths)


# ------------------------------------------------------------------ verification


def _patterns(terms: list[str]) -> re.Pattern[bytes] | None:
    alts: set[bytes] = set()
    for t in terms:
        t = t.strip()
        if len(t.replace(" ", "")) < 4:
            continue
        for enc in ("latin-1", "utf-8", "utf-16-le"):
            try:
                alts.add(re.escape(t.encode(enc)))
            except UnicodeEncodeError:
                continue
    if not alts:
        return None
    return re.compile(b"|".join(sorted(alts, key=len, reverse=True)), re.IGNORECASE)


def scan_pixel_bytes(path: Any, span: Any, terms: list[str]) -> bool:
    """Whether the written pixel element of ``path`` holds any of ``terms`` (raw bytes, any item).

    Case-insensitive, as Latin-1, UTF-8 and UTF-16; read in chunks with an
    overlap so a value split across two chunks is still found.
    """
    pattern = _patterns(terms)
    if pattern is None or span is None:
        return False
    longest = max(len(t) for t in terms) * 2 + 8
    with open(path, "rb") as fp:
        fp.seek(span.offset)
        remaining = span.length
        tail = b""
        while remaining > 0:
            chunk = fp.read(min(CHUNK * 4, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            data = tail + chunk
            if pattern.search(data):
                return True
            tail = data[-longest:]
    return False
